import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { clockTicksPerSecond, pageSizeBytes, processTree, readProcStat, recentProcesses } from './proc.ts';

export interface TreeUsage {
  /** Summed user+system CPU seconds of the live tree. */
  cpuSeconds: number;
  memBytes: number;
}

export function treeUsage(pid: number): TreeUsage {
  const tree = processTree(pid, pid, recentProcesses());
  let ticks = 0;
  let pages = 0;
  for (const p of tree) {
    ticks += p.cpuTicks;
    pages += p.rssPages;
  }
  return { cpuSeconds: ticks / clockTicksPerSecond(), memBytes: pages * pageSizeBytes() };
}

/** Summed user+system CPU seconds of the given processes (those that are gone count nothing). */
export function cpuSecondsOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readProcStat(pid)?.cpuTicks ?? 0;
  return ticks / clockTicksPerSecond();
}

/**
 * CPU as a fraction of one core between two samples. Children that exited in between drop out of the sum, so the
 * delta can be negative; that reads as idle rather than as a negative load.
 */
export class CpuMeter {
  private last: { pid: number; cpuSeconds: number; at: number } | undefined;

  sample(pid: number, startedAt: number, cpuSeconds: number, now = Date.now()): number {
    const prev = this.last?.pid === pid ? this.last : undefined;
    this.last = { pid, cpuSeconds, at: now };
    // First sample of an incarnation: average since it started.
    const base = prev ?? { cpuSeconds: 0, at: startedAt };
    const wall = (now - base.at) / 1000;
    if (wall <= 0) return 0;
    return Math.max(0, (cpuSeconds - base.cpuSeconds) / wall);
  }
}

/** Apparent size of the files under `dirs`, without following symlinks; stops counting after `maxEntries`. */
export async function diskBytes(dirs: string[], maxEntries = 50_000): Promise<number> {
  let total = 0;
  let budget = maxEntries;
  const stack = [...dirs];
  while (stack.length > 0 && budget > 0) {
    const dir = stack.pop() as string;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (--budget <= 0) break;
      const path = join(dir, e.name);
      if (e.isDirectory()) stack.push(path);
      else if (e.isFile()) {
        try {
          total += (await lstat(path)).size;
        } catch {
          // Deleted while walking.
        }
      }
    }
  }
  return total;
}

/** Caches diskBytes per instance: walking an app with node_modules on every stats poll would be wasteful. */
export class DiskMeter {
  private cached: { at: number; bytes: number } | undefined;
  private inflight: Promise<number> | undefined;

  constructor(
    private readonly dirs: string[],
    private readonly maxAgeMs: number,
  ) {}

  async read(now = Date.now()): Promise<number> {
    if (this.cached && now - this.cached.at < this.maxAgeMs) return this.cached.bytes;
    this.inflight ??= diskBytes(this.dirs).then((bytes) => {
      this.cached = { at: Date.now(), bytes };
      this.inflight = undefined;
      return bytes;
    });
    return this.inflight;
  }
}
