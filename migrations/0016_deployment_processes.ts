import { sql } from 'kysely';
import type { AnyDb, Dialect, KilnMigration } from './helpers.ts';

/**
 * Deployments create their own web process (issue 12), as upstream's deployment_processes table records: the
 * processes a deployment created stay listed in its `new_processes` after the process itself is gone (replaced
 * by a later deployment, or removed by a cancel), and a deployment of a stopped app, which creates none, lists
 * none. A JSON array of `{guid, type}`; rows from before this migration list the process they rolled.
 *
 * While a deployment runs, the app has two processes of type `web`, so `(app_guid, type)` is no longer unique.
 *
 * Tasks are RUNNING from the request that creates them, as upstream's TaskCreate marks them once Diego accepted
 * them; `tasks.launched` records whether the runtime was handed the task, so that a RUNNING task not yet handed
 * over is started, and one handed over but unknown to the runtime (a Kiln restart) fails. Existing rows were.
 */
export const deploymentProcesses: KilnMigration = {
  async up(db, dialect) {
    await dropProcessTypeUnique(db, dialect);
    await db.schema.alterTable('tasks').addColumn('launched', 'integer', (c) => c.notNull().defaultTo(1)).execute();
    await db.schema.createIndex('processes_app_type_idx').on('processes').columns(['app_guid', 'type']).execute();
    await db.schema.alterTable('deployments').addColumn('new_processes', 'text', (c) => c.notNull().defaultTo('[]')).execute();
    const rows: Array<{ guid: string; process_guid: string; process_type: string }> = await db
      .selectFrom('deployments')
      .select(['guid', 'process_guid', 'process_type'])
      .execute();
    for (const r of rows) {
      await db
        .updateTable('deployments')
        .set({ new_processes: JSON.stringify([{ guid: r.process_guid, type: r.process_type }]) })
        .where('guid', '=', r.guid)
        .execute();
    }
  },
};

/** SQLite cannot drop a table constraint: the table is rebuilt from its own definition without it. */
async function dropProcessTypeUnique(db: AnyDb, dialect: Dialect): Promise<void> {
  if (dialect === 'postgres') {
    await sql`ALTER TABLE processes DROP CONSTRAINT processes_app_type_uq`.execute(db);
    return;
  }
  const objects = await sql<{ type: string; name: string; sql: string | null }>`SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'processes'`.execute(db);
  const table = objects.rows.find((o) => o.type === 'table');
  if (!table?.sql) throw new Error('processes table not found');
  const withoutUnique = table.sql.replace(/,\s*constraint\s+"?processes_app_type_uq"?\s+unique\s*\([^)]*\)/i, '');
  if (withoutUnique === table.sql) throw new Error('processes_app_type_uq not found in the processes table definition');
  const rebuilt = withoutUnique.replace(/^create table\s+"?processes"?/i, 'CREATE TABLE "processes_rebuilt"');
  await sql.raw(rebuilt).execute(db);
  await sql`INSERT INTO processes_rebuilt SELECT * FROM processes`.execute(db);
  await sql`DROP TABLE processes`.execute(db);
  await sql`ALTER TABLE processes_rebuilt RENAME TO processes`.execute(db);
  for (const index of objects.rows.filter((o) => o.type === 'index' && o.sql)) await sql.raw(index.sql!).execute(db);
}
