import pino from 'pino';
import { expect } from 'vitest';
import { ControllerManager, type Reconciler } from '../../src/controllers/runtime/controller.ts';
import { conditionsOf, type ConditionKind, type StoredCondition } from '../../src/store/conditions.ts';
import { createTestKiln, type TestKiln } from './harness.ts';
import { FakeRuntime } from './fake-runtime.ts';

/** Every reconciler buildKiln registers: the Kiln under test runs none of them, the test's manager runs one. */
const ALL_CONTROLLERS = ['routing', 'jobs', 'builds', 'blob-collector', 'buildpack-cache-collector', 'processes', 'deployments', 'tasks', 'droplet-cache', 'broker-operations'];

export interface ReconcilerTest {
  t: TestKiln;
  runtime: FakeRuntime;
  manager: ControllerManager;
  /** Follows the change feed and runs queued keys until a pass writes nothing new. */
  settle(): Promise<void>;
  /** The conditions of a resource, keyed by type. */
  conditions(kind: ConditionKind, guid: string): Promise<Record<string, StoredCondition>>;
  /** `kiln_reconcile_total{controller,result}` as /metrics shows it (0 when never counted). */
  reconciles(controller: string, result: string): Promise<number>;
  close(): Promise<void>;
}

/**
 * A Kiln whose own controllers are all disabled, and a manager of its own that runs only the reconcilers under
 * test against a FakeRuntime, with short backoffs and no timers of its own (the test drives it with `settle`).
 */
type Made = Reconciler | Reconciler[];

export async function reconcilerTest(make: (t: TestKiln, runtime: FakeRuntime) => Made | Promise<Made>): Promise<ReconcilerTest> {
  const t = await createTestKiln({}, { disabledControllers: ALL_CONTROLLERS });
  const runtime = new FakeRuntime();
  const manager = new ControllerManager(t.kiln.store, pino({ level: 'silent' }), {
    runtime,
    pollIntervalMs: 600_000,
    resyncIntervalMs: 600_000,
    baseBackoffMs: 5,
    maxBackoffMs: 40,
  });
  const made = await make(t, runtime);
  for (const r of Array.isArray(made) ? made : [made]) manager.register(r);
  await manager.start();
  const store = t.kiln.store;
  return {
    t,
    runtime,
    manager,
    async settle() {
      for (let pass = 0; pass < 50; pass++) {
        const before = await store.latestRevision();
        await manager.settle();
        if ((await store.latestRevision()) === before) return;
      }
      throw new Error('the controllers did not settle within 50 passes');
    },
    async conditions(kind, guid) {
      return Object.fromEntries((await conditionsOf(store.db, kind, guid)).map((c) => [c.type, c]));
    },
    async reconciles(controller, result) {
      const text = await manager.metrics.registry.metrics();
      const line = text.split('\n').find((l) => l.startsWith(`kiln_reconcile_total{controller="${controller}",result="${result}"}`));
      return line ? Number(line.split(' ').pop()) : 0;
    },
    async close() {
      await manager.stop();
      await t.close();
    },
  };
}

/** Polls `probe` until it returns a value other than undefined, or fails at the deadline. */
export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) expect.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
