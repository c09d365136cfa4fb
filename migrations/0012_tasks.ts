import { notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/**
 * One-off tasks of apps (issue 4). `sequence_id` is a per-app counter; the unique (app_guid, sequence_id)
 * constraint is what makes concurrent creates on PostgreSQL safe (the loser retries with the next number).
 */
export const tasks: KilnMigration = {
  async up(db, dialect) {
    await resourceColumns(db.schema.createTable('tasks'), dialect)
      .addColumn('app_guid', 'text', notNull)
      .addColumn('droplet_guid', 'text', notNull)
      .addColumn('name', 'text', notNull)
      .addColumn('command', 'text', notNull)
      // PENDING, RUNNING, CANCELING, SUCCEEDED or FAILED.
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('PENDING'))
      .addColumn('sequence_id', 'integer', notNull)
      .addColumn('memory_in_mb', 'integer', notNull)
      .addColumn('disk_in_mb', 'integer', notNull)
      .addColumn('log_rate_limit', 'bigint', (c) => c.notNull().defaultTo(-1))
      // The container user asked for (null: the droplet's default).
      .addColumn('run_user', 'text')
      .addColumn('failure_reason', 'text')
      .addUniqueConstraint('tasks_app_sequence_uq', ['app_guid', 'sequence_id'])
      .execute();
    await db.schema.createIndex('tasks_state_idx').on('tasks').column('state').execute();
    await db.schema.createIndex('tasks_created_at_idx').on('tasks').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('tasks_updated_at_idx').on('tasks').columns(['updated_at', 'guid']).execute();
  },
  async down(db) {
    await db.schema.dropTable('tasks').ifExists().execute();
  },
};
