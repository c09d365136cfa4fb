import { sql } from 'kysely';
import type { KilnMigration } from './helpers.ts';

/**
 * PostgreSQL: every statement that appends to the change feed notifies `kiln_changes` (delivered at commit, to
 * every replica LISTENing; see src/ha/change-notifier.ts), so followers of the feed need not poll it. A trigger
 * rather than a NOTIFY from Store.write: no extra round trip per write. SQLite has one replica: nothing to do.
 */
export const changesNotify: KilnMigration = {
  async up(db, dialect) {
    if (dialect !== 'postgres') return;
    await sql`create function kiln_notify_changes() returns trigger language plpgsql as $$
      begin
        perform pg_notify('kiln_changes', '');
        return null;
      end $$`.execute(db);
    await sql`create trigger changes_notify after insert on changes for each statement execute function kiln_notify_changes()`.execute(db);
  },
  async down(db, dialect) {
    if (dialect !== 'postgres') return;
    await sql`drop trigger if exists changes_notify on changes`.execute(db);
    await sql`drop function if exists kiln_notify_changes()`.execute(db);
  },
};
