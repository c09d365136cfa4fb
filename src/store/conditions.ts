import { sql, type Kysely } from 'kysely';
import type { ConditionsTable, Database } from './schema.ts';
import type { ObservedTable, Store } from './store.ts';

export type ConditionStatus = ConditionsTable['status'];

/** A reconciler's conclusion about one aspect of a resource (Kubernetes' metav1.Condition, without the clock). */
export interface Condition {
  type: string;
  status: ConditionStatus;
  /** CamelCase, machine-readable: `DropletNotStaged`, `Crashing`, `StagingFailed`… */
  reason: string;
  message?: string;
}

/** Kinds of resource that carry conditions, and the table holding their `generation`. */
export const CONDITION_KINDS = {
  app: 'apps',
  process: 'processes',
  build: 'builds',
  task: 'tasks',
  deployment: 'deployments',
} as const;
export type ConditionKind = keyof typeof CONDITION_KINDS;

/** Tables whose `observed_generation` column the reconcilers keep (the others carry it in their conditions only). */
const OBSERVED_COLUMN = new Set<string>(['apps', 'processes', 'builds'] satisfies ObservedTable[]);
const hasObservedColumn = (table: string): table is ObservedTable => OBSERVED_COLUMN.has(table);

export interface StoredCondition extends Required<Condition> {
  observedGeneration: number;
  lastTransitionTime: string;
}

export async function conditionsOf(db: Kysely<Database>, kind: ConditionKind, guid: string): Promise<StoredCondition[]> {
  const rows = await db.selectFrom('conditions').selectAll().where('kind', '=', kind).where('guid', '=', guid).orderBy('type').execute();
  return rows.map((r) => ({
    type: r.type,
    status: r.status,
    reason: r.reason,
    message: r.message,
    observedGeneration: Number(r.observed_generation),
    lastTransitionTime: r.last_transition_time,
  }));
}

/** The resource's generation and observed generation now, or undefined when it does not exist. */
export async function generationOf(db: Kysely<Database>, kind: ConditionKind, guid: string): Promise<{ generation: number; observed?: number } | undefined> {
  const table = CONDITION_KINDS[kind];
  if (OBSERVED_COLUMN.has(table)) {
    const row = await db
      .selectFrom(table as 'apps')
      .select(['generation', 'observed_generation'])
      .where('guid', '=', guid)
      .executeTakeFirst();
    return row ? { generation: Number(row.generation), observed: Number(row.observed_generation) } : undefined;
  }
  const row = await db
    .selectFrom(table as 'tasks')
    .select('generation')
    .where('guid', '=', guid)
    .executeTakeFirst();
  return row ? { generation: Number(row.generation) } : undefined;
}

/**
 * Records what a reconcile concluded about a resource that exists: its conditions (only those that changed are
 * written; `last_transition_time` moves only when a status flips) and `observed_generation` where the table has
 * the column. Status writes append nothing to the change feed: a reconciler must not wake itself by reporting.
 */
export async function recordStatus(
  store: Store,
  kind: ConditionKind,
  guid: string,
  seen: { generation: number; observed?: number },
  conditions: readonly Condition[],
): Promise<void> {
  const existing = new Map((await conditionsOf(store.db, kind, guid)).map((c) => [c.type, c]));
  const changed = conditions.filter((c) => {
    const old = existing.get(c.type);
    return !old || old.status !== c.status || old.reason !== c.reason || old.message !== (c.message ?? '') || old.observedGeneration !== seen.generation;
  });
  const table = CONDITION_KINDS[kind];
  const observe = hasObservedColumn(table) && seen.observed !== undefined && seen.observed < seen.generation;
  if (changed.length === 0 && !observe) return;
  await store.write(async (tx) => {
    for (const c of changed) {
      const old = existing.get(c.type);
      const values = {
        status: c.status,
        reason: c.reason,
        message: c.message ?? '',
        observed_generation: seen.generation,
        last_transition_time: old && old.status === c.status ? old.lastTransitionTime : tx.now,
      };
      await tx.db
        .insertInto('conditions')
        .values({ kind, guid, type: c.type, ...values })
        .onConflict((oc) => oc.columns(['kind', 'guid', 'type']).doUpdateSet(values))
        .execute();
    }
    if (observe && hasObservedColumn(table)) await tx.observeGeneration(table, guid, seen.generation);
  });
}

/** Removes the conditions of a resource that no longer exists. */
export async function clearConditions(store: Store, kind: ConditionKind, guid: string): Promise<void> {
  const any = await store.db.selectFrom('conditions').select('type').where('kind', '=', kind).where('guid', '=', guid).executeTakeFirst();
  if (!any) return;
  await store.write(async (tx) => {
    await tx.db.deleteFrom('conditions').where('kind', '=', kind).where('guid', '=', guid).execute();
  });
}

/** Conditions rows whose resource is not in `table` any more. */
const resourceGone = (table: string) => sql<boolean>`not exists (select 1 from ${sql.table(table)} as r where r.guid = ${sql.ref('conditions.guid')})`;

/**
 * Removes the conditions of resources that no longer exist. A reconciler clears its own kind's when it sees the
 * row gone, but conditions it records for another kind (a process's for its app) outlive that resource when
 * nobody reconciles it again; the periodic resync calls this.
 */
export async function sweepConditions(store: Store): Promise<number> {
  let removed = 0;
  for (const [kind, table] of Object.entries(CONDITION_KINDS)) {
    const orphan = await store.db
      .selectFrom('conditions')
      .select('guid')
      .where('kind', '=', kind)
      .where(resourceGone(table))
      .executeTakeFirst();
    if (!orphan) continue;
    removed += await store.write(async (tx) => {
      const res = await tx.db
        .deleteFrom('conditions')
        .where('kind', '=', kind)
        .where(resourceGone(table))
        .executeTakeFirst();
      return Number(res.numDeletedRows);
    });
  }
  return removed;
}
