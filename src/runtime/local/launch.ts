import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, closeSync, constants as fsConstants, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { MemoryCgroup } from './cgroup.ts';
import { allProcesses, isAlive, liveGroupMembers, readProcStat } from './proc.ts';
import { removeLogFifos, type AdoptableInstance, type LogFifos, type ProcessRecord, type ProcessRecords } from './records.ts';
import { bwrapArgs, type Identity, type Sandbox, type SandboxSpec } from './sandbox.ts';

/**
 * Starts one process the way the CF launcher does and owns its process group until every member is gone.
 *
 * `/bin/sh -c` sources `<droplet>/profile.d/*.sh` (buildpack-supplied), then `app/.profile.d/*.sh` and
 * `app/.profile` (app-supplied), then evaluates the start command, with cwd `<droplet>/app`. The process is the
 * leader of its own group (detached), so signals sent to `-pgid` reach everything it forked.
 */

export const LAUNCHER = [
  '__kiln_droplet=$1; __kiln_command=$2; set --',
  'for __kiln_f in "$__kiln_droplet"/profile.d/*.sh; do if [ -r "$__kiln_f" ]; then . "$__kiln_f"; fi; done',
  'for __kiln_f in ./.profile.d/*.sh; do if [ -r "$__kiln_f" ]; then . "$__kiln_f"; fi; done',
  'if [ -r ./.profile ]; then . ./.profile; fi',
  'unset __kiln_f __kiln_droplet',
  'eval "$__kiln_command"',
].join('\n');

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** CF-style exit status: the code, or 128 + signal number when killed by a signal. */
  status: number;
  /** Set when the process could not be started at all. */
  error?: string;
  /** An adopted process (not Kiln's child) ended: its status cannot be known. */
  unknown?: boolean;
  /** The kernel killed a process of its memory cgroup for exceeding the limit. */
  oomKilled?: boolean;
}

/** Where the droplet appears inside a sandbox: CF's container layout (`/home/vcap/app`, `/home/vcap/deps`…). */
export const SANDBOX_DROPLET_DIR = '/home/vcap';

/** Runs the process in a bubblewrap sandbox that sees only its own droplet (read-only) and private scratch space. */
export interface Jail {
  sandbox: Extract<Sandbox, { kind: 'bwrap' }>;
  /** The app's own uid/gid when Kiln runs as root. */
  identity?: Identity;
  hostname: string;
  /**
   * Host directory (made by prepareScratch) whose `home` and `tmp` become the writable /home/vcap and /tmp. On
   * disk rather than tmpfs, so files an app writes count against its disk, not its memory; shared by an instance's
   * main process and sidecars, as they share a container's filesystem in CF.
   */
  scratchDir: string;
  /** The app's disk quota: the largest file it may write. */
  maxFileBytes?: number;
  /** Memory cgroup the process joins before it runs anything (shared by an instance's main process and sidecars). */
  cgroup?: MemoryCgroup;
  /** The sandbox survives Kiln's death, for a restarted Kiln to adopt (records.ts). */
  outliveParent?: boolean;
  /** Further read-only host directories to bind (the instance identity credentials, see credentials.ts). */
  binds?: Array<{ source: string; dest: string; writable: false }>;
}

export interface LaunchOptions {
  id: string;
  kind: 'instance' | 'task';
  dropletDir: string;
  command: string;
  env: Record<string, string>;
  records: ProcessRecords;
  onLine: (stream: 'stdout' | 'stderr', text: string) => void;
  jail?: Jail;
  /** An instance's slot and incarnation, recorded so that a restarted Kiln can adopt the group. */
  adoptable?: AdoptableInstance;
  /**
   * FIFOs (from a LogFifoStock) to take the process's stdout and stderr instead of pipes into this process: they
   * outlive Kiln, so an adopted instance keeps logging (see logStreams).
   */
  logFifos?: LogFifos;
}

/** A group a previous Kiln run started (see records.ts): supervised, but not a child of this process. */
export interface AdoptOptions {
  adopt: ProcessRecord;
  records: ProcessRecords;
  /** The incarnation's memory cgroup, reopened, for OOM detection. */
  cgroup?: MemoryCgroup;
  /** Lines the adopted process writes from now on (and those it wrote while no Kiln ran), when it logs to FIFOs. */
  onLine?: (stream: 'stdout' | 'stderr', text: string) => void;
}

/** The droplet's parts an app reads; whichever the droplet has are bound read-only at CF's paths. */
const DROPLET_PARTS = ['app', 'deps', 'profile.d'];

function sandboxSpec(opts: LaunchOptions, jail: Jail, blockFd: number | undefined): SandboxSpec {
  const view = SANDBOX_DROPLET_DIR;
  return {
    mounts: [
      { source: join(jail.scratchDir, 'home'), dest: view, writable: true },
      { source: join(jail.scratchDir, 'tmp'), dest: '/tmp', writable: true },
      // The app's uid has a name (vcap, as in CF): tools that look the user up (npm, git, whoami) need one.
      ...(jail.identity ? [{ source: join(jail.scratchDir, 'passwd'), dest: '/etc/passwd', writable: false }] : []),
      ...DROPLET_PARTS.filter((part) => part === 'app' || existsSync(join(opts.dropletDir, part))).map((part) => ({
        source: join(opts.dropletDir, part),
        dest: join(view, part),
        writable: false,
      })),
      ...(jail.binds ?? []),
    ],
    scratch: [],
    cwd: join(view, 'app'),
    hostname: jail.hostname,
    ...(jail.identity ? { identity: jail.identity } : {}),
    ...(jail.maxFileBytes !== undefined ? { maxFileBytes: jail.maxFileBytes } : {}),
    ...(blockFd !== undefined ? { blockFd } : {}),
    ...(jail.outliveParent ? { outliveParent: true } : {}),
    argv: ['/bin/sh', '-c', LAUNCHER, 'kiln-launcher', view, opts.command],
  };
}

/**
 * Fresh writable space for one sandboxed incarnation or task: `home` (HOME, with CF's `tmp` inside for TMPDIR) and
 * `tmp`, owned by the app's uid when it has one. Whatever a previous incarnation left is discarded, as a new CF
 * container starts from its droplet.
 */
export function prepareScratch(dir: string, identity: Identity | undefined): void {
  rmSync(dir, { recursive: true, force: true });
  for (const sub of ['', 'home', join('home', 'tmp'), 'tmp']) {
    const path = join(dir, sub);
    mkdirSync(path, { recursive: true });
    // HOME is the app's (bwrap, capabilities dropped, must still pass through it to chdir into app/).
    chmodSync(path, sub === '' || sub === 'home' ? 0o755 : 0o1777);
    if (identity && sub !== '') chownSync(path, identity.uid, identity.gid);
  }
  if (identity) writeFileSync(join(dir, 'passwd'), sandboxPasswd(identity), { mode: 0o644 });
}

/** The host's system accounts (uid < 1000 or nobody) plus `vcap` for the app's uid, with HOME /home/vcap. */
export function sandboxPasswd(identity: Identity, hostPasswd = readHostPasswd()): string {
  const system = hostPasswd.split('\n').filter((line) => {
    const [name, , uid] = line.split(':');
    return name && name !== 'vcap' && uid !== undefined && (Number(uid) < 1000 || Number(uid) === 65534);
  });
  return [...system, `vcap:x:${identity.uid}:${identity.gid}:vcap:${SANDBOX_DROPLET_DIR}:/bin/sh`, ''].join('\n');
}

function readHostPasswd(): string {
  try {
    return readFileSync('/etc/passwd', 'utf8');
  } catch {
    return 'root:x:0:0:root:/root:/bin/sh';
  }
}

/**
 * The leader of every group Kiln starts: `$1` is the group's cgroup.procs (or empty), the rest the command to become.
 *
 * First the gate: nothing runs until Kiln has written the group's crash-safety record (records.ts) and sent a line on
 * fd 3. A Kiln SIGKILLed between the spawn and that write closes fd 3 instead, the read sees end-of-file and the
 * leader exits before anything else exists, so a restarted Kiln never meets a group it has no record of (it could
 * neither adopt nor kill it, and would start a second copy beside it).
 *
 * Then the cgroup: a failed move fails the start (exit 125, a crash the controllers retry): with a cgroup the kernel
 * is the only memory limit, so running outside it would run without one.
 */
const ENTRY = [
  'read -r __kiln_go <&3 || exit 125',
  'exec 3<&-',
  'if [ -n "$1" ]; then { echo $$ > "$1"; } 2>/dev/null || { echo "kiln: cannot join the memory cgroup" >&2; exit 125; }; fi',
  'shift',
  'exec "$@"',
].join('\n');

const POLL_MS = 20;
/** After SIGKILL a group should vanish at once; this only bounds waiting on a D-state (uninterruptible) process. */
const KILL_WAIT_MS = 5_000;

export class ProcessHandle {
  readonly pid: number | undefined;
  readonly startedAt: number;
  /** Resolves when the leader process exited (or failed to start). */
  readonly exited: Promise<ExitInfo>;
  /** Resolves when no live member of the group remains and the crash-safety record is removed. */
  readonly gone: Promise<void>;
  private exitInfo: ExitInfo | undefined;
  private terminating: Promise<void> | undefined;
  private record: ProcessRecord | undefined;
  private readonly records: ProcessRecords;
  /** Adopted only: looks at the leader now rather than at the shared watcher's next tick (see waitGroupGone). */
  private readonly checkAdoptedExit: (() => void) | undefined;

  constructor(opts: LaunchOptions | AdoptOptions) {
    this.records = opts.records;
    /** Removed once the group is gone. */
    let fifos: LogFifos | undefined;
    if ('adopt' in opts) {
      // Adopted: the leader is not our child, so its exit is noticed by polling and its status is unknown.
      const { adopt: record, cgroup } = opts;
      this.record = record;
      this.pid = record.pid;
      this.startedAt = record.createdAt;
      const watch = watchExit(record.pid, record.startTicks);
      this.checkAdoptedExit = watch.check;
      this.exited = watch.exited.then(() => {
        const oomKilled = cgroup?.oomKilled() ?? false;
        this.exitInfo ??= oomKilled ? { code: null, signal: 'SIGKILL', status: 137, oomKilled } : { code: null, signal: null, status: 255, unknown: true };
        return this.exitInfo;
      });
      fifos = record.logs;
      if (fifos && opts.onLine) {
        const onLine = opts.onLine;
        const streams = reopenLogFifos(fifos);
        pipeLines(streams.stdout, (text) => onLine('stdout', text));
        pipeLines(streams.stderr, (text) => onLine('stderr', text));
      }
    } else {
      this.startedAt = Date.now();
      fifos = opts.logFifos;
      const child = this.spawn(opts);
      this.pid = child.pid;
      this.exited = this.childExit(child, opts);
    }
    this.gone = this.exited.then(async () => {
      // A leader that exits on its own takes its group with it: stragglers would be orphans nobody supervises.
      // During a graceful terminate the group keeps its grace period instead.
      if (!this.terminating) this.signal('SIGKILL');
      await this.terminating;
      await this.waitGroupGone(KILL_WAIT_MS, true);
      // (A process whose record could not be written has none to remove.)
      if (this.pid !== undefined && this.record) this.records.remove(this.pid);
      if (fifos) removeLogFifos(fifos);
    });
  }

  /** Rewrites the crash-safety record with the instance's latest facts (e.g. it passed its health check). */
  updateAdoptable(instance: AdoptableInstance): void {
    if (!this.record || this.exitInfo) return;
    this.record = { ...this.record, instance };
    this.records.write(this.record);
  }

  private spawn(opts: LaunchOptions): ChildProcess {
    const jail = opts.jail;
    const cwd = join(opts.dropletDir, 'app');
    // With a memory cgroup the leader moves itself into it and then becomes bwrap, so everything the sandbox
    // starts is born inside; the kernel's migration (milliseconds on a busy host) then runs in the child rather
    // than on Kiln's event loop, where it cost ~15 ms per instance started (bench/scale.ts).
    const [file, args] = jail
      ? [jail.sandbox.bwrapPath, bwrapArgs(jail.sandbox, sandboxSpec(opts, jail, undefined))]
      : ['/bin/sh', ['-c', LAUNCHER, 'kiln-launcher', opts.dropletDir, opts.command]];
    const logs = opts.logFifos ? logStreams(opts.logFifos) : undefined;
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', ENTRY, 'kiln-entry', jail?.cgroup?.procsFile ?? '', file, ...args], {
        cwd,
        env: opts.env,
        detached: true,
        stdio: ['ignore', logs?.stdoutFd ?? 'pipe', logs?.stderrFd ?? 'pipe', 'pipe'],
      });
    } finally {
      // The child has its own copies of the FIFOs' write ends now (or never will).
      logs?.closeChildEnds();
    }
    const pid = child.pid;
    const gate = child.stdio[3] as Writable | null;
    gate?.on('error', () => undefined); // EPIPE: the leader is already gone (its exit is reported as usual).
    if (pid !== undefined) {
      const stat = readProcStat(pid);
      this.record = {
        id: opts.id,
        kind: opts.kind,
        pid,
        pgid: pid,
        startTicks: stat?.startTicks ?? 0,
        createdAt: this.startedAt,
        ...(opts.adoptable ? { instance: opts.adoptable } : {}),
        ...(logs && opts.logFifos ? { logs: opts.logFifos } : {}),
      };
      try {
        opts.records.write(this.record);
        // Recorded: the leader may go on (the gate in ENTRY).
        gate?.end('go\n');
      } catch (err) {
        // Unrecorded, it must not run (a restarted Kiln could neither adopt nor kill it): it ends at its gate.
        this.exitInfo = { code: null, signal: null, status: 1, error: `cannot record the process for crash safety: ${String(err)}` };
        this.record = undefined;
        gate?.destroy();
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    } else {
      gate?.destroy();
    }
    pipeLines(logs?.stdout ?? child.stdout, (text) => opts.onLine('stdout', text));
    pipeLines(logs?.stderr ?? child.stderr, (text) => opts.onLine('stderr', text));
    return child;
  }

  private childExit(child: ChildProcess, opts: LaunchOptions): Promise<ExitInfo> {
    return new Promise((resolve) => {
      child.once('error', (err) => {
        // Spawn failures (missing cwd, EAGAIN) never produce an 'exit' event.
        if (this.pid === undefined || !isAlive(this.pid)) {
          // Node reports a missing cwd as ENOENT of /bin/sh, which would send people looking in the wrong place.
          const cwd = join(opts.dropletDir, 'app');
          const error = existsSync(cwd) ? err.message : `droplet has no app directory (${cwd})`;
          this.exitInfo ??= { code: null, signal: null, status: 1, error };
          resolve(this.exitInfo);
        }
      });
      child.once('exit', (code, signal) => {
        const status = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
        // Only a SIGKILLed launcher counts: a worker the kernel killed earlier does not make a later exit an OOM.
        const oomKilled = status === 137 && (opts.jail?.cgroup?.oomKilled() ?? false);
        this.exitInfo ??= { code, signal, status, ...(oomKilled ? { oomKilled } : {}) };
        resolve(this.exitInfo);
      });
    });
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.pid === undefined) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      // ESRCH: the group is already gone.
    }
  }

  /** SIGTERM to the group, SIGKILL to whatever is left after `graceMs`; resolves when every member is gone. */
  terminate(graceMs: number): Promise<void> {
    this.terminating ??= (async () => {
      this.signal('SIGTERM');
      const clean = await this.waitGroupGone(graceMs, false);
      if (!clean) this.signal('SIGKILL');
    })();
    return this.terminating.then(() => this.gone);
  }

  /** Force-kills the group now (health-check failure, memory limit). */
  kill(): void {
    this.signal('SIGKILL');
  }

  /** Polls /proc until the leader has exited and no live member of its group remains, or the deadline passes. */
  private async waitGroupGone(timeoutMs: number, killStragglers: boolean): Promise<boolean> {
    const pgid = this.pid;
    if (pgid === undefined) return true;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // An adopted leader's exit would otherwise wait for the shared watcher (up to seconds for a zombie leader,
      // which a non-reaping init leaves behind), and every stop of an adopted instance with it: a rollout's old
      // instances lingered seconds after it had finished.
      this.checkAdoptedExit?.();
      if (this.hasExited && !groupHasLiveMembers(pgid)) return true;
      if (Date.now() >= deadline) return false;
      if (killStragglers) this.signal('SIGKILL');
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
}

/** Adopted leaders being watched (pid → start ticks and who waits), polled together by one timer. */
const watched = new Map<number, { startTicks: number; done: () => void }>();
let watchTimer: NodeJS.Timeout | undefined;
/** How often adopted leaders are looked at: their exit is noticed at most this late. */
const ADOPTED_POLL_MS = 1_000;

let watchTicks = 0;

function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sameLiveProcess(pid: number, startTicks: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.startTicks === startTicks && stat.state !== 'Z' && stat.state !== 'X';
}

/**
 * Resolves when the process (pid with this start time) is gone or a zombie: for processes that are not our children.
 * `check` looks at once (for whoever waits on the exit now).
 */
function watchExit(pid: number, startTicks: number): { exited: Promise<void>; check: () => void } {
  let done: () => void = () => undefined;
  const exited = new Promise<void>((resolve) => {
    done = resolve;
    watched.set(pid, { startTicks, done: resolve });
    watchTimer ??= setInterval(() => {
      // A signal-0 probe each tick (one syscall, where reading /proc/<pid>/stat of 1,000 adopted instances a
      // second cost ~5% of a core); the start time and state every fifth (pid reuse; a zombie where init does not
      // reap orphans).
      const full = ++watchTicks % 5 === 0;
      for (const [p, w] of watched) {
        if (full ? sameLiveProcess(p, w.startTicks) : exists(p)) continue;
        watched.delete(p);
        w.done();
      }
      if (watched.size === 0) {
        clearInterval(watchTimer);
        watchTimer = undefined;
      }
    }, ADOPTED_POLL_MS);
    watchTimer.unref();
  });
  const check = (): void => {
    if (sameLiveProcess(pid, startTicks)) return;
    if (watched.get(pid)?.done === done) watched.delete(pid);
    done();
  };
  return { exited, check };
}

function groupHasLiveMembers(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  // kill(…, 0) succeeds for zombies too, which linger on hosts whose init does not reap orphans.
  return liveGroupMembers(pgid, allProcesses()).length > 0;
}

function pipeLines(stream: Readable | null, onLine: (text: string) => void): void {
  if (!stream) return;
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  rl.on('line', onLine);
  // A read error on a pipe (the group was killed mid-write) is not a runtime failure.
  stream.on('error', () => rl.close());
}

const execFileAsync = promisify(execFile);

/** The two FIFOs of a spare made ahead under `base` (LogFifoStock). */
const spareFifos = (base: string): LogFifos => ({ stdout: `${base}.stdout`, stderr: `${base}.stderr` });

/**
 * Makes the FIFOs adoptable instances log to: `<dir>/<name>.stdout` and `.stderr`, readable by Kiln only (the
 * directory is not bound into any sandbox; the app only ever holds its own two, open). Node has no mkfifo, and one
 * `mkfifo` child per instance cost ~12 ms of Kiln's event loop each (a fork of a 350 MB process): 12 s for 1,000
 * instances. So FIFOs are made in batches under spare names and renamed when taken.
 */
export class LogFifoStock {
  private readonly spare: string[] = [];
  private making: Promise<void> | undefined;
  /** mkfifo failed: instances log to pipes (their lines end with this Kiln process). */
  private broken = false;

  constructor(
    private readonly dir: string,
    private readonly batch = 32,
  ) {}

  /** Two fresh FIFOs named after `name`; undefined when they cannot be made. */
  async take(name: string): Promise<LogFifos | undefined> {
    const fifos = { stdout: join(this.dir, `${name}.stdout`), stderr: join(this.dir, `${name}.stderr`) };
    // Instances starting together may empty a batch before this one gets its turn: then it waits for the next.
    while (!this.broken) {
      const base = this.spare.pop();
      if (base === undefined) {
        await (this.making ??= this.make().finally(() => {
          this.making = undefined;
        }));
        continue;
      }
      try {
        const spare = spareFifos(base);
        renameSync(spare.stdout, fifos.stdout);
        renameSync(spare.stderr, fifos.stderr);
        return fifos;
      } catch {
        removeLogFifos(spareFifos(base));
        removeLogFifos(fifos);
        return undefined;
      }
    }
    return undefined;
  }

  private async make(): Promise<void> {
    const bases = Array.from({ length: this.batch }, () => join(this.dir, `spare-${randomUUID()}`));
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      await execFileAsync('mkfifo', ['-m', '600', ...bases.map(spareFifos).flatMap((f) => [f.stdout, f.stderr])]);
      this.spare.push(...bases);
    } catch {
      this.broken = true;
      for (const b of bases) removeLogFifos(spareFifos(b));
    }
  }
}

/**
 * The two ends of an instance's log FIFOs at its start. The child's stdout and stderr are opened read-write: a FIFO
 * with a reader never fails a write, and the child is its own reader while no Kiln runs, so an app that logs after
 * Kiln died keeps running (its lines wait in the FIFO, 64 KiB of them, for the next Kiln; beyond that its writes
 * block until one reads). Kiln reads through a non-blocking stream.
 */
function logStreams(fifos: LogFifos): { stdout: Readable; stderr: Readable; stdoutFd: number; stderrFd: number; closeChildEnds: () => void } | undefined {
  const { stdout, stderr } = reopenLogFifos(fifos);
  const fds: number[] = [];
  try {
    if (!stdout || !stderr) throw new Error('log FIFO missing');
    fds.push(openSync(fifos.stdout, fsConstants.O_RDWR), openSync(fifos.stderr, fsConstants.O_RDWR));
  } catch {
    // Gone or unreadable: the process logs to pipes instead.
    for (const fd of fds) closeSync(fd);
    stdout?.destroy();
    stderr?.destroy();
    return undefined;
  }
  const [stdoutFd, stderrFd] = fds as [number, number];
  return {
    stdout,
    stderr,
    stdoutFd,
    stderrFd,
    closeChildEnds: () => {
      closeSync(stdoutFd);
      closeSync(stderrFd);
    },
  };
}

/** Kiln's read ends of an instance's log FIFOs: at its start, or again after adopting it. */
function reopenLogFifos(fifos: LogFifos): { stdout: Readable | null; stderr: Readable | null } {
  return { stdout: readFifo(fifos.stdout), stderr: readFifo(fifos.stderr) };
}

function readFifo(path: string): Readable | null {
  let fd: number;
  try {
    // Non-blocking: opening for reading does not wait for a writer, and libuv reads it like a pipe.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch {
    return null;
  }
  return new Socket({ fd, readable: true, writable: false });
}
