import { sql } from 'kysely';
import { notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/**
 * Admin buildpacks (issue 3). Positions are 1-based and kept dense per lifecycle by the service (no unique index
 * on them: shifting a range would trip it mid-statement on PostgreSQL). A name is unique per stack and lifecycle,
 * case-insensitively, with "no stack" counting as one stack — hence coalesce, as NULLs never collide in an index.
 * `builtin` names a buildpack shipped in Kiln's source tree, used while no bits were uploaded (blob_key null).
 */
export const buildpacks: KilnMigration = {
  async up(db, dialect) {
    await resourceColumns(db.schema.createTable('buildpacks'), dialect)
      .addColumn('name', 'text', notNull)
      .addColumn('stack', 'text')
      .addColumn('position', 'integer', notNull)
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('locked', 'integer', (c) => c.notNull().defaultTo(0))
      // AWAITING_UPLOAD or READY.
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('AWAITING_UPLOAD'))
      .addColumn('filename', 'text')
      .addColumn('blob_key', 'text')
      // SHA-256 of the uploaded zip.
      .addColumn('checksum', 'text')
      // `buildpack` (classic) or `cnb`.
      .addColumn('lifecycle', 'text', (c) => c.notNull().defaultTo('buildpack'))
      .addColumn('builtin', 'text')
      .execute();
    await db.schema
      .createIndex('buildpacks_name_stack_lifecycle_uq')
      .on('buildpacks')
      .expression(sql`lower(name), coalesce(stack, ''), lifecycle`)
      .unique()
      .execute();
    await db.schema.createIndex('buildpacks_position_idx').on('buildpacks').columns(['lifecycle', 'position', 'guid']).execute();
    await db.schema.createIndex('buildpacks_created_at_idx').on('buildpacks').columns(['created_at', 'guid']).execute();
    await db.schema.createIndex('buildpacks_updated_at_idx').on('buildpacks').columns(['updated_at', 'guid']).execute();
  },
};
