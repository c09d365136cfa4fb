/** A route's destinations (`/v3/routes/:guid/destinations`): which apps and processes it sends traffic to. */
import type { Kysely } from 'kysely';
import { unprocessable } from '../domain/errors.ts';
import { DEFAULT_APP_PORT, destinationProtocolError, MAX_DESTINATIONS, type DestinationRequest } from '../domain/routes.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import type { Ctx } from './context.ts';
import { findManageableRoute, findReadableRoute, sharedSpaceGuids } from './route-access.ts';
import { auditMapping, type AppRef } from './route-audit.ts';
import { assertDestinationsNotDeclared } from './route-declared.ts';
import { destinationsOf, routeUri } from './route-reads.ts';

type RouteRow = Row<'routes'>;

type DestinationRow = Row<'route_destinations'>;

export async function listDestinations(ctx: Ctx, guid: string, filters: { guids?: string[]; app_guids?: string[] }): Promise<{ route: RouteRow; destinations: DestinationRow[] }> {
  const route = await findReadableRoute(ctx, guid);
  let q = ctx.store.db.selectFrom('route_destinations').selectAll().where('route_guid', '=', route.guid);
  if (filters.guids) q = q.where('guid', 'in', filters.guids);
  if (filters.app_guids) q = q.where('app_guid', 'in', filters.app_guids);
  return { route, destinations: await q.orderBy('guid').execute() };
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

// ---- destinations ----

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

/** Inserts and removes destinations of one route in the caller's write, with their audit events. */
async function applyDestinationChanges(tx: WriteTx, ctx: Ctx, route: RouteRow, apps: Map<string, AppRef>, add: WantedDestination[], remove: DestinationRow[]) {
  await assertDestinationsNotDeclared(tx, ctx, route, add.map((d) => d.appGuid), remove);
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
    await tx.update('route_destinations', d.guid, { protocol: input.protocol }, { expectedGeneration: d.generation });
    await touchRoute(tx, route.guid);
    return tx.db.selectFrom('route_destinations').selectAll().where('guid', '=', d.guid).executeTakeFirstOrThrow();
  });
}
