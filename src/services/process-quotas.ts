import { sql, type Kysely } from 'kysely';
import { unprocessable } from '../domain/errors.ts';
import { processQuotaErrors, UNLIMITED_LOG_RATE, type AppUsage, type QuotaScope } from '../domain/quotas.ts';
import type { Database, Row } from '../store/schema.ts';
import { organizationQuotaOf } from './organization-quotas.ts';
import { spaceQuotaOf } from './space-quotas.ts';
import type { TaskState } from '../domain/tasks.ts';

/** A process as it is about to run: its guid (so its current usage is not counted twice) and its new sizes. */
export interface ProcessToRun {
  guid: string;
  instances: number;
  memoryInMb: number;
  /** -1 = unlimited. */
  logRate: number;
}

/** Tasks in these states hold their memory and log rate, as upstream counts them. */
const ACTIVE_TASK_STATES: TaskState[] = ['PENDING', 'RUNNING'];

/**
 * What started processes and active tasks consume in an org or a space, leaving out `excluded` processes
 * (those being changed: their new demand replaces them). Unlimited log rates add nothing to the sum; the
 * domain rules refuse them separately wherever a log rate limit applies.
 */
export async function appUsage(db: Kysely<Database>, where: { orgGuid: string } | { spaceGuid: string }, excluded: string[]): Promise<AppUsage> {
  const [column, value] = 'orgGuid' in where ? (['spaces.organization_guid', where.orgGuid] as const) : (['apps.space_guid', where.spaceGuid] as const);
  const procs = await db
    .selectFrom('processes')
    .innerJoin('apps', 'apps.guid', 'processes.app_guid')
    .innerJoin('spaces', 'spaces.guid', 'apps.space_guid')
    .where('apps.state', '=', 'STARTED')
    .where(column, '=', value)
    .$if(excluded.length > 0, (q) => q.where('processes.guid', 'not in', excluded))
    .select([
      sql<string | number | null>`sum(processes.memory_in_mb * processes.instances)`.as('memory'),
      sql<string | number | null>`sum(processes.instances)`.as('instances'),
      sql<string | number | null>`sum(case when processes.log_rate_limit_in_bytes_per_second = ${UNLIMITED_LOG_RATE} then 0
        else processes.log_rate_limit_in_bytes_per_second * processes.instances end)`.as('log_rate'),
    ])
    .executeTakeFirstOrThrow();
  const tasks = await db
    .selectFrom('tasks')
    .innerJoin('apps', 'apps.guid', 'tasks.app_guid')
    .innerJoin('spaces', 'spaces.guid', 'apps.space_guid')
    .where('tasks.state', 'in', ACTIVE_TASK_STATES)
    .where(column, '=', value)
    .select([
      sql<string | number | null>`sum(tasks.memory_in_mb)`.as('memory'),
      sql<string | number | null>`sum(case when tasks.log_rate_limit = ${UNLIMITED_LOG_RATE} then 0 else tasks.log_rate_limit end)`.as('log_rate'),
      sql<string | number>`count(*)`.as('count'),
    ])
    .executeTakeFirstOrThrow();
  // Sums come back as strings from some drivers (bigint) and as NULL over no rows.
  const n = (v: string | number | null) => Number(v ?? 0);
  return {
    memoryInMb: n(procs.memory) + n(tasks.memory),
    instances: n(procs.instances),
    logRate: n(procs.log_rate) + n(tasks.log_rate),
    activeTasks: n(tasks.count),
  };
}

/**
 * Refuses (422 with Cloud Controller's validation messages) when `processes` of one app in `space` would not
 * fit into the org's and space's quotas if they ran as described. They are checked one after another, each
 * counting the ones before it, as upstream starts an app's processes one by one; the first that does not
 * fit decides the answer. Call inside the write that makes the change, with its `tx.db`.
 */
export async function assertProcessesFit(db: Kysely<Database>, space: Pick<Row<'spaces'>, 'guid' | 'name' | 'organization_guid'>, processes: ProcessToRun[]): Promise<void> {
  if (processes.length === 0) return;
  const [orgQuota, spaceQuota] = await Promise.all([organizationQuotaOf(db, space.organization_guid), spaceQuotaOf(db, space.guid)]);
  // Without any quota there is nothing to count.
  if (!orgQuota && !spaceQuota) return;
  const excluded = processes.map((p) => p.guid);
  const org = await db.selectFrom('organizations').select('name').where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
  const orgScope: QuotaScope = { quota: orgQuota, name: org.name, usage: await appUsage(db, { orgGuid: space.organization_guid }, excluded) };
  const spaceScope: QuotaScope = { quota: spaceQuota, name: space.name, usage: await appUsage(db, { spaceGuid: space.guid }, excluded) };
  for (const p of processes) {
    const errors = processQuotaErrors({ started: true, instances: p.instances, memoryInMb: p.memoryInMb, logRate: p.logRate }, orgScope, spaceScope);
    if (errors.length > 0) throw unprocessable(errors.join(', '));
    for (const scope of [orgScope, spaceScope]) {
      scope.usage.memoryInMb += p.memoryInMb * p.instances;
      scope.usage.instances += p.instances;
      if (p.logRate !== UNLIMITED_LOG_RATE) scope.usage.logRate += p.logRate * p.instances;
    }
  }
}

/** A process row as it would run. */
export const toRun = (p: Pick<Row<'processes'>, 'guid' | 'instances' | 'memory_in_mb' | 'log_rate_limit_in_bytes_per_second'>): ProcessToRun => ({
  guid: p.guid,
  instances: p.instances,
  memoryInMb: p.memory_in_mb,
  logRate: Number(p.log_rate_limit_in_bytes_per_second),
});

/**
 * Whether `next` asks for more than `current` in anything a quota limits. Only growth is checked, so scaling
 * down (or changing only disk) always succeeds, even in an org that is over a since-lowered quota.
 */
function grows(current: ProcessToRun, next: ProcessToRun): boolean {
  const moreLog =
    next.logRate !== current.logRate &&
    (next.logRate === UNLIMITED_LOG_RATE || (current.logRate !== UNLIMITED_LOG_RATE && next.logRate > current.logRate));
  return next.instances > current.instances || next.memoryInMb > current.memoryInMb || moreLog;
}

/**
 * Refuses a change to the sizes of one process of a STARTED app when it grows past a quota (see
 * {@link grows}); unset sizes keep their current values. Call inside the write that makes the change.
 */
export async function assertResizeFits(
  db: Kysely<Database>,
  space: Pick<Row<'spaces'>, 'guid' | 'name' | 'organization_guid'>,
  process: Pick<Row<'processes'>, 'guid' | 'instances' | 'memory_in_mb' | 'log_rate_limit_in_bytes_per_second'>,
  sizes: { instances?: number | null; memoryInMb?: number | null; logRate?: number | null },
): Promise<void> {
  const current = toRun(process);
  const next = {
    guid: process.guid,
    instances: sizes.instances ?? current.instances,
    memoryInMb: sizes.memoryInMb ?? current.memoryInMb,
    logRate: sizes.logRate ?? current.logRate,
  };
  if (grows(current, next)) await assertProcessesFit(db, space, [next]);
}
