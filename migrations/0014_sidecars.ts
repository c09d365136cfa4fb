import { notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/**
 * Sidecars (issue 4): extra commands run beside a process type's main command in each of its instances. The
 * process types a sidecar applies to live in their own table, as upstream's sidecar_process_types, so "sidecars
 * of process type X" is one indexed lookup for the process controller.
 */
export const sidecars: KilnMigration = {
  async up(db, dialect) {
    await resourceColumns(db.schema.createTable('sidecars'), dialect)
      .addColumn('app_guid', 'text', notNull)
      .addColumn('name', 'text', notNull)
      .addColumn('command', 'text', notNull)
      .addColumn('memory_in_mb', 'integer')
      // `user` (API or manifest) or `buildpack` (declared by the droplet's buildpack).
      .addColumn('origin', 'text', (c) => c.notNull().defaultTo('user'))
      .execute();
    await db.schema.createIndex('sidecars_app_name_uq').on('sidecars').columns(['app_guid', 'name']).unique().execute();
    await db.schema.createIndex('sidecars_created_at_idx').on('sidecars').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('sidecars_updated_at_idx').on('sidecars').columns(['updated_at', 'guid']).execute();

    await db.schema
      .createTable('sidecar_process_types')
      .addColumn('sidecar_guid', 'text', notNull)
      .addColumn('type', 'text', notNull)
      .addColumn('app_guid', 'text', notNull)
      .addPrimaryKeyConstraint('sidecar_process_types_pk', ['sidecar_guid', 'type'])
      .execute();
    await db.schema.createIndex('sidecar_process_types_app_type_idx').on('sidecar_process_types').columns(['app_guid', 'type']).execute();
  },
};
