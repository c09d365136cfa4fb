import { sql } from 'kysely';
import { idColumn, notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/** Orgs, spaces, identity, roles, platform settings, audit events, jobs, metadata and the change feed. */
export const foundation: KilnMigration = {
  async up(db, dialect) {
    await resourceColumns(db.schema.createTable('organizations'), dialect)
      .addColumn('name', 'text', notNull)
      .addColumn('suspended', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
      .addColumn('quota_guid', 'text')
      .addColumn('default_isolation_segment_guid', 'text')
      .execute();
    // Names are unique case-insensitively; the index settles races between concurrent creates.
    await db.schema.createIndex('organizations_name_uq').on('organizations').expression(sql`lower(name)`).unique().execute();

    await resourceColumns(db.schema.createTable('spaces'), dialect)
      .addColumn('name', 'text', notNull)
      .addColumn('organization_guid', 'text', notNull)
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
      .addColumn('allow_ssh', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('isolation_segment_guid', 'text')
      .addColumn('space_quota_guid', 'text')
      .execute();
    await db.schema
      .createIndex('spaces_org_name_uq')
      .on('spaces')
      .expression(sql`organization_guid, lower(name)`)
      .unique()
      .execute();
    await db.schema.createIndex('spaces_name_idx').on('spaces').column('name').execute();
    await db.schema.createIndex('spaces_created_at_idx').on('spaces').columns(['created_at', 'guid']).execute();

    await resourceColumns(db.schema.createTable('users'), dialect)
      .addColumn('username', 'text')
      .addColumn('origin', 'text')
      .execute();
    await db.schema.createIndex('users_username_idx').on('users').columns(['username', 'origin']).execute();

    await resourceColumns(db.schema.createTable('roles'), dialect)
      .addColumn('type', 'text', notNull)
      .addColumn('user_guid', 'text', notNull)
      .addColumn('organization_guid', 'text')
      .addColumn('space_guid', 'text')
      .execute();
    await db.schema.createIndex('roles_user_idx').on('roles').columns(['user_guid', 'type']).execute();
    await db.schema.createIndex('roles_org_idx').on('roles').column('organization_guid').execute();
    await db.schema.createIndex('roles_space_idx').on('roles').column('space_guid').execute();

    await db.schema
      .createTable('feature_flags')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('enabled', 'integer', notNull)
      .addColumn('custom_error_message', 'text')
      .addColumn('updated_at', 'text', notNull)
      .execute();

    await resourceColumns(db.schema.createTable('stacks'), dialect)
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('description', 'text')
      .addColumn('build_rootfs_image', 'text')
      .addColumn('run_rootfs_image', 'text')
      .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();

    await resourceColumns(db.schema.createTable('domains'), dialect)
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('internal', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('owning_organization_guid', 'text')
      .addColumn('router_group_guid', 'text')
      .execute();
    await db.schema
      .createTable('domain_shared_organizations')
      .addColumn('domain_guid', 'text', notNull)
      .addColumn('organization_guid', 'text', notNull)
      .addPrimaryKeyConstraint('domain_shared_organizations_pk', ['domain_guid', 'organization_guid'])
      .execute();

    const quotaColumns = <T extends string, C extends string>(
      t: import('kysely').CreateTableBuilder<T, C>,
    ) =>
      t
        .addColumn('name', 'text', notNull)
        .addColumn('total_memory_in_mb', 'integer')
        .addColumn('per_process_memory_in_mb', 'integer')
        .addColumn('total_instances', 'integer')
        .addColumn('per_app_tasks', 'integer')
        .addColumn('log_rate_limit_in_bytes_per_second', 'bigint')
        .addColumn('paid_services_allowed', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('total_service_instances', 'integer')
        .addColumn('total_service_keys', 'integer')
        .addColumn('total_routes', 'integer')
        .addColumn('total_reserved_ports', 'integer');
    await quotaColumns(resourceColumns(db.schema.createTable('organization_quotas'), dialect))
      .addColumn('total_domains', 'integer')
      .execute();
    await quotaColumns(resourceColumns(db.schema.createTable('space_quotas'), dialect))
      .addColumn('organization_guid', 'text', notNull)
      .execute();

    await resourceColumns(db.schema.createTable('isolation_segments'), dialect)
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .execute();
    await db.schema
      .createTable('isolation_segment_organizations')
      .addColumn('isolation_segment_guid', 'text', notNull)
      .addColumn('organization_guid', 'text', notNull)
      .addPrimaryKeyConstraint('isolation_segment_organizations_pk', ['isolation_segment_guid', 'organization_guid'])
      .execute();

    await db.schema
      .createTable('environment_variable_groups')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('variables', 'text', notNull)
      .addColumn('updated_at', 'text', notNull)
      .execute();

    await resourceColumns(db.schema.createTable('security_groups'), dialect)
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('rules', 'text', notNull)
      .addColumn('running_default', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('staging_default', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .createTable('security_group_spaces')
      .addColumn('security_group_guid', 'text', notNull)
      .addColumn('space_guid', 'text', notNull)
      .addColumn('lifecycle', 'text', notNull)
      .addPrimaryKeyConstraint('security_group_spaces_pk', ['security_group_guid', 'space_guid', 'lifecycle'])
      .execute();

    await idColumn(db.schema.createTable('audit_events'), dialect)
      .addColumn('guid', 'text', (c) => c.notNull().unique())
      .addColumn('created_at', 'text', notNull)
      .addColumn('updated_at', 'text', notNull)
      .addColumn('type', 'text', notNull)
      .addColumn('actor_guid', 'text', notNull)
      .addColumn('actor_type', 'text', notNull)
      .addColumn('actor_name', 'text', notNull)
      .addColumn('actor_username', 'text', notNull)
      .addColumn('target_guid', 'text', notNull)
      .addColumn('target_type', 'text', notNull)
      .addColumn('target_name', 'text', notNull)
      .addColumn('data', 'text', notNull)
      .addColumn('space_guid', 'text')
      .addColumn('organization_guid', 'text')
      .execute();
    await db.schema.createIndex('audit_events_target_idx').on('audit_events').column('target_guid').execute();
    await db.schema.createIndex('audit_events_space_idx').on('audit_events').column('space_guid').execute();
    await db.schema.createIndex('audit_events_org_idx').on('audit_events').column('organization_guid').execute();

    await idColumn(db.schema.createTable('jobs'), dialect)
      .addColumn('guid', 'text', (c) => c.notNull().unique())
      .addColumn('created_at', 'text', notNull)
      .addColumn('updated_at', 'text', notNull)
      .addColumn('operation', 'text', notNull)
      .addColumn('state', 'text', notNull)
      .addColumn('resource_type', 'text', notNull)
      .addColumn('resource_guid', 'text', notNull)
      .addColumn('errors', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('warnings', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('user_guid', 'text')
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('jobs_state_idx').on('jobs').column('state').execute();

    for (const table of ['labels', 'annotations'] as const) {
      await idColumn(db.schema.createTable(table), dialect)
        .addColumn('resource_type', 'text', notNull)
        .addColumn('resource_guid', 'text', notNull)
        .addColumn('key_prefix', 'text', notNull)
        .addColumn('key_name', 'text', notNull)
        .addColumn('value', 'text', notNull)
        .addUniqueConstraint(`${table}_key_uq`, ['resource_guid', 'key_prefix', 'key_name'])
        .execute();
    }
    await db.schema
      .createIndex('labels_selector_idx')
      .on('labels')
      .columns(['resource_type', 'key_name', 'key_prefix', 'value'])
      .execute();

    await idColumn(db.schema.createTable('changes'), dialect, 'revision')
      .addColumn('kind', 'text', notNull)
      .addColumn('guid', 'text', notNull)
      .addColumn('op', 'text', notNull)
      .addColumn('created_at', 'text', notNull)
      .execute();

    await idColumn(db.schema.createTable('identity_users'), dialect)
      .addColumn('guid', 'text', (c) => c.notNull().unique())
      .addColumn('created_at', 'text', notNull)
      .addColumn('updated_at', 'text', notNull)
      .addColumn('username', 'text', notNull)
      .addColumn('origin', 'text', notNull)
      .addColumn('email', 'text')
      .addColumn('given_name', 'text')
      .addColumn('family_name', 'text')
      .addColumn('password_hash', 'text', notNull)
      .addColumn('scopes', 'text', notNull)
      .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
      .addUniqueConstraint('identity_users_name_uq', ['username', 'origin'])
      .execute();

    await db.schema
      .createTable('identity_clients')
      .addColumn('client_id', 'text', (c) => c.primaryKey())
      .addColumn('secret_hash', 'text', notNull)
      .addColumn('scopes', 'text', notNull)
      .addColumn('authorities', 'text', notNull)
      .addColumn('grant_types', 'text', notNull)
      .addColumn('created_at', 'text', notNull)
      .execute();

    await db.schema
      .createTable('settings')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', notNull)
      .execute();
  },
};
