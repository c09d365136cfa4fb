import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLabelSelector } from '../../src/domain/label-selector.ts';
import { splitKey } from '../../src/domain/metadata.ts';
import { listPage, type ListQueryOptions } from '../../src/store/list-query.ts';
import type { Store } from '../../src/store/store.ts';
import { openTestStore, ORG_DEFAULTS, SPACE_DEFAULTS } from './db.ts';

/**
 * One fixed data set (read-only in every test) so expectations can name rows exactly.
 * Spaces sN are inserted in order N; their guids are deliberately NOT in insertion order so that
 * "default order = insertion (id)" and "tie-break by guid" are distinguishable.
 */
interface Fixture {
  name: string;
  org: 'A' | 'B';
  guid: string;
  created_at: string;
  updated_at: string;
  labels?: Record<string, string>;
}

const g = (n: string) => `00000000-0000-4000-8000-${n.padStart(12, '0')}`;
const SPACES: Fixture[] = [
  { name: 'dev', org: 'A', guid: g('5'), created_at: '2024-01-01T00:00:00.000Z', updated_at: '2024-03-01T00:00:00.000Z', labels: { env: 'dev', tier: 'web' } },
  { name: 'prod', org: 'A', guid: g('3'), created_at: '2024-01-01T00:00:00.500Z', updated_at: '2024-03-01T00:00:00.000Z', labels: { env: 'prod', 'example.com/team': 'core' } },
  { name: 'stage', org: 'A', guid: g('9'), created_at: '2024-01-01T00:00:00.999Z', updated_at: '2024-03-02T00:00:00.000Z', labels: { env: 'stage' } },
  { name: 'dev', org: 'B', guid: g('1'), created_at: '2024-01-01T00:00:01.000Z', updated_at: '2024-03-02T00:00:00.000Z', labels: { env: 'dev', 'example.com/team': 'edge' } },
  { name: 'prod', org: 'B', guid: g('7'), created_at: '2024-01-02T12:00:00.000Z', updated_at: '2024-03-03T00:00:00.000Z', labels: { env: 'prod', tier: 'worker' } },
  { name: 'qa', org: 'B', guid: g('2'), created_at: '2024-01-02T12:00:00.000Z', updated_at: '2024-03-03T00:00:00.000Z' },
  { name: 'Alpha', org: 'B', guid: g('8'), created_at: '2024-01-03T00:00:00.000Z', updated_at: '2024-03-04T00:00:00.000Z', labels: { tier: 'web' } },
];
const ORG_A = g('a0');
const ORG_B = g('b0');

let store: Store;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ store, close } = await openTestStore());
  // Fixtures with chosen timestamps, written straight to the tables (no change feed needed here).
  const now = new Date().toISOString();
  await store.db.transaction().execute(async (db) => {
    for (const [guid, name] of [
      [ORG_A, 'org-a'],
      [ORG_B, 'org-b'],
    ] as const) {
      await db.insertInto('organizations').values({ ...ORG_DEFAULTS, guid, name, created_at: now, updated_at: now }).execute();
      // A label on an org with the same key/value must never leak into a spaces selector.
      await db
        .insertInto('labels')
        .values({ resource_type: 'organizations', resource_guid: guid, key_prefix: '', key_name: 'env', value: 'prod' })
        .execute();
    }
    for (const s of SPACES) {
      await db
        .insertInto('spaces')
        .values({
          ...SPACE_DEFAULTS,
          guid: s.guid,
          name: s.name,
          organization_guid: s.org === 'A' ? ORG_A : ORG_B,
          created_at: s.created_at,
          updated_at: s.updated_at,
        })
        .execute();
      for (const [key, value] of Object.entries(s.labels ?? {})) {
        const { prefix, name } = splitKey(key);
        await db
          .insertInto('labels')
          .values({ resource_type: 'spaces', resource_guid: s.guid, key_prefix: prefix, key_name: name, value })
          .execute();
      }
    }
    // A label of another resource type on the guid of a space ("qa"), which has no labels of its own.
    await db
      .insertInto('labels')
      .values({ resource_type: 'apps', resource_guid: g('2'), key_prefix: '', key_name: 'env', value: 'prod' })
      .execute();
  });
});
afterAll(async () => {
  await close();
});

type Opts = Partial<ListQueryOptions>;
async function list(opts: Opts = {}) {
  const page = await listPage(store.db.selectFrom('spaces').selectAll('spaces'), {
    table: 'spaces',
    page: 1,
    perPage: 50,
    ...opts,
  });
  return { total: page.total, guids: page.rows.map((r) => r.guid), rows: page.rows };
}
const guidsOf = (pred: (s: Fixture) => boolean) => SPACES.filter(pred).map((s) => s.guid);
const byName = (...names: Array<`${Fixture['org']}:${string}`>) =>
  names.map((n) => SPACES.find((s) => `${s.org}:${s.name}` === n)!.guid);

describe('pagination', () => {
  it('defaults to insertion order and counts every match', async () => {
    const { total, guids, rows } = await list();
    expect(total).toBe(SPACES.length);
    expect(guids).toEqual(SPACES.map((s) => s.guid));
    expect(rows[0]).toMatchObject({ name: 'dev', organization_guid: ORG_A });
  });

  it('returns the requested page while total ignores paging', async () => {
    const p1 = await list({ perPage: 3, page: 1 });
    const p2 = await list({ perPage: 3, page: 2 });
    const p3 = await list({ perPage: 3, page: 3 });
    expect([p1.total, p2.total, p3.total]).toEqual([7, 7, 7]);
    expect(p1.guids).toEqual(SPACES.slice(0, 3).map((s) => s.guid));
    expect(p2.guids).toEqual(SPACES.slice(3, 6).map((s) => s.guid));
    expect(p3.guids).toEqual(SPACES.slice(6).map((s) => s.guid));
  });

  it('returns no rows (but the total) for a page beyond the last', async () => {
    expect(await list({ perPage: 5, page: 3 })).toMatchObject({ total: 7, guids: [] });
  });

  it('pages consistently through a sorted list without repeats or gaps', async () => {
    const seen: string[] = [];
    for (let page = 1; page <= 4; page++) {
      seen.push(...(await list({ perPage: 2, page, orderBy: { column: 'created_at', desc: true } })).guids);
    }
    expect(seen).toEqual((await list({ orderBy: { column: 'created_at', desc: true } })).guids);
    expect(new Set(seen).size).toBe(SPACES.length);
  });
});

describe('order_by', () => {
  it('sorts ascending by name, breaking ties by guid ascending', async () => {
    const { guids } = await list({ orderBy: { column: 'name', desc: false } });
    // 'Alpha' sorts first under both SQLite's binary and PostgreSQL's locale collations.
    expect(guids).toEqual([g('8'), g('1'), g('5'), g('3'), g('7'), g('2'), g('9')]);
  });

  it('sorts descending by name, breaking ties by guid descending', async () => {
    const { guids } = await list({ orderBy: { column: 'name', desc: true } });
    expect(guids).toEqual([g('9'), g('2'), g('7'), g('3'), g('5'), g('1'), g('8')]);
  });

  it('sorts by created_at with guid tie-break in both directions', async () => {
    const asc = (await list({ orderBy: { column: 'created_at', desc: false } })).guids;
    // B:prod (g7) and B:qa (g2) share a created_at.
    expect(asc).toEqual(byName('A:dev', 'A:prod', 'A:stage', 'B:dev', 'B:qa', 'B:prod', 'B:Alpha'));
    const desc = (await list({ orderBy: { column: 'created_at', desc: true } })).guids;
    expect(desc).toEqual([...asc].reverse());
  });

  it('sorts by updated_at with guid tie-break', async () => {
    const asc = (await list({ orderBy: { column: 'updated_at', desc: false } })).guids;
    expect(asc).toEqual([g('3'), g('5'), g('1'), g('9'), g('2'), g('7'), g('8')]);
  });

  it('applies the order before paging', async () => {
    const p2 = await list({ perPage: 2, page: 2, orderBy: { column: 'created_at', desc: true } });
    expect(p2.guids).toEqual(byName('B:qa', 'B:dev'));
  });
});

describe('guids filter', () => {
  it('keeps only the named guids and counts them', async () => {
    expect(await list({ guids: [g('7'), g('1'), g('404')] })).toMatchObject({ total: 2, guids: [g('1'), g('7')] });
  });

  it('matches nothing for an empty list', async () => {
    expect(await list({ guids: [] })).toMatchObject({ total: 0, guids: [] });
  });
});

describe('label_selector', () => {
  const select = async (selector: string, opts: Opts = {}) =>
    list({ labelSelector: parseLabelSelector(selector), resourceType: 'spaces', ...opts });
  const labelled = (key: string) => (s: Fixture) => s.labels?.[key] !== undefined;

  it('equality (= and ==)', async () => {
    const prod = guidsOf((s) => s.labels?.env === 'prod');
    expect(await select('env=prod')).toMatchObject({ total: 2, guids: prod });
    expect((await select('env==prod')).guids).toEqual(prod);
  });

  it('inequality matches resources lacking the key too', async () => {
    expect((await select('env!=prod')).guids).toEqual(guidsOf((s) => s.labels?.env !== 'prod'));
  });

  it('set inclusion and exclusion', async () => {
    expect((await select('env in (dev,stage)')).guids).toEqual(guidsOf((s) => ['dev', 'stage'].includes(s.labels?.env ?? '')));
    expect((await select('env notin (dev,stage)')).guids).toEqual(
      guidsOf((s) => !['dev', 'stage'].includes(s.labels?.env ?? '-')),
    );
  });

  it('exists and not exists', async () => {
    expect((await select('tier')).guids).toEqual(guidsOf(labelled('tier')));
    expect((await select('!tier')).guids).toEqual(guidsOf((s) => !labelled('tier')(s)));
  });

  it('prefixed keys match only with their prefix', async () => {
    expect((await select('example.com/team')).guids).toEqual(guidsOf(labelled('example.com/team')));
    expect((await select('example.com/team=edge')).guids).toEqual([g('1')]);
    expect((await select('team')).guids).toEqual([]);
    expect((await select('other.io/team')).guids).toEqual([]);
  });

  it('ANDs several requirements', async () => {
    expect((await select('env=prod,tier=worker')).guids).toEqual([g('7')]);
    expect((await select('env in (dev,prod),!example.com/team,tier')).guids).toEqual([g('5'), g('7')]);
    expect((await select('env=dev,env=prod')).guids).toEqual([]);
  });

  it('ignores labels of other resource types', async () => {
    // "qa" (g2) has an `apps` label env=prod on its guid and the orgs carry env=prod; neither counts.
    expect((await select('env=prod')).guids).not.toContain(g('2'));
    expect((await select('!env')).guids).toEqual([g('2'), g('8')]);
  });

  it('defaults the label resource type to the table name', async () => {
    const page = await listPage(store.db.selectFrom('spaces').selectAll('spaces'), {
      table: 'spaces',
      page: 1,
      perPage: 50,
      labelSelector: parseLabelSelector('env=prod'),
    });
    expect(page.rows.map((r) => r.guid)).toEqual(guidsOf((s) => s.labels?.env === 'prod'));
  });

  it('counts and pages the selected rows, and combines with ordering and other filters', async () => {
    const p = await select('env', { perPage: 2, page: 2, orderBy: { column: 'name', desc: false } });
    expect(p.total).toBe(5);
    expect(p.guids).toEqual([g('3'), g('7')]); // dev(g1), dev(g5) | prod(g3), prod(g7) | stage
    expect((await select('env', { guids: [g('9'), g('2')] })).guids).toEqual([g('9')]);
    // Insertion order, the last partial page, and a page past the end (rows are read by id after paging ids).
    const all = guidsOf(labelled('env'));
    expect((await select('env', { perPage: 2, page: 3 })).guids).toEqual(all.slice(4));
    expect(await select('env', { perPage: 2, page: 4 })).toMatchObject({ total: 5, guids: [] });
    const desc = await select('env', { perPage: 3, orderBy: { column: 'name', desc: true } });
    expect(desc.guids.slice(1)).toEqual([g('7'), g('3')]);
  });

  it('works when the list query joins other tables (columns qualified by table)', async () => {
    const page = await listPage(
      store.db
        .selectFrom('spaces')
        .innerJoin('organizations', 'organizations.guid', 'spaces.organization_guid')
        .select(['spaces.guid', 'organizations.name as org_name'])
        .where('organizations.name', '=', 'org-b'),
      {
        table: 'spaces',
        page: 1,
        perPage: 50,
        labelSelector: parseLabelSelector('env'),
        orderBy: { column: 'created_at', desc: false },
        timestamps: [{ field: 'created_at', op: 'gte', values: ['2024-01-01T00:00:00Z'] }],
      },
    );
    expect(page.total).toBe(2);
    expect(page.rows).toEqual([
      { guid: g('1'), org_name: 'org-b' },
      { guid: g('7'), org_name: 'org-b' },
    ]);
  });
});

describe('timestamp filters', () => {
  type Op = 'eq' | 'lt' | 'lte' | 'gt' | 'gte';
  const at = async (op: Op, values: string[], field: 'created_at' | 'updated_at' = 'created_at') =>
    (await list({ timestamps: [{ field, op, values }] })).guids;
  const created = (pred: (t: string) => boolean) => guidsOf((s) => pred(s.created_at));

  it('equality matches anywhere inside the given second(s)', async () => {
    expect(await at('eq', ['2024-01-01T00:00:00Z'])).toEqual(byName('A:dev', 'A:prod', 'A:stage'));
    expect(await at('eq', ['2024-01-01T00:00:01Z', '2024-01-03T00:00:00Z'])).toEqual(byName('B:dev', 'B:Alpha'));
    expect(await at('eq', ['2030-01-01T00:00:00Z'])).toEqual([]);
  });

  it('lt excludes the named second, lte includes all of it', async () => {
    expect(await at('lt', ['2024-01-01T00:00:01Z'])).toEqual(byName('A:dev', 'A:prod', 'A:stage'));
    expect(await at('lt', ['2024-01-01T00:00:00Z'])).toEqual([]);
    expect(await at('lte', ['2024-01-01T00:00:00Z'])).toEqual(byName('A:dev', 'A:prod', 'A:stage'));
    expect(await at('lte', ['2024-01-01T00:00:01Z'])).toEqual(created((t) => t < '2024-01-01T00:00:02'));
  });

  it('gt excludes the whole named second, gte includes it', async () => {
    expect(await at('gt', ['2024-01-01T00:00:00Z'])).toEqual(created((t) => t >= '2024-01-01T00:00:01'));
    expect(await at('gte', ['2024-01-01T00:00:00Z'])).toEqual(SPACES.map((s) => s.guid));
    expect(await at('gte', ['2024-01-02T12:00:00Z'])).toEqual(byName('B:prod', 'B:qa', 'B:Alpha'));
    expect(await at('gt', ['2024-01-03T00:00:00Z'])).toEqual([]);
  });

  it('filters updated_at the same way', async () => {
    expect(await at('eq', ['2024-03-03T00:00:00Z'], 'updated_at')).toEqual(byName('B:prod', 'B:qa'));
    expect(await at('lt', ['2024-03-02T00:00:00Z'], 'updated_at')).toEqual(byName('A:dev', 'A:prod'));
  });

  it('ANDs several operators into a range and counts the matches', async () => {
    const r = await list({
      perPage: 1,
      timestamps: [
        { field: 'created_at', op: 'gt', values: ['2024-01-01T00:00:00Z'] },
        { field: 'created_at', op: 'lt', values: ['2024-01-03T00:00:00Z'] },
      ],
    });
    expect(r.total).toBe(3);
    expect(r.guids).toEqual(byName('B:dev'));
  });
});

describe('paging by ids (byIds)', () => {
  // Every combination of order, page size and filter must page exactly as counting and limiting does.
  const orders: Array<ListQueryOptions['orderBy']> = [
    undefined,
    { column: 'name', desc: false },
    { column: 'name', desc: true },
    { column: 'created_at', desc: true },
  ];
  const filters: Opts[] = [{}, { labelSelector: parseLabelSelector('env') }, { guids: byName('A:dev', 'B:qa', 'B:Alpha') }];

  it('gives the same total and pages as counting and limiting', async () => {
    for (const orderBy of orders) {
      for (const filter of filters) {
        for (const perPage of [1, 2, 3, 50]) {
          for (let page = 1; page <= Math.ceil(SPACES.length / perPage) + 1; page++) {
            const opts = { ...filter, orderBy, perPage, page };
            const expected = await list(opts);
            expect(await list({ ...opts, byIds: true }), JSON.stringify(opts)).toEqual(expected);
            // Rows read from the table by id, as processes and apps do, come out the same.
            const rowsByIds = (ids: number[]) => store.db.selectFrom('spaces').selectAll('spaces').where('spaces.id', 'in', ids);
            expect(await list({ ...opts, byIds: true, rowsByIds }), JSON.stringify(opts)).toEqual(expected);
          }
        }
      }
    }
  });

  it('counts the matches on a page past the end', async () => {
    expect(await list({ byIds: true, perPage: 5, page: 3 })).toEqual({ total: SPACES.length, guids: [], rows: [] });
  });
});
