import { notNull, resourceColumns, type AnyDb, type Dialect, type KilnMigration } from './helpers.ts';

/** The last-operation columns shared by instances and both kinds of binding (CC's `last_operation`). */
function lastOperation<T extends string, C extends string>(t: import('kysely').CreateTableBuilder<T, C>) {
  return (
    t
      // create | update | delete; state initial | in progress | succeeded | failed.
      .addColumn('last_operation_type', 'text', (c) => c.notNull().defaultTo('create'))
      .addColumn('last_operation_state', 'text', (c) => c.notNull().defaultTo('initial'))
      .addColumn('last_operation_description', 'text')
      .addColumn('last_operation_created_at', 'text', notNull)
      .addColumn('last_operation_updated_at', 'text', notNull)
      // The broker's `operation` token of an async operation, passed back on each poll.
      .addColumn('broker_operation', 'text')
      // Polling of an async operation (epoch ms): when to look next, when to give up, how often we looked.
      .addColumn('poll_next_at', 'double precision')
      .addColumn('poll_deadline', 'double precision')
      .addColumn('poll_count', 'integer', (c) => c.notNull().defaultTo(0))
  );
}

/**
 * Services (issue 9): OSBAPI brokers, their offerings and plans (with org visibility), service instances (managed
 * and user-provided), their shares to other spaces, and credential and route bindings. Secrets (broker
 * credentials, instance and binding credentials, parameters) are stored encrypted (`*_enc`, see src/store/secrets.ts).
 */
export const services: KilnMigration = {
  async up(db: AnyDb, dialect: Dialect) {
    await resourceColumns(db.schema.createTable('service_brokers'), dialect)
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('url', 'text', notNull)
      .addColumn('auth_enc', 'text', notNull)
      .addColumn('space_guid', 'text')
      // SYNCHRONIZING, AVAILABLE, SYNCHRONIZATION_FAILED, DELETE_IN_PROGRESS.
      .addColumn('state', 'text', notNull)
      .execute();

    await resourceColumns(db.schema.createTable('service_offerings'), dialect)
      .addColumn('service_broker_guid', 'text', notNull)
      .addColumn('broker_catalog_id', 'text', notNull)
      .addColumn('name', 'text', notNull)
      .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('available', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('bindable', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('plan_updateable', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('instances_retrievable', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('bindings_retrievable', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('allow_context_updates', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('shareable', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('requires', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('documentation_url', 'text')
      .addColumn('catalog_metadata', 'text', (c) => c.notNull().defaultTo('{}'))
      .addUniqueConstraint('service_offerings_broker_id_uq', ['service_broker_guid', 'broker_catalog_id'])
      .execute();

    await resourceColumns(db.schema.createTable('service_plans'), dialect)
      .addColumn('service_offering_guid', 'text', notNull)
      .addColumn('broker_catalog_id', 'text', notNull)
      .addColumn('name', 'text', notNull)
      .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('available', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('free', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('bindable', 'integer')
      .addColumn('plan_updateable', 'integer')
      .addColumn('maximum_polling_duration', 'integer')
      .addColumn('maintenance_info', 'text')
      .addColumn('schemas', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('costs', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('catalog_metadata', 'text', (c) => c.notNull().defaultTo('{}'))
      // admin | public | organization | space.
      .addColumn('visibility_type', 'text', (c) => c.notNull().defaultTo('admin'))
      .addUniqueConstraint('service_plans_offering_id_uq', ['service_offering_guid', 'broker_catalog_id'])
      .execute();

    await db.schema
      .createTable('service_plan_visibilities')
      .addColumn('service_plan_guid', 'text', notNull)
      .addColumn('organization_guid', 'text', notNull)
      .addPrimaryKeyConstraint('service_plan_visibilities_pk', ['service_plan_guid', 'organization_guid'])
      .execute();

    await lastOperation(resourceColumns(db.schema.createTable('service_instances'), dialect))
      .addColumn('type', 'text', notNull)
      .addColumn('name', 'text', notNull)
      .addColumn('space_guid', 'text', notNull)
      .addColumn('service_plan_guid', 'text')
      .addColumn('credentials_enc', 'text')
      .addColumn('parameters_enc', 'text')
      .addColumn('syslog_drain_url', 'text')
      .addColumn('route_service_url', 'text')
      .addColumn('dashboard_url', 'text')
      .addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('maintenance_info', 'text')
      // An update's request (plan, parameters, maintenance_info), encrypted, until the broker has answered it.
      .addColumn('pending_update_enc', 'text')
      .execute();
    await db.schema.createIndex('service_instances_space_name_uq').on('service_instances').columns(['space_guid', 'name']).unique().execute();
    await db.schema.createIndex('service_instances_plan_idx').on('service_instances').column('service_plan_guid').execute();

    await db.schema
      .createTable('service_instance_shares')
      .addColumn('service_instance_guid', 'text', notNull)
      .addColumn('space_guid', 'text', notNull)
      .addPrimaryKeyConstraint('service_instance_shares_pk', ['service_instance_guid', 'space_guid'])
      .execute();

    await lastOperation(resourceColumns(db.schema.createTable('service_credential_bindings'), dialect))
      .addColumn('type', 'text', notNull)
      .addColumn('name', 'text')
      .addColumn('service_instance_guid', 'text', notNull)
      .addColumn('app_guid', 'text')
      .addColumn('credentials_enc', 'text')
      .addColumn('parameters_enc', 'text')
      .addColumn('syslog_drain_url', 'text')
      .addColumn('volume_mounts', 'text', (c) => c.notNull().defaultTo('[]'))
      .execute();
    await db.schema.createIndex('scb_instance_idx').on('service_credential_bindings').column('service_instance_guid').execute();
    await db.schema.createIndex('scb_app_idx').on('service_credential_bindings').column('app_guid').execute();

    await lastOperation(resourceColumns(db.schema.createTable('service_route_bindings'), dialect))
      .addColumn('service_instance_guid', 'text', notNull)
      .addColumn('route_guid', 'text', notNull)
      .addColumn('route_service_url', 'text')
      .addColumn('parameters_enc', 'text')
      .execute();
    await db.schema.createIndex('srb_route_uq').on('service_route_bindings').column('route_guid').unique().execute();
  },
};
