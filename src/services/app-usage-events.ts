import type { Kysely } from 'kysely';
import { notAuthorized, notFound } from '../domain/errors.ts';
import type { ListParams } from '../domain/list-params.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import type { AppUsageState, Database, NewRow, Row } from '../store/schema.ts';
import { newGuid, type Change, type WriteTx } from '../store/store.ts';
import type { Ctx } from './context.ts';

/**
 * App usage events (issue 9 §9), CC's billing feed of processes.
 *
 * They are derived, not called for: `recordAppUsage` is a `Store.beforeCommit` hook that looks at every process a
 * write touched (directly, or through its app) and compares what is billed now — the app started or not, the
 * process's instances and memory, the app's droplet — with the latest event of that process. So starting,
 * stopping, scaling, a deployment's instance steps, a new current droplet, deleting a process or an app all
 * record their events in their own transaction, whichever service or controller made them, and a rollback
 * takes the events with it. CC's rules (ProcessModel#app_usage_changed?): a change of started-ness is STARTED
 * or STOPPED; a footprint change while started is another STARTED with the previous values; a new droplet while
 * started is BUILDPACK_SET. After purge-and-reseed the latest event is the reseeded STARTED (or none: stopped).
 */

interface Billed {
  processGuid: string;
  processType: string;
  appGuid: string;
  appName: string;
  spaceGuid: string;
  spaceName: string;
  organizationGuid: string;
  started: boolean;
  instances: number;
  memoryInMb: number;
  dropletGuid: string | null;
}

/** What each process of the given guids is billed for now (processes that no longer exist are absent). */
async function billedNow(db: Kysely<Database>, processGuids: string[]): Promise<Billed[]> {
  if (processGuids.length === 0) return [];
  const rows = await db
    .selectFrom('processes as p')
    .innerJoin('apps as a', 'a.guid', 'p.app_guid')
    .innerJoin('spaces as s', 's.guid', 'a.space_guid')
    .select([
      'p.guid as process_guid',
      'p.type',
      'p.instances',
      'p.memory_in_mb',
      'a.guid as app_guid',
      'a.name as app_name',
      'a.state',
      'a.droplet_guid',
      's.guid as space_guid',
      's.name as space_name',
      's.organization_guid',
    ])
    .where('p.guid', 'in', processGuids)
    .orderBy('p.id')
    .execute();
  return rows.map((r) => ({
    processGuid: r.process_guid,
    processType: r.type,
    appGuid: r.app_guid,
    appName: r.app_name,
    spaceGuid: r.space_guid,
    spaceName: r.space_name,
    organizationGuid: r.organization_guid,
    started: r.state === 'STARTED',
    instances: r.instances,
    memoryInMb: r.memory_in_mb,
    dropletGuid: r.droplet_guid,
  }));
}

/** The buildpack a droplet was built with (CC's buildpack receipt): its first buildpack, by name and guid. */
async function buildpackOf(db: Kysely<Database>, dropletGuid: string | null): Promise<{ guid: string | null; name: string | null }> {
  if (!dropletGuid) return { guid: null, name: null };
  const d = await db.selectFrom('droplets').select('buildpacks').where('guid', '=', dropletGuid).executeTakeFirst();
  let first: { name?: unknown; buildpack_name?: unknown } | undefined;
  try {
    first = (JSON.parse(d?.buildpacks ?? '[]') as Array<{ name?: unknown; buildpack_name?: unknown }>)[0];
  } catch {
    first = undefined;
  }
  const name = typeof first?.name === 'string' ? first.name : null;
  if (!name) return { guid: null, name: null };
  const bp = await db.selectFrom('buildpacks').select('guid').where('name', '=', name).orderBy('position').executeTakeFirst();
  return { guid: bp?.guid ?? null, name };
}

const latestEvent = (db: Kysely<Database>, processGuid: string) =>
  db.selectFrom('app_usage_events').selectAll().where('process_guid', '=', processGuid).orderBy('id', 'desc').limit(1).executeTakeFirst();

async function insertEvent(
  db: Kysely<Database>,
  now: string,
  b: Billed,
  state: AppUsageState,
  previous: Row<'app_usage_events'> | undefined,
): Promise<void> {
  const bp = await buildpackOf(db, b.dropletGuid);
  const row: NewRow<'app_usage_events'> = {
    guid: newGuid(),
    created_at: now,
    state,
    previous_state: previous ? (previous.state === 'STOPPED' ? 'STOPPED' : 'STARTED') : state === 'STARTED' ? 'STOPPED' : null,
    app_guid: b.appGuid,
    app_name: b.appName,
    process_guid: b.processGuid,
    process_type: b.processType,
    space_guid: b.spaceGuid,
    space_name: b.spaceName,
    organization_guid: b.organizationGuid,
    instance_count: b.instances,
    previous_instance_count: previous?.instance_count ?? null,
    memory_in_mb_per_instance: b.memoryInMb,
    previous_memory_in_mb_per_instance: previous?.memory_in_mb_per_instance ?? null,
    droplet_guid: b.dropletGuid,
    buildpack_guid: bp.guid,
    buildpack_name: bp.name,
  };
  await db.insertInto('app_usage_events').values(row).execute();
}

/** A task's run: TASK_STARTED once it runs, TASK_STOPPED once it ended or was deleted (CC's create_from_task). */
async function recordTaskUsage(tx: WriteTx, taskGuids: string[]): Promise<void> {
  for (const guid of taskGuids) {
    const seen = await tx.db.selectFrom('app_usage_events').selectAll().where('task_guid', '=', guid).orderBy('id').execute();
    const started = seen.find((e) => e.state === 'TASK_STARTED');
    if (seen.some((e) => e.state === 'TASK_STOPPED')) continue;
    const t = await tx.db
      .selectFrom('tasks as t')
      .innerJoin('apps as a', 'a.guid', 't.app_guid')
      .innerJoin('spaces as s', 's.guid', 'a.space_guid')
      .select(['t.guid', 't.name', 't.state', 't.memory_in_mb', 't.updated_at', 'a.guid as app_guid', 'a.name as app_name', 's.guid as space_guid', 's.name as space_name', 's.organization_guid'])
      .where('t.guid', '=', guid)
      .executeTakeFirst();
    const ended = !t || t.state === 'SUCCEEDED' || t.state === 'FAILED';
    if (!started && (!t || t.state === 'PENDING')) continue;
    // A task that ended earlier and was never billed (its events purged) is not billed now.
    if (!started && ended && t!.updated_at !== tx.now) continue;
    const base = t
      ? { app_guid: t.app_guid, app_name: t.app_name, space_guid: t.space_guid, space_name: t.space_name, organization_guid: t.organization_guid, task_name: t.name, memory: t.memory_in_mb }
      : { ...started!, memory: started!.memory_in_mb_per_instance };
    const insert = (state: AppUsageState, previous: AppUsageState | null) =>
      tx.db
        .insertInto('app_usage_events')
        .values({
          guid: newGuid(),
          created_at: tx.now,
          state,
          previous_state: previous,
          app_guid: base.app_guid,
          app_name: base.app_name,
          process_guid: '',
          process_type: '',
          space_guid: base.space_guid,
          space_name: base.space_name,
          organization_guid: base.organization_guid,
          instance_count: 1,
          previous_instance_count: null,
          memory_in_mb_per_instance: base.memory,
          previous_memory_in_mb_per_instance: null,
          droplet_guid: null,
          buildpack_guid: null,
          buildpack_name: null,
          task_guid: guid,
          task_name: base.task_name,
        })
        .execute();
    // A task that ended in the write that started it (or before it was billed) still gets both events.
    if (!started) await insert('TASK_STARTED', null);
    if (ended) await insert('TASK_STOPPED', 'TASK_STARTED');
  }
}

/** Whether the latest event left the process billed as started. */
const wasStarted = (e: Row<'app_usage_events'> | undefined): boolean => e !== undefined && e.state !== 'STOPPED';

/** The `Store.beforeCommit` hook: records the usage events of every process this write changed. */
export async function recordAppUsage(tx: WriteTx, changes: readonly Change[]): Promise<void> {
  const processGuids = new Set<string>();
  const appGuids: string[] = [];
  const taskGuids: string[] = [];
  for (const c of changes) {
    if (c.kind === 'processes') processGuids.add(c.guid);
    else if (c.kind === 'apps') appGuids.push(c.guid);
    else if (c.kind === 'tasks') taskGuids.push(c.guid);
  }
  if (taskGuids.length > 0) await recordTaskUsage(tx, taskGuids);
  if (appGuids.length > 0) {
    const rows = await tx.db.selectFrom('processes').select('guid').where('app_guid', 'in', appGuids).execute();
    for (const r of rows) processGuids.add(r.guid);
  }
  if (processGuids.size === 0) return;
  const current = new Map((await billedNow(tx.db, [...processGuids])).map((b) => [b.processGuid, b]));
  for (const guid of processGuids) {
    const last = await latestEvent(tx.db, guid);
    const now = current.get(guid);
    if (!now) {
      // Deleted: a process that was billed stops being billed, under the names it had.
      if (!last || !wasStarted(last)) continue;
      await insertEvent(
        tx.db,
        tx.now,
        {
          processGuid: guid,
          processType: last.process_type,
          appGuid: last.app_guid,
          appName: last.app_name,
          spaceGuid: last.space_guid,
          spaceName: last.space_name,
          organizationGuid: last.organization_guid,
          started: false,
          instances: last.instance_count,
          memoryInMb: last.memory_in_mb_per_instance,
          dropletGuid: last.droplet_guid,
        },
        'STOPPED',
        last,
      );
      continue;
    }
    const before = wasStarted(last);
    if (now.started !== before) {
      // A process never seen before that is not started has nothing to bill: no event.
      await insertEvent(tx.db, tx.now, now, now.started ? 'STARTED' : 'STOPPED', last);
    } else if (now.started && last) {
      if (now.instances !== last.instance_count || now.memoryInMb !== last.memory_in_mb_per_instance) {
        await insertEvent(tx.db, tx.now, now, 'STARTED', last);
      } else if (now.dropletGuid !== last.droplet_guid) {
        await insertEvent(tx.db, tx.now, now, 'BUILDPACK_SET', last);
      }
    }
  }
}

export async function listAppUsageEvents(ctx: Ctx, params: ListParams): Promise<Page<Row<'app_usage_events'>>> {
  const f = params.filters;
  let q = ctx.store.db.selectFrom('app_usage_events').selectAll();
  // Everyone may list (CONVENTIONS.md Appendix B: ALL); only global readers see events.
  if (!ctx.access.global) return listPage(q.where('id', '<', 0), listOptions('app_usage_events', params));
  if (f.after_guid) {
    const after = await ctx.store.db.selectFrom('app_usage_events').select('id').where('guid', '=', f.after_guid[0]!).executeTakeFirst();
    if (!after) throw notFound('After guid');
    q = q.where('id', '>', after.id);
  }
  return listPage(q, listOptions('app_usage_events', params));
}

export async function getAppUsageEvent(ctx: Ctx, guid: string): Promise<Row<'app_usage_events'>> {
  if (!ctx.access.global) throw notFound('App usage event');
  const e = await ctx.store.db.selectFrom('app_usage_events').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!e) throw notFound('App usage event');
  return e;
}

/**
 * Deletes every event and records one STARTED event per process of a started app and one TASK_STARTED per running
 * task (CC's purge-and-reseed), from which later changes are measured.
 */
export async function purgeAndReseedAppUsage(ctx: Ctx): Promise<void> {
  if (!ctx.access.admin) throw notAuthorized();
  await ctx.store.write(async (tx) => {
    await tx.db.deleteFrom('app_usage_events').execute();
    const started = await tx.db
      .selectFrom('processes as p')
      .innerJoin('apps as a', 'a.guid', 'p.app_guid')
      .select('p.guid')
      .where('a.state', '=', 'STARTED')
      .orderBy('p.id')
      .execute();
    for (const b of await billedNow(tx.db, started.map((p) => p.guid))) await insertEvent(tx.db, tx.now, b, 'STARTED', undefined);
    const running = await tx.db.selectFrom('tasks').select('guid').where('state', 'in', ['RUNNING', 'CANCELING']).orderBy('id').execute();
    await recordTaskUsage(tx, running.map((t) => t.guid));
  });
}
