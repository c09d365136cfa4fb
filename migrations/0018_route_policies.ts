import { notNull, resourceColumns, type KilnMigration } from './helpers.ts';

/**
 * Route policies (issue 12 item 17): who may call a route on a domain that enforces them. A domain gains
 * `enforce_route_policies` (0/1, default 0) and CC's optional `route_policies_scope`; a policy row keeps its
 * source split as CC's model does (`source_type` app/space/org/any, `source_guid` '' for any), so the
 * `source_guids` filter is a plain column match and one route cannot hold the same source twice (unique key).
 */
export const routePolicies: KilnMigration = {
  async up(db, dialect) {
    await db.schema.alterTable('domains').addColumn('enforce_route_policies', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    await db.schema.alterTable('domains').addColumn('route_policies_scope', 'text').execute();
    await resourceColumns(db.schema.createTable('route_policies'), dialect)
      .addColumn('route_guid', 'text', notNull)
      .addColumn('source_type', 'text', notNull)
      .addColumn('source_guid', 'text', notNull)
      .addUniqueConstraint('route_policies_source_unique', ['route_guid', 'source_type', 'source_guid'])
      .execute();
    await db.schema.createIndex('route_policies_source_guid_idx').on('route_policies').column('source_guid').execute();
  },
};
