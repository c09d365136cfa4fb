import { notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/**
 * Locks and registry credentials (issue 15), two of Kiln's extensions to the V3 API (docs/kiln-openapi.json).
 *
 * - `locks`: a named, expiring hold on an app or a space. `resource_type`/`resource_guid` name what is held;
 *   `space_guid` is the locked resource's space (visibility follows it). The unique index on the resource makes
 *   "at most one lock per resource" a database fact, so two clients taking the same app at once cannot both win;
 *   an expired row is deleted in the transaction that takes the resource again.
 * - `registry_credentials`: a login for a container registry host at one scope (foundation, organization, space).
 *   `secret_ciphertext` is the password or token sealed by src/store/secret-box.ts (AES-256-GCM); the clear text
 *   never reaches the database. The unique index keeps one credential per host per scope, which makes "the most
 *   specific credential for a registry" a single answer.
 */
export const locksRegistryCredentials: KilnMigration = {
  async up(db, dialect) {
    await resourceColumns(db.schema.createTable('locks'), dialect)
      .addColumn('name', 'text', notNull)
      .addColumn('reason', 'text')
      .addColumn('resource_type', 'text', notNull)
      .addColumn('resource_guid', 'text', notNull)
      .addColumn('space_guid', 'text', notNull)
      .addColumn('owner_guid', 'text', notNull)
      .addColumn('owner_name', 'text', notNull)
      .addColumn('ttl_seconds', 'integer', notNull)
      .addColumn('expires_at', 'text', notNull)
      .execute();
    // resource_guid first: the write guard looks up an app and its space by guid alone (guids never collide).
    await db.schema.createIndex('locks_resource_uq').on('locks').columns(['resource_guid', 'resource_type']).unique().execute();
    await db.schema.createIndex('locks_space_idx').on('locks').columns(['space_guid']).execute();
    await db.schema.createIndex('locks_created_at_idx').on('locks').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('locks_updated_at_idx').on('locks').columns(['updated_at', 'guid']).execute();

    await resourceColumns(db.schema.createTable('registry_credentials'), dialect)
      .addColumn('scope', 'text', notNull)
      // '' for the foundation scope, else the organization or space guid (so the unique index covers every scope).
      .addColumn('scope_guid', 'text', notNull)
      .addColumn('organization_guid', 'text')
      .addColumn('space_guid', 'text')
      .addColumn('host', 'text', notNull)
      .addColumn('username', 'text', notNull)
      // `password` or `token`.
      .addColumn('secret_type', 'text', notNull)
      .addColumn('secret_ciphertext', 'text', notNull)
      .execute();
    await db.schema.createIndex('registry_credentials_scope_host_uq').on('registry_credentials').columns(['scope', 'scope_guid', 'host']).unique().execute();
    await db.schema.createIndex('registry_credentials_host_idx').on('registry_credentials').columns(['host']).execute();
    await db.schema.createIndex('registry_credentials_created_at_idx').on('registry_credentials').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('registry_credentials_updated_at_idx').on('registry_credentials').columns(['updated_at', 'guid']).execute();
  },
  async down(db) {
    await db.schema.dropTable('registry_credentials').execute();
    await db.schema.dropTable('locks').execute();
  },
};
