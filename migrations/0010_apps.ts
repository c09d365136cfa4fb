import { sql } from 'kysely';
import { notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/**
 * The tables of pushing an app (issue 3): apps, their processes, packages, builds, droplets, routes and route
 * destinations/shares. JSON-valued fields are text (both dialects), booleans are 0/1 integers. Reconciled rows
 * (apps, processes, builds) carry `observed_generation` so controllers can tell what they already acted on.
 */
export const apps: KilnMigration = {
  async up(db, dialect) {
    await resourceColumns(db.schema.createTable('apps'), dialect)
      .addColumn('name', 'text', notNull)
      .addColumn('space_guid', 'text', notNull)
      // Desired state: STOPPED or STARTED.
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('STOPPED'))
      // `active` or `deleting` (an asynchronous delete is in flight).
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
      .addColumn('lifecycle_type', 'text', (c) => c.notNull().defaultTo('buildpack'))
      .addColumn('lifecycle_buildpacks', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('lifecycle_stack', 'text')
      .addColumn('environment_variables', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('droplet_guid', 'text')
      .addColumn('enable_ssh', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('revisions_enabled', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('observed_generation', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('apps_space_name_uq').on('apps').expression(sql`space_guid, lower(name)`).unique().execute();
    await db.schema.createIndex('apps_name_guid_idx').on('apps').columns(['name', 'guid']).execute();
    await db.schema.createIndex('apps_created_at_idx').on('apps').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('apps_updated_at_idx').on('apps').columns(['updated_at', 'guid']).execute();
    await db.schema.createIndex('apps_droplet_idx').on('apps').column('droplet_guid').execute();

    await resourceColumns(db.schema.createTable('processes'), dialect)
      .addColumn('app_guid', 'text', notNull)
      .addColumn('type', 'text', notNull)
      // The command the user set; null means "the droplet's detected command for this type".
      .addColumn('command', 'text')
      .addColumn('instances', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('memory_in_mb', 'integer', (c) => c.notNull().defaultTo(1024))
      .addColumn('disk_in_mb', 'integer', (c) => c.notNull().defaultTo(1024))
      .addColumn('log_rate_limit_in_bytes_per_second', 'bigint', (c) => c.notNull().defaultTo(-1))
      .addColumn('health_check_type', 'text', (c) => c.notNull().defaultTo('port'))
      .addColumn('health_check_timeout', 'integer')
      .addColumn('health_check_invocation_timeout', 'integer')
      .addColumn('health_check_interval', 'integer')
      .addColumn('health_check_endpoint', 'text')
      .addColumn('readiness_check_type', 'text', (c) => c.notNull().defaultTo('process'))
      .addColumn('readiness_check_invocation_timeout', 'integer')
      .addColumn('readiness_check_interval', 'integer')
      .addColumn('readiness_check_endpoint', 'text')
      // Changes whenever running instances must be replaced (restart, new droplet, new command/env).
      .addColumn('version', 'text', notNull)
      .addColumn('observed_generation', 'integer', (c) => c.notNull().defaultTo(0))
      .addUniqueConstraint('processes_app_type_uq', ['app_guid', 'type'])
      .execute();
    await db.schema.createIndex('processes_created_at_idx').on('processes').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('processes_updated_at_idx').on('processes').columns(['updated_at', 'guid']).execute();

    await resourceColumns(db.schema.createTable('packages'), dialect)
      .addColumn('app_guid', 'text', notNull)
      .addColumn('type', 'text', notNull)
      .addColumn('state', 'text', notNull)
      .addColumn('error', 'text')
      .addColumn('checksum_sha256', 'text')
      .addColumn('checksum_sha1', 'text')
      .addColumn('docker_image', 'text')
      .addColumn('docker_username', 'text')
      .addColumn('docker_password', 'text')
      .addColumn('blob_key', 'text')
      .addColumn('size_in_bytes', 'bigint')
      // The package being copied from, while state is COPYING.
      .addColumn('source_package_guid', 'text')
      .execute();
    await db.schema.createIndex('packages_app_idx').on('packages').columns(['app_guid', 'created_at']).execute();
    await db.schema.createIndex('packages_created_at_idx').on('packages').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('packages_updated_at_idx').on('packages').columns(['updated_at', 'guid']).execute();

    await resourceColumns(db.schema.createTable('builds'), dialect)
      .addColumn('app_guid', 'text', notNull)
      .addColumn('package_guid', 'text', notNull)
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('STAGING'))
      .addColumn('error', 'text')
      .addColumn('lifecycle_type', 'text', (c) => c.notNull().defaultTo('buildpack'))
      // JSON `{buildpacks, stack}` (lifecycle data), as requested or inherited from the app.
      .addColumn('lifecycle_data', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('staging_memory_in_mb', 'integer', (c) => c.notNull().defaultTo(1024))
      .addColumn('staging_disk_in_mb', 'integer', (c) => c.notNull().defaultTo(1024))
      .addColumn('staging_log_rate_limit_bytes_per_second', 'bigint', (c) => c.notNull().defaultTo(-1))
      .addColumn('droplet_guid', 'text')
      .addColumn('created_by_guid', 'text')
      .addColumn('created_by_name', 'text')
      .addColumn('created_by_email', 'text')
      .addColumn('observed_generation', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('builds_app_idx').on('builds').columns(['app_guid', 'created_at']).execute();
    await db.schema.createIndex('builds_package_idx').on('builds').column('package_guid').execute();
    await db.schema.createIndex('builds_state_idx').on('builds').column('state').execute();
    await db.schema.createIndex('builds_created_at_idx').on('builds').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('builds_updated_at_idx').on('builds').columns(['updated_at', 'guid']).execute();

    await resourceColumns(db.schema.createTable('droplets'), dialect)
      .addColumn('app_guid', 'text', notNull)
      .addColumn('package_guid', 'text')
      .addColumn('build_guid', 'text')
      .addColumn('state', 'text', notNull)
      .addColumn('error', 'text')
      .addColumn('lifecycle_type', 'text', (c) => c.notNull().defaultTo('buildpack'))
      // JSON object: process type -> detected command.
      .addColumn('process_types', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('execution_metadata', 'text', (c) => c.notNull().defaultTo(''))
      // JSON array of `{name, detect_output, buildpack_name, version}`.
      .addColumn('buildpacks', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('stack', 'text')
      .addColumn('image', 'text')
      .addColumn('checksum_sha256', 'text')
      .addColumn('checksum_sha1', 'text')
      .addColumn('blob_key', 'text')
      .addColumn('size_in_bytes', 'bigint')
      .addColumn('source_droplet_guid', 'text')
      .execute();
    await db.schema.createIndex('droplets_app_idx').on('droplets').columns(['app_guid', 'created_at']).execute();
    await db.schema.createIndex('droplets_package_idx').on('droplets').column('package_guid').execute();
    await db.schema.createIndex('droplets_build_idx').on('droplets').column('build_guid').execute();
    await db.schema.createIndex('droplets_created_at_idx').on('droplets').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('droplets_updated_at_idx').on('droplets').columns(['updated_at', 'guid']).execute();

    await resourceColumns(db.schema.createTable('routes'), dialect)
      .addColumn('host', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('path', 'text', (c) => c.notNull().defaultTo(''))
      // 0 for HTTP routes: the uniqueness index cannot treat NULLs as equal on both dialects.
      .addColumn('port', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('domain_guid', 'text', notNull)
      .addColumn('space_guid', 'text', notNull)
      .addColumn('protocol', 'text', (c) => c.notNull().defaultTo('http'))
      // JSON object of route options (e.g. loadbalancing).
      .addColumn('options', 'text', (c) => c.notNull().defaultTo('{}'))
      .execute();
    await db.schema
      .createIndex('routes_address_uq')
      .on('routes')
      .expression(sql`domain_guid, lower(host), path, port`)
      .unique()
      .execute();
    await db.schema.createIndex('routes_space_idx').on('routes').column('space_guid').execute();
    await db.schema.createIndex('routes_created_at_idx').on('routes').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('routes_updated_at_idx').on('routes').columns(['updated_at', 'guid']).execute();

    await resourceColumns(db.schema.createTable('route_destinations'), dialect)
      .addColumn('route_guid', 'text', notNull)
      .addColumn('app_guid', 'text', notNull)
      .addColumn('process_type', 'text', (c) => c.notNull().defaultTo('web'))
      .addColumn('port', 'integer', (c) => c.notNull().defaultTo(8080))
      .addColumn('protocol', 'text', (c) => c.notNull().defaultTo('http1'))
      .addColumn('weight', 'integer')
      .execute();
    await db.schema.createIndex('route_destinations_route_idx').on('route_destinations').column('route_guid').execute();
    await db.schema.createIndex('route_destinations_app_idx').on('route_destinations').column('app_guid').execute();

    await db.schema
      .createTable('route_shares')
      .addColumn('route_guid', 'text', notNull)
      .addColumn('space_guid', 'text', notNull)
      .addPrimaryKeyConstraint('route_shares_pk', ['route_guid', 'space_guid'])
      .execute();
    await db.schema.createIndex('route_shares_space_idx').on('route_shares').column('space_guid').execute();
  },
  async down(db) {
    for (const table of ['route_shares', 'route_destinations', 'routes', 'droplets', 'builds', 'packages', 'processes', 'apps']) {
      await db.schema.dropTable(table).execute();
    }
  },
};
