import { sql, type Expression, type ExpressionBuilder, type SelectQueryBuilder, type SqlBool } from 'kysely';
import type { Requirement } from '../domain/label-selector.ts';
import type { ListParams } from '../domain/list-params.ts';
import { keptRowCount, readsWholeTable } from './row-counts.ts';
import type { Database } from './schema.ts';

export interface ListQueryOptions {
  /** Table (or alias) whose guid/created_at/updated_at/id columns the list is about. */
  table: string;
  /** Resource type under which its labels are stored. */
  resourceType?: string;
  page: number;
  perPage: number;
  guids?: string[];
  timestamps?: Array<{ field: 'created_at' | 'updated_at'; op: 'eq' | 'lt' | 'lte' | 'gt' | 'gte'; values: string[] }>;
  labelSelector?: Requirement[];
  /** Sort column (in `table`) and direction; default is insertion order (`id`). */
  orderBy?: { column: string; desc: boolean };
  /**
   * Find the page from the ids of all matches (one query gives the total and the page), then read its rows by id.
   * For lists whose matches are all visited and sorted anyway (joins, filters on another table), where counting
   * them separately and sorting whole rows costs more; a label selector always pages this way.
   */
  byIds?: boolean;
  /**
   * With byIds: the query that reads a page's rows by id (the list's rows from their own table, without its filters,
   * which would lead the planner to walk them all again). Default: the caller's query restricted to the ids.
   */
  rowsByIds?: (ids: number[]) => AnySelect;
}

/** The paging, `guids`, timestamp, label and order parts of a parsed CF list request, for `table`. */
export function listOptions(table: string, params: ListParams, extra: Partial<ListQueryOptions> = {}): ListQueryOptions {
  return {
    table,
    page: params.page,
    perPage: params.perPage,
    guids: params.filters.guids,
    timestamps: params.timestamps,
    labelSelector: params.labelSelector,
    orderBy: params.orderBy ? { column: params.orderBy.field, desc: params.orderBy.desc } : undefined,
    ...extra,
  };
}

export interface Page<R> {
  rows: R[];
  total: number;
}

// Lists are assembled over whichever table an endpoint names, so the builder's table and row types are
// only known to the caller; it passes a typed query in and gets its own row type back.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnySelect = SelectQueryBuilder<Database, any, any>;

const secondStart = (t: string) => `${t.slice(0, 19)}.000Z`;
const secondEnd = (t: string) => `${t.slice(0, 19)}.999Z`;

/** Condition `<table>.guid IN (guids carrying labels that match)` for one selector requirement. */
export function labelRequirement(
  eb: ExpressionBuilder<Database, never>,
  table: string,
  resourceType: string,
  r: Requirement,
): Expression<SqlBool> {
  let matching = eb
    .selectFrom('labels')
    .select('labels.resource_guid')
    .where('labels.resource_type', '=', resourceType)
    .where('labels.key_prefix', '=', r.prefix)
    .where('labels.key_name', '=', r.name);
  if (r.op === 'in' || r.op === 'notin') matching = matching.where('labels.value', 'in', r.values);
  const guid = sql.ref<string>(`${table}.guid`);
  return r.op === 'exists' || r.op === 'in' ? eb(guid, 'in', matching) : eb(guid, 'not in', matching);
}

/**
 * Applies the filters every CF list shares (guids, created_ats/updated_ats, label_selector), counts
 * the matches, and returns one page in the requested order (ties broken by guid, so paging is stable).
 */
export async function listPage<Q extends AnySelect>(
  query: Q,
  opts: ListQueryOptions,
): Promise<Page<Awaited<ReturnType<Q['execute']>>[number]>> {
  const t = opts.table;
  let q: AnySelect = query;
  if (opts.guids) q = q.where(sql.ref(`${t}.guid`), 'in', opts.guids.length ? opts.guids : ['']);
  for (const f of opts.timestamps ?? []) {
    const col = sql.ref<string>(`${t}.${f.field}`);
    q = q.where((eb) => {
      switch (f.op) {
        case 'eq':
          return eb.or(f.values.map((v) => eb.and([eb(col, '>=', secondStart(v)), eb(col, '<=', secondEnd(v))])));
        case 'lt':
          return eb(col, '<', secondStart(f.values[0]!));
        case 'lte':
          return eb(col, '<=', secondEnd(f.values[0]!));
        case 'gt':
          return eb(col, '>', secondEnd(f.values[0]!));
        case 'gte':
          return eb(col, '>=', secondStart(f.values[0]!));
      }
    });
  }
  if (opts.labelSelector?.length) {
    const rt = opts.resourceType ?? t;
    for (const r of opts.labelSelector) {
      q = q.where((eb) => labelRequirement(eb as unknown as ExpressionBuilder<Database, never>, t, rt, r));
    }
  }

  const ordered = (b: AnySelect): AnySelect => {
    if (!opts.orderBy) return b.orderBy(sql.ref(`${t}.id`), 'asc');
    const dir = opts.orderBy.desc ? 'desc' : 'asc';
    return b.orderBy(sql.ref(`${t}.${opts.orderBy.column}`), dir).orderBy(sql.ref(`${t}.guid`), dir);
  };
  const offset = (opts.page - 1) * opts.perPage;

  if (!opts.labelSelector?.length && !opts.byIds) {
    const count = async (): Promise<number> => {
      const counting = q.clearSelect().clearOrderBy();
      if (readsWholeTable(counting.toOperationNode(), t)) {
        // The table's kept count (migration 0087) instead of visiting every row. No row: the table is empty.
        const kept = (await counting.select(keptRowCount(t).as('n')).limit(1).executeTakeFirst()) as { n: number | string | null } | undefined;
        if (kept === undefined) return 0;
        if (kept.n !== null) return Number(kept.n);
      }
      const row = (await counting.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst()) as { n?: number | string } | undefined;
      return Number(row?.n ?? 0);
    };
    // Independent, so on PostgreSQL (a pool) they run side by side; SQLite runs them one after the other anyway.
    const [total, rows] = await Promise.all([count(), ordered(q).limit(opts.perPage).offset(offset).execute()]);
    return { rows, total };
  }
  // Every match has to be found and sorted anyway (a label selector is answered from the label index; joined lists
  // filter on another table), so one query returns the ids of all matches in order: their number is the total and
  // a slice of them the page. A count of its own found every match a second time (on 10,000 spaces with 1,000
  // env=prod labels each probes the spaces' guid index 1,000 times). Sorting only ids keeps the sort on covering
  // indexes; the page's rows are then read by id (rowsByIds, or the caller's query: the ids already satisfy it).
  const all = (await ordered(q.clearSelect().select(sql.ref<number>(`${t}.id`).as('id'))).execute()) as Array<{ id: number }>;
  const ids = all.slice(offset, offset + opts.perPage).map((r) => r.id);
  if (ids.length === 0) return { rows: [], total: all.length };
  const rows = [];
  // Chunked to stay under SQLite's bound-parameter limit; each chunk comes back in page order, so they concatenate.
  for (let i = 0; i < ids.length; i += 900) {
    const chunk = ids.slice(i, i + 900);
    rows.push(...(await ordered(opts.rowsByIds ? opts.rowsByIds(chunk) : query.where(sql.ref(`${t}.id`), 'in', chunk)).execute()));
  }
  return { rows, total: all.length };
}
