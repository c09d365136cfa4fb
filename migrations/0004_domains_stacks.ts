import { sql } from 'kysely';
import type { KilnMigration } from './helpers.ts';

/**
 * Stacks get a lifecycle state (ACTIVE, RESTRICTED, DEPRECATED, DISABLED) with an optional reason, as Cloud
 * Controller's stacks have. Domain names become unique case-insensitively: DNS names are, and the index
 * settles races between concurrent creates of `Example.com` and `example.com`.
 */
export const domainsStacks: KilnMigration = {
  async up(db) {
    await db.schema.alterTable('stacks').addColumn('state', 'text', (c) => c.notNull().defaultTo('ACTIVE')).execute();
    await db.schema.alterTable('stacks').addColumn('state_reason', 'text').execute();
    await db.schema.createIndex('domains_name_lower_uq').on('domains').expression(sql`lower(name)`).unique().execute();
  },
  async down(db) {
    await db.schema.dropIndex('domains_name_lower_uq').execute();
    await db.schema.alterTable('stacks').dropColumn('state_reason').execute();
    await db.schema.alterTable('stacks').dropColumn('state').execute();
  },
};
