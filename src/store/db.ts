import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Migration } from 'kysely';
import { migrations } from '../../migrations/index.ts';
import type { Dialect } from '../../migrations/helpers.ts';
import type { Config } from '../config/config.ts';
import type { Database } from './schema.ts';

export type { Dialect };

export interface DbHandle {
  db: Kysely<Database>;
  dialect: Dialect;
  /**
   * A value that differs whenever committed data may have changed, for caches of query results.
   * - SQLite: total_changes() counts every row this connection inserted, updated or deleted, and data_version
   *   moves when another connection (another process on the same file) commits. Both are read without waiting
   *   for the connection kysely may be holding for a transaction; counting a transaction's changes before it
   *   commits only costs a cache miss.
   * - PostgreSQL: the current snapshot (xmin:xmax:in-progress ids). Every committing write transaction either
   *   leaves the in-progress list or moves xmax, so equal snapshots see equal data, on every replica of Kiln
   *   sharing the server; read-only transactions get no id and change nothing. Costs one round trip.
   */
  dataVersion: () => string | Promise<string>;
}

// PostgreSQL returns int8 (count(*), bigint columns) as strings; every such value Kiln stores fits a double.
pg.types.setTypeParser(20, (v) => Number(v));

export function openDatabase(database: Config['database'], opts: { onIdleError?: (err: Error) => void } = {}): DbHandle {
  if (database.kind === 'postgres') {
    const pool = new pg.Pool({ connectionString: database.url, max: 10 });
    // An idle connection the server closes (restart, failover, an admin terminating it) is reported on the pool;
    // without a listener Node treats that as an uncaught error and the whole process dies. The pool replaces
    // the connection on next use, so reporting it is all there is to do.
    pool.on('error', (err) => opts.onIdleError?.(err));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const snapshot = async () => (await sql<{ s: string }>`select pg_current_snapshot()::text as s`.execute(db)).rows[0]!.s;
    return { db, dialect: 'postgres', dataVersion: snapshot };
  }
  if (database.file !== ':memory:') fs.mkdirSync(path.dirname(database.file), { recursive: true });
  const sqlite = new SQLite(database.file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  // SQLite's default page cache is 2 MB; 10,000 spaces with labels already make a 7 MB file, and every page
  // read past the cache is a copy from the OS (list queries ran ~1.7x slower). This is a ceiling, not an
  // allocation: the cache grows only as pages are read.
  sqlite.pragma('cache_size = -65536');
  const totalChanges = sqlite.prepare('select total_changes()').pluck();
  const dataVersion = sqlite.prepare('pragma data_version').pluck();
  return {
    db: new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) }),
    dialect: 'sqlite',
    dataVersion: () => `${String(dataVersion.get())}.${String(totalChanges.get())}`,
  };
}

/**
 * kysely prepares every statement anew; preparing costs as much as running a small query. Kiln issues the same
 * few hundred SQL texts over and over, so prepared statements are kept (bounded, oldest dropped first). Reusing a
 * statement is safe: kysely runs one query at a time on its single SQLite connection, and SQLite re-prepares a
 * statement by itself when the schema changes. DDL empties the cache anyway, because {@link RowStatement}
 * remembers column names.
 */
function withStatementCache(db: SQLite.Database, max = 1000): SQLite.Database {
  const cache = new Map<string, RowStatement>();
  const prepare = (source: string): RowStatement => {
    let stmt = cache.get(source);
    if (stmt) return stmt;
    stmt = new RowStatement(db.prepare(source), () => cache.clear());
    if (cache.size >= max) cache.delete(cache.keys().next().value!);
    cache.set(source, stmt);
    return stmt;
  };
  return new Proxy(db, {
    get(target, prop) {
      if (prop === 'prepare') return prepare;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const DDL = /^\s*(create|alter|drop)\b/i;

type RowBuilder = (row: unknown[]) => Record<string, unknown>;

/**
 * A function that turns one raw row of these columns into an object. It is generated per column list because one
 * shared loop (`o[columns[i]] = row[i]`) sees every statement's names and goes megamorphic: with rows of 41
 * column lists it took 14-18 µs per 50-row, 11-column page against 5-6 µs for literals with the names written out.
 * The names are embedded with JSON.stringify, so no column name can inject code; `__proto__` (which a literal
 * would treat as the prototype) takes the loop instead. Duplicate names keep the last value, as better-sqlite3 does.
 */
function rowBuilder(columns: readonly string[]): RowBuilder {
  if (columns.includes('__proto__')) {
    return (row) => {
      const o: Record<string, unknown> = {};
      for (let c = 0; c < columns.length; c++) Object.defineProperty(o, columns[c]!, { value: row[c], enumerable: true, writable: true, configurable: true });
      return o;
    };
  }
  const members = columns.map((name, i) => `${JSON.stringify(name)}: row[${i}]`).join(', ');
  return new Function('row', `return { ${members} };`) as RowBuilder;
}

/**
 * The part of a better-sqlite3 statement kysely's SQLite driver uses (`reader`, `all`, `run`, `iterate`),
 * with rows fetched as arrays and turned into objects here. better-sqlite3 builds each row object through V8's
 * C++ API, member by member: measured on a 50-row, 11-column page that took 180 µs against ~100 µs for raw
 * arrays plus a generated builder, and objects built in JavaScript share one hidden class, which also keeps the
 * presenters and JSON.stringify on their fast paths.
 */
class RowStatement {
  readonly reader: boolean;
  private readonly build: RowBuilder | undefined;

  constructor(
    private readonly stmt: SQLite.Statement,
    private readonly onSchemaChange: () => void,
  ) {
    this.reader = stmt.reader;
    if (this.reader) {
      stmt.raw(true);
      this.build = rowBuilder(stmt.columns().map((c) => c.name));
    }
  }

  all(params: readonly unknown[]): Record<string, unknown>[] {
    const rows = this.stmt.all(...params) as unknown[][];
    const build = this.build!;
    const out = new Array<Record<string, unknown>>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = build(rows[i]!);
    return out;
  }

  run(params: readonly unknown[]): SQLite.RunResult {
    const result = this.stmt.run(...params);
    if (DDL.test(this.stmt.source)) this.onSchemaChange();
    return result;
  }

  *iterate(params: readonly unknown[]): IterableIterator<Record<string, unknown>> {
    const build = this.build!;
    for (const row of this.stmt.iterate(...params) as IterableIterator<unknown[]>) yield build(row);
  }
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
  // Ordered: a migration that sorts before one already applied is refused, so a schema is always built the same way.
  const migrator = new Migrator({ db: handle.db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
