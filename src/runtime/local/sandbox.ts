import { existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { spawnSync } from 'node:child_process';

/**
 * Walls an app process off from Kiln and from other apps with bubblewrap: new PID/IPC/UTS namespaces (so
 * /proc shows only the sandbox's own processes), a read-only view of the system, only the app's own files bound,
 * private writable scratch space, and nothing of Kiln's data dir, home or repository.
 *
 * When Kiln runs as root, bwrap runs privileged (no user namespace) and drops every capability; with an app
 * uid it keeps only CAP_SETUID/CAP_SETGID, which `setpriv` uses to drop to the app's own uid/gid as the last step
 * inside the sandbox (changing to a non-zero uid clears them). Every bwrap mount is nosuid and bwrap sets
 * no_new_privs, so setuid binaries of the bound system cannot get root back. As another user, bwrap creates a
 * user namespace and the app keeps Kiln's uid.
 *
 * Not isolated: the network (apps listen on host ports for the router, so they share the host's network
 * namespace, loopback services and abstract unix sockets included).
 */

export type SandboxMode = 'auto' | 'bwrap' | 'none';

/** What Kiln says wherever an unsandboxed app could be affected (start-up log, /readyz, staging logs). */
export const NOT_ISOLATED_WARNING = 'apps are not isolated from each other or from Kiln: no usable bubblewrap sandbox (apt-get install bubblewrap)';

export interface Identity {
  uid: number;
  gid: number;
}

/** How app processes are started: `none` runs them as plain child processes (development machines without bwrap). */
export type Sandbox =
  | { kind: 'none' }
  | {
      kind: 'bwrap';
      bwrapPath: string;
      /** Set when Kiln runs as root: the tool that drops to the app's uid inside the sandbox. */
      setprivPath: string | undefined;
      /** util-linux prlimit, for per-process limits where it is installed. */
      prlimitPath?: string;
      /** Read-only system paths and symlinks bound into every sandbox. */
      system: SystemEntry[];
    };

export type SystemEntry = { kind: 'bind'; path: string } | { kind: 'symlink'; path: string; target: string };

export interface Mount {
  /** Host path to bind. */
  source: string;
  /** Path inside the sandbox. */
  dest: string;
  writable: boolean;
}

export interface SandboxSpec {
  mounts: Mount[];
  /** Private in-memory directories (tmpfs) writable by the app, with an optional size cap in bytes. */
  scratch: Array<{ dest: string; sizeBytes?: number }>;
  /** Directories created (world-writable, sticky) inside the scratch space, e.g. CF's `/home/vcap/tmp`. */
  dirs?: string[];
  /** Working directory inside the sandbox. */
  cwd: string;
  hostname: string;
  /** The app's own uid/gid when Kiln runs as root; omitted otherwise. */
  identity?: Identity;
  /** Executable and arguments, as seen inside the sandbox. */
  argv: string[];
  /**
   * Largest file the app may write (RLIMIT_FSIZE), set to its disk quota: no single file outgrows the quota.
   * Not RLIMIT_AS for memory: V8 and glibc reserve far more address space than they touch, so an address-space
   * cap near the quota kills healthy Node apps at start; memory is limited by the cgroup or the RSS poll instead.
   */
  maxFileBytes?: number;
  /** Block on this fd until Kiln has put the process into its cgroup (bwrap's --block-fd). */
  blockFd?: number;
  /**
   * Keep running when Kiln dies (no `--die-with-parent`): an instance a restarted Kiln adopts (records.ts). Tasks
   * and staging die with Kiln.
   */
  outliveParent?: boolean;
}

const BWRAP_CANDIDATES = ['/usr/bin/bwrap', '/usr/local/bin/bwrap', '/bin/bwrap'];
const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'];
const PRLIMIT_CANDIDATES = ['/usr/bin/prlimit', '/bin/prlimit'];

/**
 * The parts of /etc a process needs to resolve names, verify TLS and look up users — not the rest (shadow, ssh
 * host keys, whatever an operator put there). `alternatives` holds the targets of many /usr/bin symlinks.
 */
const ETC_ENTRIES = [
  '/etc/resolv.conf',
  '/etc/hosts',
  '/etc/host.conf',
  '/etc/nsswitch.conf',
  '/etc/gai.conf',
  '/etc/passwd',
  '/etc/group',
  '/etc/localtime',
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/etc/pki',
  '/etc/alternatives',
  '/etc/mime.types',
  '/etc/protocols',
  '/etc/services',
];

const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** The read-only system entries that exist on this machine (merged-/usr links are recreated as links). */
export function systemEntries(): SystemEntry[] {
  const out: SystemEntry[] = [];
  for (const path of [...SYSTEM_DIRS, ...ETC_ENTRIES]) {
    let st;
    try {
      st = lstatSync(path);
    } catch {
      continue;
    }
    if (st.isSymbolicLink() && SYSTEM_DIRS.includes(path)) {
      out.push({ kind: 'symlink', path, target: readlinkSync(path) });
    } else {
      out.push({ kind: 'bind', path });
    }
  }
  // The node running Kiln (built-in buildpacks and the apps they stage run on it) may live outside /usr, e.g. in
  // /opt or a version manager's directory: its installation prefix is bound, nothing around it.
  const nodePrefix = dirname(dirname(realpathSync(process.execPath)));
  if (!out.some((e) => e.kind === 'bind' && (nodePrefix === e.path || nodePrefix.startsWith(`${e.path}/`))) && nodePrefix !== '/') {
    out.push({ kind: 'bind', path: nodePrefix });
  }
  return out;
}


export function findExecutable(candidates: readonly string[]): string | undefined {
  return candidates.find((p) => existsSync(p));
}

/**
 * Decides how apps run from KILN_SANDBOX: `bwrap` demands bubblewrap (a multi-tenant installation), `auto` uses
 * it when installed, `none` never does.
 */
export function resolveSandbox(
  mode: SandboxMode,
  opts: {
    isRoot?: boolean;
    find?: (candidates: readonly string[]) => string | undefined;
    /** Whether bwrap can create namespaces here (unprivileged user namespaces may be disabled). */
    works?: (bwrapPath: string) => boolean;
  } = {},
): Sandbox {
  if (mode === 'none') return { kind: 'none' };
  const find = opts.find ?? findExecutable;
  const bwrapPath = find(BWRAP_CANDIDATES);
  if (!bwrapPath) {
    if (mode === 'bwrap') {
      throw new Error('KILN_SANDBOX=bwrap but bubblewrap is not installed (apt-get install bubblewrap)');
    }
    return { kind: 'none' };
  }
  if (!(opts.works ?? bwrapWorks)(bwrapPath)) {
    if (mode === 'bwrap') {
      throw new Error(`KILN_SANDBOX=bwrap but ${bwrapPath} cannot create a sandbox here (are unprivileged user namespaces disabled?)`);
    }
    return { kind: 'none' };
  }
  const isRoot = opts.isRoot ?? process.getuid?.() === 0;
  let setprivPath: string | undefined;
  if (isRoot) {
    setprivPath = find(SETPRIV_CANDIDATES);
    // auto still sandboxes (every capability dropped) but cannot give apps their own uid; bwrap insists.
    if (!setprivPath && mode === 'bwrap') {
      throw new Error('KILN_SANDBOX=bwrap and Kiln runs as root, but setpriv (util-linux) is missing: apps cannot be given their own uid');
    }
  }
  const prlimitPath = find(PRLIMIT_CANDIDATES);
  return { kind: 'bwrap', bwrapPath, setprivPath, ...(prlimitPath ? { prlimitPath } : {}), system: systemEntries() };
}

/** Runs an empty sandbox once: bwrap installed is not bwrap usable (containers, sysctls against user namespaces). */
export function bwrapWorks(bwrapPath: string): boolean {
  const probe = spawnSync(bwrapPath, ['--unshare-pid', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', '--', '/bin/sh', '-c', 'exit 0'], {
    stdio: 'ignore',
    timeout: 10_000,
    env: {},
  });
  return probe.status === 0;
}

/** The bwrap argument list for one sandboxed process. Pure: every decision about the host is in `sandbox`. */
export function bwrapArgs(sandbox: Extract<Sandbox, { kind: 'bwrap' }>, spec: SandboxSpec): string[] {
  const args: string[] = [
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    ...(spec.outliveParent ? [] : ['--die-with-parent']),
    '--hostname',
    spec.hostname,
  ];
  // Privileged bwrap (Kiln as root) would otherwise hand every capability to the child; setpriv needs exactly
  // these two to drop to the app's uid, which clears them. Unprivileged bwrap ignores both options.
  args.push('--cap-drop', 'ALL');
  if (spec.identity) {
    if (spec.identity.uid === 0 || spec.identity.gid === 0) throw new Error('apps never run as uid or gid 0');
    if (!sandbox.setprivPath) throw new Error('switching uid needs setpriv');
    args.push('--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID');
  }
  // bwrap creates the missing parents of a mount point private (0700): the uid the app runs as could not reach
  // /etc/ssl or a buildpack bound at its host path. Creating them first keeps them listable.
  const underScratch = (p: string) => spec.scratch.some((s) => p === s.dest || p.startsWith(`${s.dest}/`));
  const parents = new Set<string>();
  const dests = [...sandbox.system.filter((e) => e.kind === 'bind').map((e) => e.path), ...spec.mounts.map((m) => m.dest), ...spec.scratch.map((s) => s.dest)];
  for (const dest of dests) {
    for (let p = dirname(dest); p !== '/' && p !== '.'; p = dirname(p)) parents.add(p);
  }
  const sorted = [...parents].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
  const dirArgs = (list: string[]) => list.flatMap((p) => ['--perms', '0755', '--dir', p]);
  // Parents inside a scratch tmpfs are made after it is mounted, or the tmpfs would hide them.
  const parentArgs = dirArgs(sorted.filter((p) => !underScratch(p)));
  const scratchParentArgs = dirArgs(sorted.filter((p) => underScratch(p) && !spec.scratch.some((s) => s.dest === p)));
  args.push(...parentArgs);
  for (const entry of sandbox.system) {
    if (entry.kind === 'symlink') args.push('--symlink', entry.target, entry.path);
    else args.push('--ro-bind', entry.path, entry.path);
  }
  args.push('--proc', '/proc', '--dev', '/dev');
  // Scratch space first, so app mounts may sit inside it (the droplet under a writable HOME).
  const ordered = [...spec.scratch].sort((a, b) => a.dest.length - b.dest.length);
  for (const s of ordered) {
    args.push('--perms', s.dest === '/tmp' ? '1777' : '0777');
    if (s.sizeBytes !== undefined) args.push('--size', String(Math.max(1, Math.floor(s.sizeBytes))));
    args.push('--tmpfs', s.dest);
  }
  args.push(...scratchParentArgs);
  for (const dir of spec.dirs ?? []) args.push('--perms', '1777', '--dir', dir);
  for (const m of [...spec.mounts].sort((a, b) => a.dest.length - b.dest.length)) {
    args.push(m.writable ? '--bind' : '--ro-bind', m.source, m.dest);
  }
  args.push('--chdir', spec.cwd);
  if (spec.blockFd !== undefined) args.push('--block-fd', String(spec.blockFd));
  args.push('--');
  if (spec.maxFileBytes !== undefined && sandbox.prlimitPath) {
    // Lowering limits needs no capability; core dumps would write app memory into its scratch space.
    args.push(sandbox.prlimitPath, `--fsize=${Math.max(1, Math.floor(spec.maxFileBytes))}`, '--core=0', '--');
  }
  if (spec.identity) {
    const { uid, gid } = spec.identity;
    args.push(sandbox.setprivPath as string, `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--inh-caps=-all', '--');
  }
  args.push(...spec.argv);
  return args;
}
