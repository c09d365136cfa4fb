import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import type { CredentialIssuer } from '../../identity/instance-identity.ts';
import { InstanceCredentialFiles } from './credentials.ts';
import { join } from 'node:path';
import type { BindingFiles, InstanceSpec, InstanceStats, InstanceStatus, LogLine, Runtime, TaskSpec, TaskStatus } from '../runtime.ts';
import { DIEGO_CRASH_RESET_MS, DIEGO_MAX_CRASHES, diegoRestartDelayMs } from './backoff.ts';
import { detectMemoryCgroups, type MemoryCgroups } from './cgroup.ts';
import { InstanceSupervisor, type SupervisorContext } from './instance.ts';
import { LogFifoStock } from './launch.ts';
import { PortAllocator } from './ports.ts';
import { ProcessRecords, type AdoptableInstance, type ProcessRecord } from './records.ts';
import { isAlive } from './proc.ts';
import type { Identity, Sandbox } from './sandbox.ts';
import { TaskRun, type TaskContext } from './task.ts';
import { Listeners } from '../listeners.ts';

export interface LocalRuntimeOptions {
  /** Kiln's data dir; the runtime keeps process records and per-instance TMPDIRs under `<dataDir>/runtime/`. */
  dataDir: string;
  /** Address instances are reached at (health checks, router). */
  host?: string;
  /** Delay before restarting after the n-th consecutive crash (default: Diego's schedule). */
  restartDelayMs?: (crashCount: number) => number;
  maxCrashes?: number;
  /** Running at least this long before a crash resets the crash count. */
  crashResetMs?: number;
  /** Interval between start-up health checks. */
  startPollMs?: number;
  /** Interval between liveness checks once RUNNING (http checks use their own intervalSeconds when set). */
  livenessIntervalMs?: number;
  /** Grace period for stopInstance/restartInstance/cancelTask/shutdown when none is given. */
  graceMs?: number;
  diskCacheMs?: number;
  /** Kill instances whose process tree RSS exceeds memoryMb (checked on liveness ticks). */
  enforceMemoryLimit?: boolean;
  /** How app processes are isolated (see sandbox.ts); default: none. */
  sandbox?: Sandbox;
  /**
   * The uid/gid an app's processes run as inside the sandbox; set when Kiln runs as root (store-allocated, never 0).
   * Undefined → no uid switch.
   */
  identityFor?: (appGuid: string) => Promise<Identity>;
  /** Kernel memory cgroups; default: detected when sandboxing, `false` turns them off. */
  cgroups?: MemoryCgroups | false;
  /** Issues every instance and task its Diego-style identity credentials (CF_INSTANCE_CERT/KEY); default: none. */
  credentials?: CredentialIssuer;
  /**
   * Whether instances a previous Kiln run left running are adopted (default) or killed at construction (see
   * records.ts). Either way nothing of a previous run is left unsupervised.
   */
  adopt?: boolean;
}

type ChangeEvent = { kind: 'instance' | 'task'; id: string; appGuid: string };

/** How long finished tasks stay queryable through taskStatus. */
const FINISHED_TASK_TTL_MS = 60 * 60_000;

/**
 * Runs instances and tasks as child processes of this Kiln process. See records.ts for what happens to processes
 * of a previous Kiln run: instances are adopted at construction (listed at once, so the controllers' first resync
 * keeps the wanted ones — ensureInstance claims them — and stops the others); tasks and sidecar groups are killed.
 */
export class LocalRuntime implements Runtime {
  /** Records of a previous run whose process groups were still alive and were killed at construction. */
  readonly reaped: ProcessRecord[];
  /** Records of a previous run whose instances this runtime supervises now. */
  readonly adopted: ProcessRecord[] = [];
  private readonly instances = new Map<string, InstanceSupervisor>();
  /**
   * Instance ids by process and by app: the controllers list one process's instances on every reconcile, and a
   * scan of every supervisor each time made a start of n apps cost O(n²).
   */
  private readonly byProcess = new Map<string, Set<string>>();
  private readonly byApp = new Map<string, Set<string>>();
  private readonly tasks = new Map<string, TaskRun>();
  private readonly changeListeners = new Listeners<ChangeEvent>();
  private readonly logListeners = new Listeners<LogLine>();
  private readonly records: ProcessRecords;
  private readonly supervisorCtx: SupervisorContext;
  private readonly taskCtx: TaskContext;
  private readonly graceMs: number;
  private readonly identityFor: ((appGuid: string) => Promise<Identity>) | undefined;
  private readonly credentials: CredentialIssuer | undefined;
  private readonly host: string;
  private closed = false;
  private readonly cgroups: MemoryCgroups | undefined;

  constructor(options: LocalRuntimeOptions) {
    const runtimeDir = join(options.dataDir, 'runtime');
    this.records = new ProcessRecords(options.dataDir);
    const adopt = options.adopt ?? true;
    const leftovers = this.records.recover((r) => adopt && r.kind === 'instance' && r.instance !== undefined && isAlive(r.pid));
    this.reaped = leftovers.reaped;
    const tmpRoot = join(runtimeDir, 'tmp');
    // Scratch space of a previous run belongs to processes that no longer exist, but for the adopted instances'.
    removeAllBut(tmpRoot, new Set(leftovers.adoptable.map((r) => join(tmpRoot, scratchName(r.id)))));
    // Likewise the log FIFOs (launch.ts LogFifoStock): only the adopted instances' are still written to.
    const logRoot = join(runtimeDir, 'logs');
    removeAllBut(logRoot, new Set(leftovers.adoptable.flatMap((r) => (r.logs ? [r.logs.stdout, r.logs.stderr] : []))), 0o700);
    const host = options.host ?? '127.0.0.1';
    this.host = host;
    this.credentials = options.credentials;
    const sandbox = options.sandbox ?? { kind: 'none' };
    const cgroups = (this.cgroups = options.cgroups === false ? undefined : (options.cgroups ?? (sandbox.kind === 'bwrap' ? detectMemoryCgroups(options.dataDir) : undefined)));
    this.identityFor = sandbox.kind === 'bwrap' ? options.identityFor : undefined;
    this.graceMs = options.graceMs ?? 10_000;
    const log = (line: LogLine): void => this.logListeners.emit(line);
    this.supervisorCtx = {
      host,
      ports: new PortAllocator(host),
      records: this.records,
      tmpRoot,
      logFifos: new LogFifoStock(logRoot),
      restartDelayMs: options.restartDelayMs ?? diegoRestartDelayMs,
      maxCrashes: options.maxCrashes ?? DIEGO_MAX_CRASHES,
      crashResetMs: options.crashResetMs ?? DIEGO_CRASH_RESET_MS,
      startPollMs: options.startPollMs ?? 100,
      livenessIntervalMs: options.livenessIntervalMs ?? 5_000,
      diskCacheMs: options.diskCacheMs ?? 30_000,
      enforceMemoryLimit: options.enforceMemoryLimit ?? true,
      sandbox,
      cgroups,
      credentials: options.credentials,
      adoptable: adopt,
      log,
      changed: (id, appGuid) => {
        // A stopped slot leaves the list before listeners hear about it, so nobody reconciles against a DOWN ghost.
        const supervisor = this.instances.get(id);
        if (supervisor?.stopped && supervisor.status().state === 'DOWN') this.untrack(id);
        this.changeListeners.emit({ kind: 'instance', id, appGuid });
      },
    };
    this.taskCtx = {
      host,
      records: this.records,
      tmpRoot,
      sandbox,
      cgroups,
      log,
      changed: (id, appGuid) => this.changeListeners.emit({ kind: 'task', id, appGuid }),
    };
    for (const record of leftovers.adoptable) this.adoptInstance(record as ProcessRecord & { instance: AdoptableInstance });
  }

  /** Supervises an instance of a previous run (records.ts); the controllers claim it through ensureInstance. */
  private adoptInstance(record: ProcessRecord & { instance: AdoptableInstance }): void {
    const facts = record.instance;
    if (this.instances.has(record.id)) {
      // Two records for one slot cannot both be right: keep the first, kill the other.
      this.records.kill(record);
      return;
    }
    const spec: InstanceSpec = {
      id: record.id,
      appGuid: facts.appGuid,
      processGuid: facts.processGuid,
      processType: facts.processType,
      version: facts.version,
      index: facts.index,
      dropletDir: facts.dropletDir,
      ...(facts.droplet ? { droplet: facts.droplet } : {}),
      command: '',
      env: {},
      memoryMb: facts.memoryMb,
      diskMb: facts.diskMb,
      healthCheck: facts.healthCheck,
      ...(facts.spaceGuid ? { spaceGuid: facts.spaceGuid } : {}),
      ...(facts.organizationGuid ? { organizationGuid: facts.organizationGuid } : {}),
    };
    const supervisor = new InstanceSupervisor(spec, this.supervisorCtx, facts.identity);
    this.track(supervisor);
    supervisor.adopt(record);
    this.adopted.push(record);
  }

  private track(supervisor: InstanceSupervisor): void {
    const { id, processGuid, appGuid } = supervisor.spec;
    this.untrack(id);
    this.instances.set(id, supervisor);
    addTo(this.byProcess, processGuid, id);
    addTo(this.byApp, appGuid, id);
  }

  private untrack(id: string): void {
    const supervisor = this.instances.get(id);
    if (!supervisor) return;
    this.instances.delete(id);
    removeFrom(this.byProcess, supervisor.spec.processGuid, id);
    removeFrom(this.byApp, supervisor.spec.appGuid, id);
  }

  /** The supervisors a filter selects, through the indexes when it names a process or an app. */
  private *selected(filter?: { processGuid?: string; appGuid?: string }): Iterable<InstanceSupervisor> {
    const ids = filter?.processGuid !== undefined ? this.byProcess.get(filter.processGuid) : filter?.appGuid !== undefined ? this.byApp.get(filter.appGuid) : undefined;
    if (filter?.processGuid === undefined && filter?.appGuid === undefined) {
      yield* this.instances.values();
      return;
    }
    for (const id of ids ?? []) {
      const supervisor = this.instances.get(id);
      if (supervisor) yield supervisor;
    }
  }

  updateBindingFiles(appGuid: string, files: BindingFiles): void {
    for (const supervisor of this.selected({ appGuid })) supervisor.updateBindingFiles(files);
    for (const task of this.tasks.values()) if (task.spec.appGuid === appGuid) task.updateBindingFiles(files);
  }

  async ensureInstance(spec: InstanceSpec): Promise<void> {
    this.assertOpen();
    const existing = this.instances.get(spec.id);
    if (existing?.adopted && !existing.stopped) return existing.claim(spec);
    if (existing && !existing.stopped) return;
    // Re-ensuring a slot that is being stopped starts it afresh once the old one is gone.
    if (existing) await existing.stop(this.graceMs);
    if (this.instances.get(spec.id) !== existing) return;
    const identity = await this.identityFor?.(spec.appGuid);
    if (this.instances.get(spec.id) !== existing) return;
    const supervisor = new InstanceSupervisor(spec, this.supervisorCtx, identity);
    this.track(supervisor);
    await supervisor.start();
  }

  async stopInstance(id: string, opts?: { graceMs?: number }): Promise<void> {
    const supervisor = this.instances.get(id);
    if (!supervisor) return;
    await supervisor.stop(opts?.graceMs ?? this.graceMs);
    if (this.instances.get(id) === supervisor) this.untrack(id);
  }

  async restartInstance(id: string): Promise<void> {
    const supervisor = this.instances.get(id);
    if (!supervisor || supervisor.stopped) return;
    await supervisor.restart(this.graceMs);
  }

  listInstances(filter?: { processGuid?: string; appGuid?: string }): InstanceStatus[] {
    const out: InstanceStatus[] = [];
    for (const supervisor of this.selected(filter)) {
      const { spec } = supervisor;
      if (filter?.processGuid !== undefined && spec.processGuid !== filter.processGuid) continue;
      if (filter?.appGuid !== undefined && spec.appGuid !== filter.appGuid) continue;
      out.push(supervisor.status());
    }
    // Plain code-unit order (guids and versions are ASCII): localeCompare costs a collator call per comparison.
    return out.sort((a, b) => cmp(a.processGuid, b.processGuid) || a.index - b.index || cmp(a.version, b.version));
  }

  async stats(id: string): Promise<InstanceStats | undefined> {
    return this.instances.get(id)?.stats();
  }

  async runTask(spec: TaskSpec): Promise<void> {
    this.assertOpen();
    if (this.tasks.has(spec.id)) return;
    const identity = await this.identityFor?.(spec.appGuid);
    if (this.tasks.has(spec.id)) return;
    const instanceGuid = randomUUID();
    const credentials = await this.taskCredentials(spec, instanceGuid, identity);
    if (this.tasks.has(spec.id)) {
      credentials?.stop();
      return;
    }
    this.pruneTasks();
    this.tasks.set(spec.id, new TaskRun(spec, this.taskCtx, identity, { instanceGuid, ...(credentials ? { credentials } : {}) }));
  }

  /** A task's identity credentials, as an instance's; a failure to issue starts the task without them. */
  private async taskCredentials(spec: TaskSpec, instanceGuid: string, identity: Identity | undefined): Promise<InstanceCredentialFiles | undefined> {
    const issuer = this.credentials;
    if (!issuer) return undefined;
    const subject = {
      appGuid: spec.appGuid,
      ...(spec.spaceGuid ? { spaceGuid: spec.spaceGuid } : {}),
      ...(spec.organizationGuid ? { organizationGuid: spec.organizationGuid } : {}),
      instanceGuid,
      ip: this.host,
    };
    try {
      return await InstanceCredentialFiles.issue(issuer, subject, identity);
    } catch {
      return undefined;
    }
  }

  async cancelTask(id: string): Promise<void> {
    await this.tasks.get(id)?.cancel(this.graceMs);
  }

  taskStatus(id: string): TaskStatus | undefined {
    return this.tasks.get(id)?.status();
  }

  onChange(listener: (event: ChangeEvent) => void): () => void {
    return this.changeListeners.add(listener);
  }

  onLog(listener: (line: LogLine) => void): () => void {
    return this.logListeners.add(listener);
  }

  async shutdown(): Promise<void> {
    this.closed = true;
    await Promise.all([
      ...[...this.instances.keys()].map((id) => this.stopInstance(id)),
      ...[...this.tasks.values()].map((task) => task.cancel(this.graceMs)),
    ]);
    this.cgroups?.release();
  }

  private pruneTasks(): void {
    const cutoff = Date.now() - FINISHED_TASK_TTL_MS;
    for (const [id, task] of this.tasks) {
      if (task.finishedAt !== undefined && task.finishedAt < cutoff) this.tasks.delete(id);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('local runtime is shut down');
  }
}

/** The scratch directory name of an instance slot (as InstanceSupervisor names it). */
function scratchName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_');
}

function addTo(index: Map<string, Set<string>>, key: string, id: string): void {
  let ids = index.get(key);
  if (!ids) index.set(key, (ids = new Set()));
  ids.add(id);
}

function removeFrom(index: Map<string, Set<string>>, key: string, id: string): void {
  const ids = index.get(key);
  if (!ids) return;
  ids.delete(id);
  if (ids.size === 0) index.delete(key);
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Creates `dir` if needed and empties it of everything but the paths in `keep`. */
function removeAllBut(dir: string, keep: ReadonlySet<string>, mode?: number): void {
  mkdirSync(dir, { recursive: true, ...(mode !== undefined ? { mode } : {}) });
  for (const entry of readdirSync(dir)) if (!keep.has(join(dir, entry))) rmSync(join(dir, entry), { recursive: true, force: true });
}
