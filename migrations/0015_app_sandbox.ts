import { idColumn, notNull, type KilnMigration } from './helpers.ts';

/**
 * Sandbox identities (issue 8): when Kiln runs as root each app's processes run under their own unprivileged
 * uid/gid, derived from this table's auto-increment id. Rows outlive their app on purpose: a uid is never handed
 * to a second app, so files an old app left behind can never be another app's.
 */
export const appSandbox: KilnMigration = {
  async up(db, dialect) {
    await idColumn(db.schema.createTable('app_sandbox_ids'), dialect)
      .addColumn('app_guid', 'text', notNull)
      .addColumn('created_at', 'text', notNull)
      .execute();
    await db.schema.createIndex('app_sandbox_ids_app_guid_uq').on('app_sandbox_ids').column('app_guid').unique().execute();
  },
};
