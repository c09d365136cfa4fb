import { existsSync, mkdirSync, mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectMemoryCgroups } from '../../src/runtime/local/cgroup.ts';

const dataDir = () => mkdtempSync(join(tmpdir(), 'kiln-cgroup-'));
const available = detectMemoryCgroups(dataDir()) !== undefined;

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
});
