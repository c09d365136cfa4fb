import { notNull, idColumn, type KilnMigration } from './helpers.ts';

/**
 * Service usage events (issue 9 §9): the billing feed of service instances — one row per instance created, updated
 * (plan change, rename) or deleted, written by the same transaction as the change. Names are copied in, so an
 * event still says what was billed after the instance, plan or broker is gone.
 */
export const serviceUsageEvents: KilnMigration = {
  async up(db, dialect) {
    await idColumn(db.schema.createTable('service_usage_events'), dialect)
      .addColumn('guid', 'text', (c) => c.notNull().unique())
      .addColumn('created_at', 'text', notNull)
      // CREATED, UPDATED or DELETED.
      .addColumn('state', 'text', notNull)
      .addColumn('space_guid', 'text', notNull)
      .addColumn('space_name', 'text', notNull)
      .addColumn('organization_guid', 'text', notNull)
      .addColumn('service_instance_guid', 'text', notNull)
      .addColumn('service_instance_name', 'text', notNull)
      .addColumn('service_instance_type', 'text', notNull)
      .addColumn('service_plan_guid', 'text')
      .addColumn('service_plan_name', 'text')
      .addColumn('service_offering_guid', 'text')
      .addColumn('service_offering_name', 'text')
      .addColumn('service_broker_guid', 'text')
      .addColumn('service_broker_name', 'text')
      .execute();
  },
};
