import { notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/**
 * Revisions and deployments (issue 4). A deployment row carries everything its controller and the process
 * controller need to run a rollout after a crash: both versions of the rolled process, the droplet and launch
 * settings of the previous version, and the instance counts allowed so far. `processes.revision_guid` names the
 * revision a process runs (the deployed-revisions list); `processes.launched_*` what its running version started with.
 */
export const deployments: KilnMigration = {
  async up(db, dialect) {
    await resourceColumns(db.schema.createTable('revisions'), dialect)
      .addColumn('app_guid', 'text', notNull)
      .addColumn('version', 'integer', notNull)
      .addColumn('droplet_guid', 'text', notNull)
      // JSON object of the app's user environment variables when the revision was made.
      .addColumn('environment_variables', 'text', (c) => c.notNull().defaultTo('{}'))
      // JSON object: process type → user command (null = the droplet's detected command).
      .addColumn('commands', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('description', 'text')
      .execute();
    await db.schema.createIndex('revisions_app_version_uq').on('revisions').columns(['app_guid', 'version']).unique().execute();
    await db.schema.createIndex('revisions_created_at_idx').on('revisions').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('revisions_updated_at_idx').on('revisions').columns(['updated_at', 'guid']).execute();

    await resourceColumns(db.schema.createTable('deployments'), dialect)
      .addColumn('app_guid', 'text', notNull)
      // Internal state: DEPLOYING, PREPAUSED, PAUSED, CANCELING, DEPLOYED, CANCELED.
      .addColumn('state', 'text', notNull)
      .addColumn('status_value', 'text', notNull)
      .addColumn('status_reason', 'text', notNull)
      .addColumn('strategy', 'text', notNull)
      .addColumn('droplet_guid', 'text', notNull)
      .addColumn('previous_droplet_guid', 'text')
      .addColumn('revision_guid', 'text')
      .addColumn('previous_revision_guid', 'text')
      // The rolled (web) process and its two versions.
      .addColumn('process_guid', 'text', notNull)
      .addColumn('process_type', 'text', notNull)
      .addColumn('old_version', 'text')
      .addColumn('new_version', 'text', notNull)
      // Old-version instances at the start, the new target, and the counts the process controller runs now.
      .addColumn('original_instances', 'integer', notNull)
      .addColumn('target_instances', 'integer', notNull)
      .addColumn('new_instances', 'integer', notNull)
      .addColumn('old_instances', 'integer', notNull)
      .addColumn('max_in_flight', 'integer', notNull)
      // Options as requested (null = not given).
      .addColumn('web_instances', 'integer')
      .addColumn('memory_in_mb', 'integer')
      .addColumn('disk_in_mb', 'integer')
      .addColumn('log_rate_limit_in_bytes_per_second', 'bigint')
      // JSON array of {instance_weight}; null for rolling deployments.
      .addColumn('canary_steps', 'text')
      .addColumn('canary_step', 'integer', (c) => c.notNull().defaultTo(1))
      // Launch settings of the previous version, for old instances started again after a crash or a cancel.
      .addColumn('previous_environment_variables', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('previous_command', 'text')
      .addColumn('previous_memory_in_mb', 'integer', notNull)
      .addColumn('previous_disk_in_mb', 'integer', notNull)
      .addColumn('previous_log_rate_limit', 'bigint', notNull)
      .addColumn('last_healthy_at', 'text', notNull)
      .addColumn('last_status_change', 'text', notNull)
      .addColumn('error', 'text')
      .execute();
    await db.schema.createIndex('deployments_app_idx').on('deployments').columns(['app_guid', 'status_value']).execute();
    await db.schema.createIndex('deployments_process_idx').on('deployments').columns(['process_guid', 'status_value']).execute();
    await db.schema.createIndex('deployments_created_at_idx').on('deployments').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('deployments_updated_at_idx').on('deployments').columns(['updated_at', 'guid']).execute();

    await db.schema.alterTable('processes').addColumn('revision_guid', 'text').execute();
    // What the process's running version was launched with (set when a version's first instance starts, or by a
    // deployment): a later rollout keeps old instances on exactly that, whatever changed in the app since.
    await db.schema.alterTable('processes').addColumn('launched_version', 'text').execute();
    await db.schema.alterTable('processes').addColumn('launched_droplet_guid', 'text').execute();
    await db.schema.alterTable('processes').addColumn('launched_environment_variables', 'text').execute();
  },
};
