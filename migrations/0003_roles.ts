import { sql } from 'kysely';
import type { KilnMigration } from './helpers.ts';

/**
 * One role of a type per user and org/space. Settles races between concurrent role creations (the second
 * gets the "already has … role" 422). NULL parents are folded to '' because unique indexes treat NULLs as distinct.
 */
export const rolesUnique: KilnMigration = {
  async up(db) {
    await db.schema
      .createIndex('roles_assignment_uq')
      .on('roles')
      .expression(sql`user_guid, type, coalesce(organization_guid, ''), coalesce(space_guid, '')`)
      .unique()
      .execute();
  },
  async down(db) {
    await db.schema.dropIndex('roles_assignment_uq').execute();
  },
};
