import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration } from 'kysely';
import { migrations } from '../../migrations/index.ts';
import type { Dialect } from '../../migrations/helpers.ts';
import type { Config } from '../config/config.ts';
import type { Database } from './schema.ts';

export type { Dialect };

export interface DbHandle {
  db: Kysely<Database>;
  dialect: Dialect;
}

// PostgreSQL returns int8 (count(*), bigint columns) as strings; every such value Kiln stores fits a double.
pg.types.setTypeParser(20, (v) => Number(v));

export function openDatabase(database: Config['database']): DbHandle {
  if (database.kind === 'postgres') {
    const pool = new pg.Pool({ connectionString: database.url, max: 10 });
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), dialect: 'postgres' };
  }
  if (database.file !== ':memory:') fs.mkdirSync(path.dirname(database.file), { recursive: true });
  const sqlite = new SQLite(database.file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  return { db: new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) }), dialect: 'sqlite' };
}

/** Brings the schema up to date; safe to run on every start. */
export async function migrateToLatest(handle: DbHandle): Promise<string[]> {
  const provider = {
    async getMigrations(): Promise<Record<string, Migration>> {
      return Object.fromEntries(
        Object.entries(migrations).map(([name, m]) => [
          name,
          {
            up: (db) => m.up(db, handle.dialect),
            ...(m.down ? { down: (db: Kysely<unknown>) => m.down!(db, handle.dialect) } : {}),
          } satisfies Migration,
        ]),
      );
    },
  };
  const migrator = new Migrator({ db: handle.db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
