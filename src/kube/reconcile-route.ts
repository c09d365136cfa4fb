import { KilnError } from '../domain/errors.ts';
import { OWNS_ANNOTATION } from '../domain/declared.ts';
import { DEFAULT_APP_PORT, type CreateRoute, type DestinationRequest } from '../domain/routes.ts';
import { replaceDestinations } from '../services/route-destinations.ts';
import { destinationsOf, routeUri } from '../services/route-reads.ts';
import { createRoute, deleteRoute, updateRoute } from '../services/routes.ts';
import { loadOneMetadata } from '../store/metadata.ts';
import type { KubeObject } from './kube-client.ts';
import { ensureFinalizer, findSpace, ownedBy, ownership, problem, refOf, releaseFinalizer, stamp, writeStatus, type Outcome, type SyncEnv } from './reconcile.ts';
import { blocked, invalid, type Kind } from './reconcile-common.ts';
import { RouteSpecSchema, type RouteSpec } from './schemas.ts';

/**
 * The `Route` kind (`cf create-route` + `cf map-route`) through createRoute/replaceDestinations/deleteRoute. The
 * route made is found again by the guid in status, so a changed address replaces it. With `destinations` the
 * resource owns the route's destinations (`kiln.dev/owns`, domain/declared.ts); without, they are left to apps.
 */
const ROUTE: Kind = { kind: 'Route', plural: 'routes' };

/** A Route resource owns its address, and its destinations when it lists them. */
function routeOwnership(ref: string, spec: RouteSpec) {
  const own = ownership(ref);
  return { labels: own.labels, annotations: { ...own.annotations, [OWNS_ANNOTATION]: spec.destinations ? 'address,destinations' : 'address' } };
}

async function findRouteAt(env: SyncEnv, domainGuid: string, spec: RouteSpec) {
  return env.ctx.store.db
    .selectFrom('routes')
    .selectAll()
    .where('domain_guid', '=', domainGuid)
    .where('host', '=', spec.host ?? '')
    .where('path', '=', spec.path ?? '')
    .where('port', '=', spec.port ?? 0)
    .executeTakeFirst();
}

export async function reconcileRoute(env: SyncEnv, obj: KubeObject): Promise<Outcome> {
  const db = env.ctx.store.db;
  const ref = refOf('Route', obj);
  const generation = obj.metadata.generation ?? 1;
  // What this resource made, by the guid its status names (the address may have changed since).
  const made = typeof obj.status?.guid === 'string' ? await db.selectFrom('routes').selectAll().where('guid', '=', obj.status.guid).executeTakeFirst() : undefined;
  const mine = made && (await ownedBy(env, 'routes', made.guid, ref)) ? made : undefined;
  if (obj.metadata.deletionTimestamp) {
    if (mine) {
      await deleteRoute(env.ctx, mine.guid);
      return { requeueAfterMs: 300 };
    }
    await releaseFinalizer(env, 'routes', obj);
    return undefined;
  }
  if (await ensureFinalizer(env, 'routes', obj)) return undefined;
  const parsed = RouteSpecSchema.safeParse(obj.spec ?? {});
  if (!parsed.success) return blocked(env, ROUTE, obj, 'InvalidSpec', invalid(parsed.error));
  const spec = parsed.data;
  const space = await findSpace(env, spec.org, spec.space);
  if (!space) return blocked(env, ROUTE, obj, 'SpaceNotFound', `space ${spec.org}/${spec.space} does not exist (declare it with a Space resource)`, 5000);
  const domain = await db.selectFrom('domains').select(['guid', 'name']).where('name', '=', spec.domain.toLowerCase()).executeTakeFirst();
  if (!domain) return blocked(env, ROUTE, obj, 'DomainNotFound', `domain ${spec.domain} does not exist`, 5000);

  let route = await findRouteAt(env, domain.guid, spec);
  // The address changed: the route made for the old one goes (routes cannot be moved in CF).
  if (mine && mine.guid !== route?.guid) await deleteRoute(env.ctx, mine.guid);
  if (route && !(await ownedBy(env, 'routes', route.guid, ref))) {
    return blocked(env, ROUTE, obj, 'RouteOwnedElsewhere', `route ${routeUri({ host: spec.host ?? '', path: spec.path ?? '', port: spec.port ?? 0 }, domain.name)} was not created by this resource; it is left alone`, 10_000);
  }
  if (!route) {
    const input: CreateRoute = {
      host: spec.host ?? '',
      path: spec.path ?? '',
      port: spec.port,
      spaceGuid: space.guid,
      domainGuid: domain.guid,
      metadata: routeOwnership(ref, spec),
      request: { host: spec.host, path: spec.path, port: spec.port },
    };
    try {
      route = (await createRoute(env.ctx, input)).route;
    } catch (err) {
      if (!(err instanceof KilnError)) throw err;
      return blocked(env, ROUTE, obj, 'RouteRejected', problem(err), 10_000);
    }
    await env.client.event('Route', obj, 'Normal', 'Created', `route ${routeUri(route, domain.name)} created in ${spec.org}/${spec.space}`);
  }

  // Whether the resource owns the destinations follows its spec (domain/declared.ts).
  const owns = routeOwnership(ref, spec).annotations[OWNS_ANNOTATION];
  if ((await loadOneMetadata(db, 'routes', route.guid)).annotations[OWNS_ANNOTATION] !== owns) {
    await updateRoute(env.ctx, route.guid, { metadata: { annotations: { [OWNS_ANNOTATION]: owns } }, request: {} });
  }
  let existing = (await destinationsOf(db, [route.guid])).get(route.guid) ?? [];
  if (spec.destinations) {
    const names = [...new Set(spec.destinations.map((d) => d.app))];
    const apps = names.length
      ? await db.selectFrom('apps').select(['guid', 'name']).where('space_guid', '=', space.guid).where('name', 'in', names).execute()
      : [];
    const byName = new Map(apps.map((a) => [a.name, a.guid]));
    const missing = names.filter((n) => !byName.has(n));
    if (missing.length) return blocked(env, ROUTE, obj, 'AppNotFound', `app(s) ${missing.join(', ')} do not exist in ${spec.org}/${spec.space}`, 2000, { guid: route.guid });
    const wanted: DestinationRequest[] = spec.destinations.map((d) => ({ appGuid: byName.get(d.app)!, processType: d.process ?? 'web', port: d.port, protocol: d.protocol, weight: d.weight ?? null }));
    const same =
      wanted.length === existing.length &&
      wanted.every((w) =>
        existing.some((e) => e.app_guid === w.appGuid && e.process_type === w.processType && e.port === (w.port ?? DEFAULT_APP_PORT) && (w.protocol === undefined || e.protocol === w.protocol) && e.weight === w.weight),
      );
    if (!same) {
      try {
        existing = (await replaceDestinations(env.ctx, route.guid, wanted)).destinations;
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        return blocked(env, ROUTE, obj, 'DestinationsRejected', problem(err), 10_000, { guid: route.guid });
      }
      await env.client.event('Route', obj, 'Normal', 'Mapped', `destinations: ${spec.destinations.map((d) => d.app).join(', ') || 'none'}`);
    }
  }
  const url = routeUri(route, domain.name);
  await writeStatus(env, 'routes', obj, {
    observedGeneration: generation,
    guid: route.guid,
    url,
    destinations: existing.length,
    conditions: stamp(obj, [{ type: 'Ready', status: 'True', reason: 'RouteReady', message: `${url} → ${existing.length} destination(s)`, observedGeneration: generation }]),
  });
  return undefined;
}
