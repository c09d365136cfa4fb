import { sql, type Kysely, type SqlBool } from 'kysely';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { parseSource, type CreateRoutePolicy, type UpdateRoutePolicy } from '../domain/route-policies.ts';
import { SPACE_ROLE_TYPES } from '../domain/roles.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, saveMetadata } from '../store/metadata.ts';
import type { Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { assertOrgWritable, assertSpaceWritable } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { routeReadableSpaces } from './route-access.ts';

export { ROUTE_POLICY_LIST } from '../domain/route-policies.ts';

/**
 * Route policies (issue 12 item 17; CC's route_policies_controller.rb). Readers are the readers of the route's
 * own space (space roles, org managers and auditors, global readers); writers are admins and space developers
 * of that space, which must be writable (suspended orgs stop non-admins, CONVENTIONS.md §8.3 step 7). A policy
 * is only allowed on a route whose domain enforces route policies and is not internal; its source guid is not
 * resolved (CC allows guids of other orgs). The router follows the table through the change feed: every write
 * touches `route_policies`, which the routing controller watches.
 */

type PolicyRow = Row<'route_policies'>;
type RouteRow = Row<'routes'>;

const CHUNK = 900;

/** The policy, if it exists and the caller can read its route's space (CC's can_read_route_policy_from_space). */
async function findReadablePolicy(ctx: Ctx, guid: string): Promise<{ policy: PolicyRow; route: RouteRow; space: Row<'spaces'> }> {
  const db = ctx.store.db;
  const policy = await db.selectFrom('route_policies').selectAll().where('guid', '=', guid).executeTakeFirst();
  const route = policy && (await db.selectFrom('routes').selectAll().where('guid', '=', policy.route_guid).executeTakeFirst());
  const space = route && (await db.selectFrom('spaces').selectAll().where('guid', '=', route.space_guid).executeTakeFirst());
  if (!policy || !route || !space) throw notFound('Route policy');
  if (!ctx.access.global) {
    const readable =
      (await ctx.access.hasSpaceRole(space.guid, ...SPACE_ROLE_TYPES)) ||
      (await ctx.access.hasOrgRole(space.organization_guid, 'organization_manager', 'organization_auditor'));
    if (!readable) throw notFound('Route policy');
  }
  return { policy, route, space };
}

/** CC's can_write_to_active_space + require_writable_space: admin or space developer, space and org writable. */
async function assertWritable(ctx: Ctx, space: Row<'spaces'>): Promise<Row<'organizations'>> {
  if (!(await ctx.access.canWriteSpace(space.guid))) throw notAuthorized();
  assertSpaceWritable(space);
  const org = await ctx.store.db.selectFrom('organizations').selectAll().where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
  assertOrgWritable(ctx.access, org);
  return org;
}

function auditPolicy(tx: WriteTx, ctx: Ctx, type: 'create' | 'update' | 'delete', policy: PolicyRow, space: Row<'spaces'>, data: Record<string, unknown>) {
  return recordAudit(tx, {
    type: `audit.route_policy.${type}`,
    actor: ctx.principal,
    target: { type: 'route_policy', guid: policy.guid, name: '' },
    data,
    spaceGuid: space.guid,
    organizationGuid: space.organization_guid,
  });
}

// ---- reading ----

/**
 * `GET /v3/route_policies`: policies on routes in spaces the caller can read, with CC's filters: `route_guids`,
 * `space_guids` (the route's space), `sources` (exact), `source_guids` (the guid part of the source; never
 * matches cf:any), plus guids, timestamps and label_selector.
 */
export async function listRoutePolicies(ctx: Ctx, params: ListParams): Promise<Page<PolicyRow>> {
  const f = params.filters;
  let q = ctx.store.db.selectFrom('route_policies').selectAll('route_policies');
  if (!ctx.access.global) {
    q = q.where('route_policies.route_guid', 'in', (eb) =>
      eb.selectFrom('routes').select('routes.guid').where('routes.space_guid', 'in', routeReadableSpaces(ctx, eb)),
    );
  }
  if (f.route_guids) q = q.where('route_policies.route_guid', 'in', f.route_guids);
  if (f.space_guids) {
    const spaces = f.space_guids;
    q = q.where('route_policies.route_guid', 'in', (eb) => eb.selectFrom('routes').select('routes.guid').where('routes.space_guid', 'in', spaces));
  }
  if (f.sources) {
    const parsed = f.sources.map(parseSource).filter((p) => p !== undefined);
    if (parsed.length === 0) q = q.where(sql<SqlBool>`1 = 0`);
    else {
      q = q.where((eb) =>
        eb.or(parsed.map((p) => eb.and([eb('route_policies.source_type', '=', p.type), eb('route_policies.source_guid', '=', p.guid)]))),
      );
    }
  }
  if (f.source_guids) {
    const guids = f.source_guids.filter((g) => g !== '');
    q = q.where('route_policies.source_guid', 'in', guids.length > 0 ? guids : ['\u0000']);
  }
  return listPage(q, listOptions('route_policies', params, { resourceType: 'route_policies' }));
}

export async function getRoutePolicy(ctx: Ctx, guid: string): Promise<PolicyRow> {
  return (await findReadablePolicy(ctx, guid)).policy;
}

/** What `include=route,source,app,space,organization` adds: the routes, and the sources that still exist. */
export async function includedOf(ctx: Pick<Ctx, 'store'>, policies: PolicyRow[], include: string[]) {
  const db = ctx.store.db;
  const wants = (k: string) => include.includes(k);
  const bySource = (type: string) => [...new Set(policies.filter((p) => p.source_type === type).map((p) => p.source_guid))];
  const load = async <T extends 'routes' | 'apps' | 'spaces' | 'organizations'>(table: T, guids: string[]) => {
    const out: Array<Row<T>> = [];
    for (let i = 0; i < guids.length; i += CHUNK) {
      const part = guids.slice(i, i + CHUNK);
      // The table varies with the caller; each branch's rows are that table's.
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const rows = await (db as Kysely<any>).selectFrom(table).selectAll().where('guid', 'in', part).orderBy('created_at').orderBy('guid').execute();
      out.push(...(rows as Array<Row<T>>));
    }
    return out;
  };
  const sourceWanted = wants('source');
  return {
    routes: wants('route') ? await load('routes', [...new Set(policies.map((p) => p.route_guid))]) : undefined,
    apps: sourceWanted || wants('app') ? await load('apps', bySource('app')) : undefined,
    spaces: sourceWanted || wants('space') ? await load('spaces', bySource('space')) : undefined,
    organizations: sourceWanted || wants('organization') ? await load('organizations', bySource('org')) : undefined,
  };
}

// ---- writing ----

/**
 * `POST /v3/route_policies`. The route must be readable (404; CC's can_read_from_space, so org auditors get
 * 404 too) and writable by the caller (403); its domain must not be internal and must enforce route
 * policies (422). One write checks exclusivity against the route's current policies; the unique key catches
 * a concurrent duplicate, which answers as CC does.
 */
export async function createRoutePolicy(ctx: Ctx, input: CreateRoutePolicy): Promise<{ policy: PolicyRow; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const db = ctx.store.db;
  const route = await db.selectFrom('routes').selectAll().where('guid', '=', input.routeGuid).executeTakeFirst();
  const space = route && (await db.selectFrom('spaces').selectAll().where('guid', '=', route.space_guid).executeTakeFirst());
  if (!route || !space || !(await ctx.access.canReadSpace(space))) throw notFound('Route');
  await assertWritable(ctx, space);
  const domain = await db.selectFrom('domains').selectAll().where('guid', '=', route.domain_guid).executeTakeFirstOrThrow();
  if (domain.internal === 1) {
    throw unprocessable(
      'Cannot create route policies for routes on internal domains. Internal routes use container-to-container networking and bypass GoRouter.',
    );
  }
  if (domain.enforce_route_policies !== 1) {
    throw unprocessable(`Cannot create route policies for route '${route.guid}': the route's domain does not have enforce_route_policies enabled.`);
  }
  const { source } = input;
  const duplicate = () => unprocessable(`A route policy with source '${source.text}' already exists for this route.`);
  try {
    return await ctx.store.write(async (tx) => {
      const existing = await tx.db.selectFrom('route_policies').select(['source_type', 'source_guid']).where('route_guid', '=', route.guid).execute();
      if (source.type === 'any' && existing.length > 0) {
        throw unprocessable("Cannot add 'cf:any' source when other route policies already exist for this route.");
      }
      if (existing.some((e) => e.source_type === 'any')) throw unprocessable(`Cannot add source '${source.text}': route already has a 'cf:any' policy.`);
      if (existing.some((e) => e.source_type === source.type && e.source_guid === source.guid)) throw duplicate();
      const guid = newGuid();
      await tx.insert('route_policies', { guid, route_guid: route.guid, source_type: source.type, source_guid: source.guid });
      const metadata = await saveMetadata(tx, 'route_policies', guid, input.metadata);
      const policy = await tx.db.selectFrom('route_policies').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
      await auditPolicy(tx, ctx, 'create', policy, space, {
        request: { source: source.text, relationships: { route: { data: { guid: route.guid } } }, ...(input.metadata ? { metadata: input.metadata } : {}) },
      });
      return { policy, metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw duplicate();
    throw err;
  }
}

/** `PATCH /v3/route_policies/:guid`: metadata only. */
export async function updateRoutePolicy(ctx: Ctx, guid: string, input: UpdateRoutePolicy): Promise<{ policy: PolicyRow; metadata: Metadata }> {
  const { policy, space } = await findReadablePolicy(ctx, guid);
  await assertWritable(ctx, space);
  validateMetadataRequest(input.metadata);
  return ctx.store.write(async (tx) => {
    await tx.update('route_policies', policy.guid, {}, { expectedGeneration: policy.generation });
    const metadata = await saveMetadata(tx, 'route_policies', policy.guid, input.metadata);
    const updated = await tx.db.selectFrom('route_policies').selectAll().where('guid', '=', policy.guid).executeTakeFirstOrThrow();
    await auditPolicy(tx, ctx, 'update', updated, space, { request: input });
    return { policy: updated, metadata };
  });
}

/** `DELETE /v3/route_policies/:guid`: synchronous (204), as CC. */
export async function deleteRoutePolicy(ctx: Ctx, guid: string): Promise<void> {
  const { policy, space } = await findReadablePolicy(ctx, guid);
  await assertWritable(ctx, space);
  await ctx.store.write(async (tx) => {
    await auditPolicy(tx, ctx, 'delete', policy, space, {});
    await deleteMetadata(tx, 'route_policies', [policy.guid]);
    await tx.delete('route_policies', policy.guid);
  });
}

/** Deletes the policies of routes being deleted, inside the caller's write. */
export async function deleteRoutePoliciesOf(tx: WriteTx, routeGuids: string[]): Promise<void> {
  for (let i = 0; i < routeGuids.length; i += CHUNK) {
    const part = routeGuids.slice(i, i + CHUNK);
    const rows = await tx.db.selectFrom('route_policies').select('guid').where('route_guid', 'in', part).execute();
    if (rows.length === 0) continue;
    await deleteMetadata(tx, 'route_policies', rows.map((r) => r.guid));
    await tx.deleteWhere('route_policies', (eb) => eb('route_guid', 'in', part));
  }
}

/** The policies of some routes, oldest first (`GET /v3/routes?include=route_policies`). */
/** The spaces of some apps by guid, one lookup per app (for the visibility check of `include=app`). */
export async function spacesOfApps(ctx: Pick<Ctx, 'store'>, apps: Array<Pick<Row<'apps'>, 'space_guid'>>): Promise<Map<string, Row<'spaces'>>> {
  const db = ctx.store.db;
  return new Map((await Promise.all(apps.map((a) => db.selectFrom('spaces').selectAll().where('guid', '=', a.space_guid).executeTakeFirst()))).flatMap((s) => (s ? [[s.guid, s] as const] : [])));
}

export async function policiesOfRoutes(ctx: Pick<Ctx, 'store'>, routeGuids: string[]): Promise<PolicyRow[]> {
  const db = ctx.store.db;
  const out: PolicyRow[] = [];
  for (let i = 0; i < routeGuids.length; i += CHUNK) {
    out.push(...(await db.selectFrom('route_policies').selectAll().where('route_guid', 'in', routeGuids.slice(i, i + CHUNK)).orderBy('id').execute()));
  }
  return out;
}

