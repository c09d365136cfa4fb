import { notNull, type KilnMigration } from './helpers.ts';

/**
 * Conditions (issue 17): what the reconcilers last concluded about a resource — one row per (kind, guid, type),
 * e.g. an app's `Ready` condition with reason `DropletNotStaged`. `last_transition_time` moves only when the
 * status flips, as in Kubernetes; `observed_generation` is the resource generation the conclusion was drawn from.
 */
export const conditions: KilnMigration = {
  async up(db) {
    await db.schema
      .createTable('conditions')
      .addColumn('kind', 'text', notNull)
      .addColumn('guid', 'text', notNull)
      .addColumn('type', 'text', notNull)
      // 'True' | 'False' | 'Unknown', spelled as Kubernetes spells them.
      .addColumn('status', 'text', notNull)
      .addColumn('reason', 'text', notNull)
      .addColumn('message', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('observed_generation', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('last_transition_time', 'text', notNull)
      .addPrimaryKeyConstraint('conditions_pk', ['kind', 'guid', 'type'])
      .execute();
  },
};
