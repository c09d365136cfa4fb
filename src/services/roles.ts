import type { Kysely } from 'kysely';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import {
  duplicateRoleMessage,
  isSpaceRole,
  roleAuditType,
  SPACE_ROLE_NEEDS_ORG_ROLE,
  SPACE_ROLE_TYPES,
  type CreateRole,
  type RoleType,
  type RoleUserRef,
} from '../domain/roles.ts';
import { presentationName } from '../domain/users.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listPage, type Page } from '../store/list-query.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store } from '../store/store.ts';
import { assertOrgWritable, assertSpaceWritable } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { requireFeature } from './feature-flags.ts';
import { enqueueJob, type JobHandlers } from '../lifecycle/jobs.ts';
import { accountsNamed, findUser, insertCcUser, knownAccount, usersByGuid, type UserRow } from './users.ts';

export type RoleRow = Row<'roles'>;

export const ROLE_INCLUDES = ['user', 'space', 'organization'] as const;

export const ROLE_LIST: ListSpec = {
  filters: ['types', 'user_guids', 'space_guids', 'organization_guids'],
  include: ROLE_INCLUDES,
};

const ORG_USER_HAS_SPACE_ROLES = 'Cannot delete organization_user role while user has roles in spaces in that organization.';

/**
 * Roles the caller can see: org roles of orgs it can read and space roles of spaces it can read
 * (upstream's readable_roles); global readers see all.
 */
export async function listRoles(ctx: Ctx, params: ListParams): Promise<Page<RoleRow>> {
  let q = ctx.store.db
    .selectFrom('roles')
    .selectAll('roles')
    .$if(!ctx.access.global, (qb) =>
      qb.where((eb) => eb.or([ctx.access.orgVisible(eb, 'roles.organization_guid'), ctx.access.spaceVisible(eb, 'roles.space_guid')])),
    );
  const f = params.filters;
  if (f.types) q = q.where('roles.type', 'in', f.types);
  if (f.user_guids) q = q.where('roles.user_guid', 'in', f.user_guids);
  if (f.space_guids) q = q.where('roles.space_guid', 'in', f.space_guids);
  if (f.organization_guids) q = q.where('roles.organization_guid', 'in', f.organization_guids);
  return listPage(q, {
    table: 'roles',
    page: params.page,
    perPage: params.perPage,
    guids: f.guids,
    timestamps: params.timestamps,
    orderBy: params.orderBy ? { column: params.orderBy.field, desc: params.orderBy.desc } : undefined,
  });
}

async function canReadRole(ctx: Ctx, role: RoleRow): Promise<boolean> {
  if (ctx.access.global) return true;
  if (role.organization_guid) return ctx.access.canReadOrg(role.organization_guid);
  const space = await ctx.store.db.selectFrom('spaces').select(['guid', 'organization_guid']).where('guid', '=', role.space_guid!).executeTakeFirst();
  return space !== undefined && ctx.access.canReadSpace(space);
}

export async function getRole(ctx: Ctx, guid: string): Promise<RoleRow> {
  const role = await ctx.store.db.selectFrom('roles').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!role || !(await canReadRole(ctx, role))) throw notFound('Role');
  return role;
}

/** The parents named by `include=user,space,organization`, each ordered by created_at then guid. */
export interface RoleIncludes {
  users?: UserRow[];
  organizations?: Array<Row<'organizations'>>;
  spaces?: Array<Row<'spaces'>>;
}

export async function roleIncludes(ctx: Pick<Ctx, 'store'>, roles: RoleRow[], include: readonly string[]): Promise<RoleIncludes> {
  const db = ctx.store.db;
  const out: RoleIncludes = {};
  const parents = (guids: Array<string | null>) => [...new Set(guids.filter((g): g is string => g !== null))];
  if (include.includes('user')) out.users = await usersByGuid(db, roles.map((r) => r.user_guid));
  if (include.includes('organization')) {
    const guids = parents(roles.map((r) => r.organization_guid));
    out.organizations = guids.length
      ? await db.selectFrom('organizations').selectAll().where('guid', 'in', guids).orderBy('created_at').orderBy('guid').execute()
      : [];
  }
  if (include.includes('space')) {
    const guids = parents(roles.map((r) => r.space_guid));
    out.spaces = guids.length
      ? await db.selectFrom('spaces').selectAll().where('guid', 'in', guids).orderBy('created_at').orderBy('guid').execute()
      : [];
  }
  return out;
}

interface ResolvedUser {
  guid: string;
  username: string | null;
  origin: string | null;
  /** False when the CC user row must be created along with the role. */
  known: boolean;
}

/** Finds who a role is for; `forSpace` words failures as upstream does for space roles. */
async function resolveUser(ctx: Ctx, ref: RoleUserRef, forSpace: boolean): Promise<ResolvedUser> {
  const db = ctx.store.db;
  const missing = (detail: string) => unprocessable(forSpace ? SPACE_ROLE_NEEDS_ORG_ROLE : detail);
  let guid: string;
  if ('guid' in ref) {
    guid = ref.guid;
  } else {
    if (!ctx.access.admin) await requireFeature(db, 'set_roles_by_username');
    const named = await accountsNamed(db, ref.username);
    let origin = ref.origin;
    if (origin === undefined) {
      const origins = [...new Set(named.map((a) => a.origin))].sort();
      if (origins.length > 1) {
        throw unprocessable(
          `Ambiguous user. User with username '${ref.username}' exists in the following origins: ${origins.join(', ')}. Specify an origin to disambiguate.`,
        );
      }
      origin = origins[0];
    }
    const account = named.find((a) => a.origin === origin);
    if (!account) {
      throw missing(
        ref.origin === undefined
          ? `No user exists with the username '${ref.username}'.`
          : `No user exists with the username '${ref.username}' and origin '${ref.origin}'.`,
      );
    }
    guid = account.guid;
  }
  const cc = await findUser(db, guid);
  if (cc) return { guid, username: cc.username, origin: cc.origin, known: true };
  const account = await knownAccount(db, guid);
  if (!account) throw missing('Invalid user. Ensure that the user exists and you have access to it.');
  return { guid, ...account, known: false };
}

/** Where a new role goes, after the 422 (missing) / 403 (not a manager there) / state checks. */
async function targetOf(ctx: Ctx, input: CreateRole) {
  const db = ctx.store.db;
  if ('spaceGuid' in input) {
    const space = await db.selectFrom('spaces').selectAll().where('guid', '=', input.spaceGuid).executeTakeFirst();
    // A space or org the caller cannot read is answered like one that does not exist (§13.3): a 403 would tell
    // another tenant's guids apart from made-up ones.
    if (!space || !(await ctx.access.canReadSpace(space))) throw unprocessable('Invalid space. Ensure that the space exists and you have access to it.');
    if (!(await ctx.access.canUpdateSpace(space))) throw notAuthorized();
    const org = await db.selectFrom('organizations').selectAll().where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
    assertOrgWritable(ctx.access, org);
    assertSpaceWritable(space);
    return { kind: 'space' as const, guid: space.guid, name: space.name, organizationGuid: org.guid };
  }
  const org = await db.selectFrom('organizations').selectAll().where('guid', '=', input.organizationGuid).executeTakeFirst();
  if (!org || !(await ctx.access.canReadOrg(org.guid))) throw unprocessable('Invalid organization. Ensure that the organization exists and you have access to it.');
  if (!(await ctx.access.canManageOrg(org.guid))) throw notAuthorized();
  assertOrgWritable(ctx.access, org);
  return { kind: 'organization' as const, guid: org.guid, name: org.name, organizationGuid: org.guid };
}

/**
 * `POST /v3/roles` as the cf CLI drives it: the user may be named by guid or by username (with or without
 * origin); a user the identity provider knows but CC has not seen yet gets its CC row on the fly.
 */
export async function createRole(ctx: Ctx, input: CreateRole): Promise<RoleRow> {
  const target = await targetOf(ctx, input);
  const forSpace = target.kind === 'space';
  const user = await resolveUser(ctx, input.user, forSpace);
  const db = ctx.store.db;
  if (forSpace) {
    const member = user.known
      ? await db
          .selectFrom('roles')
          .select('guid')
          .where('user_guid', '=', user.guid)
          .where('organization_guid', '=', target.organizationGuid)
          .executeTakeFirst()
      : undefined;
    if (!member) throw unprocessable(SPACE_ROLE_NEEDS_ORG_ROLE);
  }
  const duplicate = unprocessable(duplicateRoleMessage(input.type, presentationName(user), target));
  const column = forSpace ? 'space_guid' : 'organization_guid';
  try {
    return await ctx.store.write(async (tx) => {
      const existing = await tx.db
        .selectFrom('roles')
        .select('guid')
        .where('user_guid', '=', user.guid)
        .where('type', '=', input.type)
        .where(column, '=', target.guid)
        .executeTakeFirst();
      if (existing) throw duplicate;
      if (!user.known) await insertCcUser(tx, user.guid, user);
      const role: Omit<RoleRow, 'id'> = {
        guid: newGuid(),
        created_at: tx.now,
        updated_at: tx.now,
        generation: 1,
        type: input.type,
        user_guid: user.guid,
        organization_guid: forSpace ? null : target.guid,
        space_guid: forSpace ? target.guid : null,
      };
      await tx.insert('roles', role);
      await recordAudit(tx, {
        type: roleAuditType(input.type, 'add'),
        actor: ctx.principal,
        target: { type: 'user', guid: user.guid, name: user.username ?? '' },
        data: { request: { type: input.type, user: input.user, [forSpace ? 'space_guid' : 'organization_guid']: target.guid } },
        spaceGuid: forSpace ? target.guid : null,
        organizationGuid: target.organizationGuid,
      });
      return tx.db.selectFrom('roles').selectAll().where('guid', '=', role.guid).executeTakeFirstOrThrow();
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw duplicate;
    throw err;
  }
}

/** An org user cannot leave an org while holding roles in its spaces. */
async function orgUserRemovable(db: Kysely<Database>, role: RoleRow): Promise<boolean> {
  if (role.type !== 'organization_user' || !role.organization_guid) return true;
  const spaceRole = await db
    .selectFrom('roles')
    .innerJoin('spaces', 'spaces.guid', 'roles.space_guid')
    .select('roles.guid')
    .where('roles.user_guid', '=', role.user_guid)
    .where('spaces.organization_guid', '=', role.organization_guid)
    .where('roles.type', 'in', [...SPACE_ROLE_TYPES])
    .executeTakeFirst();
  return spaceRole === undefined;
}

/** Returns the job that removes the role; space/org managers may remove roles where they manage. */
export async function deleteRole(ctx: Ctx, guid: string): Promise<string> {
  const role = await getRole(ctx, guid);
  const db = ctx.store.db;
  let orgGuid: string;
  if (isSpaceRole(role.type)) {
    const space = await db.selectFrom('spaces').selectAll().where('guid', '=', role.space_guid!).executeTakeFirstOrThrow();
    if (!(await ctx.access.canUpdateSpace(space))) throw notAuthorized();
    orgGuid = space.organization_guid;
    assertOrgWritable(ctx.access, await db.selectFrom('organizations').selectAll().where('guid', '=', orgGuid).executeTakeFirstOrThrow());
    assertSpaceWritable(space);
  } else {
    orgGuid = role.organization_guid!;
    if (!(await ctx.access.canManageOrg(orgGuid))) throw notAuthorized();
    assertOrgWritable(ctx.access, await db.selectFrom('organizations').selectAll().where('guid', '=', orgGuid).executeTakeFirstOrThrow());
    if (!(await orgUserRemovable(db, role))) throw unprocessable(ORG_USER_HAS_SPACE_ROLES);
  }
  const owner = await findUser(db, role.user_guid);
  return ctx.store.write(async (tx) => {
    await recordAudit(tx, {
      type: roleAuditType(role.type as RoleType, 'remove'),
      actor: ctx.principal,
      target: { type: 'user', guid: role.user_guid, name: owner?.username ?? '' },
      data: { request: {} },
      spaceGuid: role.space_guid,
      organizationGuid: orgGuid,
    });
    return enqueueJob(tx, { operation: 'role.delete', resourceType: 'role', resourceGuid: role.guid, userGuid: ctx.principal.guid });
  });
}

export function registerRoleJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('role.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const role = await tx.db.selectFrom('roles').selectAll().where('guid', '=', job.resource_guid).executeTakeFirst();
      if (!role) return; // already gone: a re-run after a crash finishes quietly
      // A space role granted after the request was accepted still blocks removing the org membership.
      if (!(await orgUserRemovable(tx.db, role))) throw unprocessable(ORG_USER_HAS_SPACE_ROLES);
      await tx.delete('roles', role.guid);
    });
  });
}
