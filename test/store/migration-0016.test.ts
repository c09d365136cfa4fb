import { Migrator, type Kysely, type Migration } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.ts';
import { migrateToLatest } from '../../src/store/db.ts';
import { openTestDb, type TestDb } from './db.ts';

/** Upgrading a database that has apps, processes, deployments and tasks to migration 0016. */

let db: TestDb;
beforeEach(async () => {
  db = await openTestDb();
});
afterEach(async () => {
  await db.close();
});

const now = '2024-01-01T00:00:00.000Z';
const resource = (guid: string) => ({ guid, created_at: now, updated_at: now, generation: 1 });

async function migrateTo(name: string): Promise<void> {
  const { handle } = db;
  const migrator = new Migrator({
    db: handle.db,
    provider: {
      async getMigrations() {
        return Object.fromEntries(
          Object.entries(migrations).map(([n, m]) => [n, { up: (d: Kysely<unknown>) => m.up(d, handle.dialect) } satisfies Migration]),
        );
      },
    },
  });
  const { error } = await migrator.migrateTo(name);
  if (error) throw error;
}

describe('migration 0016', () => {
  it('keeps processes, deployments and tasks, allows a second web process, and lists what each deployment rolled', async () => {
    await migrateTo('0014_sidecars');
    // Any-typed: the rows are written in the shape of the schema before 0016.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const old = db.handle.db as unknown as Kysely<any>;
    await old.insertInto('processes').values({ ...resource('p1'), app_guid: 'a1', type: 'web', instances: 3, version: 'v1' }).execute();
    await old
      .insertInto('deployments')
      .values({
        ...resource('d1'),
        app_guid: 'a1',
        state: 'DEPLOYED',
        status_value: 'FINALIZED',
        status_reason: 'DEPLOYED',
        strategy: 'rolling',
        droplet_guid: 'dr1',
        process_guid: 'p1',
        process_type: 'web',
        new_version: 'v1',
        original_instances: 3,
        target_instances: 3,
        new_instances: 3,
        old_instances: 0,
        max_in_flight: 1,
        previous_memory_in_mb: 1024,
        previous_disk_in_mb: 1024,
        previous_log_rate_limit: -1,
        last_healthy_at: now,
        last_status_change: now,
      })
      .execute();
    await old
      .insertInto('tasks')
      .values({ ...resource('t1'), app_guid: 'a1', droplet_guid: 'dr1', name: 'x', command: 'x', state: 'RUNNING', sequence_id: 1, memory_in_mb: 1, disk_in_mb: 1 })
      .execute();

    await migrateToLatest(db.handle);

    const procs = await old.selectFrom('processes').select(['guid', 'instances', 'version']).execute();
    expect(procs).toEqual([{ guid: 'p1', instances: 3, version: 'v1' }]);
    await old.insertInto('processes').values({ ...resource('p2'), app_guid: 'a1', type: 'web', instances: 1, version: 'v2' }).execute();
    const webs = await old.selectFrom('processes').select('guid').where('app_guid', '=', 'a1').where('type', '=', 'web').orderBy('guid').execute();
    expect(webs.map((p) => p.guid)).toEqual(['p1', 'p2']);
    const d = await old.selectFrom('deployments').select('new_processes').executeTakeFirstOrThrow();
    expect(JSON.parse(d.new_processes)).toEqual([{ guid: 'p1', type: 'web' }]);
    // A task from before was handed to the runtime already.
    expect((await old.selectFrom('tasks').select('launched').executeTakeFirstOrThrow()).launched).toBe(1);
  });
});
