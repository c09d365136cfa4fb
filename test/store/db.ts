import pg from 'pg';
import { migrateToLatest, openDatabase, type DbHandle } from '../../src/store/db.ts';
import { Store } from '../../src/store/store.ts';
import type { Config } from '../../src/config/config.ts';

/**
 * A fresh, empty database for store tests, chosen the same way as test/helpers/harness.ts: in-memory SQLite,
 * or a throw-away PostgreSQL database when KILN_TEST_DIALECT=postgres and KILN_TEST_DATABASE_URL are set.
 * Store tests do not go through buildKiln so they exercise the store without identity, seeding or controllers.
 */
export interface TestDb {
  handle: DbHandle;
  config: Config['database'];
  close(): Promise<void>;
}

export const onPostgres = (): boolean =>
  process.env.KILN_TEST_DIALECT === 'postgres' && !!process.env.KILN_TEST_DATABASE_URL;

let counter = 0;

export async function openTestDb(): Promise<TestDb> {
  if (!onPostgres()) {
    const config: Config['database'] = { kind: 'sqlite', file: ':memory:' };
    const handle = openDatabase(config);
    return { handle, config, close: () => handle.db.destroy() };
  }
  const adminUrl = process.env.KILN_TEST_DATABASE_URL!;
  const name = `kiln_store_${process.pid}_${Date.now()}_${counter++}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const config: Config['database'] = { kind: 'postgres', url: url.toString() };
  const handle = openDatabase(config);
  return {
    handle,
    config,
    async close() {
      await handle.db.destroy();
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/** A migrated store on a fresh database. */
export async function openTestStore(): Promise<{ store: Store; db: TestDb; close(): Promise<void> }> {
  const db = await openTestDb();
  await migrateToLatest(db.handle);
  const store = new Store(db.handle);
  // Store.close destroys the kysely instance, which TestDb.close also does; closing through TestDb alone
  // keeps the PostgreSQL database drop in one place.
  return { store, db, close: () => db.close() };
}

/** Columns that have database defaults but are required by the row types. */
export const ORG_DEFAULTS = { suspended: 0, status: 'active' } as const;
export const SPACE_DEFAULTS = { status: 'active', allow_ssh: 1 } as const;
