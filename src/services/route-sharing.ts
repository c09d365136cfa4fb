/** Sharing a route with other spaces and moving it to another space (feature flag `route_sharing`). */
import type { Kysely } from 'kysely';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import { ToManyRelationshipSchema } from '../domain/quotas.ts';
import type { Database, Row } from '../store/schema.ts';
import type { Ctx } from './context.ts';
import { requireFeature } from './feature-flags.ts';
import { assertSpaceMutable } from './app-scope.ts';
import { domainUsableBy, findManageableRoute, findReadableRoute, loadOrg, loadSpace, sharedSpaceGuids } from './route-access.ts';
import { auditRoute } from './route-audit.ts';
import { routeUri } from './route-reads.ts';

type RouteRow = Row<'routes'>;

// ---- sharing and ownership (feature flag route_sharing) ----

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
    await tx.update('routes', route.guid, { space_guid: target.guid }, { expectedGeneration: route.generation });
    await tx.db.deleteFrom('route_shares').where('route_guid', '=', route.guid).where('space_guid', '=', target.guid).execute();
    await tx.db
      .insertInto('route_shares')
      .values({ route_guid: route.guid, space_guid: space.guid })
      .onConflict((oc) => oc.columns(['route_guid', 'space_guid']).doNothing())
      .execute();
    await auditRoute(tx, ctx, 'transfer-owner', route, org.guid, { original_space: { guid: space.guid, name: space.name }, target_space_guid: target.guid });
  });
}
