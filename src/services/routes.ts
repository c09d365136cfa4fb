/** Creating, updating and deleting routes, and the model rules a new route must pass. */
import type { Kysely } from 'kysely';
import { notAuthorized, unprocessable } from '../domain/errors.ts';
import type { PlatformNames } from '../domain/domains.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { routeQuotaError } from '../domain/quotas.ts';
import { MAX_FQDN_LENGTH, mergeRouteOptions, type CreateRoute, type RouteOptions, type UpdateRoute } from '../domain/routes.ts';
import { ownershipKeys } from '../domain/declared.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { declarationFor, refuseDeclaredWrite } from './declared-guard.ts';
import { assertRouteNotDeclared, routeName } from './route-declared.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import type { Ctx } from './context.ts';
import { visibleDomain } from './domains.ts';
import { getFeatureFlag, requireFeature } from './feature-flags.ts';
import { enqueueJob, jobInFlight } from '../lifecycle/jobs.ts';
import { organizationQuotaOf } from './organization-quotas.ts';
import { assertSpaceMutable } from './app-scope.ts';
import { domainUsableBy, findManageableRoute, loadSpace } from './route-access.ts';
import { auditRoute } from './route-audit.ts';
import { parseOptions, viewOf, type RouteView } from './route-reads.ts';
import { spaceQuotaOf } from './space-quotas.ts';

export { ROUTE_LIST } from '../domain/routes.ts';

// ---- create / update / delete ----

/** Creating routes needs the `route_creation` flag, except for admins; checked before the body, as upstream. */
export async function assertRouteCreationAllowed(ctx: Ctx): Promise<void> {
  if (!ctx.access.admin) await requireFeature(ctx.store.db, 'route_creation');
}

/** Whether hash-based load balancing options are accepted (flag `hash_based_routing`). */
export async function hashRoutingEnabled(ctx: Ctx): Promise<boolean> {
  return (await getFeatureFlag(ctx.store.db, 'hash_based_routing')).enabled;
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
      await tx.insert('routes', {
        guid,
        host: input.host,
        path: input.path,
        port: 0,
        domain_guid: domain.guid,
        space_guid: space.guid,
        protocol: 'http',
        options: JSON.stringify(options),
      });
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
  const owned = ownershipKeys(input.metadata, ctx.access.admin);
  if (owned.length > 0) refuseDeclaredWrite(ctx.principal, await declarationFor(ctx.store.db, 'routes', route.guid), 'Route', await routeName(ctx.store.db, route), owned);
  let options = parseOptions(route.options);
  if (input.options) {
    const merged = mergeRouteOptions(options, input.options);
    if (merged.error) throw unprocessable(merged.error);
    options = merged.options;
  }
  const { updated, metadata } = await ctx.store.write(async (tx) => {
    await tx.update('routes', route.guid, { options: JSON.stringify(options) }, { expectedGeneration: route.generation });
    const metadata = await saveMetadata(tx, 'routes', route.guid, input.metadata);
    await auditRoute(tx, ctx, 'update', route, org.guid, { request: input.request });
    return { updated: await tx.db.selectFrom('routes').selectAll().where('guid', '=', route.guid).executeTakeFirstOrThrow(), metadata };
  });
  return { ...(await viewOf(ctx, updated)), metadata };
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
