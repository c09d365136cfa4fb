/** Deleting routes with everything that hangs off them, for route, domain, space, org and app deletes, and the route delete jobs. */
import { deleteMetadata } from '../store/metadata.ts';
import type { Store, WriteTx } from '../store/store.ts';
import type { JobHandlers } from '../lifecycle/jobs.ts';
import { chunks } from './route-access.ts';
import { deleteRoutePoliciesOf } from './route-policies.ts';

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
