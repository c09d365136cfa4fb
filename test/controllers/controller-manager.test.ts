import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { ControllerManager, NotReady, TerminalError, type Reconciler } from '../../src/controllers/runtime/controller.ts';
import { FakeRuntime } from '../helpers/fake-runtime.ts';
import { migrateToLatest, openDatabase } from '../../src/store/db.ts';
import { Store, newGuid } from '../../src/store/store.ts';

const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function newStore() {
  const handle = openDatabase({ kind: 'sqlite', file: ':memory:' });
  await migrateToLatest(handle);
  const store = new Store(handle);
  stores.push(store);
  return store;
}

const addOrg = (store: Store, name: string) =>
  store.write((tx) => tx.insert('organizations', { name, suspended: 0, status: 'active', quota_guid: null, default_isolation_segment_guid: null }));

describe('ControllerManager', () => {
  it('resyncs every key on start, then follows the change feed', async () => {
    const store = await newStore();
    const before = await addOrg(store, 'before-start');
    const seen: string[] = [];
    const reconciler: Reconciler = {
      name: 'test',
      watches: ['organizations'],
      async listKeys() {
        const rows = await store.db.selectFrom('organizations').select('guid').execute();
        return rows.map((r) => r.guid);
      },
      async reconcile(key) {
        seen.push(key);
      },
    };
    const manager = new ControllerManager(store, pino({ level: 'silent' }), { pollIntervalMs: 60_000 });
    manager.register(reconciler);
    await manager.start();
    await manager.settle();
    expect(seen).toEqual([before]);

    const after = await addOrg(store, 'after-start');
    await manager.settle();
    expect(seen).toEqual([before, after]);
    await manager.stop();
  });

  it('does not enqueue changes of kinds it does not watch', async () => {
    const store = await newStore();
    const seen: string[] = [];
    const manager = new ControllerManager(store, pino({ level: 'silent' }), { pollIntervalMs: 60_000 });
    manager.register({ name: 'spaces-only', watches: ['spaces'], listKeys: async () => [], reconcile: async (k) => void seen.push(k) });
    await manager.start();
    await addOrg(store, 'ignored');
    await manager.settle();
    expect(seen).toEqual([]);
    await manager.stop();
  });

  it('hands a reconciler only the keys its watch mappers return', async () => {
    const store = await newStore();
    const seen: string[] = [];
    const manager = new ControllerManager(store, pino({ level: 'silent' }), { pollIntervalMs: 60_000 });
    manager.register({
      name: 'mapped',
      watches: { organizations: async (c) => [`widget-of-${c.guid}`, 'shared'] },
      listKeys: async () => [],
      reconcile: async (k) => void seen.push(k),
    });
    await manager.start();
    const org = await addOrg(store, 'mapped');
    await manager.settle();
    expect(seen.sort()).toEqual(['shared', `widget-of-${org}`].sort());
    await manager.stop();
  });

  it('maps runtime events to keys the way it maps changes', async () => {
    const store = await newStore();
    const runtime = new FakeRuntime();
    const seen: string[] = [];
    const manager = new ControllerManager(store, pino({ level: 'silent' }), { pollIntervalMs: 60_000, runtime });
    manager.register({ name: 'tasks', watches: [], runtimeEvents: { task: (e) => [e.id] }, listKeys: async () => [], reconcile: async (k) => void seen.push(k) });
    await manager.start();
    await runtime.runTask({ id: 't1', appGuid: 'a', dropletDir: '/x', command: 'x', env: {}, memoryMb: 1, diskMb: 1 });
    await manager.settle();
    expect(seen).toEqual(['t1']);
    await manager.stop();
  });

  it('does not retry a TerminalError, even on resync, until a change maps to the key again', async () => {
    const store = await newStore();
    const org = await addOrg(store, 'terminal');
    let runs = 0;
    const manager = new ControllerManager(store, pino({ level: 'silent' }), { pollIntervalMs: 60_000, baseBackoffMs: 1, maxBackoffMs: 5 });
    manager.register({
      name: 'terminal',
      watches: ['organizations'],
      listKeys: async () => [org],
      async reconcile() {
        runs++;
        throw new TerminalError('InvalidSpec', 'this can never work');
      },
    });
    await manager.start();
    await manager.settle();
    await new Promise((r) => setTimeout(r, 50));
    await manager.resync();
    await manager.settle();
    expect(runs).toBe(1);
    await store.write(async (tx) => void tx.changed('organizations', org, 'update'));
    await manager.settle();
    expect(runs).toBe(2);
    const metrics = await manager.metrics.registry.metrics();
    expect(metrics).toContain('kiln_reconcile_total{controller="terminal",result="terminal_error"} 2');
    await manager.stop();
  });

  it('retries NotReady with backoff and counts each outcome per controller and result', async () => {
    const store = await newStore();
    let runs = 0;
    const manager = new ControllerManager(store, pino({ level: 'silent' }), { pollIntervalMs: 60_000, baseBackoffMs: 1, maxBackoffMs: 5 });
    manager.register({
      name: 'waits',
      watches: [],
      listKeys: async () => ['k'],
      async reconcile() {
        runs++;
        if (runs < 3) throw new NotReady('DependencyMissing', 'not yet');
        return runs === 3 ? { requeueAfterMs: 1 } : undefined;
      },
    });
    await manager.start();
    const deadline = Date.now() + 5000;
    while (runs < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const metrics = await manager.metrics.registry.metrics();
    expect(metrics).toContain('kiln_reconcile_total{controller="waits",result="not_ready"} 2');
    expect(metrics).toContain('kiln_reconcile_total{controller="waits",result="requeue"} 1');
    expect(metrics).toContain('kiln_reconcile_total{controller="waits",result="success"} 1');
    expect(metrics).toContain('kiln_reconcile_duration_seconds_count{controller="waits"} 4');
    expect(metrics).toMatch(/kiln_workqueue_depth\{controller="waits"\} \d/);
    await manager.stop();
  });

  it('logs every line of a reconcile with the same reconcile id', async () => {
    const store = await newStore();
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        cb();
      },
    });
    const manager = new ControllerManager(store, pino({ level: 'info' }, sink), { pollIntervalMs: 60_000 });
    manager.register({
      name: 'chatty',
      watches: [],
      listKeys: async () => ['a', 'b'],
      async reconcile(key, ctx) {
        ctx!.log.info('first');
        await new Promise((r) => setTimeout(r, 1));
        ctx!.log.info({ key }, 'second');
      },
    });
    await manager.start();
    await manager.settle();
    await manager.stop();
    const byKey = (k: string) => lines.filter((l) => l.key === k && l.controller === 'chatty');
    for (const k of ['a', 'b']) {
      const own = byKey(k);
      expect(own.map((l) => l.msg)).toEqual(['first', 'second']);
      expect(typeof own[0]!.reconcileId).toBe('string');
      expect(own[1]!.reconcileId).toBe(own[0]!.reconcileId);
    }
    expect(byKey('a')[0]!.reconcileId).not.toBe(byKey('b')[0]!.reconcileId);
  });
});
