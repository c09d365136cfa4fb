import { Migrator, type Kysely, type Migration } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AnyDb } from '../../migrations/helpers.ts';
import { migrations } from '../../migrations/index.ts';
import { migrateToLatest, type DbHandle } from '../../src/store/db.ts';
import { isUniqueViolation } from '../../src/store/errors.ts';
import { sql } from 'kysely';
import { onPostgres, openTestDb, type TestDb } from './db.ts';

let db: TestDb;
let handle: DbHandle;

beforeEach(async () => {
  db = await openTestDb();
  handle = db.handle;
});
afterEach(async () => {
  await db.close();
});

const names = Object.keys(migrations);

/** A migrator over the same migrations as migrateToLatest, for stepping down and up. */
function migrator(): Migrator {
  return new Migrator({
    db: handle.db,
    provider: {
      async getMigrations() {
        return Object.fromEntries(
          Object.entries(migrations).map(([name, m]) => [
            name,
            {
              up: (d) => m.up(d, handle.dialect),
              ...(m.down ? { down: (d: Kysely<unknown>) => m.down!(d, handle.dialect) } : {}),
            } satisfies Migration,
          ]),
        );
      },
    },
  });
}

const now = '2024-01-01T00:00:00.000Z';

async function expectUniqueViolation(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a unique violation').toBeDefined();
  expect(isUniqueViolation(err)).toBe(true);
}

describe('migrations', () => {
  it('are named NNNN_name and listed in the order they must run', () => {
    for (const n of names) expect(n).toMatch(/^\d{4}_[a-z0-9_]+$/);
    expect(names).toEqual([...names].sort());
    expect(names[0]).toBe('0001_foundation');
  });

  it('apply every migration once on a fresh database, and nothing on the next start', async () => {
    expect(await migrateToLatest(handle)).toEqual(names);
    expect(await migrateToLatest(handle)).toEqual([]);
    const applied = (await migrator().getMigrations()).filter((m) => m.executedAt).map((m) => m.name);
    expect(applied).toEqual(names);
  });

  it('create the foundation tables', async () => {
    await migrateToLatest(handle);
    const tables = new Set((await handle.db.introspection.getTables()).map((t) => t.name));
    for (const t of [
      'organizations',
      'spaces',
      'users',
      'roles',
      'feature_flags',
      'stacks',
      'domains',
      'domain_shared_organizations',
      'organization_quotas',
      'space_quotas',
      'isolation_segments',
      'isolation_segment_organizations',
      'environment_variable_groups',
      'security_groups',
      'security_group_spaces',
      'audit_events',
      'jobs',
      'labels',
      'annotations',
      'changes',
      'identity_users',
      'identity_clients',
      'settings',
    ]) {
      expect(tables, t).toContain(t);
    }
  });

  it('give resources generation 1 and auto-increment ids and revisions', async () => {
    await migrateToLatest(handle);
    // Untyped on purpose: these inserts rely on column defaults the row types do not model.
    const k = handle.db as unknown as AnyDb;
    await k.insertInto('organizations').values({ guid: 'o1', name: 'a', created_at: now, updated_at: now }).execute();
    await k.insertInto('organizations').values({ guid: 'o2', name: 'b', created_at: now, updated_at: now }).execute();
    const rows = await k.selectFrom('organizations').select(['id', 'generation', 'suspended', 'status']).orderBy('id').execute();
    expect(rows.map((r) => r.generation)).toEqual([1, 1]);
    expect(rows[1]!.id).toBeGreaterThan(rows[0]!.id);
    expect(rows[0]).toMatchObject({ suspended: 0, status: 'active' });

    await k.insertInto('changes').values({ kind: 'k', guid: 'g', op: 'create', created_at: now }).execute();
    await k.insertInto('changes').values({ kind: 'k', guid: 'g', op: 'update', created_at: now }).execute();
    const revs = (await k.selectFrom('changes').select('revision').orderBy('revision').execute()).map((r) => r.revision);
    expect(typeof revs[0]).toBe('number');
    expect(revs[1]).toBeGreaterThan(revs[0]!);
  });

  it('enforce case-insensitive unique names for orgs, and per org for spaces', async () => {
    await migrateToLatest(handle);
    // Untyped on purpose: these inserts rely on column defaults the row types do not model.
    const k = handle.db as unknown as AnyDb;
    await k.insertInto('organizations').values({ guid: 'o1', name: 'Acme', created_at: now, updated_at: now }).execute();
    await expectUniqueViolation(
      k.insertInto('organizations').values({ guid: 'o2', name: 'ACME', created_at: now, updated_at: now }).execute(),
    );
    await expectUniqueViolation(
      k.insertInto('organizations').values({ guid: 'o1', name: 'other', created_at: now, updated_at: now }).execute(),
    );

    const space = (guid: string, name: string, org: string) =>
      k.insertInto('spaces').values({ guid, name, organization_guid: org, created_at: now, updated_at: now }).execute();
    await space('s1', 'dev', 'o1');
    await space('s2', 'dev', 'o2');
    await expectUniqueViolation(space('s3', 'DEV', 'o1'));
  });

  it('keep one value per label key and resource', async () => {
    await migrateToLatest(handle);
    const label = (guid: string, prefix: string, value: string) =>
      handle.db
        .insertInto('labels')
        .values({ resource_type: 'spaces', resource_guid: guid, key_prefix: prefix, key_name: 'env', value })
        .execute();
    await label('s1', '', 'dev');
    await label('s1', 'example.com', 'dev');
    await label('s2', '', 'dev');
    await expectUniqueViolation(label('s1', '', 'prod'));
  });

  it('roll back and re-apply every migration that has a down step', async () => {
    await migrateToLatest(handle);
    const m = migrator();
    let steppedDown = 0;
    for (let i = names.length - 1; i > 0 && migrations[names[i]!]!.down; i--) {
      const { error } = await m.migrateDown();
      expect(error).toBeUndefined();
      steppedDown++;
    }
    const reapplied = await migrateToLatest(handle);
    expect(reapplied).toEqual(names.slice(names.length - steppedDown));
    expect(await migrateToLatest(handle)).toEqual([]);
  });

  // PostgreSQL picks plans from table statistics, so only SQLite's (statistics-free) plans are stable enough to pin.
  it.skipIf(onPostgres())('serve list orderings and label lookups from indexes (SQLite plans)', async () => {
    await migrateToLatest(handle);
    const plan = async (query: string) =>
      (await sql<{ detail: string }>`${sql.raw(`explain query plan ${query}`)}`.execute(handle.db)).rows
        .map((r) => r.detail)
        .join(' | ');
    for (const table of ['spaces', 'organizations']) {
      for (const column of ['name', 'created_at', 'updated_at']) {
        for (const dir of ['asc', 'desc']) {
          const p = await plan(`select * from ${table} order by ${column} ${dir}, guid ${dir} limit 50`);
          expect(p, `${table} by ${column} ${dir}`).not.toMatch(/TEMP B-TREE/);
        }
      }
    }
    // A page's metadata (store/metadata.ts) is read from the covering indexes alone, never from the tables.
    for (const table of ['labels', 'annotations']) {
      expect(
        await plan(
          `select resource_guid, key_prefix, key_name, value, id from ${table} where resource_type = 'spaces' and resource_guid in ('a', 'b') order by id`,
        ),
      ).toMatch(new RegExp(`COVERING INDEX ${table}_resource_cover_idx \\(resource_type=\\? AND resource_guid=\\?\\)`));
    }
    expect(
      await plan(
        `select resource_guid from labels where resource_type = 'spaces' and key_prefix = '' and key_name = 'env' and value in ('a')`,
      ),
    ).toMatch(/COVERING INDEX labels_selector_cover_idx/);
  });
});
