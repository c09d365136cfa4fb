import type { ColumnDefinitionBuilder, CreateTableBuilder, Kysely } from 'kysely';

export type Dialect = 'sqlite' | 'postgres';

// Migrations work on any schema; kysely's own Migration type uses Kysely<any> for the same reason.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyDb = Kysely<any>;

export interface KilnMigration {
  up(db: AnyDb, dialect: Dialect): Promise<void>;
  down?(db: AnyDb, dialect: Dialect): Promise<void>;
}

/** An auto-incrementing integer primary key: `integer ... autoincrement` on SQLite, `serial` on PostgreSQL. */
export function idColumn<T extends string, C extends string>(
  table: CreateTableBuilder<T, C>,
  dialect: Dialect,
  name = 'id',
): CreateTableBuilder<T, C> {
  return dialect === 'postgres'
    ? table.addColumn(name, 'serial', (c) => c.primaryKey())
    : table.addColumn(name, 'integer', (c) => c.primaryKey().autoIncrement());
}

/** guid, created_at, updated_at and generation: the columns of every first-class resource. */
export function resourceColumns<T extends string, C extends string>(
  table: CreateTableBuilder<T, C>,
  dialect: Dialect,
): CreateTableBuilder<T, C> {
  return idColumn(table, dialect)
    .addColumn('guid', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1));
}

export const notNull = (c: ColumnDefinitionBuilder) => c.notNull();
