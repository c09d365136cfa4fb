import { sql, TableNode, type Kysely, type RawBuilder, type SelectQueryNode } from 'kysely';
import { isEveryRow } from './every-row.ts';
import type { Database } from './schema.ts';

/**
 * Whether a list query reads a whole table as it is — one table; no join, grouping, DISTINCT or condition (other
 * than a global reader's everyRow() visibility) — so that its number of rows is the table's row count
 * (migration 0087). Read from the query itself, so no list can use the count when a filter of its own (visibility,
 * `names`, a label selector) applies.
 */
export function readsWholeTable(node: SelectQueryNode, table: string): boolean {
  if ((node.where && !isEveryRow(node.where.where)) || node.joins?.length || node.groupBy || node.having || node.distinctOn || node.frontModifiers?.length) return false;
  if (node.with || node.setOperations?.length || node.limit || node.offset || node.fetch || node.top) return false;
  const froms = node.from?.froms ?? [];
  if (froms.length !== 1) return false;
  const from = froms[0]!;
  return TableNode.is(from) && !from.table.schema && from.table.identifier.name === table;
}

/**
 * The kept row count of `table` as a scalar subquery: the counter plus its pending deltas, read in one statement
 * (one snapshot, so a compaction moving deltas into the counter is seen whole or not at all). NULL when the table
 * has no counter.
 */
export function keptRowCount(table: string): RawBuilder<number | string | null> {
  return sql<number | string | null>`(select c.n + coalesce((select sum(d.delta) from row_count_deltas d where d.table_name = ${table}), 0) from row_counts c where c.table_name = ${table})`;
}

/**
 * Folds the pending deltas into the counters (PostgreSQL only: SQLite keeps none, and has no DELETE in a WITH);
 * returns how many it folded. One statement: rows another compaction deleted first are skipped by this one's
 * DELETE (and its UPDATE adds to the counter as that one left it), so concurrent compactions on several replicas
 * never add a delta twice. Two of them can deadlock on the rows they lock; PostgreSQL then aborts one, which
 * changes nothing (the reconciler tries again later).
 */
export async function compactRowCounts(db: Kysely<Database>): Promise<number> {
  const { rows } = await sql<{ folded: number | string }>`
    with moved as (delete from row_count_deltas returning table_name, delta),
    sums as (select table_name, sum(delta) as s, count(*) as k from moved group by table_name),
    bumped as (update row_counts c set n = c.n + sums.s from sums where c.table_name = sums.table_name returning sums.k)
    select coalesce(sum(k), 0) as folded from bumped`.execute(db);
  return Number(rows[0]?.folded ?? 0);
}

/** Tables whose kept count differs from `count(*)` (the invariant the triggers keep; checked by the test harness). */
export async function rowCountDrift(db: Kysely<Database>): Promise<Array<{ table: string; kept: number; actual: number }>> {
  const counters = await db.selectFrom('row_counts').select('table_name').execute();
  const drift = [];
  for (const { table_name: table } of counters) {
    const { rows } = await sql<{ kept: number | string; actual: number | string }>`select ${keptRowCount(table)} as kept, (select count(*) from ${sql.table(table)}) as actual`.execute(db);
    const kept = Number(rows[0]!.kept);
    const actual = Number(rows[0]!.actual);
    if (kept !== actual) drift.push({ table, kept, actual });
  }
  return drift;
}
