import type { PlatformNames } from '../domain/domains.ts';
import type { Kysely } from 'kysely';
import { stringify } from 'yaml';
import { BINDING_FEATURES_EXCLUSIVE, parseJsonObject, parseJsonStringArray } from '../domain/apps.ts';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import { parseManifestApps, type ManifestApp, type ManifestProcess, type ManifestRoute } from '../domain/manifest.ts';
import { diffManifest as diffApplications, type DiffOp } from '../domain/manifest-diff.ts';
import { manifestApplications } from '../domain/manifest-document.ts';
import { appManifest, type AppState } from '../domain/manifest-generate.ts';
import { isAdmin, type Principal } from '../domain/principal.ts';
import { declarationFor, refuseDeclaredWrite } from './declared-guard.ts';
import { WEB } from '../domain/processes.ts';
import { randomRouteHost } from '../domain/random-route.ts';
import { DEFAULT_APP_PORT, destinationProtocolError, hostErrors, MAX_DESTINATIONS, pathErrors } from '../domain/routes.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { loadOneMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row, RowUpdate } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { hasActiveDeployment, insertProcess } from './apps.ts';
import { assertSpaceMutable, findVisibleApp, requireAppSecretsReader } from './app-scope.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { assertNotLockedByOthers } from './lock-guard.ts';
import { requireFeature } from './feature-flags.ts';
import { enqueueJob, type JobContext, type JobHandlers } from '../lifecycle/jobs.ts';
import { assertResizeFits } from './process-quotas.ts';
import { auditMapping, type AppRef } from './route-audit.ts';
import { insertDestination, touchRoute } from './route-destinations.ts';
import { parseOptions, routeUri } from './route-reads.ts';
import { newRouteProblem } from './routes.ts';
import { isSealed, openEnvVars, sealEnvVars } from '../store/env-vars.ts';
import type { SecretBox } from '../store/secret-box.ts';
import { isReconciler, manifestDiffField } from '../domain/declared.ts';
import { defaultDomainOf } from './domains.ts';

export const APPLY_MANIFEST = 'space.apply_manifest';

/**
 * The manifest a queued apply job works from lives in `settings` under this prefix until the job is done:
 * the jobs table has no payload column, and keeping it in the store (not in memory) lets a job survive a restart.
 * Sealed (secret-box.ts): it carries the manifest's environment variables, which never rest in plain text.
 */
const PAYLOAD_PREFIX = 'apply_manifest:';

interface StoredPrincipal {
  guid: string;
  username: string | null;
  origin: string | null;
  email: string | null;
  isClient: boolean;
  scopes: string[];
}

interface ApplyPayload {
  spaceGuid: string;
  principal: StoredPrincipal;
  apps: Array<{ guid: string; manifest: ManifestApp }>;
}

const storedPrincipal = (p: Principal): StoredPrincipal => ({
  guid: p.guid,
  username: p.username,
  origin: p.origin,
  email: p.email,
  isClient: p.isClient,
  scopes: [...p.scopes],
});
const principalOf = (p: StoredPrincipal): Principal => ({ ...p, scopes: new Set(p.scopes) });

// ---- authorization ----

/** apply_manifest and manifest_diff: space developers (and admins) of a visible, writable space; 404 otherwise. */
async function findManifestSpace(ctx: Ctx, guid: string): Promise<Row<'spaces'>> {
  const space = await ctx.store.db.selectFrom('spaces').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!space || !(await ctx.access.canReadSpace(space))) throw notFound('Space');
  if (!(await ctx.access.canWriteSpace(space.guid))) throw notAuthorized();
  await assertSpaceMutable(ctx, space);
  return space;
}

const findAppByName = (db: Kysely<Database>, spaceGuid: string, name: string) =>
  db
    .selectFrom('apps')
    .selectAll()
    .where('space_guid', '=', spaceGuid)
    .where((eb) => eb(eb.fn('lower', ['name']), '=', name.toLowerCase()))
    .executeTakeFirst();

// ---- apply ----

/**
 * `POST /v3/spaces/:guid/actions/apply_manifest`: validates every application (one 422 listing all problems,
 * nothing written), creates the apps that do not exist yet (the cf CLI looks them up right after the 202),
 * and queues the job that applies the rest.
 */
export async function applyManifest(ctx: Ctx, spaceGuid: string, doc: Record<string, unknown>): Promise<string> {
  const space = await findManifestSpace(ctx, spaceGuid);
  const apps = parseManifestApps(doc);
  const raws = manifestApplications(doc);
  if (!ctx.access.admin) {
    if (apps.some((a) => a.lifecycle === 'docker')) await requireFeature(ctx.store.db, 'diego_docker');
    if (apps.some((a) => a.lifecycle === 'cnb')) await requireFeature(ctx.store.db, 'diego_cnb');
  }
  await assertManifestNotDeclared(ctx, space.guid, raws);
  try {
    return await ctx.store.write(async (tx) => {
      const defaultStack = await tx.db.selectFrom('stacks').select('name').where('is_default', '=', 1).executeTakeFirst();
      const entries: ApplyPayload['apps'] = [];
      // A push through the manifest is refused while someone else locks the space or one of its apps.
      await assertNotLockedByOthers(tx.db, ctx.principal, { spaceGuid: space.guid });
      for (const [i, m] of apps.entries()) {
        let app = await findAppByName(tx.db, space.guid, m.name);
        if (app) await assertNotLockedByOthers(tx.db, ctx.principal, { appGuid: app.guid, spaceGuid: space.guid });
        if (!app) app = await createSkeleton(tx, ctx.principal, space, m, defaultStack?.name ?? null);
        entries.push({ guid: app.guid, manifest: m });
        await recordAudit(tx, {
          type: 'audit.app.apply_manifest',
          actor: ctx.principal,
          target: { type: 'app', guid: app.guid, name: app.name },
          data: { request: { manifest: stringify({ applications: [redactEnv(raws[i])] }) } },
          spaceGuid: space.guid,
          organizationGuid: space.organization_guid,
        });
      }
      await collectFinishedPayloads(tx);
      const job = await enqueueJob(tx, { operation: APPLY_MANIFEST, resourceType: 'space', resourceGuid: space.guid, userGuid: ctx.principal.guid });
      const payload: ApplyPayload = { spaceGuid: space.guid, principal: storedPrincipal(ctx.principal), apps: entries };
      await tx.db.insertInto('settings').values({ key: PAYLOAD_PREFIX + job, value: tx.secrets.seal(JSON.stringify(payload)) }).execute();
      return job;
    });
  } catch (err) {
    // Two pushes creating the same app at once: the loser reports the name as taken, like POST /v3/apps.
    if (isUniqueViolation(err)) throw unprocessable('An app with the same name was created concurrently; retry the push.');
    throw err;
  }
}

/** The audit event keeps the manifest, without environment values (they are often secrets). */
function redactEnv(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !('env' in raw)) return raw;
  return { ...raw, env: '[PRIVATE DATA HIDDEN]' };
}

/** Payloads of jobs that ended (failed jobs keep theirs so a re-run fails the same way) are dropped now and then. */
async function collectFinishedPayloads(tx: WriteTx): Promise<void> {
  const rows = await tx.db.selectFrom('settings').select('key').where('key', 'like', `${PAYLOAD_PREFIX}%`).execute();
  if (rows.length === 0) return;
  const guids = rows.map((r) => r.key.slice(PAYLOAD_PREFIX.length));
  const live = new Set(
    (await tx.db.selectFrom('jobs').select('guid').where('guid', 'in', guids).where('state', '=', 'PROCESSING').execute()).map((j) => j.guid),
  );
  const dead = rows.filter((r) => !live.has(r.key.slice(PAYLOAD_PREFIX.length))).map((r) => r.key);
  if (dead.length > 0) await tx.db.deleteFrom('settings').where('key', 'in', dead).execute();
}

/** A new app as Cloud Controller's find-or-create skeleton makes it: stopped, no droplet, a web process. */
async function createSkeleton(tx: WriteTx, principal: Principal, space: Row<'spaces'>, m: ManifestApp, defaultStack: string | null): Promise<Row<'apps'>> {
  const guid = newGuid();
  const type = m.lifecycle ?? 'buildpack';
  await tx.insert('apps', {
    guid,
    name: m.name,
    space_guid: space.guid,
    state: 'STOPPED',
    status: 'active',
    lifecycle_type: type,
    lifecycle_buildpacks: '[]',
    lifecycle_stack: type === 'docker' ? null : defaultStack,
    environment_variables: '{}',
    droplet_guid: null,
    enable_ssh: 1,
    revisions_enabled: 1,
  });
  await insertProcess(tx, { guid }, WEB, guid);
  await recordAudit(tx, {
    type: 'audit.app.create',
    actor: principal,
    target: { type: 'app', guid, name: m.name },
    data: { request: { name: m.name, lifecycle: { type } } },
    spaceGuid: space.guid,
    organizationGuid: space.organization_guid,
  });
  return tx.db.selectFrom('apps').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
}

/** What applying one app needs besides the transaction. */
interface ApplyEnv {
  principal: Principal;
  admin: boolean;
  space: Row<'spaces'>;
  org: Row<'organizations'>;
  warn(detail: string): void;
  /** The API's names, which no route may spell. */
  platform: PlatformNames | undefined;
}

const fail = (app: string, detail: string) => unprocessable(`For application '${app}': ${detail}`);

/** Runs the queued job: each app in its own transaction, in manifest order (CONVENTIONS.md §21.3). */
async function runApplyManifest(store: Store, { job, warn }: JobContext, platform: PlatformNames | undefined): Promise<void> {
  const key = PAYLOAD_PREFIX + job.guid;
  const row = await store.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
  if (!row) return; // finished before a crash took the job's final state with it
  // A payload queued before payloads were sealed is plain JSON.
  const payload = JSON.parse(isSealed(row.value) ? store.secrets.open(row.value) : row.value) as ApplyPayload;
  const principal = principalOf(payload.principal);
  const space = await store.db.selectFrom('spaces').selectAll().where('guid', '=', payload.spaceGuid).executeTakeFirst();
  if (!space) throw notFound('Space');
  const org = await store.db.selectFrom('organizations').selectAll().where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
  const env: ApplyEnv = { principal, admin: isAdmin(principal), space, org, warn, platform };
  for (const [i, entry] of payload.apps.entries()) {
    await store.write(async (tx) => {
      await applyApp(tx, env, entry.guid, entry.manifest);
      if (i === payload.apps.length - 1) await tx.db.deleteFrom('settings').where('key', '=', key).execute();
    });
  }
}

export function registerManifestJobs(handlers: JobHandlers, store: Store, platform?: PlatformNames): void {
  handlers.register(APPLY_MANIFEST, (ctx) => runApplyManifest(store, ctx, platform));
}

async function applyApp(tx: WriteTx, env: ApplyEnv, appGuid: string, m: ManifestApp): Promise<void> {
  const app = await tx.db.selectFrom('apps').selectAll().where('guid', '=', appGuid).executeTakeFirst();
  if (!app || app.status === 'deleting') throw fail(m.name, 'App not found');
  try {
    // Order as upstream: features, processes (create, update, scale), sidecars, app update, routes, env vars.
    for (const p of m.processes) await applyProcess(tx, env, app, p);
    for (const s of m.sidecars ?? []) env.warn(`Sidecar '${s.name}' of app '${app.name}' was not created: Kiln does not run sidecars yet.`);
    if (m.singularBuildpack) env.warn(`Deprecated field 'buildpack' used in the manifest of app '${app.name}'; use 'buildpacks' instead.`);
    await applyAppSettings(tx, env, app, m);
    await applyRoutes(tx, env, app, m);
  } catch (err) {
    if (err instanceof KilnError && err.errorName === 'UnprocessableEntity' && !err.detail.startsWith('For application ')) throw fail(m.name, err.detail);
    throw err;
  }
}

// ---- processes ----

async function applyProcess(tx: WriteTx, env: ApplyEnv, app: Row<'apps'>, m: ManifestProcess): Promise<void> {
  let p = await tx.db.selectFrom('processes').selectAll().where('app_guid', '=', app.guid).where('type', '=', m.type).orderBy('created_at', 'desc').executeTakeFirst();
  const audit = (type: string, request: Record<string, unknown>) =>
    recordAudit(tx, {
      type: `audit.app.process.${type}`,
      actor: env.principal,
      target: { type: 'app', guid: app.guid, name: app.name },
      data: { process_guid: p!.guid, process_type: m.type, ...(type === 'create' ? {} : { request }) },
      spaceGuid: env.space.guid,
      organizationGuid: env.space.organization_guid,
    });
  if (!p) {
    const guid = await insertProcess(tx, app, m.type, m.type === WEB ? app.guid : newGuid());
    p = await tx.db.selectFrom('processes').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
    await audit('create', {});
  }
  const update: RowUpdate<'processes'> = {};
  if (m.command !== undefined && m.command !== p.command) update.command = m.command;
  const hc = m.healthCheck;
  const hcType = hc.type ?? p.health_check_type;
  if (hc.endpoint !== undefined && hcType !== 'http') throw unprocessable('Health check type must be "http" to set a health check HTTP endpoint');
  if (hc.type !== undefined && hc.type !== p.health_check_type) update.health_check_type = hc.type;
  if (hcType !== 'http' && p.health_check_endpoint !== null) update.health_check_endpoint = null;
  else if (hc.endpoint !== undefined && hc.endpoint !== p.health_check_endpoint) update.health_check_endpoint = hc.endpoint;
  if (hc.invocationTimeout !== undefined && hc.invocationTimeout !== p.health_check_invocation_timeout) update.health_check_invocation_timeout = hc.invocationTimeout;
  if (hc.interval !== undefined && hc.interval !== p.health_check_interval) update.health_check_interval = hc.interval;
  if (hc.timeout !== undefined && hc.timeout !== p.health_check_timeout) update.health_check_timeout = hc.timeout;
  const rc = m.readinessCheck;
  const rcType = rc.type ?? p.readiness_check_type;
  if (rc.endpoint !== undefined && rcType !== 'http') throw unprocessable('Readiness health check type must be "http" to set a health check HTTP endpoint');
  if (rc.type !== undefined && rc.type !== p.readiness_check_type) update.readiness_check_type = rc.type;
  if (rcType !== 'http' && p.readiness_check_endpoint !== null) update.readiness_check_endpoint = null;
  else if (rc.endpoint !== undefined && rc.endpoint !== p.readiness_check_endpoint) update.readiness_check_endpoint = rc.endpoint;
  if (rc.invocationTimeout !== undefined && rc.invocationTimeout !== p.readiness_check_invocation_timeout) update.readiness_check_invocation_timeout = rc.invocationTimeout;
  if (rc.interval !== undefined && rc.interval !== p.readiness_check_interval) update.readiness_check_interval = rc.interval;
  const scale: RowUpdate<'processes'> = {};
  if (m.instances !== undefined && m.instances !== p.instances) scale.instances = m.instances;
  if (m.memoryInMb !== undefined && m.memoryInMb !== p.memory_in_mb) scale.memory_in_mb = m.memoryInMb;
  if (m.diskInMb !== undefined && m.diskInMb !== p.disk_in_mb) scale.disk_in_mb = m.diskInMb;
  if (m.logRateLimit !== undefined && m.logRateLimit !== Number(p.log_rate_limit_in_bytes_per_second)) scale.log_rate_limit_in_bytes_per_second = m.logRateLimit;
  // Unchanged settings are not written, so re-applying the same manifest is a no-op for the runtime.
  if (Object.keys(update).length + Object.keys(scale).length === 0) return;
  // A rollout owns the web processes, as upstream's ProcessUpdate and ProcessScale refuse.
  if (m.type === WEB && (await hasActiveDeployment(tx.db, app.guid))) {
    throw unprocessable(`Cannot ${Object.keys(update).length > 0 ? 'update' : 'scale'} this process while a deployment is in flight.`);
  }
  if (app.state === 'STARTED') {
    await assertResizeFits(tx.db, env.space, p, { instances: m.instances, memoryInMb: m.memoryInMb, logRate: m.logRateLimit });
  }
  await tx.update('processes', p.guid, { ...update, ...scale }, { expectedGeneration: p.generation });
  if (Object.keys(update).length > 0) await audit('update', 'command' in update ? { ...update, command: '[PRIVATE DATA HIDDEN]' } : update);
  if (Object.keys(scale).length > 0) await audit('scale', scale);
}

// ---- app settings ----

async function applyAppSettings(tx: WriteTx, env: ApplyEnv, app: Row<'apps'>, m: ManifestApp): Promise<void> {
  const patch: RowUpdate<'apps'> = {};
  const wants = m.docker ? 'docker' : m.lifecycle ?? (m.buildpacks !== undefined || m.stack !== undefined ? 'buildpack' : undefined);
  if (wants !== undefined && wants !== app.lifecycle_type && !(app.lifecycle_type === 'cnb' && wants === 'buildpack' && m.lifecycle === undefined)) {
    throw unprocessable(`Lifecycle type cannot be changed from ${app.lifecycle_type} to ${wants}`);
  }
  if (m.buildpacks !== undefined) {
    if (app.lifecycle_type === 'cnb' && m.buildpacks.length === 0) throw unprocessable('Buildpacks must specify at least one buildpack when using Cloud Native Buildpacks');
    const next = JSON.stringify(m.buildpacks);
    if (next !== app.lifecycle_buildpacks) patch.lifecycle_buildpacks = next;
  }
  if (m.stack !== undefined) {
    const stack = await tx.db.selectFrom('stacks').select('name').where('name', '=', m.stack).executeTakeFirst();
    if (!stack) throw unprocessable('Stack must be an existing stack');
    if (stack.name !== app.lifecycle_stack) patch.lifecycle_stack = stack.name;
  }
  if (m.features?.ssh !== undefined && (m.features.ssh ? 1 : 0) !== app.enable_ssh) patch.enable_ssh = m.features.ssh ? 1 : 0;
  if (m.features?.revisions !== undefined && (m.features.revisions ? 1 : 0) !== app.revisions_enabled) patch.revisions_enabled = m.features.revisions ? 1 : 0;
  const k8s = m.features?.['service-binding-k8s'];
  const fileBased = m.features?.['file-based-vcap-services'];
  if (k8s !== undefined && (k8s ? 1 : 0) !== app.service_binding_k8s_enabled) patch.service_binding_k8s_enabled = k8s ? 1 : 0;
  if (fileBased !== undefined && (fileBased ? 1 : 0) !== app.file_based_vcap_services_enabled) patch.file_based_vcap_services_enabled = fileBased ? 1 : 0;
  if ((patch.service_binding_k8s_enabled ?? app.service_binding_k8s_enabled) === 1 && (patch.file_based_vcap_services_enabled ?? app.file_based_vcap_services_enabled) === 1) {
    throw unprocessable(BINDING_FEATURES_EXCLUSIVE);
  }
  if (m.env && Object.keys(m.env).length > 0) {
    // Merged: variables the manifest does not name stay (CONVENTIONS.md §21.3).
    const current = openEnvVars(tx.secrets, app.environment_variables);
    const merged = { ...current, ...m.env };
    if (JSON.stringify(merged) !== JSON.stringify(current)) patch.environment_variables = sealEnvVars(tx.secrets, merged);
  }
  if (Object.keys(patch).length > 0) await tx.update('apps', app.guid, patch, { expectedGeneration: app.generation });
  if (m.metadata) await saveMetadata(tx, 'apps', app.guid, m.metadata);
  if (Object.keys(patch).length > 0 || m.metadata) {
    const request: Record<string, unknown> = { ...patch };
    if ('environment_variables' in request) request.environment_variables = '[PRIVATE DATA HIDDEN]';
    if (m.metadata) request.metadata = m.metadata;
    await recordAudit(tx, {
      type: 'audit.app.update',
      actor: env.principal,
      target: { type: 'app', guid: app.guid, name: app.name },
      data: { request },
      spaceGuid: env.space.guid,
      organizationGuid: env.space.organization_guid,
    });
  }
}

// ---- routes ----

/** The app as the route audit events name it. */
const mappedApp = (env: ApplyEnv, app: Row<'apps'>): AppRef => ({
  guid: app.guid,
  name: app.name,
  space_guid: env.space.guid,
  organization_guid: env.space.organization_guid,
});

async function applyRoutes(tx: WriteTx, env: ApplyEnv, app: Row<'apps'>, m: ManifestApp): Promise<void> {
  const existing = await tx.db.selectFrom('route_destinations').selectAll().where('app_guid', '=', app.guid).orderBy('id').execute();
  if (m.noRoute) {
    await tx.deleteWhere('route_destinations', (eb) => eb('app_guid', '=', app.guid));
    for (const d of existing) await auditMapping(tx, env.principal, 'unmap-route', mappedApp(env, app), d);
    for (const routeGuid of new Set(existing.map((d) => d.route_guid))) await touchRoute(tx, routeGuid);
    return;
  }
  if (m.routes) {
    for (const r of m.routes) await mapManifestRoute(tx, env, app, r);
    return;
  }
  if (existing.length > 0 || !(m.randomRoute || m.defaultRoute)) return;
  const domain = await defaultDomainOf(tx.db, env.org.guid);
  if (!domain) throw unprocessable('No default domains available');
  if (m.randomRoute) {
    const host = randomRouteHost(app.name);
    const problems = hostErrors(host);
    if (problems.length > 0) throw unprocessable(`Failed to create random route from app name: ${problems.join(', ')}`);
    await mapRoute(tx, env, app, domain, host, '', undefined, {});
    return;
  }
  const problems = hostErrors(app.name);
  if (problems.length > 0) throw unprocessable(`Failed to create default route from app name: ${problems.join(', ')}`);
  await mapRoute(tx, env, app, domain, app.name.toLowerCase(), '', undefined, {});
}

async function mapManifestRoute(tx: WriteTx, env: ApplyEnv, app: Row<'apps'>, r: ManifestRoute): Promise<void> {
  for (const c of r.candidates) {
    const domain = await tx.db
      .selectFrom('domains')
      .selectAll()
      .where((eb) => eb(eb.fn('lower', ['name']), '=', c.domain))
      .executeTakeFirst();
    if (!domain) continue;
    await mapRoute(tx, env, app, domain, c.host, r.path, r.port, { protocol: r.protocol, loadbalancing: r.loadbalancing });
    return;
  }
  throw unprocessable(`No domains exist for route ${r.route}`);
}

/** Finds or creates the route and maps the app's web process to it (additive; an existing mapping may change protocol). */
async function mapRoute(
  tx: WriteTx,
  env: ApplyEnv,
  app: Row<'apps'>,
  domain: Row<'domains'>,
  host: string,
  path: string,
  port: number | undefined,
  opts: { protocol?: string; loadbalancing?: string },
): Promise<void> {
  let route = await tx.db
    .selectFrom('routes')
    .selectAll()
    .where('domain_guid', '=', domain.guid)
    .where((eb) => eb(eb.fn('lower', ['host']), '=', host.toLowerCase()))
    .where('path', '=', path)
    .where('port', '=', port ?? 0)
    .executeTakeFirst();
  if (route) {
    const shared = await tx.db.selectFrom('route_shares').select('space_guid').where('route_guid', '=', route.guid).where('space_guid', '=', app.space_guid).executeTakeFirst();
    if (route.space_guid !== app.space_guid && !shared) throw unprocessable('Routes cannot be mapped to destinations in different spaces');
    if (opts.loadbalancing !== undefined) {
      const options = parseOptions(route.options);
      if (options.loadbalancing !== opts.loadbalancing) {
        await tx.update('routes', route.guid, { options: JSON.stringify({ ...options, loadbalancing: opts.loadbalancing }) }, { expectedGeneration: route.generation });
        route = await tx.db.selectFrom('routes').selectAll().where('guid', '=', route.guid).executeTakeFirstOrThrow();
      }
    }
  } else {
    route = await createRoute(tx, env, domain, host, path, port, opts.loadbalancing);
  }
  const dests = await tx.db.selectFrom('route_destinations').selectAll().where('route_guid', '=', route.guid).orderBy('id').execute();
  const mine = dests.find((d) => d.app_guid === app.guid && d.process_type === WEB);
  const protocol = opts.protocol ?? mine?.protocol ?? (route.protocol === 'tcp' ? 'tcp' : 'http1');
  const problem = destinationProtocolError(route.protocol, protocol);
  if (problem) throw unprocessable(problem);
  if (mine) {
    if (mine.protocol === protocol) return;
    await tx.update('route_destinations', mine.guid, { protocol }, { expectedGeneration: mine.generation });
    await touchRoute(tx, route.guid);
    return;
  }
  if (dests.length >= MAX_DESTINATIONS) throw unprocessable(`Routes can be mapped to at most ${MAX_DESTINATIONS} destinations.`);
  if (dests.some((d) => d.weight !== null)) throw unprocessable('Destinations cannot be inserted when there are weighted destinations already configured.');
  const row = await insertDestination(tx, route.guid, { appGuid: app.guid, processType: WEB, port: DEFAULT_APP_PORT, protocol, weight: null });
  await auditMapping(tx, env.principal, 'map-route', mappedApp(env, app), row);
  await touchRoute(tx, route.guid);
}

/**
 * A new route in the app's space, with the rules of `POST /v3/routes` (feature flag, host/path syntax, domain
 * availability, quotas, reserved names) checked inside this write so the whole app applies or nothing does.
 */
async function createRoute(
  tx: WriteTx,
  env: ApplyEnv,
  domain: Row<'domains'>,
  host: string,
  path: string,
  port: number | undefined,
  loadbalancing: string | undefined,
): Promise<Row<'routes'>> {
  const db = tx.db;
  const { space, org } = env;
  if (!env.admin) await requireFeature(db, 'route_creation');
  const syntax = [...hostErrors(host), ...pathErrors(path)];
  if (syntax.length > 0) throw unprocessable(syntax.join(', '));
  if (domain.owning_organization_guid === null && host === '*' && !env.admin) {
    throw unprocessable('You do not have sufficient permissions to create a route with a wildcard host on a domain not scoped to an organization.');
  }
  // The model rules are the routes API's own, checked in this write so the whole app applies or nothing does.
  const problem = await newRouteProblem(tx, { host, path, port }, space, org, domain, env.platform);
  if (problem) throw unprocessable(problem);
  const guid = newGuid();
  await tx.insert('routes', {
    guid,
    host,
    path,
    port: 0,
    domain_guid: domain.guid,
    space_guid: space.guid,
    protocol: 'http',
    options: JSON.stringify(loadbalancing ? { loadbalancing } : {}),
  });
  const route = await db.selectFrom('routes').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
  await recordAudit(tx, {
    type: 'audit.route.create',
    actor: env.principal,
    target: { type: 'route', guid, name: host },
    data: { request: { host, path, relationships: { space: { data: { guid: space.guid } }, domain: { data: { guid: domain.guid } } }, manifest_triggered: true } },
    spaceGuid: space.guid,
    organizationGuid: org.guid,
  });
  return route;
}

// ---- reading an app as a manifest ----

async function appState(db: Kysely<Database>, app: Row<'apps'>, secrets: SecretBox): Promise<AppState> {
  const all = await db.selectFrom('processes').selectAll().where('app_guid', '=', app.guid).orderBy('id').execute();
  // During a rollout the app has two web processes; the manifest describes the newest (upstream's web process).
  const newest = new Map(all.map((p) => [p.type, p]));
  const processes = all.filter((p) => newest.get(p.type) === p);
  const dests = await db
    .selectFrom('route_destinations')
    .innerJoin('routes', 'routes.guid', 'route_destinations.route_guid')
    .innerJoin('domains', 'domains.guid', 'routes.domain_guid')
    .select(['routes.guid', 'routes.host', 'routes.path', 'routes.port', 'domains.name as domain', 'route_destinations.protocol'])
    .where('route_destinations.app_guid', '=', app.guid)
    .orderBy('routes.id')
    .orderBy('route_destinations.id')
    .execute();
  const seen = new Set<string>();
  const routes: AppState['routes'] = [];
  for (const d of dests) {
    if (seen.has(d.guid)) continue;
    seen.add(d.guid);
    routes.push({ route: routeUri(d, d.domain), protocol: d.protocol });
  }
  let docker: AppState['docker'];
  if (app.lifecycle_type === 'docker') {
    const pkg = await db
      .selectFrom('packages')
      .select(['docker_image', 'docker_username'])
      .where('app_guid', '=', app.guid)
      .where('type', '=', 'docker')
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst();
    if (pkg?.docker_image) docker = { image: pkg.docker_image, username: pkg.docker_username };
  }
  const metadata = await loadOneMetadata(db, 'apps', app.guid);
  return {
    name: app.name,
    lifecycleType: app.lifecycle_type,
    buildpacks: parseJsonStringArray(app.lifecycle_buildpacks),
    stack: app.lifecycle_stack,
    ...(docker ? { docker } : {}),
    env: openEnvVars(secrets, app.environment_variables),
    features: { ssh: app.enable_ssh === 1, revisions: app.revisions_enabled === 1 },
    routes,
    metadata,
    processes: processes.map((p) => ({
      type: p.type,
      command: p.command,
      instances: p.instances,
      memoryInMb: p.memory_in_mb,
      diskInMb: p.disk_in_mb,
      logRateLimit: Number(p.log_rate_limit_in_bytes_per_second),
      healthCheckType: p.health_check_type,
      healthCheckEndpoint: p.health_check_endpoint,
      healthCheckInvocationTimeout: p.health_check_invocation_timeout,
      healthCheckInterval: p.health_check_interval,
      healthCheckTimeout: p.health_check_timeout,
      readinessCheckType: p.readiness_check_type,
      readinessCheckEndpoint: p.readiness_check_endpoint,
      readinessCheckInvocationTimeout: p.readiness_check_invocation_timeout,
      readinessCheckInterval: p.readiness_check_interval,
    })),
  };
}

/** `GET /v3/apps/:guid/manifest` (admins, admin read-only, space developers): the app as manifest YAML. */
export async function generateManifest(ctx: Ctx, appGuid: string): Promise<string> {
  const scope = await findVisibleApp(ctx, appGuid);
  await requireAppSecretsReader(ctx, scope);
  const { app } = scope;
  const manifest = { applications: [appManifest(await appState(ctx.store.db, app, ctx.store.secrets))] };
  return stringify(manifest, { lineWidth: 0 });
}

/**
 * A manifest (`cf push`) may not change what a resource declares of an app it applies to (domain/declared.ts):
 * what it would change is CF's own manifest diff, refused when a changed field is owned. A push that only brings
 * bits, or changes fields the resource does not name, goes through.
 */
async function assertManifestNotDeclared(ctx: Ctx, spaceGuid: string, raws: unknown[]): Promise<void> {
  if (isReconciler(ctx.principal)) return;
  for (const raw of raws) {
    const name = raw && typeof raw === 'object' ? (raw as { name?: unknown }).name : undefined;
    if (typeof name !== 'string') continue;
    const app = await findAppByName(ctx.store.db, spaceGuid, name);
    if (!app) continue;
    const declared = await declarationFor(ctx.store.db, 'apps', app.guid);
    if (!declared) continue;
    const ops = diffApplications([raw], [appManifest(await appState(ctx.store.db, app, ctx.store.secrets))]);
    refuseDeclaredWrite(ctx.principal, declared, 'App', app.name, ops.map((op) => manifestDiffField(op.path, raw)));
  }
}

/** `POST /v3/spaces/:guid/manifest_diff`: what applying the manifest would change, per application. */
export async function manifestDiff(ctx: Ctx, spaceGuid: string, doc: Record<string, unknown>): Promise<DiffOp[]> {
  const space = await findManifestSpace(ctx, spaceGuid);
  const apps = parseManifestApps(doc);
  const existing: Array<Record<string, unknown> | undefined> = [];
  for (const m of apps) {
    const app = await findAppByName(ctx.store.db, space.guid, m.name);
    existing.push(app ? appManifest(await appState(ctx.store.db, app, ctx.store.secrets)) : undefined);
  }
  return diffApplications(manifestApplications(doc), existing);
}
