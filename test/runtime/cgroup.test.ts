import { existsSync, mkdirSync, mkdtempSync, rmdirSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectMemoryCgroups } from '../../src/runtime/local/cgroup.ts';

const dataDir = () => mkdtempSync(join(tmpdir(), 'kiln-cgroup-'));
const probe = detectMemoryCgroups(dataDir());
probe?.release();
const available = probe !== undefined;

describe.skipIf(!available)('memory cgroups of several Kilns on one host', () => {
  it("a starting Kiln sweeps only its own data dir's empty groups, not another Kiln's group waiting for its instance", () => {
    const first = detectMemoryCgroups(dataDir())!;
    const waiting = first.create('app-1.v1.0.1', 64 * 1024 * 1024)!;
    const dir = dirname(waiting.procsFile);
    expect(existsSync(dir)).toBe(true);

    // Another Kiln starts: its sweep must leave the (still empty) group alone.
    const other = detectMemoryCgroups(dataDir())!;
    expect(existsSync(dir)).toBe(true);
    other.release();
    // Nor does its clean shutdown release the first Kiln's parent group while a group is in it.
    first.release();
    expect(existsSync(dir)).toBe(true);
    waiting.remove();
    first.release();
    expect(existsSync(dirname(dir))).toBe(false);
  });

  it('a Kiln restarted on the same data dir sweeps the empty groups its killed run left', () => {
    const shared = dataDir();
    const left = detectMemoryCgroups(shared)!.create('app-2.v1.0.1', 64 * 1024 * 1024)!;
    const dir = dirname(left.procsFile);
    const restarted = detectMemoryCgroups(shared)!;
    expect(existsSync(dir)).toBe(false);
    restarted.release();
  });

  it('an instance a Kiln of before the per-data-dir parents started is still found when adopted', () => {
    const cgroups = detectMemoryCgroups(dataDir())!;
    const scoped = dirname(cgroups.create('probe.1', 64 * 1024 * 1024)!.procsFile);
    const legacy = join(dirname(dirname(scoped)), `legacy-${process.pid}.1`);
    mkdirSync(legacy);
    try {
      expect(cgroups.open(`legacy-${process.pid}.1`)?.procsFile).toBe(join(legacy, 'cgroup.procs'));
      expect(cgroups.open('probe.1')?.procsFile).toBe(join(scoped, 'cgroup.procs'));
      expect(cgroups.open('nothing.1')).toBeUndefined();
    } finally {
      rmdirSync(legacy);
      rmdirSync(scoped);
      cgroups.release();
    }
  });

  it("another data dir's groups are swept once empty for ten minutes, and a swept parent is made again when needed", () => {
    const gone = detectMemoryCgroups(dataDir())!;
    const leftover = dirname(gone.create('app-3.v1.0.1', 64 * 1024 * 1024)!.procsFile);
    const fresh = dirname(gone.create('app-3.v1.1.1', 64 * 1024 * 1024)!.procsFile);
    const parent = dirname(leftover);
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(leftover, hourAgo, hourAgo);
    utimesSync(parent, hourAgo, hourAgo);

    const other = detectMemoryCgroups(dataDir())!;
    // The old empty group is a leftover; the fresh one may be waiting for its leader, so it and its parent stay.
    expect(existsSync(leftover)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(parent)).toBe(true);

    rmdirSync(fresh);
    // (Once its times were set, the kernel stamps a group's mtime when a child group comes or goes.)
    utimesSync(parent, hourAgo, hourAgo);
    detectMemoryCgroups(dataDir())!.release();
    // Empty and old: the parent itself goes. Its Kiln, should it still run, makes it again for its next group.
    expect(existsSync(parent)).toBe(false);
    const again = gone.create('app-3.v1.0.2', 64 * 1024 * 1024);
    expect(again && dirname(again.procsFile)).toBe(join(parent, 'app-3.v1.0.2'));
    again!.remove();
    gone.release();
    other.release();
  });
});
