import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type DbHandle } from '../../src/store/db.ts';

// The SQLite connection keeps prepared statements and builds row objects itself (src/store/db.ts); these
// pin down that rows still look exactly as better-sqlite3 would return them.
describe('SQLite statement cache and row building', () => {
  let handle: DbHandle;
  beforeEach(() => {
    handle = openDatabase({ kind: 'sqlite', file: ':memory:' });
  });
  afterEach(() => handle.db.destroy());

  it('returns named rows, insert results and RETURNING rows', async () => {
    const db = handle.db;
    await sql`create table t (id integer primary key, name text, n integer, blob_col blob)`.execute(db);
    const inserted = await sql`insert into t (name, n) values (${'a'}, ${1}), (${'b'}, ${null})`.execute(db);
    expect(inserted.numAffectedRows).toBe(2n);
    const returned = await sql<{ id: number; name: string }>`insert into t (name) values (${'c'}) returning id, name`.execute(db);
    expect(returned.rows).toEqual([{ id: 3, name: 'c' }]);
    const rows = await sql`select * from t order by id`.execute(db);
    expect(rows.rows).toEqual([
      { id: 1, name: 'a', n: 1, blob_col: null },
      { id: 2, name: 'b', n: null, blob_col: null },
      { id: 3, name: 'c', n: null, blob_col: null },
    ]);
    expect(Object.keys(rows.rows[0] as object)).toEqual(['id', 'name', 'n', 'blob_col']);
  });

  it('lets the last of two same-named columns win, as better-sqlite3 does', async () => {
    const { rows } = await sql`select 1 as x, 2 as x, 3 as y`.execute(handle.db);
    expect(rows).toEqual([{ x: 2, y: 3 }]);
  });

  it('keeps any column name as data, never as code or as the prototype', async () => {
    const generated = (await sql`select 2 as "a""b", 3 as "x\\n});process.exit(1);({", 4 as "constructor"`.execute(handle.db)).rows[0];
    expect(generated).toEqual({ 'a"b': 2, 'x\\n});process.exit(1);({': 3, constructor: 4 });
    const proto = (await sql`select 1 as "__proto__", 2 as "y"`.execute(handle.db)).rows[0] as Record<string, unknown>;
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.keys(proto)).toEqual(['__proto__', 'y']);
    expect(Object.getOwnPropertyDescriptor(proto, '__proto__')?.value).toBe(1);
  });

  it('sees columns added after a statement was first prepared', async () => {
    const db = handle.db;
    await sql`create table t (id integer primary key, name text)`.execute(db);
    await sql`insert into t (name) values ('a')`.execute(db);
    const select = () => sql`select * from t`.execute(db);
    expect((await select()).rows).toEqual([{ id: 1, name: 'a' }]);
    await sql`alter table t add column extra text default 'x'`.execute(db);
    expect((await select()).rows).toEqual([{ id: 1, name: 'a', extra: 'x' }]);
  });

  it('streams rows as objects', async () => {
    const db = handle.db;
    await db.schema.createTable('t').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('v', 'text').execute();
    await sql`insert into t (v) values ('p'), ('q')`.execute(db);
    const seen: unknown[] = [];
    for await (const row of db.selectFrom('t' as never).selectAll().stream()) seen.push(row);
    expect(seen).toEqual([
      { id: 1, v: 'p' },
      { id: 2, v: 'q' },
    ]);
  });
});

describe('SQLite data version', () => {
  it('moves with every committed change, its own or another connection’s, and not with reads', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-dataversion-'));
    const file = path.join(dir, 'k.sqlite');
    const handle = openDatabase({ kind: 'sqlite', file });
    try {
      const version = handle.dataVersion!;
      await sql`create table t (id integer primary key, v text)`.execute(handle.db);
      const v0 = version();
      await sql`select * from t`.execute(handle.db);
      expect(version()).toBe(v0);

      await sql`insert into t (v) values ('a')`.execute(handle.db);
      const v1 = version();
      expect(v1).not.toBe(v0);
      await sql`update t set v = 'a' where id = 1`.execute(handle.db);
      expect(version()).not.toBe(v1);

      const v2 = version();
      const other = new SQLite(file);
      other.prepare(`insert into t (v) values ('b')`).run();
      other.close();
      expect(version()).not.toBe(v2);
    } finally {
      await handle.db.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
