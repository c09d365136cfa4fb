import type { KilnMigration } from './helpers.ts';

/**
 * Task usage events (issue 9 §9): app usage events also record a task's run (CC's TASK_STARTED and TASK_STOPPED),
 * naming the task. Process columns hold '' for them.
 */
export const taskUsageEvents: KilnMigration = {
  async up(db) {
    await db.schema.alterTable('app_usage_events').addColumn('task_guid', 'text').execute();
    await db.schema.alterTable('app_usage_events').addColumn('task_name', 'text').execute();
    await db.schema.createIndex('app_usage_events_task_idx').on('app_usage_events').column('task_guid').execute();
  },
};
