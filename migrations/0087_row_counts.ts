import { sql } from 'kysely';
import type { KilnMigration } from './helpers.ts';

/**
 * Tables with a CF list endpoint, whose unfiltered list (a global reader's `GET /v3/spaces`) needs the exact number
 * of rows for `total_results`. `count(*)` visits every row (or index entry): on 10,000 spaces ~0.01 ms of SQLite
 * (growing with the table) but ~1.2 ms of a PostgreSQL server's CPU per list request, most of what the whole request
 * costs there.
 */
export const COUNTED_TABLES = [
  'organizations', 'spaces', 'users', 'roles', 'stacks', 'domains', 'organization_quotas', 'space_quotas',
  'isolation_segments', 'security_groups', 'audit_events', 'apps', 'processes', 'packages', 'builds', 'droplets',
  'routes', 'buildpacks', 'tasks', 'revisions', 'deployments', 'sidecars', 'locks', 'registry_credentials',
  'service_brokers', 'service_offerings', 'service_plans', 'service_instances', 'service_credential_bindings',
  'service_route_bindings', 'service_usage_events', 'app_usage_events', 'route_policies', 'service_instance_backups',
] as const;

/**
 * Row counts kept by triggers, so whatever writes a table (the write vocabulary, a raw seed, a cascading delete)
 * keeps its count exact in the same transaction. `row_counts.n` plus the table's rows in `row_count_deltas` is the
 * count (src/store/row-counts.ts).
 *
 * SQLite has one writer at a time, so its triggers add to `row_counts` directly. On PostgreSQL that would make every
 * transaction inserting into a table hold the lock on its counter until commit, and two transactions touching two
 * counted tables in opposite orders would deadlock; there each row inserted or deleted appends a delta (appends
 * never wait on each other), and a compactor folds the deltas into `row_counts` now and then
 * (src/controllers/row-count-compactor.ts). TRUNCATE fires no row triggers: Kiln never truncates these tables.
 */
export const rowCounts: KilnMigration = {
  async up(db, dialect) {
    await db.schema
      .createTable('row_counts')
      .addColumn('table_name', 'text', (c) => c.primaryKey())
      .addColumn('n', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('row_count_deltas')
      .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
      .addColumn('table_name', 'text', (c) => c.notNull())
      .addColumn('delta', 'integer', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('row_count_deltas_table_idx').on('row_count_deltas').columns(['table_name', 'delta']).execute();
    if (dialect === 'postgres') {
      await sql`create function kiln_row_count_delta() returns trigger language plpgsql as $$
        begin
          insert into row_count_deltas (table_name, delta) values (TG_TABLE_NAME, case when TG_OP = 'INSERT' then 1 else -1 end);
          return null;
        end $$`.execute(db);
    }
    for (const t of COUNTED_TABLES) {
      await sql`insert into row_counts (table_name, n) select ${sql.lit(t)}, count(*) from ${sql.table(t)}`.execute(db);
      if (dialect === 'postgres') {
        // Row-level, so an INSERT ... ON CONFLICT DO NOTHING/UPDATE counts only the rows it really inserted.
        await sql`create trigger ${sql.id(`${t}_row_count`)} after insert or delete on ${sql.table(t)} for each row execute function kiln_row_count_delta()`.execute(db);
      } else {
        for (const [op, change] of [['insert', '+ 1'], ['delete', '- 1']] as const) {
          await sql`create trigger ${sql.id(`${t}_row_count_${op}`)} after ${sql.raw(op)} on ${sql.table(t)} for each row begin
            update row_counts set n = n ${sql.raw(change)} where table_name = ${sql.lit(t)};
          end`.execute(db);
        }
      }
    }
  },
  async down(db, dialect) {
    for (const t of COUNTED_TABLES) {
      if (dialect === 'postgres') await sql`drop trigger if exists ${sql.id(`${t}_row_count`)} on ${sql.table(t)}`.execute(db);
      else for (const op of ['insert', 'delete']) await sql`drop trigger if exists ${sql.id(`${t}_row_count_${op}`)}`.execute(db);
    }
    if (dialect === 'postgres') await sql`drop function if exists kiln_row_count_delta()`.execute(db);
    await db.schema.dropTable('row_count_deltas').execute();
    await db.schema.dropTable('row_counts').execute();
  },
};
