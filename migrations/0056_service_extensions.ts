import { notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/**
 * Service instance backups and plan definitions (issue 15), Kiln's extensions of the OSBAPI (docs/service-extensions.md).
 *
 * - `service_instance_backups`: one backup the broker holds of a managed instance. `state` is the backup's life
 *   (CREATING, READY, FAILED, RESTORING); the `last_operation_*` columns are the latest create or restore, and
 *   `broker_operation`/`poll_next_at` the broker's async operation being polled, so a restart resumes polling from
 *   the row alone (src/controllers/backup-operation-controller.ts).
 * - `service_plan_definition_requests`: the write a plan-definition job must send to the broker (create, update,
 *   delete), kept until the job has sent it and resynchronised the catalog, so the job can run again after a crash.
 */
export const serviceExtensions: KilnMigration = {
  async up(db, dialect) {
    await resourceColumns(db.schema.createTable('service_instance_backups'), dialect)
      .addColumn('service_instance_guid', 'text', notNull)
      .addColumn('state', 'text', notNull)
      .addColumn('size_in_bytes', 'double precision')
      .addColumn('completed_at', 'text')
      .addColumn('restored_at', 'text')
      .addColumn('last_operation_type', 'text', notNull)
      .addColumn('last_operation_state', 'text', notNull)
      .addColumn('last_operation_description', 'text')
      .addColumn('last_operation_updated_at', 'text', notNull)
      .addColumn('broker_operation', 'text')
      .addColumn('poll_next_at', 'double precision')
      .execute();
    await db.schema.createIndex('sib_instance_idx').on('service_instance_backups').columns(['service_instance_guid', 'created_at']).execute();

    await resourceColumns(db.schema.createTable('service_plan_definition_requests'), dialect)
      .addColumn('action', 'text', notNull)
      .addColumn('service_offering_guid', 'text', notNull)
      .addColumn('broker_plan_id', 'text', notNull)
      .addColumn('definition', 'text', (c) => c.notNull().defaultTo('{}'))
      .execute();
  },
};
