/** Refusals of CF API writes to routes and mappings a kiln.dev resource declares (domain/declared.ts). */
import type { Kysely } from 'kysely';
import { isReconciler } from '../domain/declared.ts';
import type { Database, Row } from '../store/schema.ts';
import type { WriteTx } from '../store/store.ts';
import type { Ctx } from './context.ts';
import { declarationFor, refuseDeclaredWrite } from './declared-guard.ts';
import { routeUri } from './route-reads.ts';

type RouteRow = Row<'routes'>;
type DestinationRow = Row<'route_destinations'>;

export const routeName = async (db: Kysely<Database>, route: RouteRow): Promise<string> =>
  routeUri(route, (await db.selectFrom('domains').select('name').where('guid', '=', route.domain_guid).executeTakeFirst())?.name ?? '');

/**
 * A route declared by a resource is deleted by deleting the resource; a route an App resource declares for its
 * app stays while that app is mapped to it.
 */
export async function assertRouteNotDeclared(ctx: Ctx, route: RouteRow): Promise<void> {
  if (isReconciler(ctx.principal)) return;
  const db = ctx.store.db;
  const name = await routeName(db, route);
  refuseDeclaredWrite(ctx.principal, await declarationFor(db, 'routes', route.guid), 'Route', name, 'delete');
  const mapped = await db.selectFrom('route_destinations').innerJoin('apps', 'apps.guid', 'route_destinations.app_guid').select(['apps.guid', 'apps.name']).where('route_guid', '=', route.guid).execute();
  for (const a of mapped) refuseDeclaredWrite(ctx.principal, await declarationFor(db, 'apps', a.guid), 'App', a.name, [`route:${name}`]);
}

/**
 * Map and unmap: a Route resource that lists destinations owns them, and an App resource that lists routes owns
 * its app's mappings.
 */
export async function assertDestinationsNotDeclared(tx: WriteTx, ctx: Ctx, route: RouteRow, addAppGuids: string[], remove: DestinationRow[]): Promise<void> {
  if (isReconciler(ctx.principal) || (addAppGuids.length === 0 && remove.length === 0)) return;
  refuseDeclaredWrite(ctx.principal, await declarationFor(tx.db, 'routes', route.guid), 'Route', await routeName(tx.db, route), ['destinations']);
  const appGuids = [...new Set([...addAppGuids, ...remove.map((d) => d.app_guid)])];
  const rows = appGuids.length ? await tx.db.selectFrom('apps').select(['guid', 'name']).where('guid', 'in', appGuids).execute() : [];
  for (const a of rows) refuseDeclaredWrite(ctx.principal, await declarationFor(tx.db, 'apps', a.guid), 'App', a.name, ['routes']);
}
