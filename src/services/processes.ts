import { assertNotDeclared } from './declared-guard.ts';
import type { Kysely } from 'kysely';
import { notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { WEB, type ScaleProcess, type UpdateProcess } from '../domain/processes.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row, RowUpdate } from '../store/schema.ts';
import { hasActiveDeployment } from './apps.ts';
import { findVisibleApp, requireAppManager, type AppScope } from './app-scope.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { requireFeature } from './feature-flags.ts';
import { assertResizeFits } from './process-quotas.ts';
import type { InstanceState, ObservedInstance, ObservedInstances } from '../lifecycle/instances.ts';

export const PROCESS_LIST: ListSpec = {
  filters: ['app_guids', 'types', 'space_guids', 'organization_guids'],
  params: ['embed'],
  labelSelector: true,
};

/** The app-scoped list takes the same query minus the app filter. */
export const APP_PROCESS_LIST: ListSpec = {
  filters: ['types', 'space_guids', 'organization_guids'],
  params: ['embed'],
  labelSelector: true,
};

// ---- observed state (the runtime's side) ----

/** One entry of `GET …/stats`: every desired index (DOWN when absent), plus surplus instances still running. */
export interface InstanceReport {
  process: Row<'processes'>;
  observed: ObservedInstance;
}

// ---- reading ----

/** A process with its app and space: what presenting and authorizing it needs. */
export interface ProcessScope extends AppScope {
  process: Row<'processes'>;
}

export async function listProcesses(ctx: Ctx, params: ListParams, appGuid?: string): Promise<Page<Row<'processes'>>> {
  const orgs = params.filters.organization_guids;
  // Every app has its space (deleting a space deletes its apps), so spaces are joined only to filter by org.
  let q = ctx.store.db
    .selectFrom('processes')
    .innerJoin('apps', 'apps.guid', 'processes.app_guid')
    .selectAll('processes')
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.spaceVisible(eb, 'apps.space_guid')));
  if (appGuid !== undefined) q = q.where('processes.app_guid', '=', appGuid);
  if (params.filters.app_guids) q = q.where('processes.app_guid', 'in', params.filters.app_guids);
  if (params.filters.types) q = q.where('processes.type', 'in', params.filters.types);
  if (params.filters.space_guids) q = q.where('apps.space_guid', 'in', params.filters.space_guids);
  if (orgs) q = q.where('apps.space_guid', 'in', (eb) => eb.selectFrom('spaces').select('spaces.guid').where('spaces.organization_guid', 'in', orgs));
  // Filtered by space or org (`cf apps`) or by what the caller may see, matches are found through apps and no index
  // orders them: all are sorted, and sorting ids (covering indexes) costs less than sorting whole rows and counting
  // them again (a space developer's page of 50 of their 300 processes: 1.33 -> 1.02 ms). Unfiltered, the page is a
  // walk of the id order that stops after it, which beats reading every id.
  const byIds = !ctx.access.global || params.filters.space_guids !== undefined || orgs !== undefined;
  const rowsByIds = (ids: number[]) => ctx.store.db.selectFrom('processes').selectAll('processes').where('processes.id', 'in', ids);
  return listPage(q, listOptions('processes', params, { byIds, rowsByIds }));
}

/**
 * What presenting a process needs of its app (space link, docker user), for some processes, keyed by app guid.
 * Only those columns: a whole app row carries its sealed environment variables.
 */
export async function appsOf(
  ctx: Pick<Ctx, 'store'>,
  processes: Array<Pick<Row<'processes'>, 'app_guid'>>,
): Promise<Map<string, Pick<Row<'apps'>, 'guid' | 'space_guid' | 'lifecycle_type'>>> {
  const db = ctx.store.db;
  const guids = [...new Set(processes.map((p) => p.app_guid))];
  if (guids.length === 0) return new Map();
  const apps = await db.selectFrom('apps').select(['guid', 'space_guid', 'lifecycle_type']).where('guid', 'in', guids).execute();
  return new Map(apps.map((a) => [a.guid, a]));
}

/** A process the caller can read (404 `Process not found` otherwise). */
export async function findVisibleProcess(ctx: Ctx, guid: string): Promise<ProcessScope> {
  const process = await ctx.store.db.selectFrom('processes').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!process) throw notFound('Process');
  try {
    return { ...(await findVisibleApp(ctx, process.app_guid)), process };
  } catch {
    throw notFound('Process');
  }
}

/** `/v3/apps/:guid/processes/:type`: the app must be visible (404 App), then the type must exist (404 Process). */
export async function findAppProcess(ctx: Ctx, appGuid: string, type: string): Promise<ProcessScope> {
  const scope = await findVisibleApp(ctx, appGuid);
  const process = await ctx.store.db
    .selectFrom('processes')
    .selectAll()
    .where('app_guid', '=', scope.app.guid)
    .where('type', '=', type)
    // During a rollout the app has several web processes; by type it is the newest (upstream's newest_web_process).
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .executeTakeFirst();
  if (!process) throw notFound('Process');
  return { ...scope, process };
}

/** Whether the caller may see the process command (and other secrets) of this space. */
export const canSeeCommand = (ctx: Ctx, scope: AppScope) => ctx.access.canReadSpaceSecrets(scope.space.guid);

// ---- writing ----

/** `data` replaces the `request` member for events upstream records without one (terminate_instance). */
function auditProcess(ctx: Ctx, scope: ProcessScope, type: string, request: unknown, data?: Record<string, unknown>) {
  return (tx: Parameters<typeof recordAudit>[0]) =>
    recordAudit(tx, {
      type: `audit.app.process.${type}`,
      actor: ctx.principal,
      target: { type: 'app', guid: scope.app.guid, name: scope.app.name },
      data: { process_guid: scope.process.guid, process_type: scope.process.type, ...(data ?? { request }) },
      spaceGuid: scope.space.guid,
      organizationGuid: scope.space.organization_guid,
    });
}

const loadProcess = (db: Kysely<Database>, guid: string) =>
  db.selectFrom('processes').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

/**
 * Updates command, health checks and metadata. These take effect when instances are next (re)started
 * (CONVENTIONS.md §16), so the version is left alone.
 */
export async function updateProcess(ctx: Ctx, scope: ProcessScope, input: UpdateProcess): Promise<{ process: Row<'processes'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  await requireAppManager(ctx, scope);
  const p = scope.process;
  const patch: RowUpdate<'processes'> = {};
  if (input.command !== undefined) patch.command = input.command;
  const hc = input.health_check;
  if (hc) {
    const type = hc.type ?? p.health_check_type;
    patch.health_check_type = type;
    if (hc.timeout !== undefined) patch.health_check_timeout = hc.timeout;
    if (hc.invocationTimeout !== undefined) patch.health_check_invocation_timeout = hc.invocationTimeout;
    if (hc.interval !== undefined) patch.health_check_interval = hc.interval;
    // An endpoint only means something for http checks; switching away from http forgets it.
    if (type !== 'http') patch.health_check_endpoint = null;
    else if (hc.endpoint !== undefined) patch.health_check_endpoint = hc.endpoint;
  }
  const rc = input.readiness_health_check;
  if (rc) {
    const type = rc.type ?? p.readiness_check_type;
    patch.readiness_check_type = type;
    if (rc.invocationTimeout !== undefined) patch.readiness_check_invocation_timeout = rc.invocationTimeout;
    if (rc.interval !== undefined) patch.readiness_check_interval = rc.interval;
    if (type !== 'http') patch.readiness_check_endpoint = null;
    else if (rc.endpoint !== undefined) patch.readiness_check_endpoint = rc.endpoint;
  }
  const changed = [
    ...(patch.command !== undefined && patch.command !== p.command ? ['command'] : []),
    ...(patch.health_check_type !== undefined && patch.health_check_type !== p.health_check_type ? ['health-check-type'] : []),
    ...(patch.health_check_endpoint !== undefined && patch.health_check_endpoint !== p.health_check_endpoint ? ['health-check-http-endpoint'] : []),
    ...(patch.health_check_invocation_timeout !== undefined && patch.health_check_invocation_timeout !== p.health_check_invocation_timeout ? ['health-check-invocation-timeout'] : []),
    ...(patch.health_check_timeout !== undefined && patch.health_check_timeout !== p.health_check_timeout ? ['timeout'] : []),
  ].map((f) => `${p.type}.${f}`);
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'apps', guid: scope.app.guid, type: 'App', name: scope.app.name }, changed);
  return ctx.store.write(async (tx) => {
    // A rollout owns the web process's settings; labels and annotations stay editable (CONVENTIONS.md §18).
    if (p.type === WEB && Object.keys(patch).length > 0 && (await hasActiveDeployment(tx.db, p.app_guid))) {
      throw unprocessable('Cannot update this process while a deployment is in flight.');
    }
    if (Object.keys(patch).length > 0) await tx.update('processes', p.guid, patch, { expectedGeneration: p.generation });
    const metadata = await saveMetadata(tx, 'processes', p.guid, input.metadata);
    const request = input.command !== undefined ? { ...input, command: '[PRIVATE DATA HIDDEN]' } : input;
    await auditProcess(ctx, scope, 'update', request)(tx);
    return { process: await loadProcess(tx.db, p.guid), metadata };
  });
}

/**
 * Scales a process. A new instance count acts at once (the runtime converges to it); memory, disk and log rate
 * apply to instances started from now on (CONVENTIONS.md §16).
 */
export async function scaleProcess(ctx: Ctx, scope: ProcessScope, input: ScaleProcess): Promise<Row<'processes'>> {
  await requireAppManager(ctx, scope);
  if (!ctx.access.admin) await requireFeature(ctx.store.db, 'app_scaling');
  const p = scope.process;
  const patch: RowUpdate<'processes'> = {};
  if (input.instances != null) patch.instances = input.instances;
  if (input.memory_in_mb != null) patch.memory_in_mb = input.memory_in_mb;
  if (input.disk_in_mb != null) patch.disk_in_mb = input.disk_in_mb;
  if (input.log_rate_limit_in_bytes_per_second != null) patch.log_rate_limit_in_bytes_per_second = input.log_rate_limit_in_bytes_per_second;
  // What a resource declares of the process is its own (domain/declared.ts); the rest may be scaled.
  const changed = [
    ...(patch.instances !== undefined && patch.instances !== p.instances ? ['instances'] : []),
    ...(patch.memory_in_mb !== undefined && patch.memory_in_mb !== p.memory_in_mb ? ['memory'] : []),
    ...(patch.disk_in_mb !== undefined && patch.disk_in_mb !== p.disk_in_mb ? ['disk_quota'] : []),
    ...(patch.log_rate_limit_in_bytes_per_second !== undefined && patch.log_rate_limit_in_bytes_per_second !== p.log_rate_limit_in_bytes_per_second ? ['log-rate-limit-per-second'] : []),
  ].map((f) => `${p.type}.${f}`);
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'apps', guid: scope.app.guid, type: 'App', name: scope.app.name }, changed);
  return ctx.store.write(async (tx) => {
    // The deployment controller sets the web instance counts while a rollout is active (CONVENTIONS.md §18).
    if (p.type === WEB && (await hasActiveDeployment(tx.db, p.app_guid))) throw unprocessable('Cannot scale this process while a deployment is in flight.');
    // Read inside the write so a concurrent start or scale cannot slip past the quota check.
    const app = await tx.db.selectFrom('apps').select('state').where('guid', '=', p.app_guid).executeTakeFirstOrThrow();
    if (app.state === 'STARTED') {
      const sizes = { instances: input.instances, memoryInMb: input.memory_in_mb, logRate: input.log_rate_limit_in_bytes_per_second };
      await assertResizeFits(tx.db, scope.space, await loadProcess(tx.db, p.guid), sizes);
    }
    if (Object.keys(patch).length > 0) await tx.update('processes', p.guid, patch, { expectedGeneration: p.generation });
    await auditProcess(ctx, scope, 'scale', input)(tx);
    return loadProcess(tx.db, p.guid);
  });
}

// ---- instances ----

/** Reports every instance nobody observes as DOWN. */
export const noRuntime: ObservedInstances = {
  statsFor: async () => [],
  terminate: async () => false,
};

/** The stats entries of a process: one per desired index (DOWN where nothing runs), then surplus instances. */
export async function instanceReports(
  observed: ObservedInstances | undefined,
  process: Row<'processes'>,
  opts: { usage?: boolean } = {},
): Promise<ObservedInstance[]> {
  const source = observed ?? noRuntime;
  const actual = await (opts.usage === false && source.statesFor ? source.statesFor(process.guid) : source.statsFor(process.guid));
  const byIndex = new Map<number, ObservedInstance>();
  for (const a of actual) {
    // When two instances claim one index (a replacement is starting), report the healthier one.
    const prev = byIndex.get(a.index);
    if (!prev || rank(a.state) > rank(prev.state)) byIndex.set(a.index, a);
  }
  const out: ObservedInstance[] = [];
  for (let i = 0; i < process.instances; i++) out.push(byIndex.get(i) ?? { index: i, state: 'DOWN' });
  for (const [index, a] of [...byIndex].sort(([x], [y]) => x - y)) if (index >= process.instances) out.push(a);
  return out;
}

const rank = (s: InstanceState) => ({ DOWN: 0, STOPPING: 1, CRASHED: 2, STARTING: 3, RUNNING: 4 })[s];

export const processStats = (scope: ProcessScope, observed: ObservedInstances | undefined) => instanceReports(observed, scope.process);

/** Terminates one instance (the controller replaces it). 404 `Instance not found` for an index nobody runs. */
export async function terminateInstance(
  ctx: Ctx,
  scope: ProcessScope,
  index: number | undefined,
  observed: ObservedInstances | undefined,
): Promise<void> {
  await requireAppManager(ctx, scope);
  if (index === undefined || index >= scope.process.instances) throw notFound('Instance');
  // As upstream: a valid index succeeds even when nothing runs there (there is then nothing to stop).
  if (observed) await observed.terminate(scope.process.guid, index);
  // process_event_repository.rb's record_terminate: the index as process_index, no request.
  await ctx.store.write(auditProcess(ctx, scope, 'terminate_instance', undefined, { process_index: index }));
}
