import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../src/controllers/runtime/work-queue.ts';

describe('WorkQueue', () => {
  it('never runs one key twice at once and coalesces repeated adds', async () => {
    const running = new Set<string>();
    let overlaps = 0;
    const runs: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new WorkQueue(
      async (key) => {
        if (running.has(key)) overlaps++;
        running.add(key);
        runs.push(key);
        if (runs.length === 1) await gate;
        running.delete(key);
      },
      () => {},
      // One worker: while 'a' holds it, 'b' stays waiting, so a second add of 'b' must be a no-op.
      { concurrency: 1 },
    );
    q.add('a');
    await new Promise((r) => setImmediate(r));
    // 'a' is now running: further adds mark it dirty once instead of running in parallel.
    q.add('a');
    q.add('a');
    q.add('b');
    q.add('b');
    release();
    await q.idle();
    await q.idle();
    expect(overlaps).toBe(0);
    expect(runs.filter((k) => k === 'a')).toHaveLength(2);
    expect(runs.filter((k) => k === 'b')).toHaveLength(1);
    q.stop();
  });

  it('retries failures with backoff until the reconcile succeeds', async () => {
    let attempts = 0;
    const errors: unknown[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const q = new WorkQueue(
      async () => {
        attempts++;
        if (attempts < 3) throw new Error(`boom ${attempts}`);
        done();
      },
      (_key, err) => errors.push(err),
      { concurrency: 1, baseBackoffMs: 1 },
    );
    q.add('k');
    await finished;
    expect(attempts).toBe(3);
    expect(errors).toHaveLength(2);
    q.stop();
  });

  it('requeues after the delay a reconcile asks for', async () => {
    let runs = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const q = new WorkQueue(
      async () => {
        runs++;
        if (runs === 2) done();
        return runs === 1 ? { requeueAfterMs: 1 } : undefined;
      },
      () => {},
      { concurrency: 1 },
    );
    q.add('k');
    await finished;
    expect(runs).toBe(2);
    q.stop();
  });

  it('keeps the earliest timer when a key is scheduled twice', async () => {
    const runs: number[] = [];
    const started = Date.now();
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const q = new WorkQueue(
      async () => {
        runs.push(Date.now() - started);
        done();
      },
      () => {},
      { concurrency: 1 },
    );
    q.addAfter('k', 20);
    // A later request must not push the sooner one back, and a sooner one must replace the later.
    q.addAfter('k', 60_000);
    await finished;
    expect(runs).toHaveLength(1);
    expect(runs[0]!).toBeLessThan(1000);
    q.addAfter('j', 60_000);
    q.addAfter('j', 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toHaveLength(2);
    q.stop();
  });
});
