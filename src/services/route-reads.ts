/** Reading routes: lists, views with their domain name and destinations, `include`, and address matches other capabilities ask about. */
import { sql, type Kysely, type SqlBool } from 'kysely';
import type { ListParams } from '../domain/list-params.ts';
import { parsePorts, routeFqdn, type RouteOptions } from '../domain/routes.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import type { Database, Row } from '../store/schema.ts';
import { findVisibleApp } from './app-scope.ts';
import type { Ctx } from './context.ts';
import { chunks, findReadableRoute, nonEmpty, routeVisible } from './route-access.ts';

type RouteRow = Row<'routes'>;

type DestinationRow = Row<'route_destinations'>;

/** A route with what its presenter needs besides metadata. */
export interface RouteView {
  route: RouteRow;
  domainName: string;
  /** Sorted by guid, as Cloud Controller presents them. */
  destinations: DestinationRow[];
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
export async function viewsOf(ctx: Pick<Ctx, 'store'>, routes: RouteRow[]): Promise<RouteView[]> {
  const db = ctx.store.db;
  const domainGuids = [...new Set(routes.map((r) => r.domain_guid))];
  const names = new Map<string, string>();
  for (const part of chunks(domainGuids)) {
    for (const d of await db.selectFrom('domains').select(['guid', 'name']).where('guid', 'in', part).execute()) names.set(d.guid, d.name);
  }
  const destinations = await destinationsOf(db, routes.map((r) => r.guid));
  return routes.map((route) => ({ route, domainName: names.get(route.domain_guid) ?? '', destinations: destinations.get(route.guid) ?? [] }));
}

export const viewOf = async (ctx: Pick<Ctx, 'store'>, route: RouteRow) => (await viewsOf(ctx, [route]))[0]!;

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
  const { app } = await findVisibleApp(ctx, appGuid);
  return listRoutes(ctx, params, app.guid);
}

export async function getRoute(ctx: Ctx, guid: string): Promise<RouteView> {
  return viewOf(ctx, await findReadableRoute(ctx, guid));
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

export function parseOptions(text: string): RouteOptions {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as RouteOptions) : {};
  } catch {
    return {};
  }
}

/** Upstream's `route.uri`: fqdn, path, and `:port` for TCP routes. */
export const routeUri = (route: Pick<RouteRow, 'host' | 'path' | 'port'>, domainName: string) =>
  `${routeFqdn(route.host, domainName)}${route.path}${route.port > 0 ? `:${route.port}` : ''}`;

/** The domains, spaces and orgs of some routes, for `include` (ordered by created_at, guid; de-duplicated). */
export async function includedOf(ctx: Pick<Ctx, 'store'>, routes: RouteRow[], include: string[]) {
  const db = ctx.store.db;
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
