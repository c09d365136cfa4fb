import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

/**
 * Memory limits through the kernel: a cgroup per instance (or task) whose limit is the app's memory quota, so the
 * kernel's OOM killer stops a hog at once instead of Kiln noticing on its next poll. cgroup v2 when its memory
 * controller can be delegated to Kiln, else the v1 memory hierarchy when writable (root on hybrid hosts); where
 * neither works the runtime falls back to polling the process tree's RSS.
 */

export interface MemoryCgroups {
  readonly version: 1 | 2;
  /** A new group with the given limit; undefined when it could not be created (the caller falls back to polling). */
  create(name: string, limitBytes: number): MemoryCgroup | undefined;
  /** An existing group (of an instance a restarted Kiln adopts); undefined when it is gone. */
  open(name: string): MemoryCgroup | undefined;
  /** Removes this data dir's parent group once it is empty (a clean shutdown); harmless while groups remain. */
  release(): void;
}

export interface MemoryCgroup {
  /** The group's `cgroup.procs`: a process that writes its pid there moves itself in. */
  readonly procsFile: string;
  /** Moves the processes into the group; false if any move failed. */
  attach(pids: number[]): boolean;
  /** The group's processes (cgroup.procs); undefined when it cannot be read. */
  pids(): number[] | undefined;
  /** Whether the kernel OOM-killed a process of the group. */
  oomKilled(): boolean;
  /**
   * The group's working set in bytes (usage less inactive file cache, what the kernel cannot simply drop), counting
   * pages shared between the group's processes once; undefined when it cannot be read.
   */
  workingSetBytes(): number | undefined;
  /** Removes the (empty) group; harmless when processes are still exiting — a later remove succeeds. */
  remove(): void;
}

const V2_ROOT = '/sys/fs/cgroup';
const V1_MEMORY_ROOT = '/sys/fs/cgroup/memory';

/**
 * The cgroup support of this host, or undefined when Kiln cannot create memory cgroups.
 *
 * Groups live under `kiln-apps/<scope>`, the scope named after the data dir, because a starting Kiln sweeps the
 * empty groups a killed run left behind: swept across every Kiln on the host, it removed another Kiln's group between
 * its creation and its instance moving in, and that instance failed its start (exit 125 in launch.ts).
 */
export function detectMemoryCgroups(dataDir: string): MemoryCgroups | undefined {
  const scope = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16);
  return detectV2(scope) ?? detectV1(scope);
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function detectV2(scope: string): MemoryCgroups | undefined {
  const controllers = join(V2_ROOT, 'cgroup.controllers');
  if (!existsSync(controllers)) return undefined;
  try {
    if (!readFileSync(controllers, 'utf8').split(/\s+/).includes('memory')) return undefined;
    // Kiln's own group cannot hold processes and delegate at once, so instance groups sit under a `kiln-apps`
    // group created beside Kiln's, with the memory controller enabled for its children.
    const self = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
    if (!self) return undefined;
    const shared = join(V2_ROOT, self.slice(3).trim(), '..', 'kiln-apps');
    const parents: Parents = { shared, base: join(shared, scope), prepare: (dir) => writeFileSync(join(dir, 'cgroup.subtree_control'), '+memory') };
    for (const dir of [parents.shared, parents.base]) {
      mkdirSync(dir, { recursive: true });
      parents.prepare(dir);
    }
    sweep(parents);
    const oom = (dir: string) => counter(join(dir, 'memory.events'), 'oom_kill');
    const ws = (dir: string) => workingSet(join(dir, 'memory.current'), join(dir, 'memory.stat'), 'inactive_file');
    return {
      version: 2,
      create: (name, limitBytes) => makeGroup(parents, name, [['memory.max', String(limitBytes)], ['memory.swap.max', '0']], oom, ws),
      open: (name) => openGroup([parents.base, shared], name, oom, ws),
      release: () => removeGroup(parents.base),
    };
  } catch {
    return undefined;
  }
}

function detectV1(scope: string): MemoryCgroups | undefined {
  if (!existsSync(join(V1_MEMORY_ROOT, 'memory.limit_in_bytes')) || !writable(V1_MEMORY_ROOT)) return undefined;
  const shared = join(V1_MEMORY_ROOT, 'kiln-apps');
  const parents: Parents = { shared, base: join(shared, scope), prepare: () => undefined };
  try {
    mkdirSync(parents.base, { recursive: true });
  } catch {
    return undefined;
  }
  sweep(parents);
  const oom = (dir: string) => {
    // Kernels since 4.13 count kills; older ones only say the group hit its limit under OOM.
    const kills = counter(join(dir, 'memory.oom_control'), 'oom_kill');
    return kills || counter(join(dir, 'memory.oom_control'), 'under_oom');
  };
  const ws = (dir: string) => workingSet(join(dir, 'memory.usage_in_bytes'), join(dir, 'memory.stat'), 'total_inactive_file');
  return {
    version: 1,
    create: (name, limitBytes) => makeGroup(parents, name, [['memory.limit_in_bytes', String(limitBytes)]], oom, ws),
    open: (name) => openGroup([parents.base, shared], name, oom, ws),
    release: () => removeGroup(parents.base),
  };
}

/** `kiln-apps` shared by every Kiln on the host, and this data dir's group in it (`prepare` enables delegation). */
interface Parents {
  shared: string;
  base: string;
  prepare(dir: string): void;
}

/**
 * An empty group created this long ago is taken for a leftover: a new group is joined by its leader within
 * milliseconds of its creation (ENTRY in launch.ts), so another Kiln's group can be told from a leftover by its age.
 * (An old group whose process has just exited may go before its Kiln reads its OOM counter: that needs another Kiln
 * to start within those milliseconds, and costs only the "out of memory" in the crash's description.)
 */
const FOREIGN_LEFTOVER_MS = 10 * 60_000;

/**
 * Removes the empty groups a killed run on this data dir left behind, and the empty ones of other data dirs (and of
 * Kilns from before the per-data-dir parents) created at least FOREIGN_LEFTOVER_MS ago: a data dir that is never
 * started again (a deleted one) would leave its groups forever. Groups that hold processes stay (rmdir refuses).
 */
function sweep({ shared, base }: Parents): void {
  for (const group of subgroups(base)) removeGroup(group);
  for (const dir of subgroups(shared)) {
    if (dir === base) continue;
    for (const group of subgroups(dir)) removeGroup(group, FOREIGN_LEFTOVER_MS);
    removeGroup(dir, FOREIGN_LEFTOVER_MS);
  }
}

/** The groups directly below `dir`; none when it is gone (another Kiln's sweep may remove it meanwhile). */
function subgroups(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? [join(dir, entry.name)] : []));
  } catch {
    return [];
  }
}

/** rmdir, when the group is at least `minAgeMs` old (a cgroup directory's mtime is its creation time). */
function removeGroup(dir: string, minAgeMs = 0): void {
  try {
    if (minAgeMs > 0 && Date.now() - statSync(dir).mtimeMs < minAgeMs) return;
    rmdirSync(dir);
  } catch {
    // Busy (processes still exiting, or child groups left) or already gone.
  }
}

/** The group in the first of `parents` that has it: a Kiln from before the per-data-dir parents put it in `kiln-apps`. */
function openGroup(
  parents: string[],
  name: string,
  oomCount: (dir: string) => number,
  readWorkingSet: (dir: string) => number | undefined,
): MemoryCgroup | undefined {
  const dir = parents.map((parent) => join(parent, name)).find((d) => existsSync(d));
  return dir ? groupAt(dir, oomCount, readWorkingSet) : undefined;
}

function makeGroup(
  parents: Parents,
  name: string,
  settings: Array<[string, string]>,
  oomCount: (dir: string) => number,
  readWorkingSet: (dir: string) => number | undefined,
): MemoryCgroup | undefined {
  const dir = join(parents.base, name);
  try {
    // This data dir's parent, once empty for long enough, may have been swept by another Kiln starting: made again.
    for (let attempt = 1; ; attempt++) {
      try {
        for (const parent of [parents.shared, parents.base]) {
          if (existsSync(parent)) continue;
          mkdirSync(parent, { recursive: true });
          parents.prepare(parent);
        }
        if (existsSync(dir)) rmdirSync(dir);
        mkdirSync(dir);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err;
      }
    }
    for (const [file, value] of settings) {
      try {
        writeFileSync(join(dir, file), value);
      } catch (err) {
        // swap limits are absent when the kernel has no swap accounting; the memory limit itself must apply.
        if (!file.includes('swap')) throw err;
      }
    }
  } catch {
    return undefined;
  }
  return groupAt(dir, oomCount, readWorkingSet);
}

function groupAt(dir: string, oomCount: (dir: string) => number, readWorkingSet: (dir: string) => number | undefined): MemoryCgroup {
  return {
    procsFile: join(dir, 'cgroup.procs'),
    attach(pids) {
      let ok = true;
      for (const pid of pids) {
        try {
          writeFileSync(join(dir, 'cgroup.procs'), String(pid));
        } catch {
          ok = false;
        }
      }
      return ok;
    },
    pids() {
      try {
        return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      } catch {
        return undefined;
      }
    },
    oomKilled: () => oomCount(dir) > 0,
    workingSetBytes: () => readWorkingSet(dir),
    remove: () => removeGroup(dir),
  };
}

function counter(file: string, key: string): number {
  try {
    const line = readFileSync(file, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${key} `));
    return line ? Number(line.split(' ')[1]) || 0 : 0;
  } catch {
    return 0;
  }
}

function workingSet(usageFile: string, statFile: string, inactiveKey: string): number | undefined {
  try {
    const usage = Number(readFileSync(usageFile, 'utf8').trim());
    if (!Number.isFinite(usage)) return undefined;
    return Math.max(0, usage - counter(statFile, inactiveKey));
  } catch {
    return undefined;
  }
}
