import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type * as k8s from '@kubernetes/client-node';
import { liveGroupMembers } from '../../../src/runtime/local/proc.ts';
import { treeUsage } from '../../../src/runtime/local/usage.ts';
import { PodNetwork } from './network.ts';

/** One incarnation's output, kept for `pods/log` (and followed while it runs). */
export class LogBook {
  readonly lines: Array<{ at: Date; text: string }> = [];
  done = false;
  private readonly listeners = new Set<(line: { at: Date; text: string } | undefined) => void>();
  add(text: string): void {
    const line = { at: new Date(), text };
    this.lines.push(line);
    for (const l of this.listeners) l(line);
  }
  finish(): void {
    this.done = true;
    for (const l of this.listeners) l(undefined);
    this.listeners.clear();
  }
  follow(listener: (line: { at: Date; text: string } | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

interface ContainerRun {
  spec: k8s.V1Container;
  init: boolean;
  restartCount: number;
  state: k8s.V1ContainerState;
  lastState: k8s.V1ContainerState;
  ready: boolean;
  started: boolean;
  proc: ChildProcess | undefined;
  oomKilled: boolean;
  /** Incarnation logs by restart count. */
  logs: LogBook[];
  timers: NodeJS.Timeout[];
  exited: Promise<number> | undefined;
  /** Set while the container is being stopped: when its grace period ends. */
  stopDeadline?: number | undefined;
}

export interface PodRunnerContext {
  nodeName: string;
  root: string;
  hostPorts: number[];
  restartBackoffMs: number;
  /** Writes the pod's status (merge patch of `status`). */
  writeStatus: (pod: k8s.V1Pod, status: k8s.V1PodStatus) => Promise<void>;
  /** Deletes the pod for good (grace 0) once its containers are gone. */
  finalize: (pod: k8s.V1Pod) => Promise<void>;
}

const now = () => new Date();
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Runs one pod: its network (network.ts), emptyDir volumes as host directories, init containers in order, then the
 * containers — each container's `command`+`args` as a process (the image is ignored: the host's filesystem is the
 * container's, with the pod's volumes bind-mounted at their mount paths and a private /tmp, by bubblewrap) — with
 * restartPolicy, back-off, probes, the memory limit (process-tree RSS; over it: SIGKILL and OOMKilled) and graceful
 * termination, reporting everything as pod status.
 */
export class PodRunner {
  private readonly containers: ContainerRun[];
  private readonly inits: ContainerRun[];
  private network: PodNetwork | undefined;
  private phase: string = 'Pending';
  private startTime: Date | undefined;
  private terminating = false;
  private stopped = false;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;
  readonly dir: string;

  constructor(
    public pod: k8s.V1Pod,
    readonly podIP: string,
    private readonly ctx: PodRunnerContext,
  ) {
    const mk = (spec: k8s.V1Container, init: boolean): ContainerRun => ({
      spec,
      init,
      restartCount: 0,
      state: { waiting: { reason: init ? 'PodInitializing' : 'ContainerCreating' } },
      lastState: {},
      ready: false,
      started: false,
      proc: undefined,
      oomKilled: false,
      logs: [],
      timers: [],
      exited: undefined,
    });
    this.inits = (pod.spec?.initContainers ?? []).map((c) => mk(c, true));
    this.containers = (pod.spec?.containers ?? []).map((c) => mk(c, false));
    this.dir = path.join(ctx.root, pod.metadata!.uid!);
  }

  get restartPolicy(): string {
    return this.pod.spec?.restartPolicy ?? 'Always';
  }

  /** The log of a container incarnation (`previous`: the one before the current). */
  logOf(container: string | undefined, previous: boolean): LogBook | undefined {
    const c = [...this.containers, ...this.inits].find((x) => x.spec.name === (container ?? this.containers[0]?.spec.name));
    if (!c) return undefined;
    return c.logs[previous ? c.logs.length - 2 : c.logs.length - 1];
  }

  async run(): Promise<void> {
    this.startTime = now();
    const ports = new Set<number>();
    for (const c of this.pod.spec?.containers ?? []) {
      for (const p of c.ports ?? []) ports.add(p.containerPort);
      for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
        const port = probePort(c, probe);
        if (port !== undefined) ports.add(port);
      }
    }
    fs.mkdirSync(this.dir, { recursive: true });
    this.network = await PodNetwork.start({
      podIP: this.podIP,
      ports: [...ports],
      hostPorts: this.ctx.hostPorts,
      sockDir: path.join('/tmp', `kl-${this.pod.metadata!.uid!.slice(0, 8)}`),
    });
    for (const v of this.pod.spec?.volumes ?? []) fs.mkdirSync(path.join(this.dir, 'volumes', v.name), { recursive: true });
    this.changed();
    for (const c of this.inits) {
      for (;;) {
        if (this.terminating) return;
        const code = await this.startContainer(c);
        if (this.terminating) return;
        if (code === 0) break;
        if (this.restartPolicy === 'Never') {
          this.phase = 'Failed';
          this.changed();
          return;
        }
        await this.backoff(c);
      }
    }
    for (const c of this.containers) void this.superviseContainer(c);
  }

  /** Stops every container (SIGTERM, then SIGKILL after `graceSeconds`), reports them terminated, then finalizes. */
  async terminate(graceSeconds: number, finalize = true): Promise<void> {
    if (this.terminating) return;
    this.terminating = true;
    const all = [...this.inits, ...this.containers];
    for (const c of all) for (const t of c.timers) clearTimeout(t);
    await Promise.all(all.map((c) => this.stopProcess(c, graceSeconds * 1000)));
    this.changed();
    await this.writing;
    this.stopped = true;
    this.network?.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (finalize) await this.ctx.finalize(this.pod).catch(() => undefined);
  }

  /** CPU seconds and resident memory of each running container's process tree (for the metrics API). */
  usage(): Array<{ name: string; cpuSeconds: number; memBytes: number }> {
    const out: Array<{ name: string; cpuSeconds: number; memBytes: number }> = [];
    for (const c of this.containers) {
      const pid = c.proc?.pid;
      if (pid === undefined || this.terminating) continue;
      out.push({ name: c.spec.name, ...treeUsage(pid) });
    }
    return out;
  }

  // ---- containers

  private async superviseContainer(c: ContainerRun): Promise<void> {
    for (;;) {
      if (this.terminating) return;
      const code = await this.startContainer(c);
      if (this.terminating) return;
      const policy = this.restartPolicy;
      if (policy === 'Never' || (policy === 'OnFailure' && code === 0)) {
        this.settlePhase();
        return;
      }
      await this.backoff(c);
    }
  }

  private settlePhase(): void {
    const states = this.containers.map((c) => c.state.terminated);
    if (states.some((s) => !s)) return;
    this.phase = states.every((s) => s!.exitCode === 0) ? 'Succeeded' : 'Failed';
    this.changed();
    this.network?.close();
  }

  private async backoff(c: ContainerRun): Promise<void> {
    c.lastState = { terminated: c.state.terminated! };
    c.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off restarting failed container ${c.spec.name}` } };
    this.changed();
    const delay = Math.min(this.ctx.restartBackoffMs * 2 ** Math.min(c.restartCount, 8), 300_000);
    await new Promise((r) => setTimeout(r, delay));
    c.restartCount++;
  }

  /** Runs one incarnation of a container; resolves with its exit code. */
  private startContainer(c: ContainerRun): Promise<number> {
    const env = this.envOf(c.spec);
    const expand = (s: string) => expandVars(s, env);
    const argv = [...(c.spec.command ?? []), ...(c.spec.args ?? [])].map(expand);
    const book = new LogBook();
    c.logs.push(book);
    c.oomKilled = false;
    if (argv.length === 0) {
      book.add('test kubelet: the container has no command (images are not run)');
      book.finish();
      c.state = { terminated: { exitCode: 128, reason: 'ContainerCannotRun', startedAt: now(), finishedAt: now() } };
      this.changed();
      return Promise.resolve(128);
    }
    const binds = (c.spec.volumeMounts ?? []).flatMap((m) => [m.readOnly ? '--ro-bind' : '--bind', path.join(this.dir, 'volumes', m.name), m.mountPath]);
    const args = [`--net=${this.network!.netns}`, '--', 'bwrap', '--dev-bind', '/', '/', '--tmpfs', '/tmp', ...binds, '--chdir', c.spec.workingDir ?? '/', '--', ...argv];
    const proc = spawn('nsenter', args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    c.proc = proc;
    const startedAt = now();
    c.state = { running: { startedAt } };
    c.ready = false;
    c.started = false;
    for (const stream of [proc.stdout, proc.stderr]) {
      const rl = createInterface({ input: stream! });
      rl.on('line', (line) => book.add(line));
      stream!.on('error', () => rl.close());
    }
    c.exited = new Promise<number>((resolve) => {
      proc.once('error', (err) => {
        book.add(`test kubelet: ${err.message}`);
      });
      proc.once('exit', async (code, signal) => {
        for (const t of c.timers) clearTimeout(t);
        c.timers = [];
        // While being stopped, what is left of the container (an app still shutting down after its shell died)
        // keeps the rest of the grace period; otherwise a container is over when its main process is.
        while (c.stopDeadline !== undefined && Date.now() < c.stopDeadline && liveGroupMembers(proc.pid!).length > 0) await new Promise((r) => setTimeout(r, 50));
        try {
          process.kill(-proc.pid!, 'SIGKILL');
        } catch {
          // The group is gone already.
        }
        c.stopDeadline = undefined;
        const exitCode = code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 1);
        c.proc = undefined;
        c.ready = false;
        c.state = {
          terminated: { exitCode, reason: c.oomKilled ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error', startedAt, finishedAt: now(), containerID: containerId(this.pod, c) },
        };
        setTimeout(() => book.finish(), 50);
        this.changed();
        resolve(exitCode);
      });
    });
    if (!c.init) this.watch(c);
    this.changed();
    return c.exited;
  }

  private watch(c: ContainerRun): void {
    const limit = parseQuantity(c.spec.resources?.limits?.memory);
    if (limit !== undefined) {
      const t = setInterval(() => {
        const pid = c.proc?.pid;
        if (pid === undefined) return clearInterval(t);
        if (treeUsage(pid).memBytes > limit) {
          c.oomKilled = true;
          signalGroup(pid, 'SIGKILL');
        }
      }, 200);
      c.timers.push(t as unknown as NodeJS.Timeout);
    }
    const { startupProbe, readinessProbe, livenessProbe } = c.spec;
    const setStarted = () => {
      c.started = true;
      if (!readinessProbe) c.ready = true;
      this.changed();
      if (readinessProbe) this.loop(c, readinessProbe, (ok) => this.setReady(c, ok));
      if (livenessProbe) this.loop(c, livenessProbe, (ok, fails) => fails >= (livenessProbe.failureThreshold ?? 3) && !ok && this.killFor(c));
    };
    if (startupProbe) {
      this.loop(c, startupProbe, (ok, fails) => {
        if (ok) {
          setStarted();
          return true;
        }
        if (fails >= (startupProbe.failureThreshold ?? 3)) this.killFor(c);
        return false;
      });
    } else setStarted();
  }

  private setReady(c: ContainerRun, ok: boolean): void {
    if (c.ready === ok) return;
    c.ready = ok;
    this.changed();
  }

  /** Runs a probe every periodSeconds; `after` returns true to stop. */
  private loop(c: ContainerRun, probe: k8s.V1Probe, after: (ok: boolean, consecutiveFailures: number) => unknown): void {
    const proc = c.proc;
    let fails = 0;
    const tick = async () => {
      if (c.proc !== proc || this.terminating) return;
      const ok = await this.probe(c, probe);
      if (c.proc !== proc || this.terminating) return;
      fails = ok ? 0 : fails + 1;
      if (after(ok, fails) === true) return;
      c.timers.push(setTimeout(tick, (probe.periodSeconds ?? 10) * 1000));
    };
    c.timers.push(setTimeout(tick, (probe.initialDelaySeconds ?? 0) * 1000));
  }

  private probe(c: ContainerRun, probe: k8s.V1Probe): Promise<boolean> {
    const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
    const port = probePort(c.spec, probe);
    if (probe.tcpSocket && port !== undefined) return this.network!.probeTcp(port, timeoutMs);
    if (probe.httpGet && port !== undefined) {
      return new Promise((resolve) => {
        const req = http.get({ host: this.podIP, port, path: probe.httpGet!.path ?? '/', timeout: timeoutMs, agent: false }, (res) => {
          res.resume();
          resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(false));
      });
    }
    // exec and grpc probes are not supported: they pass.
    return Promise.resolve(true);
  }

  /** Kills a container whose liveness or startup probe failed; the supervisor restarts it. */
  private killFor(c: ContainerRun): boolean {
    void this.stopProcess(c, (this.pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000);
    return true;
  }

  private async stopProcess(c: ContainerRun, graceMs: number): Promise<void> {
    const pid = c.proc?.pid;
    if (pid === undefined || !c.exited) return;
    // To the container's processes, not to bubblewrap (their parent, the group leader): it would die at once and
    // take the output and exit status of a process still shutting down with it.
    c.stopDeadline = Date.now() + graceMs;
    signalMembers(pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
    await c.exited;
    clearTimeout(timer);
  }

  private envOf(spec: k8s.V1Container): Record<string, string> {
    const env: Record<string, string> = { PATH: DEFAULT_PATH, HOSTNAME: this.pod.metadata?.name ?? '' };
    for (const e of spec.env ?? []) {
      if (e.value !== undefined) env[e.name] = expandVars(e.value, env);
      else if (e.valueFrom?.fieldRef) env[e.name] = this.field(e.valueFrom.fieldRef.fieldPath);
      else env[e.name] = '';
    }
    return env;
  }

  private field(fieldPath: string): string {
    const md = this.pod.metadata;
    switch (fieldPath) {
      case 'status.podIP':
        return this.podIP;
      case 'status.hostIP':
        return '127.0.0.1';
      case 'metadata.name':
        return md?.name ?? '';
      case 'metadata.namespace':
        return md?.namespace ?? '';
      case 'metadata.uid':
        return md?.uid ?? '';
      case 'spec.nodeName':
        return this.ctx.nodeName;
      default:
        return '';
    }
  }

  // ---- status

  private changed(): void {
    if (this.stopped) return;
    this.dirty = true;
    this.writing = this.writing.then(async () => {
      if (!this.dirty || this.stopped) return;
      this.dirty = false;
      await this.ctx.writeStatus(this.pod, this.status()).catch(() => undefined);
    });
  }

  status(): k8s.V1PodStatus {
    const initialized = this.inits.every((c) => c.state.terminated?.exitCode === 0);
    if (this.phase === 'Pending' && initialized && this.containers.every((c) => c.state.running || c.state.terminated)) this.phase = 'Running';
    const ready = this.phase === 'Running' && this.containers.every((c) => c.ready);
    const cond = (type: string, ok: boolean) => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: now() });
    const cs = (c: ContainerRun): k8s.V1ContainerStatus => ({
      name: c.spec.name,
      image: c.spec.image ?? '',
      imageID: '',
      containerID: containerId(this.pod, c),
      ready: c.ready,
      started: c.started,
      restartCount: c.restartCount,
      state: c.state,
      lastState: c.lastState,
    });
    return {
      phase: this.phase,
      podIP: this.podIP,
      podIPs: [{ ip: this.podIP }],
      hostIP: '127.0.0.1',
      ...(this.startTime ? { startTime: this.startTime } : {}),
      conditions: [cond('PodScheduled', true), cond('Initialized', initialized), cond('ContainersReady', ready), cond('Ready', ready)],
      initContainerStatuses: this.inits.map(cs),
      containerStatuses: this.containers.map(cs),
    };
  }
}

const containerId = (pod: k8s.V1Pod, c: ContainerRun) => `kubelet://${pod.metadata?.uid}/${c.spec.name}/${c.restartCount}`;

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // Gone.
  }
}

function signalMembers(pgid: number, sig: NodeJS.Signals): void {
  for (const p of liveGroupMembers(pgid)) {
    if (p.pid === pgid) continue;
    try {
      process.kill(p.pid, sig);
    } catch {
      // Gone.
    }
  }
}

function probePort(c: k8s.V1Container, probe: k8s.V1Probe | undefined): number | undefined {
  const port = probe?.tcpSocket?.port ?? probe?.httpGet?.port;
  if (port === undefined) return undefined;
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

/** Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$(` is a literal `$(`, unknown ones stay. */
export function expandVars(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    return name !== undefined && env[name] !== undefined ? env[name]! : m;
  });
}

export function parseQuantity(q: string | undefined): number | undefined {
  if (q === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) return undefined;
  const units: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? units[m[2]]! : 1);
}
