import { notNull, type KilnMigration } from './helpers.ts';

/**
 * What the leader's runtime runs, published for the other replicas (issue 11): with the local runtime only the
 * leader sees its instances, so followers answer process stats and route app traffic from these rows. One row per
 * process with instances; the leader rewrites them all on every change (src/ha/instance-snapshot.ts). Observed
 * state, not desired state: not in the change feed.
 */
export const publishedInstances: KilnMigration = {
  async up(db) {
    await db.schema
      .createTable('published_instances')
      .addColumn('process_guid', 'text', (c) => c.primaryKey())
      .addColumn('replica', 'text', notNull)
      // JSON: the runtime's InstanceStatus[] of the process.
      .addColumn('instances', 'text', notNull)
      .addColumn('published_at', 'text', notNull)
      .execute();
  },
};
