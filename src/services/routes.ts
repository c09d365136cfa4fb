import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from 'kysely';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { PlatformNames } from '../domain/domains.ts';
import type { ListParams } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { routeQuotaError, ToManyRelationshipSchema } from '../domain/quotas.ts';
import { SPACE_ROLE_TYPES } from '../domain/roles.ts';
import {
  DEFAULT_APP_PORT,
  destinationProtocolError,
  MAX_DESTINATIONS,
  MAX_FQDN_LENGTH,
  mergeRouteOptions,
  parsePorts,
  routeFqdn,
  routeUrl,
  type CreateRoute,
  type DestinationRequest,
  type RouteOptions,
  type UpdateRoute,
} from '../domain/routes.ts';
import { isReconciler, ownershipKeys } from '../domain/declared.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { declarationFor, refuseDeclaredWrite } from './declared-guard.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { assertOrgWritable, assertSpaceWritable } from './access.ts';
import { recordAudit } from './audit.ts';
import { deleteRoutePoliciesOf } from './route-policies.ts';
import type { Ctx } from './context.ts';
import type { Principal } from '../domain/principal.ts';
import { visibleDomain } from './domains.ts';
import { getFeatureFlag, requireFeature } from './feature-flags.ts';
import { enqueueJob, jobInFlight, type JobHandlers } from './jobs.ts';
import { organizationQuotaOf } from './organization-quotas.ts';
import { spaceQuotaOf } from './space-quotas.ts';

export { ROUTE_LIST } from '../domain/routes.ts';

type RouteRow = Row<'routes'>;
type DestinationRow = Row<'route_destinations'>;

/** A route with what its presenter needs besides metadata. */
export interface RouteView {
  route: RouteRow;
  domainName: string;
  /** Sorted by guid, as Cloud Controller presents them. */
  destinations: DestinationRow[];
}

// Visibility conditions are embedded in list queries whose table set the builder cannot name.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Eb = ExpressionBuilder<Database, any>;

const CHUNK = 900;
const chunks = <T>(items: T[]) => Array.from({ length: Math.ceil(items.length / CHUNK) }, (_, i) => items.slice(i * CHUNK, (i + 1) * CHUNK));
/** `IN ()` is not valid SQL everywhere: an empty list becomes one value nothing has. */
const nonEmpty = <T>(values: T[], none: T): T[] => (values.length > 0 ? values : [none]);

// ---- visibility (CONVENTIONS.md §13.2: route readers are space readers plus org auditors) ----

/** Spaces whose routes the caller can read: any space role there, or org manager/auditor of its org. */
export function routeReadableSpaces(ctx: Ctx, eb: Eb) {
  const user = ctx.principal.guid;
  return eb
    .selectFrom('spaces as rrs')
    .select('rrs.guid')
    .where((w) =>
      w.or([
        w(
          'rrs.guid',
          'in',
          w.selectFrom('roles').select('roles.space_guid').where('roles.user_guid', '=', user).where('roles.type', 'in', [...SPACE_ROLE_TYPES]),
        ),
        w(
          'rrs.organization_guid',
          'in',
          w
            .selectFrom('roles')
            .select('roles.organization_guid')
            .where('roles.user_guid', '=', user)
            .where('roles.type', 'in', ['organization_manager', 'organization_auditor']),
        ),
      ]),
    );
}

/** A route is visible through its own space or any space it is shared with. */
function routeVisible(ctx: Ctx, eb: Eb): Expression<SqlBool> {
  if (ctx.access.global) return sql<SqlBool>`1 = 1`;
  return eb.or([
    eb('routes.space_guid', 'in', routeReadableSpaces(ctx, eb)),
    eb('routes.guid', 'in', eb.selectFrom('route_shares').select('route_shares.route_guid').where('route_shares.space_guid', 'in', routeReadableSpaces(ctx, eb))),
  ]);
}

async function canReadRouteIn(ctx: Ctx, spaces: Array<Pick<Row<'spaces'>, 'guid' | 'organization_guid'>>): Promise<boolean> {
  if (ctx.access.global) return true;
  for (const s of spaces) {
    if (await ctx.access.hasSpaceRole(s.guid, ...SPACE_ROLE_TYPES)) return true;
    if (await ctx.access.hasOrgRole(s.organization_guid, 'organization_manager', 'organization_auditor')) return true;
  }
  return false;
}

async function sharedSpaceGuids(db: Kysely<Database>, routeGuid: string): Promise<string[]> {
  const rows = await db
    .selectFrom('route_shares')
    .innerJoin('spaces', 'spaces.guid', 'route_shares.space_guid')
    .select('spaces.guid')
    .where('route_shares.route_guid', '=', routeGuid)
    .orderBy('spaces.id')
    .execute();
  return rows.map((r) => r.guid);
}

/** The route, if it exists and the caller may read it (through its space or a space it is shared with); else 404. */
async function findReadableRoute(ctx: Ctx, guid: string): Promise<RouteRow> {
  const db = ctx.store.db;
  const route = await db.selectFrom('routes').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!route) throw notFound('Route');
  if (ctx.access.global) return route;
  const spaces = await db
    .selectFrom('spaces')
    .select(['guid', 'organization_guid'])
    .where('guid', 'in', [route.space_guid, ...(await sharedSpaceGuids(db, route.guid))])
    .execute();
  if (!(await canReadRouteIn(ctx, spaces))) throw notFound('Route');
  return route;
}

const loadSpace = (db: Kysely<Database>, guid: string) => db.selectFrom('spaces').selectAll().where('guid', '=', guid).executeTakeFirst();
const loadOrg = (db: Kysely<Database>, guid: string) => db.selectFrom('organizations').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

/** §8.3 step 7 for a space: not being deleted, its org not being deleted nor (for non-admins) suspended. */
async function assertSpaceMutable(ctx: Ctx, space: Row<'spaces'>): Promise<Row<'organizations'>> {
  assertSpaceWritable(space);
  const org = await loadOrg(ctx.store.db, space.organization_guid);
  assertOrgWritable(ctx.access, org);
  return org;
}

/** A readable route whose space lets the caller manage apps (space developer or supporter) and is writable. */
async function findManageableRoute(ctx: Ctx, guid: string): Promise<{ route: RouteRow; space: Row<'spaces'>; org: Row<'organizations'> }> {
  const route = await findReadableRoute(ctx, guid);
  if (!(await ctx.access.canManageApps(route.space_guid))) throw notAuthorized();
  const space = await loadSpace(ctx.store.db, route.space_guid);
  if (!space) throw notFound('Route');
  const org = await assertSpaceMutable(ctx, space);
  return { route, space, org };
}

// ---- reading ----

export async function destinationsOf(db: Kysely<Database>, routeGuids: string[]): Promise<Map<string, DestinationRow[]>> {
  const out = new Map<string, DestinationRow[]>(routeGuids.map((g) => [g, []]));
  for (const part of chunks(routeGuids)) {
    const rows = await db.selectFrom('route_destinations').selectAll().where('route_guid', 'in', part).orderBy('guid').execute();
    for (const r of rows) out.get(r.route_guid)?.push(r);
  }
  return out;
}

/** Views (domain name and destinations) of many routes, in their order. */
export async function viewsOf(db: Kysely<Database>, routes: RouteRow[]): Promise<RouteView[]> {
  const domainGuids = [...new Set(routes.map((r) => r.domain_guid))];
  const names = new Map<string, string>();
  for (const part of chunks(domainGuids)) {
    for (const d of await db.selectFrom('domains').select(['guid', 'name']).where('guid', 'in', part).execute()) names.set(d.guid, d.name);
  }
  const destinations = await destinationsOf(db, routes.map((r) => r.guid));
  return routes.map((route) => ({ route, domainName: names.get(route.domain_guid) ?? '', destinations: destinations.get(route.guid) ?? [] }));
}

const viewOf = async (db: Kysely<Database>, route: RouteRow) => (await viewsOf(db, [route]))[0]!;

/**
 * `GET /v3/routes` (and, with `appGuid`, `GET /v3/apps/:guid/routes`): routes the caller can read through
 * their own or a shared space, with the CF filters (empty values match empty hosts/paths, per CONVENTIONS.md §4.3).
 */
export async function listRoutes(ctx: Ctx, params: ListParams, appGuid?: string): Promise<Page<RouteRow>> {
  const f = params.filters;
  let q = ctx.store.db
    .selectFrom('routes')
    .selectAll('routes')
    .where((eb) => routeVisible(ctx, eb));
  if (f.hosts) q = q.where((eb) => eb(eb.fn('lower', ['routes.host']), 'in', f.hosts!.map((h) => h.toLowerCase())));
  if (f.paths) q = q.where('routes.path', 'in', f.paths);
  if (f.ports) q = q.where('routes.port', 'in', nonEmpty(parsePorts(f.ports), -1));
  if (f.domain_guids) q = q.where('routes.domain_guid', 'in', f.domain_guids);
  if (f.space_guids) {
    const spaces = f.space_guids;
    q = q.where((eb) =>
      eb.or([
        eb('routes.space_guid', 'in', spaces),
        eb('routes.guid', 'in', eb.selectFrom('route_shares').select('route_shares.route_guid').where('route_shares.space_guid', 'in', spaces)),
      ]),
    );
  }
  if (f.organization_guids) {
    const orgs = f.organization_guids;
    q = q.where('routes.space_guid', 'in', (eb) => eb.selectFrom('spaces').select('spaces.guid').where('spaces.organization_guid', 'in', orgs));
  }
  const apps = appGuid ? [appGuid] : f.app_guids;
  if (apps) {
    q = q.where('routes.guid', 'in', (eb) => eb.selectFrom('route_destinations').select('route_destinations.route_guid').where('route_destinations.app_guid', 'in', apps));
  }
  // Kiln has no route services yet, so no route is bound to a service instance.
  if (f.service_instance_guids) q = q.where(sql<SqlBool>`1 = 0`);
  return listPage(q, listOptions('routes', params));
}

/** `GET /v3/apps/:guid/routes`: the app must be readable (space readers, org managers, global readers). */
export async function listAppRoutes(ctx: Ctx, appGuid: string, params: ListParams): Promise<Page<RouteRow>> {
  const app = await ctx.store.db
    .selectFrom('apps')
    .innerJoin('spaces', 'spaces.guid', 'apps.space_guid')
    .select(['apps.guid', 'spaces.guid as space_guid', 'spaces.organization_guid'])
    .where('apps.guid', '=', appGuid)
    .executeTakeFirst();
  if (!app || !(await ctx.access.canReadSpace({ guid: app.space_guid, organization_guid: app.organization_guid }))) throw notFound('App');
  return listRoutes(ctx, params, app.guid);
}

export async function getRoute(ctx: Ctx, guid: string): Promise<RouteView> {
  return viewOf(ctx.store.db, await findReadableRoute(ctx, guid));
}

export async function listDestinations(ctx: Ctx, guid: string, filters: { guids?: string[]; app_guids?: string[] }): Promise<{ route: RouteRow; destinations: DestinationRow[] }> {
  const route = await findReadableRoute(ctx, guid);
  let q = ctx.store.db.selectFrom('route_destinations').selectAll().where('route_guid', '=', route.guid);
  if (filters.guids) q = q.where('guid', 'in', filters.guids);
  if (filters.app_guids) q = q.where('app_guid', 'in', filters.app_guids);
  return { route, destinations: await q.orderBy('guid').execute() };
}

// ---- shared helpers for other capabilities ----

export interface RouteMatchQuery {
  domainGuids: string[];
  /** Omitted: any host. Compared case-insensitively, as DNS names are. */
  hosts?: string[];
  /** Omitted: any path. */
  paths?: string[];
  /** Omitted: any port (0 = no port). */
  ports?: number[];
  /** Only routes in spaces of this org. */
  organizationGuid?: string;
}

/** Whether some route matches (domain reservations, domain-name conflicts, unsharing a domain still in use). */
export async function anyRouteMatches(db: Kysely<Database>, q: RouteMatchQuery): Promise<boolean> {
  if (q.domainGuids.length === 0) return false;
  let query = db.selectFrom('routes').select('routes.guid').where('routes.domain_guid', 'in', q.domainGuids);
  if (q.hosts) {
    const hosts = nonEmpty(q.hosts.map((h) => h.toLowerCase()), '');
    query = query.where((eb) => eb(eb.fn('lower', ['routes.host']), 'in', hosts));
  }
  if (q.paths) query = query.where('routes.path', 'in', nonEmpty(q.paths, ''));
  if (q.ports) query = query.where('routes.port', 'in', nonEmpty(q.ports, -1));
  if (q.organizationGuid) {
    const org = q.organizationGuid;
    query = query.where('routes.space_guid', 'in', (eb) => eb.selectFrom('spaces').select('spaces.guid').where('spaces.organization_guid', '=', org));
  }
  return (await query.limit(1).executeTakeFirst()) !== undefined;
}

/** Deletes routes with their destinations, shares and metadata, inside the caller's write. */
export async function deleteRoutes(tx: WriteTx, routeGuids: string[]): Promise<void> {
  for (const part of chunks(routeGuids)) {
    const dests = await tx.db.selectFrom('route_destinations').select('guid').where('route_guid', 'in', part).execute();
    await tx.db.deleteFrom('route_destinations').where('route_guid', 'in', part).execute();
    for (const d of dests) tx.changed('route_destinations', d.guid, 'delete');
    await tx.db.deleteFrom('route_shares').where('route_guid', 'in', part).execute();
    // A route's binding to a route service goes with it (the broker is not told: see the services report).
    const bound = await tx.db.selectFrom('service_route_bindings').select('guid').where('route_guid', 'in', part).execute();
    await tx.db.deleteFrom('service_route_bindings').where('route_guid', 'in', part).execute();
    for (const b of bound) tx.changed('service_route_bindings', b.guid, 'delete');
    await deleteRoutePoliciesOf(tx, part);
    await deleteMetadata(tx, 'routes', part);
    await tx.db.deleteFrom('routes').where('guid', 'in', part).execute();
    for (const g of part) tx.changed('routes', g, 'delete');
  }
}

/** Deletes the routes on some domains (domain delete). */
export async function deleteRoutesOfDomains(tx: WriteTx, domainGuids: string[]): Promise<void> {
  if (domainGuids.length === 0) return;
  const routes = await tx.db.selectFrom('routes').select('guid').where('domain_guid', 'in', domainGuids).execute();
  await deleteRoutes(tx, routes.map((r) => r.guid));
}

/** Deletes the routes owned by some spaces and unshares routes from them (space and org deletes). */
export async function deleteRoutesOfSpaces(tx: WriteTx, spaceGuids: string[]): Promise<void> {
  for (const part of chunks(spaceGuids)) {
    const routes = await tx.db.selectFrom('routes').select('guid').where('space_guid', 'in', part).execute();
    await deleteRoutes(tx, routes.map((r) => r.guid));
    await tx.db.deleteFrom('route_shares').where('space_guid', 'in', part).execute();
  }
}

/** Unmaps deleted apps from every route (app delete). */
export async function deleteDestinationsOfApps(tx: WriteTx, appGuids: string[]): Promise<void> {
  for (const part of chunks(appGuids)) {
    const rows = await tx.db.selectFrom('route_destinations').select(['guid', 'route_guid']).where('app_guid', 'in', part).execute();
    await tx.db.deleteFrom('route_destinations').where('app_guid', 'in', part).execute();
    for (const r of rows) {
      tx.changed('route_destinations', r.guid, 'delete');
      tx.changed('routes', r.route_guid, 'update');
    }
  }
}

/** One route as the router needs it. */
export interface RoutingEntry {
  routeGuid: string;
  host: string;
  domain: string;
  /** '' or `/…`. */
  path: string;
  /** 0 for HTTP routes. */
  port: number;
  protocol: string;
  internal: boolean;
  /** `host.domain/path`, as the API renders it. */
  url: string;
  /** Load-balancing algorithm requested for the route, if any. */
  loadbalancing: string | undefined;
  destinations: Array<{ guid: string; appGuid: string; processType: string; port: number; protocol: string; weight: number | null }>;
}

/** Every route with its destinations, oldest first: what the router is fed from. */
export async function routingTable(db: Kysely<Database>): Promise<RoutingEntry[]> {
  const rows = await db
    .selectFrom('routes')
    .innerJoin('domains', 'domains.guid', 'routes.domain_guid')
    .select([
      'routes.guid',
      'routes.host',
      'routes.path',
      'routes.port',
      'routes.protocol',
      'routes.options',
      'domains.name as domain',
      'domains.internal',
    ])
    .orderBy('routes.id')
    .execute();
  const dests = await db.selectFrom('route_destinations').selectAll().orderBy('id').execute();
  const byRoute = new Map<string, RoutingEntry['destinations']>();
  for (const d of dests) {
    const list = byRoute.get(d.route_guid) ?? [];
    list.push({ guid: d.guid, appGuid: d.app_guid, processType: d.process_type, port: d.port, protocol: d.protocol, weight: d.weight });
    byRoute.set(d.route_guid, list);
  }
  return rows.map((r) => ({
    routeGuid: r.guid,
    host: r.host,
    domain: r.domain,
    path: r.path,
    port: r.port,
    protocol: r.protocol,
    internal: r.internal === 1,
    url: routeUrl(r, r.domain),
    loadbalancing: parseOptions(r.options).loadbalancing,
    destinations: byRoute.get(r.guid) ?? [],
  }));
}

export function parseOptions(text: string): RouteOptions {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as RouteOptions) : {};
  } catch {
    return {};
  }
}

// ---- audit ----

function auditRoute(tx: WriteTx, ctx: Ctx, type: string, route: Pick<RouteRow, 'guid' | 'host' | 'space_guid'>, orgGuid: string, data: Record<string, unknown>) {
  return recordAudit(tx, {
    type: `audit.route.${type}`,
    actor: ctx.principal,
    target: { type: 'route', guid: route.guid, name: route.host },
    data,
    spaceGuid: route.space_guid,
    organizationGuid: orgGuid,
  });
}

/** `audit.app.map-route` / `unmap-route` for one destination (also written by manifest apply). */
export function auditMapping(tx: WriteTx, actor: Principal, type: 'map-route' | 'unmap-route', app: AppRef, d: DestinationRow) {
  return recordAudit(tx, {
    type: `audit.app.${type}`,
    actor,
    target: { type: 'app', guid: app.guid, name: app.name },
    data: {
      route_guid: d.route_guid,
      app_port: d.port,
      destination_guid: d.guid,
      process_type: d.process_type,
      weight: d.weight,
      protocol: d.protocol,
    },
    spaceGuid: app.space_guid,
    organizationGuid: app.organization_guid,
  });
}

/** The router follows route changes through the feed: touch the route so its watchers rebuild the table. */
export async function touchRoute(tx: WriteTx, routeGuid: string): Promise<void> {
  await tx.db.updateTable('routes').set({ updated_at: tx.now }).where('guid', '=', routeGuid).execute();
  tx.changed('routes', routeGuid, 'update');
}

/** Inserts one destination of a route (the caller has checked the route's rules) and returns its row. */
export async function insertDestination(tx: WriteTx, routeGuid: string, d: WantedDestination): Promise<DestinationRow> {
  const guid = newGuid();
  await tx.db
    .insertInto('route_destinations')
    .values({
      guid,
      created_at: tx.now,
      updated_at: tx.now,
      generation: 1,
      route_guid: routeGuid,
      app_guid: d.appGuid,
      process_type: d.processType,
      port: d.port,
      protocol: d.protocol,
      weight: d.weight,
    })
    .execute();
  tx.changed('route_destinations', guid, 'create');
  return tx.db.selectFrom('route_destinations').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
}

// ---- create / update / delete ----

/** Creating routes needs the `route_creation` flag, except for admins; checked before the body, as upstream. */
export async function assertRouteCreationAllowed(ctx: Ctx): Promise<void> {
  if (!ctx.access.admin) await requireFeature(ctx.store.db, 'route_creation');
}

/** Whether hash-based load balancing options are accepted (flag `hash_based_routing`). */
export async function hashRoutingEnabled(ctx: Ctx): Promise<boolean> {
  return (await getFeatureFlag(ctx.store.db, 'hash_based_routing')).enabled;
}

/** The org may use a domain: shared domains, its own private domains and private domains shared with it. */
async function domainUsableBy(db: Kysely<Database>, domain: Row<'domains'>, orgGuid: string): Promise<boolean> {
  if (domain.owning_organization_guid === null || domain.owning_organization_guid === orgGuid) return true;
  const shared = await db
    .selectFrom('domain_shared_organizations')
    .select('domain_guid')
    .where('domain_guid', '=', domain.guid)
    .where('organization_guid', '=', orgGuid)
    .executeTakeFirst();
  return shared !== undefined;
}

async function countRoutes(db: Kysely<Database>, where: { spaceGuid?: string; orgGuid?: string }): Promise<number> {
  let q = db.selectFrom('routes').select((eb) => eb.fn.countAll<number>().as('n'));
  if (where.spaceGuid) q = q.where('space_guid', '=', where.spaceGuid);
  if (where.orgGuid) {
    const org = where.orgGuid;
    q = q.where('space_guid', 'in', (eb) => eb.selectFrom('spaces').select('spaces.guid').where('spaces.organization_guid', '=', org));
  }
  return Number((await q.executeTakeFirst())?.n ?? 0);
}

const alreadyExists = (host: string, path: string, domainName: string) => {
  if (path === '') return host === '' ? `Route already exists for domain '${domainName}'.` : `Route already exists with host '${host}' for domain '${domainName}'.`;
  return host === ''
    ? `Route already exists with path '${path}' for domain '${domainName}'.`
    : `Route already exists with host '${host}' and path '${path}' for domain '${domainName}'.`;
};

/**
 * The model rules of a new route, checked inside its write, in the order Cloud Controller reports them:
 * domain usable by the org, quotas, host rules, path rules, port rules. Returns the 422 detail, if any.
 */
export async function newRouteProblem(
  tx: WriteTx,
  input: Pick<CreateRoute, 'host' | 'path' | 'port'>,
  space: Row<'spaces'>,
  org: Row<'organizations'>,
  domain: Row<'domains'>,
  platform?: PlatformNames,
): Promise<string | undefined> {
  const db = tx.db;
  const { host, path } = input;
  if (domain.router_group_guid) return 'Route could not be created because the specified domain does not have a valid router group.';
  if (!(await domainUsableBy(db, domain, org.guid))) {
    return `Invalid domain. Domain '${domain.name}' is not available in organization '${org.name}'.`;
  }
  const quota = routeQuotaError(
    { quota: await organizationQuotaOf(db, org.guid), name: org.name, routes: await countRoutes(db, { orgGuid: org.guid }) },
    { quota: await spaceQuotaOf(db, space.guid), name: space.name, routes: await countRoutes(db, { spaceGuid: space.guid }) },
  );
  if (quota) return quota;

  if (host !== '') {
    const conflicting = await db
      .selectFrom('domains')
      .select('guid')
      .where((eb) => eb(eb.fn('lower', ['name']), '=', `${host}.${domain.name}`.toLowerCase()))
      .executeTakeFirst();
    if (conflicting) return `Route conflicts with domain '${host}.${domain.name}'.`;
  }
  // The API's own hosts never go to an app (the front door sees to that); refusing the route says so up front.
  if (platform?.apiHosts.has((host === '' ? domain.name : `${host}.${domain.name}`).toLowerCase())) {
    return 'Route conflicts with a reserved system route.';
  }
  if (domain.internal === 1 && host === '*') return 'Wildcard hosts are not supported for internal domains.';
  if (domain.owning_organization_guid === null && host === '') return 'Missing host. Routes in shared domains must have a host defined.';
  if ((host === '' ? 0 : host.length + 1) + domain.name.length > MAX_FQDN_LENGTH) {
    return `Host combined with domain name must be no more than ${MAX_FQDN_LENGTH} characters.`;
  }
  const sameHost = await db
    .selectFrom('routes')
    .select(['guid', 'path', 'port', 'space_guid'])
    .where('domain_guid', '=', domain.guid)
    .where((eb) => eb(eb.fn('lower', ['host']), '=', host.toLowerCase()))
    .execute();
  if (path === '' && sameHost.some((r) => r.path === '' && r.port === 0)) return alreadyExists(host, path, domain.name);
  if (domain.internal === 1 && path !== '') return 'Paths are not supported for internal domains.';
  if (path !== '' && sameHost.some((r) => r.path === path && r.port === 0)) return alreadyExists(host, path, domain.name);
  if (input.port !== undefined) return "Routes with protocol 'http' do not support ports.";
  // A host on a shared domain belongs to one space: others may not add paths under it (upstream's raw model message).
  if (domain.owning_organization_guid === null && sameHost.some((r) => r.port === 0 && r.space_guid !== space.guid)) {
    return 'domain_id and host host_and_domain_taken_different_space';
  }
  return undefined;
}

/** `platform` names the API's hosts, which no route may spell (the API passes it). */
export async function createRoute(ctx: Ctx, input: CreateRoute, platform?: PlatformNames): Promise<RouteView & { metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const db = ctx.store.db;
  const space = await loadSpace(db, input.spaceGuid);
  if (!space || !(await ctx.access.canReadSpace(space))) throw unprocessable('Invalid space. Ensure that the space exists and you have access to it.');
  // A private domain the caller cannot see is answered like a missing one: the "not available in organization"
  // answer below names the domain, which would hand another tenant's domain name to anyone holding its guid.
  const domain = await visibleDomain(ctx, input.domainGuid);
  if (!domain) throw unprocessable('Invalid domain. Ensure that the domain exists and you have access to it.');
  if (!(await ctx.access.canManageApps(space.guid))) throw notAuthorized();
  const org = await assertSpaceMutable(ctx, space);
  if (domain.owning_organization_guid === null && input.host === '*' && !ctx.access.admin) {
    throw unprocessable('You do not have sufficient permissions to create a route with a wildcard host on a domain not scoped to an organization.');
  }
  let options: RouteOptions = {};
  if (input.options) {
    const merged = mergeRouteOptions({}, input.options);
    if (merged.error) throw unprocessable(merged.error);
    options = merged.options;
  }
  try {
    return await ctx.store.write(async (tx) => {
      const problem = await newRouteProblem(tx, input, space, org, domain, platform);
      if (problem) throw unprocessable(problem);
      const guid = newGuid();
      await tx.db
        .insertInto('routes')
        .values({
          guid,
          created_at: tx.now,
          updated_at: tx.now,
          generation: 1,
          host: input.host,
          path: input.path,
          port: 0,
          domain_guid: domain.guid,
          space_guid: space.guid,
          protocol: 'http',
          options: JSON.stringify(options),
        })
        .execute();
      tx.changed('routes', guid, 'create');
      const metadata = await saveMetadata(tx, 'routes', guid, input.metadata);
      const route = await tx.db.selectFrom('routes').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
      await auditRoute(tx, ctx, 'create', route, org.guid, { request: input.request });
      return { route, domainName: domain.name, destinations: [], metadata };
    });
  } catch (err) {
    // The unique address index settles a race between two creates of the same route.
    if (isUniqueViolation(err)) throw unprocessable(alreadyExists(input.host, input.path, domain.name));
    throw err;
  }
}

export async function updateRoute(ctx: Ctx, guid: string, input: UpdateRoute): Promise<RouteView & { metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const { route, org } = await findManageableRoute(ctx, guid);
  if (ownershipKeys(input.metadata, ctx.access.admin).length > 0) refuseDeclaredWrite(ctx.principal, await declarationFor(ctx.store.db, 'routes', route.guid), 'Route', await routeName(ctx.store.db, route), ownershipKeys(input.metadata, ctx.access.admin));
  let options = parseOptions(route.options);
  if (input.options) {
    const merged = mergeRouteOptions(options, input.options);
    if (merged.error) throw unprocessable(merged.error);
    options = merged.options;
  }
  const { updated, metadata } = await ctx.store.write(async (tx) => {
    await tx.update('routes', route.guid, route.generation, { options: JSON.stringify(options) });
    const metadata = await saveMetadata(tx, 'routes', route.guid, input.metadata);
    await auditRoute(tx, ctx, 'update', route, org.guid, { request: input.request });
    return { updated: await tx.db.selectFrom('routes').selectAll().where('guid', '=', route.guid).executeTakeFirstOrThrow(), metadata };
  });
  return { ...(await viewOf(ctx.store.db, updated)), metadata };
}

/** Starts the asynchronous delete of a route (its destinations and shares go with it). */
export async function deleteRoute(ctx: Ctx, guid: string): Promise<string> {
  const { route, org } = await findManageableRoute(ctx, guid);
  await assertRouteNotDeclared(ctx, route);
  return ctx.store.write(async (tx) => {
    const inFlight = await jobInFlight(tx.db, 'route.delete', route.guid);
    if (inFlight) return inFlight; // a repeated delete hands back the job already under way
    await auditRoute(tx, ctx, 'delete-request', route, org.guid, { request: { recursive: true } });
    return enqueueJob(tx, { operation: 'route.delete', resourceType: 'route', resourceGuid: route.guid, userGuid: ctx.principal.guid });
  });
}

export function registerRouteJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('route.delete', async ({ job }) => {
    await store.write(async (tx) => {
      // Already gone (a re-run after a crash) deletes nothing.
      await deleteRoutes(tx, (await tx.db.selectFrom('routes').select('guid').where('guid', '=', job.resource_guid).execute()).map((r) => r.guid));
    });
  });
  handlers.register('space.delete_unmapped_routes', async ({ job }) => {
    await store.write(async (tx) => {
      // Unmapped: no destination. (Kiln has no route services, so no route is bound to a service instance.)
      const unmapped = await tx.db
        .selectFrom('routes')
        .select('guid')
        .where('space_guid', '=', job.resource_guid)
        .where('guid', 'not in', (eb) => eb.selectFrom('route_destinations').select('route_destinations.route_guid'))
        .execute();
      await deleteRoutes(tx, unmapped.map((r) => r.guid));
    });
  });
}

// ---- destinations ----

export interface AppRef {
  guid: string;
  name: string;
  space_guid: string;
  organization_guid: string;
}

/**
 * The apps named by requested destinations: they must exist, be readable, and live in the route's space or
 * one of the spaces it is shared with (422 otherwise, worded as upstream).
 */
async function destinationApps(ctx: Ctx, route: RouteRow, requests: DestinationRequest[]): Promise<Map<string, AppRef>> {
  const guids = [...new Set(requests.map((r) => r.appGuid))];
  const rows = guids.length
    ? await ctx.store.db
        .selectFrom('apps')
        .innerJoin('spaces', 'spaces.guid', 'apps.space_guid')
        .select(['apps.guid', 'apps.name', 'apps.space_guid', 'spaces.organization_guid'])
        .where('apps.guid', 'in', guids)
        .execute()
    : [];
  const apps = new Map(rows.map((a) => [a.guid, a]));
  const missing = guids.filter((g) => !apps.has(g));
  if (missing.length > 0) throw unprocessable(`App(s) with guid(s) "${missing.join('", "')}" do not exist.`);
  const unreadable: string[] = [];
  for (const a of rows) {
    if (!(await ctx.access.canReadSpace({ guid: a.space_guid, organization_guid: a.organization_guid }))) unreadable.push(a.guid);
  }
  if (unreadable.length > 0) throw unprocessable(`App(s) with guid(s) "${unreadable.join('", "')}" you do not have access.`);
  const allowed = new Set([route.space_guid, ...(await sharedSpaceGuids(ctx.store.db, route.guid))]);
  if (rows.some((a) => !allowed.has(a.space_guid))) {
    throw unprocessable("Routes destinations must be in either the route's space or the route's shared spaces");
  }
  return apps;
}

export interface WantedDestination {
  appGuid: string;
  processType: string;
  port: number;
  protocol: string;
  weight: number | null;
}

const sameTarget = (a: { appGuid: string; processType: string; port: number }, b: DestinationRow) =>
  a.appGuid === b.app_guid && a.processType === b.process_type && a.port === b.port;
const sameDestination = (a: WantedDestination, b: DestinationRow) => sameTarget(a, b) && a.protocol === b.protocol && a.weight === b.weight;
const keyOf = (d: WantedDestination) => JSON.stringify([d.appGuid, d.processType, d.port, d.protocol, d.weight]);

function wanted(route: RouteRow, requests: DestinationRequest[]): WantedDestination[] {
  const out = requests.map((r) => ({
    appGuid: r.appGuid,
    processType: r.processType,
    port: r.port ?? DEFAULT_APP_PORT,
    protocol: r.protocol ?? (route.protocol === 'tcp' ? 'tcp' : 'http1'),
    weight: r.weight,
  }));
  const keys = out.map(keyOf);
  if (keys.some((k, i) => keys.indexOf(k) !== i)) throw unprocessable('Destinations cannot contain duplicate entries');
  return out;
}

const routeName = async (db: Kysely<Database>, route: RouteRow) => routeUri(route, (await db.selectFrom('domains').select('name').where('guid', '=', route.domain_guid).executeTakeFirst())?.name ?? '');

/**
 * A route declared by a resource is deleted by deleting the resource; a route an App resource declares for its
 * app stays while that app is mapped to it (domain/declared.ts).
 */
async function assertRouteNotDeclared(ctx: Ctx, route: RouteRow): Promise<void> {
  if (isReconciler(ctx.principal)) return;
  const db = ctx.store.db;
  const name = await routeName(db, route);
  refuseDeclaredWrite(ctx.principal, await declarationFor(db, 'routes', route.guid), 'Route', name, 'delete');
  const mapped = await db.selectFrom('route_destinations').innerJoin('apps', 'apps.guid', 'route_destinations.app_guid').select(['apps.guid', 'apps.name']).where('route_guid', '=', route.guid).execute();
  for (const a of mapped) refuseDeclaredWrite(ctx.principal, await declarationFor(db, 'apps', a.guid), 'App', a.name, [`route:${name}`]);
}

/**
 * Map and unmap: a Route resource that lists destinations owns them, and an App resource that lists routes owns
 * its app's mappings (domain/declared.ts).
 */
async function assertDestinationsNotDeclared(tx: WriteTx, ctx: Ctx, route: RouteRow, add: WantedDestination[], remove: DestinationRow[]): Promise<void> {
  if (isReconciler(ctx.principal) || (add.length === 0 && remove.length === 0)) return;
  refuseDeclaredWrite(ctx.principal, await declarationFor(tx.db, 'routes', route.guid), 'Route', await routeName(tx.db, route), ['destinations']);
  const appGuids = [...new Set([...add.map((d) => d.appGuid), ...remove.map((d) => d.app_guid)])];
  const rows = appGuids.length ? await tx.db.selectFrom('apps').select(['guid', 'name']).where('guid', 'in', appGuids).execute() : [];
  for (const a of rows) refuseDeclaredWrite(ctx.principal, await declarationFor(tx.db, 'apps', a.guid), 'App', a.name, ['routes']);
}

/** Inserts and removes destinations of one route in the caller's write, with their audit events. */
async function applyDestinationChanges(tx: WriteTx, ctx: Ctx, route: RouteRow, apps: Map<string, AppRef>, add: WantedDestination[], remove: DestinationRow[]) {
  await assertDestinationsNotDeclared(tx, ctx, route, add, remove);
  for (const d of remove) {
    await tx.db.deleteFrom('route_destinations').where('guid', '=', d.guid).execute();
    tx.changed('route_destinations', d.guid, 'delete');
    const app = apps.get(d.app_guid) ?? (await appRef(tx.db, d.app_guid));
    if (app) await auditMapping(tx, ctx.principal, 'unmap-route', app, d);
  }
  for (const d of add) {
    const problem = destinationProtocolError(route.protocol, d.protocol);
    if (problem) throw unprocessable(problem);
    const row = await insertDestination(tx, route.guid, d);
    await auditMapping(tx, ctx.principal, 'map-route', apps.get(d.appGuid)!, row);
  }
  if (add.length > 0 || remove.length > 0) {
    await touchRoute(tx, route.guid);
  }
}

async function appRef(db: Kysely<Database>, guid: string): Promise<AppRef | undefined> {
  return db
    .selectFrom('apps')
    .innerJoin('spaces', 'spaces.guid', 'apps.space_guid')
    .select(['apps.guid', 'apps.name', 'apps.space_guid', 'spaces.organization_guid'])
    .where('apps.guid', '=', guid)
    .executeTakeFirst();
}

/** `POST /v3/routes/:guid/destinations`: adds destinations; ones already present are kept as they are. */
export async function insertDestinations(ctx: Ctx, guid: string, requests: DestinationRequest[]): Promise<{ route: RouteRow; destinations: DestinationRow[] }> {
  const { route } = await findManageableRoute(ctx, guid);
  const apps = await destinationApps(ctx, route, requests);
  const desired = wanted(route, requests);
  await ctx.store.write(async (tx) => {
    const existing = await tx.db.selectFrom('route_destinations').selectAll().where('route_guid', '=', route.guid).execute();
    if (existing.length + desired.length > MAX_DESTINATIONS) throw unprocessable(`Routes can be mapped to at most ${MAX_DESTINATIONS} destinations.`);
    if (existing.some((d) => d.weight !== null)) {
      throw unprocessable('Destinations cannot be inserted when there are weighted destinations already configured.');
    }
    const uri = routeUri(route, (await tx.db.selectFrom('domains').select('name').where('guid', '=', route.domain_guid).executeTakeFirst())?.name ?? '');
    const add = desired.filter((d) => {
      const match = existing.find((e) => sameTarget(d, e));
      if (match && match.protocol !== d.protocol) {
        throw unprocessable(
          `Cannot add destination with protocol: ${d.protocol}. Destination already exists for route: ${uri}, app: ${d.appGuid}, ` +
            `process: ${d.processType}, and protocol: ${match.protocol}.`,
        );
      }
      return !match;
    });
    await applyDestinationChanges(tx, ctx, route, apps, add, []);
  });
  return { route, destinations: (await destinationsOf(ctx.store.db, [route.guid])).get(route.guid) ?? [] };
}

/** `PATCH /v3/routes/:guid/destinations`: the route ends up with exactly these destinations. */
export async function replaceDestinations(ctx: Ctx, guid: string, requests: DestinationRequest[]): Promise<{ route: RouteRow; destinations: DestinationRow[] }> {
  const { route } = await findManageableRoute(ctx, guid);
  const apps = await destinationApps(ctx, route, requests);
  const desired = wanted(route, requests);
  await ctx.store.write(async (tx) => {
    const existing = await tx.db.selectFrom('route_destinations').selectAll().where('route_guid', '=', route.guid).execute();
    const add = desired.filter((d) => !existing.some((e) => sameDestination(d, e)));
    const remove = existing.filter((e) => !desired.some((d) => sameDestination(d, e)));
    await applyDestinationChanges(tx, ctx, route, apps, add, remove);
  });
  return { route, destinations: (await destinationsOf(ctx.store.db, [route.guid])).get(route.guid) ?? [] };
}

const NO_SUCH_DESTINATION = 'Unable to unmap route from destination. Ensure the route has a destination with this guid.';

export async function removeDestination(ctx: Ctx, guid: string, destinationGuid: string): Promise<void> {
  const { route } = await findManageableRoute(ctx, guid);
  await ctx.store.write(async (tx) => {
    const d = await tx.db.selectFrom('route_destinations').selectAll().where('guid', '=', destinationGuid).executeTakeFirst();
    if (!d || d.route_guid !== route.guid) throw unprocessable(NO_SUCH_DESTINATION);
    if (d.weight !== null) throw unprocessable('Weighted destinations cannot be deleted individually.');
    await applyDestinationChanges(tx, ctx, route, new Map(), [], [d]);
  });
}

/** `PATCH /v3/routes/:guid/destinations/:destination_guid`: changes the protocol (http1/http2 on HTTP routes). */
export async function updateDestination(ctx: Ctx, guid: string, destinationGuid: string, input: { protocol?: string }): Promise<DestinationRow> {
  const { route } = await findManageableRoute(ctx, guid);
  return ctx.store.write(async (tx) => {
    const d = await tx.db.selectFrom('route_destinations').selectAll().where('guid', '=', destinationGuid).executeTakeFirst();
    if (!d || d.route_guid !== route.guid) throw unprocessable(NO_SUCH_DESTINATION);
    if (route.protocol === 'tcp') {
      if (input.protocol !== 'tcp') throw unprocessable("Destination protocol must be 'tcp' if the parent route's protocol is 'tcp'");
    } else if (input.protocol === 'tcp') {
      throw unprocessable("Destination protocol must be 'http1' or 'http2' if the parent route's protocol is 'http'");
    }
    if (input.protocol === undefined || input.protocol === d.protocol) return d;
    await tx.update('route_destinations', d.guid, d.generation, { protocol: input.protocol });
    await touchRoute(tx, route.guid);
    return tx.db.selectFrom('route_destinations').selectAll().where('guid', '=', d.guid).executeTakeFirstOrThrow();
  });
}

// ---- sharing and ownership (feature flag route_sharing) ----

/** Upstream's `route.uri`: fqdn, path, and `:port` for TCP routes. */
export const routeUri = (route: Pick<RouteRow, 'host' | 'path' | 'port'>, domainName: string) =>
  `${routeFqdn(route.host, domainName)}${route.path}${route.port > 0 ? `:${route.port}` : ''}`;

const domainNameOf = async (db: Kysely<Database>, route: RouteRow) =>
  (await db.selectFrom('domains').select('name').where('guid', '=', route.domain_guid).executeTakeFirst())?.name ?? '';

export const assertRouteSharingEnabled = (ctx: Ctx) => requireFeature(ctx.store.db, 'route_sharing');

export async function listSharedSpaces(ctx: Ctx, guid: string): Promise<{ route: RouteRow; spaceGuids: string[] }> {
  await assertRouteSharingEnabled(ctx);
  const route = await findReadableRoute(ctx, guid);
  return { route, spaceGuids: await sharedSpaceGuids(ctx.store.db, route.guid) };
}

/** Why a target space cannot receive a route (unshare, transfer), or undefined when it can. */
async function targetSpaceProblem(ctx: Ctx, space: Row<'spaces'> | undefined): Promise<string | undefined> {
  if (!space || !(await ctx.access.canReadSpace(space))) return 'Ensure the space exists and that you have access to it.';
  if (!(await ctx.access.canManageApps(space.guid))) return "You don't have write permission for the target space.";
  if (space.status === 'deleting') return 'The target space is being deleted.';
  const org = await loadOrg(ctx.store.db, space.organization_guid);
  if (org.status === 'deleting') return 'The target space is being deleted.';
  if (org.suspended === 1 && !ctx.access.admin) return 'The target organization or space is suspended.';
  return undefined;
}

/**
 * `POST …/relationships/shared_spaces` (body validated after the route checks, as upstream). Each space must
 * be readable and writable (space developer, active org); sharing into the owning space is refused.
 */
export async function shareRoute(ctx: Ctx, guid: string, body: unknown): Promise<{ route: RouteRow; spaceGuids: string[] }> {
  await assertRouteSharingEnabled(ctx);
  const { route, org } = await findManageableRoute(ctx, guid);
  const { guids } = ToManyRelationshipSchema.parse(body);
  const db = ctx.store.db;
  const uri = routeUri(route, await domainNameOf(db, route));
  const found = guids.length ? await db.selectFrom('spaces').selectAll().where('guid', 'in', guids).execute() : [];
  const unreadable = guids.filter((g) => !found.some((s) => s.guid === g));
  const unwritable: string[] = [];
  for (const s of found) {
    if (!(await ctx.access.canReadSpace(s))) {
      unreadable.push(s.guid);
      continue;
    }
    const spaceOrg = await loadOrg(db, s.organization_guid);
    const active = s.status !== 'deleting' && spaceOrg.status !== 'deleting' && (ctx.access.admin || spaceOrg.suspended !== 1);
    if (!(await ctx.access.canWriteSpace(s.guid)) || !active) unwritable.push(s.guid);
  }
  const problems: string[] = [];
  const list = (gs: string[]) => gs.map((g) => `'${g}'`).join(', ');
  if (unreadable.length > 0) {
    problems.push(`Unable to share route ${uri} with spaces [${list(unreadable)}]. Ensure the spaces exist and that you have access to them.`);
  }
  if (unwritable.length > 0) {
    problems.push(
      `Unable to share route ${uri} with spaces [${list(unwritable)}]. ` +
        'Write permission is required in order to share a route with a space and the containing organization must not be suspended.',
    );
  }
  if (problems.length > 0) throw unprocessable(problems.join('\n'));
  if (guids.includes(route.space_guid)) {
    throw unprocessable(`Unable to share route '${uri}' with space '${route.space_guid}'. Routes cannot be shared into the space where they were created.`);
  }
  await ctx.store.write(async (tx) => {
    for (const spaceGuid of guids) {
      await tx.db.insertInto('route_shares').values({ route_guid: route.guid, space_guid: spaceGuid }).onConflict((oc) => oc.columns(['route_guid', 'space_guid']).doNothing()).execute();
    }
    tx.changed('routes', route.guid, 'update');
    await auditRoute(tx, ctx, 'share', route, org.guid, { target_space_guids: guids });
  });
  return { route, spaceGuids: await sharedSpaceGuids(db, route.guid) };
}

export async function unshareRoute(ctx: Ctx, guid: string, spaceGuid: string): Promise<void> {
  await assertRouteSharingEnabled(ctx);
  const { route, org } = await findManageableRoute(ctx, guid);
  const db = ctx.store.db;
  const uri = routeUri(route, await domainNameOf(db, route));
  const problem = await targetSpaceProblem(ctx, await loadSpace(db, spaceGuid));
  if (problem) throw unprocessable(`Unable to unshare route '${uri}' from space '${spaceGuid}'. ${problem}`);
  if (spaceGuid === route.space_guid) {
    throw unprocessable(`Unable to unshare route '${uri}' from space '${route.space_guid}'. Routes cannot be removed from the space that owns them.`);
  }
  await ctx.store.write(async (tx) => {
    await tx.db.deleteFrom('route_shares').where('route_guid', '=', route.guid).where('space_guid', '=', spaceGuid).execute();
    tx.changed('routes', route.guid, 'update');
    await auditRoute(tx, ctx, 'unshare', route, org.guid, { target_space_guid: spaceGuid });
  });
}

/**
 * `PATCH …/relationships/space`: moves the route to another space (space developers of the current owner
 * only); the old owner keeps access as a shared space. The target org must be able to use the domain.
 */
export async function transferRouteOwnership(ctx: Ctx, guid: string, targetGuid: string): Promise<void> {
  const db = ctx.store.db;
  const route = await findReadableRoute(ctx, guid);
  if (!(await ctx.access.canWriteSpace(route.space_guid))) throw notAuthorized();
  const space = await loadSpace(db, route.space_guid);
  if (!space) throw notFound('Route');
  const org = await assertSpaceMutable(ctx, space);
  const domain = await db.selectFrom('domains').selectAll().where('guid', '=', route.domain_guid).executeTakeFirstOrThrow();
  const uri = routeUri(route, domain.name);
  const target = await loadSpace(db, targetGuid);
  const problem = await targetSpaceProblem(ctx, target);
  if (problem || !target) throw unprocessable(`Unable to transfer owner of route '${uri}' to space '${targetGuid}'. ${problem ?? ''}`);
  if (!(await domainUsableBy(db, domain, target.organization_guid))) {
    throw unprocessable(`Unable to transfer owner of route '${uri}' to space '${targetGuid}'. Target space does not have access to route's domain`);
  }
  if (target.guid === route.space_guid) return;
  await ctx.store.write(async (tx) => {
    await tx.update('routes', route.guid, route.generation, { space_guid: target.guid });
    await tx.db.deleteFrom('route_shares').where('route_guid', '=', route.guid).where('space_guid', '=', target.guid).execute();
    await tx.db
      .insertInto('route_shares')
      .values({ route_guid: route.guid, space_guid: space.guid })
      .onConflict((oc) => oc.columns(['route_guid', 'space_guid']).doNothing())
      .execute();
    await auditRoute(tx, ctx, 'transfer-owner', route, org.guid, { original_space: { guid: space.guid, name: space.name }, target_space_guid: target.guid });
  });
}

/** The domains, spaces and orgs of some routes, for `include` (ordered by created_at, guid; de-duplicated). */
export async function includedOf(db: Kysely<Database>, routes: RouteRow[], include: string[]) {
  const wantsSpaces = include.includes('space') || include.includes('space.organization');
  const spaceGuids = [...new Set(routes.map((r) => r.space_guid))];
  const spaces =
    wantsSpaces && spaceGuids.length
      ? await db.selectFrom('spaces').selectAll().where('guid', 'in', spaceGuids).orderBy('created_at').orderBy('guid').execute()
      : [];
  const orgGuids = [...new Set(spaces.map((s) => s.organization_guid))];
  const organizations =
    include.includes('space.organization') && orgGuids.length
      ? await db.selectFrom('organizations').selectAll().where('guid', 'in', orgGuids).orderBy('created_at').orderBy('guid').execute()
      : [];
  const domainGuids = [...new Set(routes.map((r) => r.domain_guid))];
  const domains =
    include.includes('domain') && domainGuids.length
      ? await db.selectFrom('domains').selectAll().where('guid', 'in', domainGuids).orderBy('created_at').orderBy('guid').execute()
      : [];
  return { spaces, organizations, domains };
}
