import { ownershipKeys } from '../domain/declared.ts';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import {
  APP_LIFECYCLE_TYPES,
  BINDING_FEATURES_EXCLUSIVE,
  appNameTaken,
  CANNOT_REMOVE_DROPLET,
  isAppFeature,
  parseJsonObject,
  START_WITHOUT_DROPLET,
  UNABLE_TO_ASSIGN_DROPLET,
  type AppFeatureName,
  type CreateApp,
  type LifecycleRequest,
  type SetCurrentDroplet,
  type UpdateApp,
  type UpdateAppFeature,
  type AppLifecycleType,
} from '../domain/apps.ts';
import type { EnvVarPatch } from '../domain/environment-variable-groups.ts';
import { badQuery, notAuthorized, notFound, uniqueness, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { defaultsForType, PROCESS_DEFAULTS, WEB } from '../domain/processes.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { appEnvironment, type AppEnvironment } from '../lifecycle/app-env.ts';
import { assertAppMutable, assertSpaceMutable, findVisibleApp, requireAppManager, requireAppWriter, type AppScope } from './app-scope.ts';
import { fileDeliveryEnv } from '../lifecycle/binding-files.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { nameInUse } from './name-in-use.ts';
import { recordRevision } from './revisions.ts';
import { requireFeature } from './feature-flags.ts';
import { enqueueJob, type JobHandlers, startDeleteJob } from '../lifecycle/jobs.ts';
import { assertNotDeclared } from './declared-guard.ts';
import { assertNotLockedByOthers, deleteLocksOf } from './lock-guard.ts';
import { assertProcessesFit, toRun } from './process-quotas.ts';
import { openEnvVars, sealEnvVars } from '../store/env-vars.ts';
import { buildpackCacheClearers } from '../lifecycle/buildpack-cache.ts';

export const APP_INCLUDES = ['space', 'space.organization', 'org'] as const;

export const APP_LIST: ListSpec = {
  orderBy: ['name', 'state'],
  filters: ['names', 'space_guids', 'organization_guids', 'stacks'],
  params: ['lifecycle_type'],
  labelSelector: true,
  include: APP_INCLUDES,
};

// ---- reading ----

export async function listApps(ctx: Ctx, params: ListParams, opts: { stack?: string } = {}): Promise<Page<Row<'apps'>>> {
  const lifecycle = params.params.lifecycle_type;
  if (lifecycle !== undefined && !(APP_LIFECYCLE_TYPES as readonly string[]).includes(lifecycle)) {
    throw badQuery(`Invalid lifecycle_type: '${lifecycle}'`);
  }
  const orgs = params.filters.organization_guids;
  // Every app has its space (deleting a space deletes its apps), so spaces are only consulted to filter by org.
  let q = ctx.store.db
    .selectFrom('apps')
    .selectAll('apps')
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.spaceVisible(eb, 'apps.space_guid')));
  if (params.filters.names) q = q.where('apps.name', 'in', params.filters.names);
  if (params.filters.space_guids) q = q.where('apps.space_guid', 'in', params.filters.space_guids);
  if (orgs) q = q.where('apps.space_guid', 'in', (eb) => eb.selectFrom('spaces').select('spaces.guid').where('spaces.organization_guid', 'in', orgs));
  if (params.filters.stacks) q = q.where('apps.lifecycle_stack', 'in', params.filters.stacks);
  if (opts.stack !== undefined) q = q.where('apps.lifecycle_stack', '=', opts.stack).where('apps.lifecycle_type', '!=', 'docker');
  if (lifecycle) q = q.where('apps.lifecycle_type', '=', lifecycle as AppLifecycleType); // checked above
  // Filtered by space (as the cf CLI lists) or by what the caller may see, the matches are sorted in full: sorting
  // ids is cheaper than whole rows.
  const rowsByIds = (ids: number[]) => ctx.store.db.selectFrom('apps').selectAll('apps').where('apps.id', 'in', ids);
  const byIds = !ctx.access.global || params.filters.space_guids !== undefined || orgs !== undefined;
  return listPage(q, listOptions('apps', params, { byIds, rowsByIds }));
}

export const getApp = async (ctx: Ctx, guid: string) => (await findVisibleApp(ctx, guid)).app;

/** Spaces and orgs of some apps for `include=space|space.organization|org`, ordered by created_at, guid. */
export async function appParents(ctx: Pick<Ctx, 'store'>, apps: Array<Pick<Row<'apps'>, 'space_guid'>>, include: string[]) {
  const db = ctx.store.db;
  const spaceGuids = [...new Set(apps.map((a) => a.space_guid))];
  const wantSpaces = include.includes('space') || include.includes('space.organization');
  const wantOrgs = include.includes('space.organization') || include.includes('org');
  const spaces = spaceGuids.length
    ? await db.selectFrom('spaces').selectAll().where('guid', 'in', spaceGuids).orderBy('created_at').orderBy('guid').execute()
    : [];
  const orgGuids = [...new Set(spaces.map((s) => s.organization_guid))];
  const orgs =
    wantOrgs && orgGuids.length
      ? await db.selectFrom('organizations').selectAll().where('guid', 'in', orgGuids).orderBy('created_at').orderBy('guid').execute()
      : [];
  return { spaces: wantSpaces ? spaces : undefined, organizations: wantOrgs ? orgs : undefined };
}

/** Detected commands of the current droplets of some apps: app guid → process type → command. */
export async function detectedCommands(ctx: Pick<Ctx, 'store'>, apps: Array<Pick<Row<'apps'>, 'guid' | 'droplet_guid'>>) {
  const db = ctx.store.db;
  const dropletGuids = [...new Set(apps.map((a) => a.droplet_guid).filter((g): g is string => !!g))];
  const out = new Map<string, Record<string, string>>();
  if (dropletGuids.length === 0) return out;
  const droplets = await db.selectFrom('droplets').select(['guid', 'app_guid', 'process_types']).where('guid', 'in', dropletGuids).execute();
  const byGuid = new Map(droplets.map((d) => [d.guid, parseJsonObject(d.process_types)]));
  for (const a of apps) if (a.droplet_guid && byGuid.has(a.droplet_guid)) out.set(a.guid, byGuid.get(a.droplet_guid)!);
  return out;
}

// ---- write guards ----

async function orgOf(db: Kysely<Database>, space: Pick<Row<'spaces'>, 'organization_guid'>) {
  return db.selectFrom('organizations').selectAll().where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
}

export function auditApp(tx: WriteTx, ctx: Ctx, type: string, scope: { app: Pick<Row<'apps'>, 'guid' | 'name'>; space: Pick<Row<'spaces'>, 'guid' | 'organization_guid'> }, data: Record<string, unknown> = {}) {
  return recordAudit(tx, {
    type: `audit.app.${type}`,
    actor: ctx.principal,
    target: { type: 'app', guid: scope.app.guid, name: scope.app.name },
    data,
    spaceGuid: scope.space.guid,
    organizationGuid: scope.space.organization_guid,
  });
}

const loadApp = (db: Kysely<Database>, guid: string) => db.selectFrom('apps').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

/** Docker and CNB lifecycles are gated by feature flags (admins bypass, as upstream's admin-skippable flags). */
async function requireLifecycleAllowed(ctx: Ctx, type: string): Promise<void> {
  if (ctx.access.admin) return;
  if (type === 'docker') await requireFeature(ctx.store.db, 'diego_docker');
  if (type === 'cnb') await requireFeature(ctx.store.db, 'diego_cnb');
}

/** The stack a buildpack/cnb app uses: the requested one (which must exist) or the platform default. */
async function resolveStack(db: Kysely<Database>, requested: string | null | undefined): Promise<string | null> {
  if (typeof requested === 'string') {
    const stack = await db.selectFrom('stacks').select('name').where('name', '=', requested).executeTakeFirst();
    if (!stack) throw unprocessable(`Stack must be an existing stack`);
    return stack.name;
  }
  const def = await db.selectFrom('stacks').select('name').where('is_default', '=', 1).executeTakeFirst();
  return def?.name ?? null;
}

/** A new process row with CF defaults for its type (CONVENTIONS.md §15); `guid` is the app's for `web`. */
export async function insertProcess(tx: WriteTx, app: Pick<Row<'apps'>, 'guid'>, type: string, guid = newGuid()): Promise<string> {
  const d = defaultsForType(type);
  await tx.insert('processes', {
    guid,
    app_guid: app.guid,
    type,
    command: null,
    instances: d.instances,
    memory_in_mb: PROCESS_DEFAULTS.memoryInMb,
    disk_in_mb: PROCESS_DEFAULTS.diskInMb,
    log_rate_limit_in_bytes_per_second: PROCESS_DEFAULTS.logRateLimit,
    health_check_type: d.healthCheckType,
    health_check_timeout: null,
    health_check_invocation_timeout: null,
    health_check_interval: null,
    health_check_endpoint: null,
    readiness_check_type: 'process',
    readiness_check_invocation_timeout: null,
    readiness_check_interval: null,
    readiness_check_endpoint: null,
    version: randomUUID(),
  });
  return guid;
}

/** Gives every process of an app a new version: the runtime replaces instances whose version is stale. */
export async function bumpProcessVersions(tx: WriteTx, appGuid: string): Promise<void> {
  const processes = await tx.db.selectFrom('processes').select(['guid', 'generation']).where('app_guid', '=', appGuid).execute();
  for (const p of processes) await tx.update('processes', p.guid, { version: randomUUID() }, { expectedGeneration: p.generation });
}

// ---- create / update ----

export async function createApp(ctx: Ctx, input: CreateApp): Promise<{ app: Row<'apps'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const spaceGuid = input.relationships.space.data.guid;
  const space = await ctx.store.db.selectFrom('spaces').selectAll().where('guid', '=', spaceGuid).executeTakeFirst();
  if (!space || !(await ctx.access.canReadSpace(space))) {
    throw unprocessable('Invalid space. Ensure that the space exists and you have access to it.');
  }
  if (!(await ctx.access.canWriteSpace(space.guid))) throw notAuthorized();
  await assertSpaceMutable(ctx, space);
  await assertNotLockedByOthers(ctx.store.db, ctx.principal, { spaceGuid: space.guid });
  const lifecycle: LifecycleRequest = input.lifecycle ?? { type: undefined, buildpacks: undefined, stack: undefined };
  const type = lifecycle.type ?? 'buildpack';
  await requireLifecycleAllowed(ctx, type);
  const stack = type === 'docker' ? null : await resolveStack(ctx.store.db, lifecycle.stack);
  try {
    return await ctx.store.write(async (tx) => {
      if (await nameInUse(tx.db, 'apps', input.name, { within: { space_guid: space.guid }, anyCase: true })) throw uniqueness(appNameTaken(input.name));
      const guid = newGuid();
      await tx.insert('apps', {
        guid,
        name: input.name,
        space_guid: space.guid,
        state: 'STOPPED',
        status: 'active',
        lifecycle_type: type,
        lifecycle_buildpacks: JSON.stringify(type === 'docker' ? [] : (lifecycle.buildpacks ?? [])),
        lifecycle_stack: stack,
        environment_variables: sealEnvVars(tx.secrets, input.environment_variables ?? {}),
        droplet_guid: null,
        enable_ssh: 1,
        revisions_enabled: 1,
      });
      // The web process shares the app's guid (CONVENTIONS.md §2, §15).
      await insertProcess(tx, { guid }, WEB, guid);
      const metadata = await saveMetadata(tx, 'apps', guid, input.metadata);
      const request = { ...input, environment_variables: input.environment_variables ? '[PRIVATE DATA HIDDEN]' : undefined };
      await auditApp(tx, ctx, 'create', { app: { guid, name: input.name }, space }, { request });
      return { app: await loadApp(tx.db, guid), metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw uniqueness(appNameTaken(input.name));
    throw err;
  }
}

export async function updateApp(ctx: Ctx, guid: string, input: UpdateApp): Promise<{ app: Row<'apps'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const scope = await findVisibleApp(ctx, guid);
  await requireAppWriter(ctx, scope);
  const { app } = scope;
  const patch: { name?: string; lifecycle_buildpacks?: string; lifecycle_stack?: string | null } = {};
  if (input.name !== undefined) patch.name = input.name;
  if (input.lifecycle) {
    const l = input.lifecycle;
    if (l.type !== undefined && l.type !== app.lifecycle_type) {
      throw unprocessable(`Lifecycle type cannot be changed from ${app.lifecycle_type} to ${l.type}`);
    }
    if (app.lifecycle_type !== 'docker') {
      if (l.buildpacks !== undefined) patch.lifecycle_buildpacks = JSON.stringify(l.buildpacks);
      if (l.stack !== undefined) patch.lifecycle_stack = await resolveStack(ctx.store.db, l.stack);
    }
  }
  const name = input.name ?? app.name;
  // A resource's app keeps its name and the lifecycle it declares (domain/declared.ts).
  const changed = [
    ...(input.name !== undefined && input.name !== app.name ? ['name'] : []),
    ...((patch.lifecycle_buildpacks !== undefined && patch.lifecycle_buildpacks !== app.lifecycle_buildpacks) || (patch.lifecycle_stack !== undefined && patch.lifecycle_stack !== app.lifecycle_stack) ? ['lifecycle'] : []),
    ...ownershipKeys(input.metadata, ctx.access.admin),
  ];
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'apps', guid: app.guid, type: 'App', name: app.name }, changed);
  try {
    return await ctx.store.write(async (tx) => {
      if (input.name !== undefined && (await nameInUse(tx.db, 'apps', name, { within: { space_guid: app.space_guid }, anyCase: true, except: app.guid }))) throw uniqueness(appNameTaken(name));
      if (Object.keys(patch).length > 0) await tx.update('apps', app.guid, patch, { expectedGeneration: app.generation });
      const metadata = await saveMetadata(tx, 'apps', app.guid, input.metadata);
      await auditApp(tx, ctx, 'update', { app: { guid: app.guid, name }, space: scope.space }, { request: input });
      return { app: await loadApp(tx.db, app.guid), metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw uniqueness(appNameTaken(name));
    throw err;
  }
}

// ---- delete ----

async function deleteRowsOf(
  tx: WriteTx,
  table: 'processes' | 'packages' | 'builds' | 'droplets' | 'deployments' | 'revisions' | 'tasks' | 'sidecars',
  appGuids: string[],
): Promise<void> {
  const rows = await tx.db.selectFrom(table).select('guid').where('app_guid', 'in', appGuids).execute();
  const guids = rows.map((r) => r.guid);
  await deleteMetadata(tx, table, guids);
  // kysely cannot type a filter over a union of tables; every one of these has app_guid.
  await tx.deleteWhere(table as 'processes', (eb) => eb('app_guid', 'in', appGuids));
}

/**
 * Deletes apps with their deployments, revisions, tasks, sidecars, processes, packages, builds, droplets and route
 * mappings, in the caller's transaction. Blobs are not touched here: the change feed's `delete` entries tell their owners to collect them.
 */
export async function deleteApps(tx: WriteTx, appGuids: string[]): Promise<void> {
  if (appGuids.length === 0) return;
  for (let i = 0; i < appGuids.length; i += 500) {
    const chunk = appGuids.slice(i, i + 500);
    // Deployments first: they name revisions, droplets and processes of the app.
    for (const table of ['deployments', 'revisions', 'tasks', 'sidecars', 'processes', 'packages', 'builds', 'droplets'] as const) {
      await deleteRowsOf(tx, table, chunk);
    }
    await tx.db.deleteFrom('sidecar_process_types').where('app_guid', 'in', chunk).execute();
    // Service bindings were unbound at the brokers before this transaction (a before-hook of the delete job).
    await tx.deleteWhere('service_credential_bindings', (eb) => eb('app_guid', 'in', chunk));
    const destinations = await tx.db.selectFrom('route_destinations').select(['guid', 'route_guid']).where('app_guid', 'in', chunk).execute();
    await tx.deleteWhere('route_destinations', (eb) => eb('app_guid', 'in', chunk));
    // The routes' rows do not change, but their watchers (the routing table) must look again.
    for (const d of destinations) tx.changed('routes', d.route_guid, 'update');
    await deleteLocksOf(tx, 'app', chunk);
    await deleteMetadata(tx, 'apps', chunk);
    await tx.deleteWhere('apps', (eb) => eb('guid', 'in', chunk));
  }
}

/** For the space/org cascade: every app of these spaces, with everything that hangs off them. */
export async function deleteAppsOfSpaces(tx: WriteTx, spaceGuids: string[]): Promise<void> {
  if (spaceGuids.length === 0) return;
  await deleteLocksOf(tx, 'space', spaceGuids);
  const apps = await tx.db.selectFrom('apps').select('guid').where('space_guid', 'in', spaceGuids).execute();
  await deleteApps(tx, apps.map((a) => a.guid));
}

/** Marks the app as being deleted and returns the job that removes it. */
export async function deleteApp(ctx: Ctx, guid: string): Promise<string> {
  const scope = await findVisibleApp(ctx, guid);
  if (!(await ctx.access.canWriteSpace(scope.space.guid))) throw notAuthorized();
  await assertSpaceMutable(ctx, scope.space);
  await assertNotLockedByOthers(ctx.store.db, ctx.principal, { appGuid: scope.app.guid, spaceGuid: scope.space.guid });
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'apps', guid: scope.app.guid, type: 'App', name: scope.app.name }, 'delete');
  return startDeleteJob(ctx, 'app', scope.app.guid, async (tx) => {
    // Desired state becomes STOPPED at once so the runtime drains instances before the rows go.
    await tx.update('apps', scope.app.guid, { status: 'deleting', state: 'STOPPED' });
    await auditApp(tx, ctx, 'delete-request', scope, { request: { recursive: true } });
  });
}

export function registerAppJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('app.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const app = await tx.db.selectFrom('apps').select('guid').where('guid', '=', job.resource_guid).executeTakeFirst();
      if (!app) return; // already gone: a re-run after a crash finishes quietly
      await deleteApps(tx, [app.guid]);
    });
  });
  handlers.register('app.buildpack_cache_delete', async ({ job }) => {
    for (const clear of buildpackCacheClearers) await clear(job.resource_guid);
  });
}

export async function clearBuildpackCache(ctx: Ctx, guid: string): Promise<string> {
  const scope = await findVisibleApp(ctx, guid);
  await requireAppManager(ctx, scope);
  return ctx.store.write(async (tx) => {
    await auditApp(tx, ctx, 'build.cache.delete', scope);
    return enqueueJob(tx, {
      operation: 'app.buildpack_cache_delete',
      resourceType: 'app',
      resourceGuid: scope.app.guid,
      userGuid: ctx.principal.guid,
    });
  });
}

// ---- start / stop / restart ----

async function setState(ctx: Ctx, guid: string, action: 'start' | 'stop' | 'restart'): Promise<Row<'apps'>> {
  const scope = await findVisibleApp(ctx, guid);
  await requireAppManager(ctx, scope);
  const { app } = scope;
  if (action !== 'stop') {
    if (!app.droplet_guid) throw unprocessable(START_WITHOUT_DROPLET);
    if (app.lifecycle_type === 'docker' && !ctx.access.admin) await requireFeature(ctx.store.db, 'diego_docker');
  }
  return ctx.store.write(async (tx) => {
    if (action !== 'stop') {
      // Every process starts running, so all of them must fit; a restart replaces its own usage.
      const processes = await tx.db.selectFrom('processes').selectAll().where('app_guid', '=', app.guid).orderBy('id').execute();
      await assertProcessesFit(tx.db, scope.space, processes.map(toRun));
    }
    await tx.update('apps', app.guid, { state: action === 'stop' ? 'STOPPED' : 'STARTED' }, { expectedGeneration: app.generation });
    if (action === 'restart') await bumpProcessVersions(tx, app.guid);
    // Starting a stopped app launches what is current now: the process versions stay, what they launched with is
    // forgotten (the first instance records it again). Starting a started one changes nothing, as in CC.
    if (action === 'start' && app.state === 'STOPPED') {
      await tx.updateStatusWhere('processes', (eb) => eb('app_guid', '=', app.guid), {
        launched_version: null,
        launched_droplet_guid: null,
        launched_environment_variables: null,
      });
    }
    // Upstream's AppStart resolves the revision in the request (a `cf set-env` + `cf restart` records it here).
    if (action !== 'stop') await recordRevision(tx, app.guid);
    await auditApp(tx, ctx, action, scope);
    return loadApp(tx.db, app.guid);
  });
}

export const startApp = (ctx: Ctx, guid: string) => setState(ctx, guid, 'start');
export const stopApp = (ctx: Ctx, guid: string) => setState(ctx, guid, 'stop');
export const restartApp = (ctx: Ctx, guid: string) => setState(ctx, guid, 'restart');

// ---- current droplet ----

/** Upstream's wording for a current-droplet assignment during a rollout (CONVENTIONS.md §17.1, §18). */
export const DEPLOYMENT_IN_PROGRESS =
  'Unable to assign current droplet while the app has a deployment in progress. Wait for the deployment to complete or cancel it.';

/** Whether the app has a deployment in `status.value` ACTIVE (deploying, paused or canceling). */
export async function hasActiveDeployment(db: Kysely<Database>, appGuid: string): Promise<boolean> {
  const row = await db.selectFrom('deployments').select('guid').where('app_guid', '=', appGuid).where('status_value', '=', 'ACTIVE').executeTakeFirst();
  return row !== undefined;
}

/** The app's current droplet, or 404 `Droplet not found` (the cf CLI matches that exact detail). */
export async function getCurrentDroplet(ctx: Ctx, guid: string): Promise<{ scope: AppScope; droplet: Row<'droplets'> }> {
  const scope = await findVisibleApp(ctx, guid);
  const droplet = scope.app.droplet_guid
    ? await ctx.store.db.selectFrom('droplets').selectAll().where('guid', '=', scope.app.droplet_guid).executeTakeFirst()
    : undefined;
  if (!droplet) throw notFound('Droplet');
  return { scope, droplet };
}

/**
 * Makes a STAGED droplet of the app its current one and creates a process for every type the droplet declares
 * that the app does not have yet (existing processes are kept). Running instances are not replaced: the new
 * droplet takes effect at the next (re)start (CONVENTIONS.md §16).
 */
export async function setCurrentDroplet(ctx: Ctx, guid: string, input: SetCurrentDroplet): Promise<{ app: Row<'apps'>; droplet: Row<'droplets'> }> {
  const scope = await findVisibleApp(ctx, guid);
  await requireAppManager(ctx, scope);
  if (input.guid === null) throw unprocessable(CANNOT_REMOVE_DROPLET);
  const { app } = scope;
  // Upstream refuses before it looks at the droplet.
  if (await hasActiveDeployment(ctx.store.db, app.guid)) throw unprocessable(DEPLOYMENT_IN_PROGRESS);
  const droplet = await ctx.store.db.selectFrom('droplets').selectAll().where('guid', '=', input.guid).executeTakeFirst();
  if (!droplet || droplet.app_guid !== app.guid || droplet.state !== 'STAGED') throw unprocessable(UNABLE_TO_ASSIGN_DROPLET);
  const processTypes = parseJsonObject(droplet.process_types);
  return ctx.store.write(async (tx) => {
    // Checked inside the write so a deployment created meanwhile cannot slip past.
    if (await hasActiveDeployment(tx.db, app.guid)) throw unprocessable(DEPLOYMENT_IN_PROGRESS);
    const existing = new Set((await tx.db.selectFrom('processes').select('type').where('app_guid', '=', app.guid).execute()).map((p) => p.type));
    // web is always present; it was created with the app, but an app whose web process vanished gets it back.
    for (const type of [WEB, ...Object.keys(processTypes).sort()]) {
      if (existing.has(type)) continue;
      const processGuid = await insertProcess(tx, app, type, type === WEB ? app.guid : newGuid());
      existing.add(type);
      await recordAudit(tx, {
        type: 'audit.app.process.create',
        actor: ctx.principal,
        target: { type: 'app', guid: app.guid, name: app.name },
        data: { process_guid: processGuid, process_type: type },
        spaceGuid: scope.space.guid,
        organizationGuid: scope.space.organization_guid,
      });
    }
    if (app.droplet_guid !== droplet.guid) await tx.update('apps', app.guid, { droplet_guid: droplet.guid }, { expectedGeneration: app.generation });
    await auditApp(tx, ctx, 'droplet.mapped', scope, { request: { droplet_guid: droplet.guid } });
    return { app: await loadApp(tx.db, app.guid), droplet };
  });
}

/** For `GET …/relationships/current_droplet`: the same lookup as the droplet itself. */
export async function currentDropletGuid(ctx: Ctx, guid: string): Promise<string> {
  return (await getCurrentDroplet(ctx, guid)).droplet.guid;
}

// ---- environment ----

/** `GET /v3/apps/:guid/env`: admins, admin read-only, space developers and (redacted) supporters. */
export async function getAppEnvironment(ctx: Ctx, guid: string, cfApi: string): Promise<AppEnvironment> {
  const scope = await findVisibleApp(ctx, guid);
  const { access } = ctx;
  const developer = await access.hasSpaceRole(scope.space.guid, 'space_developer');
  const supporter = await access.hasSpaceRole(scope.space.guid, 'space_supporter');
  if (!access.globalSecrets && !developer && !supporter) throw notAuthorized();
  if (!access.admin) await requireFeature(ctx.store.db, 'env_var_visibility');
  if (!access.globalSecrets && developer) await requireFeature(ctx.store.db, 'space_developer_env_var_visibility');
  const org = await orgOf(ctx.store.db, scope.space);
  const env = await appEnvironment(
    ctx.store.db,
    { app: scope.app, space: scope.space, org, cfApi },
    !access.globalSecrets && !developer,
    ctx.store.secrets,
    fileDeliveryEnv(scope.app),
  );
  await ctx.store.write((tx) => auditApp(tx, ctx, 'environment.show', scope));
  return env;
}

async function requireEnvVarReader(ctx: Ctx, scope: AppScope): Promise<void> {
  if (ctx.access.globalSecrets) return;
  if (!(await ctx.access.hasSpaceRole(scope.space.guid, 'space_developer', 'space_supporter'))) throw notAuthorized();
}

export async function getEnvironmentVariables(ctx: Ctx, guid: string): Promise<{ app: Row<'apps'>; vars: Record<string, string> }> {
  const scope = await findVisibleApp(ctx, guid);
  await requireEnvVarReader(ctx, scope);
  return { app: scope.app, vars: openEnvVars(ctx.store.secrets, scope.app.environment_variables) };
}

/** Merges `{"KEY": "value", "OLD": null}` into the app's variables (null deletes); takes effect at restart. */
export async function updateEnvironmentVariables(ctx: Ctx, guid: string, patch: EnvVarPatch): Promise<{ app: Row<'apps'>; vars: Record<string, string> }> {
  const scope = await findVisibleApp(ctx, guid);
  await requireAppManager(ctx, scope);
  return ctx.store.write(async (tx) => {
    // Read again inside the write so concurrent PATCHes merge instead of overwriting each other.
    const current = await loadApp(tx.db, scope.app.guid);
    const vars = openEnvVars(tx.secrets, current.environment_variables);
    // Keys a resource declares are its own (domain/declared.ts).
    const changed = Object.entries(patch).filter(([k, v]) => (v === null ? k in vars : vars[k] !== v)).map(([k]) => `env.${k}`);
    await assertNotDeclared(tx.db, ctx.principal, { resourceType: 'apps', guid: current.guid, type: 'App', name: current.name }, changed);
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete vars[k];
      else vars[k] = v;
    }
    await tx.update('apps', current.guid, { environment_variables: sealEnvVars(tx.secrets, vars) }, { expectedGeneration: current.generation });
    await auditApp(tx, ctx, 'update', scope, { request: { environment_variables: '[PRIVATE DATA HIDDEN]' } });
    return { app: await loadApp(tx.db, current.guid), vars };
  });
}

// ---- features, permissions, ssh ----

export interface AppFeature {
  name: AppFeatureName;
  enabled: boolean;
}

const featuresOf = (app: Row<'apps'>): AppFeature[] => [
  { name: 'ssh', enabled: app.enable_ssh === 1 },
  { name: 'revisions', enabled: app.revisions_enabled === 1 },
  { name: 'service-binding-k8s', enabled: app.service_binding_k8s_enabled === 1 },
  { name: 'file-based-vcap-services', enabled: app.file_based_vcap_services_enabled === 1 },
];

/** The apps column behind each feature. */
const FEATURE_COLUMNS = {
  ssh: 'enable_ssh',
  revisions: 'revisions_enabled',
  'service-binding-k8s': 'service_binding_k8s_enabled',
  'file-based-vcap-services': 'file_based_vcap_services_enabled',
} as const satisfies Record<AppFeatureName, keyof Row<'apps'>>;

function findFeature(app: Row<'apps'>, name: string): AppFeature {
  const feature = isAppFeature(name) ? featuresOf(app).find((f) => f.name === name) : undefined;
  if (!feature) throw notFound('Feature');
  return feature;
}

export async function listAppFeatures(ctx: Ctx, guid: string): Promise<AppFeature[]> {
  return featuresOf(await getApp(ctx, guid));
}

export async function getAppFeature(ctx: Ctx, guid: string, name: string): Promise<AppFeature> {
  return findFeature(await getApp(ctx, guid), name);
}

/** Developers toggle any feature; supporters only `revisions` (CONVENTIONS.md Appendix B). */
export async function updateAppFeature(ctx: Ctx, guid: string, name: string, input: UpdateAppFeature): Promise<AppFeature> {
  const scope = await findVisibleApp(ctx, guid);
  const feature = findFeature(scope.app, name);
  const { access } = ctx;
  const allowed = (await access.canWriteSpace(scope.space.guid)) || (feature.name === 'revisions' && (await access.canManageApps(scope.space.guid)));
  if (!allowed) throw notAuthorized();
  await assertAppMutable(ctx, scope);
  // Bindings come as files one way or the other, never both (CC's AppFeatureUpdate).
  const other = feature.name === 'service-binding-k8s' ? 'file-based-vcap-services' : feature.name === 'file-based-vcap-services' ? 'service-binding-k8s' : undefined;
  if (input.enabled && other && featuresOf(scope.app).some((f) => f.name === other && f.enabled)) throw unprocessable(BINDING_FEATURES_EXCLUSIVE);
  const updated = await ctx.store.write(async (tx) => {
    const patch = { [FEATURE_COLUMNS[feature.name]]: input.enabled ? 1 : 0 };
    await tx.update('apps', scope.app.guid, patch, { expectedGeneration: scope.app.generation });
    await auditApp(tx, ctx, 'update', scope, { request: patch });
    return loadApp(tx.db, scope.app.guid);
  });
  return findFeature(updated, name);
}

export async function appPermissions(ctx: Ctx, guid: string): Promise<{ read_basic_data: boolean; read_sensitive_data: boolean }> {
  const scope = await findVisibleApp(ctx, guid);
  return { read_basic_data: true, read_sensitive_data: await ctx.access.canReadSpaceSecrets(scope.space.guid) };
}

/** SSH is allowed globally in Kiln; a space or the app itself may turn it off. */
export async function appSshEnabled(ctx: Ctx, guid: string): Promise<{ enabled: boolean; reason: string }> {
  const { app, space } = await findVisibleApp(ctx, guid);
  if (space.allow_ssh !== 1) return { enabled: false, reason: `Disabled for space ${space.name}` };
  if (app.enable_ssh !== 1) return { enabled: false, reason: `Disabled for app ${app.name}` };
  return { enabled: true, reason: '' };
}
