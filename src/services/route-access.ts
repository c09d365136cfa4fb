/** Who may read and who may manage a route (CONVENTIONS.md §13.2), and the space/org checks before a route write. */
import type { Expression, ExpressionBuilder, Kysely, SqlBool } from 'kysely';
import { notAuthorized, notFound } from '../domain/errors.ts';
import { SPACE_ROLE_TYPES } from '../domain/roles.ts';
import type { Database, Row } from '../store/schema.ts';
import { assertSpaceMutable } from './app-scope.ts';
import type { Ctx } from './context.ts';
import { everyRow } from '../store/every-row.ts';

type RouteRow = Row<'routes'>;

// Visibility conditions are embedded in list queries whose table set the builder cannot name.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Eb = ExpressionBuilder<Database, any>;

const CHUNK = 900;
export const chunks = <T>(items: T[]) => Array.from({ length: Math.ceil(items.length / CHUNK) }, (_, i) => items.slice(i * CHUNK, (i + 1) * CHUNK));
/** `IN ()` is not valid SQL everywhere: an empty list becomes one value nothing has. */
export const nonEmpty = <T>(values: T[], none: T): T[] => (values.length > 0 ? values : [none]);

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
export function routeVisible(ctx: Ctx, eb: Eb): Expression<SqlBool> {
  if (ctx.access.global) return everyRow();
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

export async function sharedSpaceGuids(db: Kysely<Database>, routeGuid: string): Promise<string[]> {
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
export async function findReadableRoute(ctx: Ctx, guid: string): Promise<RouteRow> {
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

export const loadSpace = (db: Kysely<Database>, guid: string) => db.selectFrom('spaces').selectAll().where('guid', '=', guid).executeTakeFirst();
export const loadOrg = (db: Kysely<Database>, guid: string) => db.selectFrom('organizations').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

/** A readable route whose space lets the caller manage apps (space developer or supporter) and is writable. */
export async function findManageableRoute(ctx: Ctx, guid: string): Promise<{ route: RouteRow; space: Row<'spaces'>; org: Row<'organizations'> }> {
  const route = await findReadableRoute(ctx, guid);
  if (!(await ctx.access.canManageApps(route.space_guid))) throw notAuthorized();
  const space = await loadSpace(ctx.store.db, route.space_guid);
  if (!space) throw notFound('Route');
  const org = await assertSpaceMutable(ctx, space);
  return { route, space, org };
}

/** The org may use a domain: shared domains, its own private domains and private domains shared with it. */
export async function domainUsableBy(db: Kysely<Database>, domain: Row<'domains'>, orgGuid: string): Promise<boolean> {
  if (domain.owning_organization_guid === null || domain.owning_organization_guid === orgGuid) return true;
  const shared = await db
    .selectFrom('domain_shared_organizations')
    .select('domain_guid')
    .where('domain_guid', '=', domain.guid)
    .where('organization_guid', '=', orgGuid)
    .executeTakeFirst();
  return shared !== undefined;
}
