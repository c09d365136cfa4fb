import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type SqlBool } from 'kysely';
import pino from 'pino';
import { ROW_COUNT_COMPACTOR, rowCountCompactor } from '../../src/controllers/row-count-compactor.ts';
import { COUNTED_TABLES } from '../../migrations/0087_row_counts.ts';
import { listPage } from '../../src/store/list-query.ts';
import { everyRow } from '../../src/store/every-row.ts';
import { compactRowCounts, readsWholeTable, rowCountDrift } from '../../src/store/row-counts.ts';
import { newGuid, type Store } from '../../src/store/store.ts';
import { onPostgres, openTestStore, ORG_DEFAULTS } from './db.ts';

let store: Store;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ store, close } = await openTestStore());
});
afterAll(() => close());

const now = () => new Date().toISOString();
const org = (name: string) => ({ ...ORG_DEFAULTS, guid: newGuid(), name, created_at: now(), updated_at: now() });
/** The total a global reader's `GET /v3/organizations` reports (the whole-table path of listPage). */
const listedTotal = async () => (await listPage(store.db.selectFrom('organizations').selectAll(), { table: 'organizations', page: 1, perPage: 2 })).total;
const actual = async () => Number((await store.db.selectFrom('organizations').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

describe('kept row counts (migration 0087)', () => {
  it('gives every counted table a counter equal to its rows', async () => {
    const counters = await store.db.selectFrom('row_counts').select('table_name').execute();
    expect(counters.map((c) => c.table_name).sort()).toEqual([...COUNTED_TABLES].sort());
    expect(await rowCountDrift(store.db)).toEqual([]);
    expect(await listedTotal()).toBe(0);
  });

  it('stays exact through raw and vocabulary inserts, conflicts, updates, deletes and rollbacks', async () => {
    await store.db.insertInto('organizations').values([org('raw-1'), org('raw-2'), org('raw-3')]).execute();
    expect(await listedTotal()).toBe(3);

    // A conflicting insert that inserts nothing counts nothing.
    const existing = await store.db.selectFrom('organizations').select('guid').where('name', '=', 'raw-1').executeTakeFirstOrThrow();
    await store.db.insertInto('organizations').values({ ...org('raw-1-again'), guid: existing.guid }).onConflict((oc) => oc.column('guid').doNothing()).execute();
    expect(await listedTotal()).toBe(3);

    const [a, b] = await store.write(async (tx) => [await tx.insert('organizations', org('voc-a')), await tx.insert('organizations', org('voc-b'))]);
    await store.write((tx) => tx.update('organizations', a!, { name: 'voc-a-renamed' }));
    expect(await listedTotal()).toBe(5);

    await store.write((tx) => tx.delete('organizations', b!));
    await store.write((tx) => tx.deleteWhere('organizations', (eb) => eb('name', 'like', 'raw-%')));
    expect(await listedTotal()).toBe(1);

    await expect(
      store.write(async (tx) => {
        await tx.insert('organizations', org('rolled-back'));
        await tx.delete('organizations', a!);
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await listedTotal()).toBe(1);
    expect(await actual()).toBe(1);
    expect(await rowCountDrift(store.db)).toEqual([]);
  });

  it('is what a whole-table list reports, and only that list: a filtered one still counts its rows', async () => {
    await store.db.insertInto('organizations').values([org('kept-1'), org('kept-2')]).execute();
    const real = await actual();
    // Skew the counter so the test can tell which count a list used (restored below).
    await sql`update row_counts set n = n + 1000 where table_name = 'organizations'`.execute(store.db);
    try {
      expect(await listedTotal()).toBe(real + 1000);
      const filtered = await listPage(store.db.selectFrom('organizations').selectAll().where('name', 'like', 'kept-%'), { table: 'organizations', page: 1, perPage: 50 });
      expect(filtered.total).toBe(2);
      const byGuid = await listPage(store.db.selectFrom('organizations').selectAll(), { table: 'organizations', page: 1, perPage: 50, guids: [filtered.rows[0]!.guid] });
      expect(byGuid.total).toBe(1);
    } finally {
      await sql`update row_counts set n = n - 1000 where table_name = 'organizations'`.execute(store.db);
    }
    // A table without a counter is counted row by row.
    const saved = await store.db.selectFrom('row_counts').selectAll().where('table_name', '=', 'organizations').executeTakeFirstOrThrow();
    await store.db.deleteFrom('row_counts').where('table_name', '=', 'organizations').execute();
    try {
      expect(await listedTotal()).toBe(real);
    } finally {
      await store.db.insertInto('row_counts').values(saved).execute();
    }
    expect(await rowCountDrift(store.db)).toEqual([]);
  });

  it('tells whole-table queries from filtered, joined, distinct and aliased ones', () => {
    const db = store.db;
    const whole = (q: { toOperationNode(): unknown }, t = 'spaces') => readsWholeTable(q.toOperationNode() as never, t);
    expect(whole(db.selectFrom('spaces').selectAll('spaces'))).toBe(true);
    expect(whole(db.selectFrom('spaces').select('guid').orderBy('id'))).toBe(true);
    expect(whole(db.selectFrom('spaces').selectAll().where('name', '=', 'x'))).toBe(false);
    // A global reader's visibility condition (services/access.ts) filters nothing; any other raw condition does.
    expect(whole(db.selectFrom('spaces').selectAll().where(sql<SqlBool>`1 = 1`))).toBe(true);
    expect(whole(db.selectFrom('spaces').selectAll().where(everyRow()))).toBe(true);
    expect(whole(db.selectFrom('spaces').selectAll().where(sql<SqlBool>`1 = 1`).where('name', '=', 'x'))).toBe(false);
    expect(whole(db.selectFrom('spaces').selectAll().where(sql<SqlBool>`1 = 0`))).toBe(false);
    expect(whole(db.selectFrom('spaces').selectAll().where(sql<SqlBool>`1 = ${1}`))).toBe(false);
    expect(whole(db.selectFrom('spaces').innerJoin('organizations', 'organizations.guid', 'spaces.organization_guid').selectAll('spaces'))).toBe(false);
    expect(whole(db.selectFrom('spaces').select('name').distinct())).toBe(false);
    expect(whole(db.selectFrom('spaces as s').selectAll())).toBe(false);
    expect(whole(db.selectFrom('spaces').selectAll(), 'apps')).toBe(false);
    expect(whole(db.selectFrom(['spaces', 'apps']).selectAll('spaces'))).toBe(false);
  });

  it.runIf(onPostgres())('PostgreSQL: appends deltas that compaction folds into the counter, never twice when compactions race', async () => {
    const before = await actual();
    await store.db.insertInto('organizations').values([org('delta-1'), org('delta-2'), org('delta-3')]).execute();
    await store.db.deleteFrom('organizations').where('name', '=', 'delta-3').execute();
    const pending = await store.db.selectFrom('row_count_deltas').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(pending.n)).toBeGreaterThanOrEqual(4);
    expect(await listedTotal()).toBe(before + 2);

    // Compactions racing each other and inserts: every delta is folded exactly once.
    const inserts = Array.from({ length: 20 }, (_, i) => store.db.insertInto('organizations').values(org(`race-${i}`)).execute());
    const folded = await Promise.all([compactRowCounts(store.db), compactRowCounts(store.db), compactRowCounts(store.db), ...inserts.map((p) => p.then(() => 0))]);
    folded.push(await compactRowCounts(store.db));
    // `pending` counted every delta so far (earlier tests' included); the 20 inserts added one each.
    expect(folded.reduce((a, b) => a + b, 0)).toBe(Number(pending.n) + 20);
    const left = await store.db.selectFrom('row_count_deltas').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(left.n)).toBe(0);
    expect(await listedTotal()).toBe(before + 22);
    expect(await rowCountDrift(store.db)).toEqual([]);
  });

  it.runIf(onPostgres())('PostgreSQL: the compactor reconciler folds what is pending and looks again later', async () => {
    await store.db.insertInto('organizations').values(org('compactor-1')).execute();
    const compactor = rowCountCompactor({ store, log: pino({ level: 'silent' }), intervalMs: 1234 });
    expect(await compactor.listKeys()).toEqual([ROW_COUNT_COMPACTOR]);
    expect(await compactor.reconcile(ROW_COUNT_COMPACTOR)).toEqual({ requeueAfterMs: 1234 });
    const left = await store.db.selectFrom('row_count_deltas').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(left.n)).toBe(0);
    expect(await rowCountDrift(store.db)).toEqual([]);
  });

  it.runIf(!onPostgres())('SQLite: triggers keep the counter itself, no deltas', async () => {
    await store.db.insertInto('organizations').values(org('sqlite-1')).execute();
    const pending = await store.db.selectFrom('row_count_deltas').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(pending.n)).toBe(0);
    expect(await rowCountDrift(store.db)).toEqual([]);
  });
});
