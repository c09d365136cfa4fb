import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BindingFiles, InstanceSpec, InstanceState, InstanceStats, InstanceStatus, LogLine } from '../runtime.ts';
import { BindingFileSet } from './binding-files.ts';
import type { CredentialIssuer } from '../../identity/instance-identity.ts';
import { InstanceCredentialFiles } from './credentials.ts';
import { instanceEnv } from './environment.ts';
import { runCheck, startTimeoutMs } from './health.ts';
import type { MemoryCgroup, MemoryCgroups } from './cgroup.ts';
import { prepareScratch, ProcessHandle, SANDBOX_DROPLET_DIR, type ExitInfo, type Jail, type LogFifoStock } from './launch.ts';
import type { PortAllocator } from './ports.ts';
import { removeLogFifos, type AdoptableInstance, type ProcessRecord, type ProcessRecords } from './records.ts';
import type { Identity, Sandbox } from './sandbox.ts';
import { CpuMeter, cpuSecondsOf, DiskMeter, treeUsage, type TreeUsage } from './usage.ts';

/** A sidecar of the current incarnation: its own process group, sharing the instance's environment. */
interface SidecarHandle {
  source: string;
  handle: ProcessHandle;
}

/** CF's log source of a sidecar (Diego's sidecar run action): `APP/PROC/<TYPE>/SIDECAR/<NAME>`. */
export const sidecarLogSource = (processType: string, sidecarName: string) =>
  `APP/PROC/${processType.toUpperCase()}/SIDECAR/${sidecarName.toUpperCase()}`;

export interface SupervisorContext {
  host: string;
  ports: PortAllocator;
  records: ProcessRecords;
  tmpRoot: string;
  /** The log FIFOs of adoptable instances (outside every sandbox). */
  logFifos: LogFifoStock;
  restartDelayMs: (crashCount: number) => number;
  maxCrashes: number;
  crashResetMs: number;
  startPollMs: number;
  livenessIntervalMs: number;
  diskCacheMs: number;
  enforceMemoryLimit: boolean;
  sandbox: Sandbox;
  /** Kernel memory limits; undefined → the liveness poll of the process tree's RSS enforces them. */
  cgroups: MemoryCgroups | undefined;
  /** Issues instance identity credentials (CF_INSTANCE_CERT/KEY); undefined → instances get none. */
  credentials: CredentialIssuer | undefined;
  log: (line: LogLine) => void;
  changed: (id: string, appGuid: string) => void;
  /** Instances outlive Kiln and carry what a restarted Kiln needs to adopt them (records.ts). */
  adoptable: boolean;
}

/**
 * Supervises one instance slot like a Diego cell: runs an incarnation, gates RUNNING on the health check, keeps
 * checking liveness, and on a crash records the exit and restarts with backoff. `generation` identifies the current
 * incarnation; callbacks of an older one (late health results, exits after a restart) see a different generation
 * and do nothing.
 */
export class InstanceSupervisor {
  // Becomes STARTING (and announces it) synchronously in start().
  private state: InstanceState = 'DOWN';
  private since = Date.now();
  private runningSince: number | undefined;
  private crashCount = 0;
  private lastExit: InstanceStatus['lastExit'];
  private port: number | undefined;
  private handle: ProcessHandle | undefined;
  private sidecars: SidecarHandle[] = [];
  /** The current incarnation's kernel memory group: the kernel enforces the limit and measures usage then. */
  private cgroup: MemoryCgroup | undefined;
  /** The current incarnation's instance identity files, renewed until the incarnation ends. */
  private credentials: InstanceCredentialFiles | undefined;
  /** The binding files to start incarnations with: the spec's, then whatever updateBindingFiles brought. */
  private bindingFiles: BindingFiles | undefined;
  /** The current incarnation's binding files, rewritten in place by updateBindingFiles. */
  private bindings: BindingFileSet | undefined;
  private generation = 0;
  /** Set when the runtime kills the incarnation on purpose (health check, memory): becomes the crash reason. */
  private killReason: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private restarting: Promise<void> | undefined;
  private readonly cpu = new CpuMeter();
  private readonly tmpDir: string;
  private readonly disk: DiskMeter;
  private readonly source: string;
  /** CF_INSTANCE_GUID of each incarnation, for CELL messages. */
  private readonly guids = new WeakMap<ProcessHandle, string>();
  /**
   * False for an adopted instance until the controllers ensure its slot again: until then the spec holds only
   * what the record kept (no env, no command), so a crashed incarnation waits for claim() to be restarted.
   */
  private claimed = true;
  private restartWhenClaimed = false;

  constructor(
    private currentSpec: InstanceSpec,
    private readonly ctx: SupervisorContext,
    /** The app's own uid/gid inside the sandbox (Kiln running as root). */
    private readonly identity?: Identity,
  ) {
    const spec = currentSpec;
    this.tmpDir = join(ctx.tmpRoot, safeName(spec.id));
    this.disk = new DiskMeter([join(spec.dropletDir, 'app'), this.tmpDir], ctx.diskCacheMs);
    this.source = `APP/PROC/${spec.processType.toUpperCase()}`;
    this.bindingFiles = spec.bindingFiles;
  }

  /**
   * New binding files (a binding created or deleted, credentials rotated): the running incarnation's files are
   * replaced in place and later incarnations start with them. Files of another kind wait for a new version.
   */
  updateBindingFiles(files: BindingFiles): void {
    if (!this.bindingFiles || this.bindingFiles.kind !== files.kind || this.stopping) return;
    this.bindingFiles = files;
    this.bindings?.update(files);
  }

  get spec(): InstanceSpec {
    return this.currentSpec;
  }

  /**
   * Supervises the incarnation a previous Kiln run started (records.ts): same pid, port and instance guid. A
   * RUNNING one goes on with liveness checks, a STARTING one with its health check.
   */
  adopt(record: ProcessRecord & { instance: AdoptableInstance }): void {
    const facts = record.instance;
    const gen = ++this.generation;
    this.claimed = false;
    this.port = facts.port;
    this.ctx.ports.reserve(facts.port);
    this.crashCount = facts.crashCount;
    this.runningSince = facts.runningSince;
    const cgroup = facts.cgroup ? this.ctx.cgroups?.open(facts.cgroup) : undefined;
    this.cgroup = cgroup;
    const handle = new ProcessHandle({
      adopt: record,
      records: this.ctx.records,
      ...(cgroup ? { cgroup } : {}),
      onLine: (stream, text) => this.emitLog(this.source, stream, text),
    });
    this.guids.set(handle, facts.instanceGuid);
    this.handle = handle;
    this.since = facts.runningSince ?? record.createdAt;
    void handle.exited.then((info) => this.onExit(gen, info));
    if (cgroup) void handle.gone.then(() => cgroup.remove());
    if (facts.runningSince !== undefined) {
      this.state = 'RUNNING';
      this.scheduleLiveness(gen);
    } else {
      this.state = 'STARTING';
      void this.awaitHealthy(gen, facts.port);
    }
  }

  /**
   * The controllers want this adopted slot: from now on the full spec is known (env, command), so a crash is
   * restarted as usual, and identity credentials and binding files are renewed in the incarnation's scratch space.
   */
  async claim(spec: InstanceSpec): Promise<void> {
    if (this.claimed) return;
    this.claimed = true;
    this.currentSpec = spec;
    this.bindingFiles = spec.bindingFiles;
    const handle = this.handle;
    if (handle && !this.stopping) {
      const gen = this.generation;
      const credentials = await this.issueCredentials(this.instanceGuidOf(handle));
      if (gen !== this.generation || this.stopping) credentials?.stop();
      else if (credentials) {
        credentials.install(this.tmpDir);
        this.credentials = credentials;
      }
      if (this.bindingFiles && gen === this.generation && !this.stopping) {
        const bindings = new BindingFileSet(this.bindingFiles, this.identity);
        bindings.reattach(this.tmpDir);
        this.bindings = bindings;
      }
    }
    if (this.restartWhenClaimed && !this.stopping) {
      this.restartWhenClaimed = false;
      await this.spawnIncarnation();
    }
  }

  get adopted(): boolean {
    return !this.claimed;
  }

  get stopped(): boolean {
    return this.stopping !== undefined;
  }

  start(): Promise<void> {
    return this.spawnIncarnation();
  }

  status(): InstanceStatus {
    return {
      id: this.spec.id,
      appGuid: this.spec.appGuid,
      processGuid: this.spec.processGuid,
      version: this.spec.version,
      index: this.spec.index,
      state: this.state,
      host: this.ctx.host,
      port: this.port,
      pid: this.handle?.pid,
      since: this.since,
      crashCount: this.crashCount,
      ...(this.lastExit ? { lastExit: this.lastExit } : {}),
    };
  }

  async stats(): Promise<InstanceStats | undefined> {
    const handle = this.handle;
    if (!handle?.pid || handle.hasExited) return undefined;
    const usage = this.usage(handle.pid);
    const now = Date.now();
    return {
      cpu: this.cpu.sample(handle.pid, handle.startedAt, usage.cpuSeconds, now),
      memBytes: usage.memBytes,
      diskBytes: await this.disk.read(now),
      uptimeSeconds: Math.max(0, Math.floor((now - handle.startedAt) / 1000)),
    };
  }

  /** Graceful stop of the slot; the supervisor is finished afterwards. Idempotent. */
  stop(graceMs: number): Promise<void> {
    this.stopping ??= (async () => {
      this.generation++;
      this.clearTimer();
      await this.restarting?.catch(() => undefined);
      const handle = this.handle;
      if (handle) {
        this.setState('STOPPING');
        this.cell(`Stopping instance ${this.instanceGuidOf(handle)}`);
        await this.terminateAll(handle, graceMs);
      }
      this.handle = undefined;
      this.ctx.ports.release(this.port);
      this.port = undefined;
      this.stopCredentials();
      // Asynchronously: a synchronous removal of each instance's scratch space blocked the event loop for seconds
      // when many stop at once (a shutdown at 1,000 instances).
      await rm(this.tmpDir, { recursive: true, force: true }).catch(() => undefined);
      this.setState('DOWN');
    })();
    return this.stopping;
  }

  /** Replaces the current incarnation without counting a crash (cf restart-app-instance). */
  restart(graceMs: number): Promise<void> {
    if (this.stopping) return this.stopping;
    this.restarting ??= (async () => {
      this.generation++;
      this.clearTimer();
      const handle = this.handle;
      if (handle) {
        this.setState('STOPPING');
        await this.terminateAll(handle, graceMs);
      }
      if (this.stopping) return;
      await this.spawnIncarnation();
    })().finally(() => {
      this.restarting = undefined;
    });
    return this.restarting;
  }

  private async spawnIncarnation(): Promise<void> {
    const gen = ++this.generation;
    this.clearTimer();
    this.ctx.ports.release(this.port);
    this.port = undefined;
    this.handle = undefined;
    this.killSidecars();
    this.killReason = undefined;
    this.runningSince = undefined;
    this.since = Date.now();
    this.setState('STARTING');
    const port = await this.ctx.ports.allocate();
    if (gen !== this.generation) {
      this.ctx.ports.release(port);
      return;
    }
    this.port = port;
    const instanceGuid = randomUUID();
    this.stopCredentials();
    const credentials = await this.issueCredentials(instanceGuid);
    if (gen !== this.generation) {
      credentials?.stop();
      return;
    }
    // An instance that outlives Kiln logs to FIFOs a restarted Kiln opens again: a pipe into this process would
    // break with it, and the app's next write would kill it.
    const logFifos = this.isAdoptable() ? await this.ctx.logFifos.take(instanceGuid) : undefined;
    if (gen !== this.generation) {
      credentials?.stop();
      if (logFifos) removeLogFifos(logFifos);
      return;
    }
    mkdirSync(this.tmpDir, { recursive: true });
    this.cell(`Cell local creating container for instance ${instanceGuid}`);
    const jail = this.jailFor(gen);
    if (jail) prepareScratch(this.tmpDir, this.identity);
    if (credentials) {
      credentials.install(this.tmpDir);
      this.credentials = credentials;
    }
    const bindings = this.bindingFiles ? new BindingFileSet(this.bindingFiles, this.identity) : undefined;
    bindings?.install(this.tmpDir);
    this.bindings = bindings;
    if (jail) jail.binds = [...(credentials?.mounts() ?? []), ...(bindings?.mounts() ?? [])];
    const env = instanceEnv({
      base: this.spec.env,
      dropletDir: jail ? SANDBOX_DROPLET_DIR : this.spec.dropletDir,
      tmpDir: jail ? `${SANDBOX_DROPLET_DIR}/tmp` : this.tmpDir,
      ...(jail ? { home: SANDBOX_DROPLET_DIR } : {}),
      host: this.ctx.host,
      index: this.spec.index,
      instanceGuid,
      memoryMb: this.spec.memoryMb,
      port,
      ...(credentials ? { credentials: credentials.env(jail !== undefined) } : {}),
      ...(bindings ? { bindings: bindings.env(jail !== undefined) } : {}),
    });
    const handle = new ProcessHandle({
      id: this.spec.id,
      kind: 'instance',
      dropletDir: this.spec.dropletDir,
      command: this.spec.command,
      env,
      records: this.ctx.records,
      onLine: (stream, text) => this.emitLog(this.source, stream, text),
      ...(jail ? { jail } : {}),
      ...(logFifos ? { logFifos } : {}),
      // With sidecars the instance is several groups: a restarted Kiln replaces it rather than adopting a part.
      ...(this.isAdoptable() ? { adoptable: this.adoptable(port, instanceGuid, jail?.cgroup ? this.cgroupName(gen) : undefined) } : {}),
    });
    this.guids.set(handle, instanceGuid);
    this.handle = handle;
    this.since = handle.startedAt;
    void handle.exited.then((info) => this.onExit(gen, info));
    // Sidecars share the container (env, PORT, TMPDIR) but are separate process groups, as in Diego.
    this.sidecars = (this.spec.sidecars ?? []).map((sidecar) => {
      const source = sidecarLogSource(this.spec.processType, sidecar.name);
      const sidecarHandle = new ProcessHandle({
        id: `${this.spec.id}:sidecar:${sidecar.name}`,
        kind: 'instance',
        dropletDir: this.spec.dropletDir,
        command: sidecar.command,
        env,
        records: this.ctx.records,
        onLine: (stream, text) => this.emitLog(source, stream, text),
        ...(jail ? { jail } : {}),
      });
      void sidecarHandle.exited.then((info) => this.onSidecarExit(gen, source, info));
      return { source, handle: sidecarHandle };
    });
    const cgroup = jail?.cgroup;
    this.cgroup = cgroup;
    if (cgroup) void Promise.all([handle.gone, ...this.sidecars.map((s) => s.handle.gone)]).then(() => cgroup.remove());
    if (this.spec.healthCheck.type === 'process') this.markRunning(gen);
    else void this.awaitHealthy(gen, port);
  }

  /**
   * Diego-style instance identity of one incarnation (CN = its instance guid). A failure to issue is reported as
   * a CELL line and the incarnation starts without credentials: it only loses access to enforcing routes.
   */
  private async issueCredentials(instanceGuid: string): Promise<InstanceCredentialFiles | undefined> {
    const issuer = this.ctx.credentials;
    if (!issuer) return undefined;
    const subject = {
      appGuid: this.spec.appGuid,
      ...(this.spec.spaceGuid ? { spaceGuid: this.spec.spaceGuid } : {}),
      ...(this.spec.organizationGuid ? { organizationGuid: this.spec.organizationGuid } : {}),
      instanceGuid,
      ip: this.ctx.host,
    };
    try {
      return await InstanceCredentialFiles.issue(issuer, subject, this.identity, (err) => this.cell(`Failed to renew instance identity credentials: ${String(err)}`));
    } catch (err) {
      this.cell(`Failed to issue instance identity credentials: ${String(err)}`);
      return undefined;
    }
  }

  private stopCredentials(): void {
    this.credentials?.stop();
    this.credentials = undefined;
  }

  /** The sandbox of one incarnation, shared by its main process and sidecars like a Diego container. */
  private jailFor(gen: number): Jail | undefined {
    const { sandbox, cgroups } = this.ctx;
    if (sandbox.kind !== 'bwrap') return undefined;
    let cgroup: MemoryCgroup | undefined;
    if (cgroups && this.spec.memoryMb > 0) cgroup = cgroups.create(this.cgroupName(gen), this.spec.memoryMb * 1024 * 1024);
    return {
      sandbox,
      hostname: safeName(this.spec.id).slice(0, 63),
      ...(this.identity ? { identity: this.identity } : {}),
      scratchDir: this.tmpDir,
      ...(this.isAdoptable() ? { outliveParent: true } : {}),
      ...(this.spec.diskMb > 0 ? { maxFileBytes: this.spec.diskMb * 1024 * 1024 } : {}),
      ...(cgroup ? { cgroup } : {}),
    };
  }

  private async awaitHealthy(gen: number, port: number): Promise<void> {
    const check = this.spec.healthCheck;
    const timeoutMs = startTimeoutMs(check);
    const deadline = Date.now() + timeoutMs;
    let lastDetail = 'no health check completed';
    while (gen === this.generation) {
      const result = await runCheck(check, this.ctx.host, port);
      if (gen !== this.generation || this.handle?.hasExited !== false) return;
      if (result.ok) {
        this.markRunning(gen);
        return;
      }
      lastDetail = result.detail;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        this.killIncarnation(gen, `Instance never healthy after ${formatDuration(timeoutMs)}: ${lastDetail}`);
        return;
      }
      await new Promise((r) => setTimeout(r, Math.min(this.ctx.startPollMs, remaining)));
    }
  }

  /** With sidecars the instance is several groups: a restarted Kiln replaces it rather than adopting a part. */
  private isAdoptable(): boolean {
    return this.ctx.adoptable && !this.spec.sidecars?.length;
  }

  private cgroupName(gen: number): string {
    return `${safeName(this.spec.id)}.${gen}`;
  }

  /** What the crash-safety record keeps of this incarnation, for a restarted Kiln to adopt it (records.ts). */
  private adoptable(port: number, instanceGuid: string, cgroup: string | undefined): AdoptableInstance {
    const s = this.spec;
    return {
      appGuid: s.appGuid,
      processGuid: s.processGuid,
      processType: s.processType,
      version: s.version,
      index: s.index,
      dropletDir: s.dropletDir,
      ...(s.droplet ? { droplet: s.droplet } : {}),
      memoryMb: s.memoryMb,
      diskMb: s.diskMb,
      healthCheck: s.healthCheck,
      ...(s.spaceGuid ? { spaceGuid: s.spaceGuid } : {}),
      ...(s.organizationGuid ? { organizationGuid: s.organizationGuid } : {}),
      port,
      instanceGuid,
      ...(this.identity ? { identity: this.identity } : {}),
      ...(cgroup ? { cgroup } : {}),
      ...(this.runningSince !== undefined ? { runningSince: this.runningSince } : {}),
      crashCount: this.crashCount,
    };
  }

  private markRunning(gen: number): void {
    if (gen !== this.generation) return;
    this.runningSince = Date.now();
    const handle = this.handle;
    if (handle && this.port !== undefined && this.isAdoptable()) {
      const cgroupName = this.cgroup ? this.cgroupName(gen) : undefined;
      handle.updateAdoptable(this.adoptable(this.port, this.instanceGuidOf(handle), cgroupName));
    }
    this.setState('RUNNING');
    this.cell('Container became healthy');
    this.scheduleLiveness(gen);
  }

  /** Diego-style liveness: after RUNNING, one failed check (or exceeding the memory limit) crashes the instance. */
  private scheduleLiveness(gen: number): void {
    const check = this.spec.healthCheck;
    const interval = check.type === 'http' && check.intervalSeconds ? check.intervalSeconds * 1000 : this.ctx.livenessIntervalMs;
    this.timer = setTimeout(() => {
      void (async () => {
        const handle = this.handle;
        if (gen !== this.generation || !handle?.pid || handle.hasExited) return;
        // With a kernel limit the OOM killer is exact; summing the tree's RSS would count shared pages twice
        // (npm and the node it starts) and kill instances that fit.
        if (this.ctx.enforceMemoryLimit && !this.cgroup && this.spec.memoryMb > 0) {
          const { memBytes } = this.usage(handle.pid);
          if (memBytes > this.spec.memoryMb * 1024 * 1024) {
            this.killIncarnation(gen, `${this.source}: Exited with status 137 (out of memory)`);
            return;
          }
        }
        if (check.type !== 'process' && this.port !== undefined) {
          const result = await runCheck(check, this.ctx.host, this.port);
          if (gen !== this.generation) return;
          if (!result.ok) {
            this.killIncarnation(gen, `Instance became unhealthy: ${result.detail}`);
            return;
          }
        }
        this.scheduleLiveness(gen);
      })();
    }, interval);
    this.timer.unref();
  }

  private killIncarnation(gen: number, reason: string): void {
    if (gen !== this.generation || !this.handle) return;
    this.killReason = reason;
    this.cell(reason);
    this.handle.kill();
  }

  /**
   * A sidecar that exits (for whatever reason) takes its instance down: the instance crashes and is restarted with
   * all its sidecars, as a Diego container whose sidecar action ends.
   */
  private onSidecarExit(gen: number, source: string, info: ExitInfo): void {
    if (gen !== this.generation) return;
    this.killIncarnation(gen, info.error ? `${source}: failed to start: ${info.error}` : `${source}: Exited with status ${info.status}`);
  }

  private onExit(gen: number, info: ExitInfo): void {
    if (gen !== this.generation) return;
    this.killSidecars();
    this.stopCredentials();
    this.generation++;
    this.clearTimer();
    const now = Date.now();
    if (this.runningSince !== undefined && now - this.runningSince >= this.ctx.crashResetMs) this.crashCount = 0;
    this.crashCount++;
    const reason =
      this.killReason ??
      (info.oomKilled ? `${this.source}: Exited with status 137 (out of memory)` : undefined) ??
      (info.error ? `${this.source}: failed to start: ${info.error}` : undefined) ??
      (info.unknown ? `${this.source}: Exited (status unknown: the instance was adopted after a Kiln restart)` : `${this.source}: Exited with status ${info.status}`);
    this.lastExit = { code: info.code, signal: info.signal, at: now, reason };
    this.ctx.ports.release(this.port);
    this.port = undefined;
    // The handle still kills and awaits stragglers of its group on its own (ProcessHandle.gone).
    this.handle = undefined;
    this.since = now;
    this.setState('CRASHED');
    this.cell(`Exit status ${info.status}`);
    if (this.crashCount >= this.ctx.maxCrashes) return;
    const restartGen = this.generation;
    this.timer = setTimeout(() => {
      if (restartGen !== this.generation || this.stopping) return;
      // An adopted slot nobody claimed yet has no env or command to start with.
      if (!this.claimed) this.restartWhenClaimed = true;
      else void this.spawnIncarnation();
    }, this.ctx.restartDelayMs(this.crashCount));
    this.timer.unref();
  }

  /** The main process's tree plus every live sidecar's: what the instance uses against its memory limit. */
  private usage(mainPid: number): TreeUsage {
    const kernel = this.cgroup?.workingSetBytes();
    const members = kernel !== undefined ? this.cgroup?.pids() : undefined;
    // With a kernel group its member list is the instance (main process and sidecars): a few reads instead of a
    // walk of every process on the host, which made a stats request over 1,000 instances cost seconds.
    if (kernel !== undefined && members && members.length > 0) return { cpuSeconds: cpuSecondsOf(members), memBytes: kernel };
    const total = treeUsage(mainPid);
    for (const { handle } of this.sidecars) {
      if (!handle.pid || handle.hasExited) continue;
      const u = treeUsage(handle.pid);
      total.cpuSeconds += u.cpuSeconds;
      total.memBytes += u.memBytes;
    }
    // The group holds the main process and the sidecars; its working set is what the kernel holds against the limit.
    if (kernel !== undefined) total.memBytes = kernel;
    return total;
  }

  /** Graceful stop of the main process and the sidecars together. */
  private async terminateAll(handle: ProcessHandle, graceMs: number): Promise<void> {
    const sidecars = this.sidecars;
    this.sidecars = [];
    await Promise.all([handle.terminate(graceMs), ...sidecars.map((s) => s.handle.terminate(graceMs))]);
  }

  /** Force-kills the sidecars of an incarnation that is over; their handles reap their groups and records. */
  private killSidecars(): void {
    for (const s of this.sidecars) s.handle.kill();
    this.sidecars = [];
  }

  private instanceGuidOf(handle: ProcessHandle): string {
    return this.guids.get(handle) ?? '';
  }

  private setState(state: InstanceState): void {
    if (this.state === state) return;
    this.state = state;
    this.ctx.changed(this.spec.id, this.spec.appGuid);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private emitLog(sourceType: string, stream: 'stdout' | 'stderr', text: string): void {
    const index = String(this.spec.index);
    this.ctx.log({ appGuid: this.spec.appGuid, sourceType: `${sourceType}/${index}`, instance: index, stream, text, timestamp: Date.now() });
  }

  /** Platform messages about the instance, shown by `cf logs` as CELL lines. */
  private cell(text: string): void {
    this.emitLog('CELL', 'stdout', text);
  }
}

function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** Go's time.Duration formatting for whole seconds (Diego's wording: "after 1m0s"). */
export function formatDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const m = Math.floor(total / 60);
  const s = total % 60;
  return m > 0 ? `${m}m${s}s` : `${s}s`;
}
