import { notNull, type KilnMigration } from './helpers.ts';

/**
 * Crashes already turned into events (issue 12): the process controller sees an instance's last exit on every
 * reconcile, so it records the `app.crash` / `audit.app.process.crash` pair only when it inserts the crash's key
 * here first. Keys of instances the runtime no longer runs are dropped by the same controller.
 */
export const instanceCrashes: KilnMigration = {
  async up(db) {
    await db.schema
      .createTable('instance_crashes')
      .addColumn('instance_guid', 'text', notNull)
      // Epoch ms of the exit: an instance that crashes again (or anew after a Kiln restart) has a new one.
      .addColumn('crashed_at', 'bigint', notNull)
      .addColumn('process_guid', 'text', notNull)
      .addPrimaryKeyConstraint('instance_crashes_pk', ['instance_guid', 'crashed_at'])
      .execute();
    await db.schema.createIndex('instance_crashes_process_idx').on('instance_crashes').column('process_guid').execute();
  },
};
