import type { KilnMigration } from './helpers.ts';

/**
 * Quota names are unique (organization quotas globally, space quotas per org), as Cloud Controller's
 * indexes make them; the indexes settle races between concurrent creates. The other two indexes serve
 * "which orgs/spaces use this quota" (relationships, filters, delete-in-use checks).
 */
export const quotas: KilnMigration = {
  async up(db) {
    await db.schema.createIndex('organization_quotas_name_uq').on('organization_quotas').column('name').unique().execute();
    await db.schema.createIndex('space_quotas_org_name_uq').on('space_quotas').columns(['organization_guid', 'name']).unique().execute();
    await db.schema.createIndex('organizations_quota_guid_idx').on('organizations').column('quota_guid').execute();
    await db.schema.createIndex('spaces_space_quota_guid_idx').on('spaces').column('space_quota_guid').execute();
  },
  async down(db) {
    for (const name of ['spaces_space_quota_guid_idx', 'organizations_quota_guid_idx', 'space_quotas_org_name_uq', 'organization_quotas_name_uq']) {
      await db.schema.dropIndex(name).execute();
    }
  },
};
