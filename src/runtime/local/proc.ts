import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/**
 * Reads process facts from Linux /proc. Everything here is synchronous and cheap (a few small file reads), and
 * tolerates processes vanishing mid-read — callers get `undefined` rather than an exception.
 */

export interface ProcStat {
  pid: number;
  ppid: number;
  pgid: number;
  /** Single-letter state; `Z` (zombie) counts as gone: on hosts whose init does not reap orphans they linger. */
  state: string;
  /** user + system CPU time in clock ticks. */
  cpuTicks: number;
  /** Start time in clock ticks after boot: with the pid, identifies one process across pid reuse. */
  startTicks: number;
  rssPages: number;
}

export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is parenthesised and may itself contain spaces or parentheses.
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = text.slice(close + 2).trim().split(' ');
  // f[0] is field 3 (state); field n is f[n - 3].
  const num = (n: number): number => Number(f[n - 3]);
  return {
    pid,
    state: f[0] ?? '?',
    ppid: num(4),
    pgid: num(5),
    cpuTicks: num(14) + num(15),
    startTicks: num(22),
    rssPages: num(24),
  };
}

export function isLive(stat: ProcStat | undefined): stat is ProcStat {
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** True when the pid exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  return isLive(readProcStat(pid));
}

export function allProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readProcStat(Number(name));
    if (isLive(s)) out.push(s);
  }
  return out;
}

let snapshot: ProcStat[] | undefined;
/** The snapshot's processes by parent and by group, built once per snapshot for processTree. */
const indexes = new WeakMap<ProcStat[], { byParent: Map<number, ProcStat[]>; byGroup: Map<number, ProcStat[]>; byPid: Map<number, ProcStat> }>();

/**
 * allProcesses, shared by every caller in the same turn of the event loop: one /proc walk serves all instances'
 * usage figures of a burst (a stats request over 1,000 instances reads them synchronously, one after the other)
 * instead of one walk per instance — O(n) rather than O(n²) file reads. The next turn walks afresh, so two
 * samples taken apart (CPU between them) never share one.
 */
export function recentProcesses(): ProcStat[] {
  if (!snapshot) {
    snapshot = allProcesses();
    setImmediate(() => {
      snapshot = undefined;
    });
  }
  return snapshot;
}

/** Live members of a process group. */
export function liveGroupMembers(pgid: number, procs: ProcStat[] = allProcesses()): ProcStat[] {
  return procs.filter((p) => p.pgid === pgid);
}

/**
 * The process tree of an instance: members of its group plus descendants that left the group (setsid daemons),
 * so memory and CPU are not under-reported by apps that fork workers into new sessions.
 */
export function processTree(rootPid: number, pgid: number, procs: ProcStat[] = allProcesses()): ProcStat[] {
  let index = indexes.get(procs);
  if (!index) {
    index = { byParent: new Map(), byGroup: new Map(), byPid: new Map() };
    for (const p of procs) {
      push(index.byParent, p.ppid, p);
      push(index.byGroup, p.pgid, p);
      index.byPid.set(p.pid, p);
    }
    // Only a shared snapshot is worth keeping an index of.
    if (procs === snapshot) indexes.set(procs, index);
  }
  const { byParent } = index;
  const seen = new Map<number, ProcStat>();
  const root = index.byPid.get(rootPid);
  const queue = [...(index.byGroup.get(pgid) ?? []), ...(root && root.pgid !== pgid ? [root] : [])];
  while (queue.length > 0) {
    const p = queue.pop() as ProcStat;
    if (seen.has(p.pid)) continue;
    seen.set(p.pid, p);
    for (const c of byParent.get(p.pid) ?? []) queue.push(c);
  }
  return [...seen.values()];
}

let clockTicks: number | undefined;
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100; // USER_HZ is 100 on every mainstream Linux build
    }
  }
  return clockTicks;
}

let pageSize: number | undefined;
export function pageSizeBytes(): number {
  if (pageSize === undefined) {
    try {
      pageSize = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()) || 4096;
    } catch {
      pageSize = 4096;
    }
  }
  return pageSize;
}

function push(index: Map<number, ProcStat[]>, key: number, p: ProcStat): void {
  const list = index.get(key);
  if (list) list.push(p);
  else index.set(key, [p]);
}
