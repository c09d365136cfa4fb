import { sql } from 'kysely';
import { SHARED_ISOLATION_SEGMENT_GUID, SHARED_ISOLATION_SEGMENT_NAME } from '../src/domain/isolation-segments.ts';
import type { KilnMigration } from './helpers.ts';

/**
 * Cloud Controller seeds the `shared` isolation segment under a fixed guid (clients and operators refer to
 * it by that guid), and compares isolation segment names case-insensitively. The unique index settles
 * races between concurrent creates that differ only in case.
 */
export const isolationSegments: KilnMigration = {
  async up(db) {
    await db.schema
      .createIndex('isolation_segments_name_ci_uq')
      .on('isolation_segments')
      .expression(sql`lower(name)`)
      .unique()
      .execute();
    const existing = await db
      .selectFrom('isolation_segments')
      .select('guid')
      .where('guid', '=', SHARED_ISOLATION_SEGMENT_GUID)
      .executeTakeFirst();
    if (!existing) {
      const now = new Date().toISOString();
      await db
        .insertInto('isolation_segments')
        .values({ guid: SHARED_ISOLATION_SEGMENT_GUID, created_at: now, updated_at: now, generation: 1, name: SHARED_ISOLATION_SEGMENT_NAME })
        .execute();
    }
  },
  async down(db) {
    await db.deleteFrom('isolation_segments').where('guid', '=', SHARED_ISOLATION_SEGMENT_GUID).execute();
    await db.schema.dropIndex('isolation_segments_name_ci_uq').execute();
  },
};
