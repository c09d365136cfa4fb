import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ControllerManager, type Reconciler } from '../../src/controllers/runtime/controller.ts';
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
  store.write(async (tx) => {
    const guid = newGuid();
    await tx.db
      .insertInto('organizations')
      .values({ guid, name, created_at: tx.now, updated_at: tx.now, generation: 1, suspended: 0, status: 'active', quota_guid: null, default_isolation_segment_guid: null })
      .execute();
    tx.changed('organizations', guid, 'create');
    return guid;
  });

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
});
