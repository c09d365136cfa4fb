import { notNull, idColumn, type KilnMigration } from './helpers.ts';

/**
 * App usage events (issue 9 §9): the billing feed of processes — one row each time a process starts or stops
 * being billed, changes its footprint while started (instances, memory) or gets a new droplet while started
 * (BUILDPACK_SET), written by the same transaction as the change. Names are copied in, so an event still says
 * what was billed after the app, space or buildpack is gone.
 */
export const appUsageEvents: KilnMigration = {
  async up(db, dialect) {
    await idColumn(db.schema.createTable('app_usage_events'), dialect)
      .addColumn('guid', 'text', (c) => c.notNull().unique())
      .addColumn('created_at', 'text', notNull)
      // STARTED, STOPPED or BUILDPACK_SET.
      .addColumn('state', 'text', notNull)
      .addColumn('previous_state', 'text')
      .addColumn('app_guid', 'text', notNull)
      .addColumn('app_name', 'text', notNull)
      .addColumn('process_guid', 'text', notNull)
      .addColumn('process_type', 'text', notNull)
      .addColumn('space_guid', 'text', notNull)
      .addColumn('space_name', 'text', notNull)
      .addColumn('organization_guid', 'text', notNull)
      .addColumn('instance_count', 'integer', notNull)
      .addColumn('previous_instance_count', 'integer')
      .addColumn('memory_in_mb_per_instance', 'integer', notNull)
      .addColumn('previous_memory_in_mb_per_instance', 'integer')
      // The droplet billed: a later change of the app's droplet while started is a BUILDPACK_SET.
      .addColumn('droplet_guid', 'text')
      .addColumn('buildpack_guid', 'text')
      .addColumn('buildpack_name', 'text')
      .execute();
    // The recorder reads the latest event of a process on every write that touches it.
    await db.schema.createIndex('app_usage_events_process_idx').on('app_usage_events').columns(['process_guid', 'id']).execute();
  },
};
