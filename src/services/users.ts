import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from 'kysely';
import { badQuery, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { USER_LIST_FILTERS, userListFilterErrors, type CreateUser, type UpdateUser } from '../domain/users.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import type { Store, WriteTx } from '../store/store.ts';
import type { Access } from './access.ts';
import { findVisibleOrg, findVisibleSpace } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { enqueueJob, type JobHandlers } from '../lifecycle/jobs.ts';
import { everyRow } from '../store/every-row.ts';

/** A CC user as presented: username and origin come from the identity provider when it knows the user. */
export type UserRow = Row<'users'>;

export const USER_LIST: ListSpec = { filters: USER_LIST_FILTERS, labelSelector: true };

// Conditions over the `users` table are embedded in queries whose other tables vary (joins, sub-selects).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Eb = ExpressionBuilder<Database, any>;

/** Users with their current username/origin: the identity provider's record wins over what CC remembered. */
export function usersQuery(db: Kysely<Database>) {
  return db
    .selectFrom('users')
    .leftJoin('identity_users', 'identity_users.guid', 'users.guid')
    .select(['users.id', 'users.guid', 'users.created_at', 'users.updated_at', 'users.generation'])
    .select((eb) => [
      eb.fn.coalesce('identity_users.username', 'users.username').as('username'),
      eb.fn.coalesce('identity_users.origin', 'users.origin').as('origin'),
    ]);
}

const usernameExpr = sql<string | null>`coalesce(identity_users.username, users.username)`;
const originExpr = sql<string | null>`coalesce(identity_users.origin, users.origin)`;

/**
 * Users the caller may read (CONVENTIONS.md §13.2): themself, and everyone holding a role in an org the
 * caller belongs to (through an org role or a role in one of its spaces); global readers see everyone.
 */
export function userVisible(eb: Eb, access: Access, column = 'users.guid'): Expression<SqlBool> {
  if (access.global) return everyRow();
  const ref = sql.ref<string>(column);
  return eb.or([
    eb(ref, '=', access.userGuid),
    eb(
      ref,
      'in',
      eb
        .selectFrom('roles as vr')
        .leftJoin('spaces as vs', 'vs.guid', 'vr.space_guid')
        .select('vr.user_guid')
        .where(sql<string>`coalesce(vr.organization_guid, vs.organization_guid)`, 'in', access.readableOrgGuids(eb)),
    ),
  ]);
}

/** Escapes LIKE wildcards so a partial username matches literally. */
const likeLiteral = (s: string) => s.toLowerCase().replace(/[\\%_]/g, (ch) => `\\${ch}`);

export type UserListScope = { organizationGuid: string } | { spaceGuid: string } | undefined;

/**
 * `GET /v3/users` (visible users), or the members of one org (`/v3/organizations/:guid/users`: anyone with a
 * role in the org or its spaces) or space (`/v3/spaces/:guid/users`: anyone with a role in the space).
 */
export async function listUsers(ctx: Ctx, params: ListParams, scope?: UserListScope): Promise<Page<UserRow>> {
  const filterErrors = userListFilterErrors(params.filters);
  if (filterErrors.length > 0) {
    // Upstream validates /v3/users with a 422 but the nested lists with a 400.
    throw scope ? badQuery(filterErrors.join(', ')) : unprocessable(filterErrors.join(', '));
  }
  let q = usersQuery(ctx.store.db);
  if (!scope) {
    q = q.where((eb) => userVisible(eb, ctx.access));
  } else if ('organizationGuid' in scope) {
    const org = await findVisibleOrg(ctx.access, ctx.store.db, scope.organizationGuid);
    q = q.where((eb) =>
      eb.or([
        eb('users.guid', 'in', eb.selectFrom('roles').select('roles.user_guid').where('roles.organization_guid', '=', org.guid)),
        eb(
          'users.guid',
          'in',
          eb
            .selectFrom('roles')
            .innerJoin('spaces', 'spaces.guid', 'roles.space_guid')
            .select('roles.user_guid')
            .where('spaces.organization_guid', '=', org.guid),
        ),
      ]),
    );
  } else {
    const space = await findVisibleSpace(ctx.access, ctx.store.db, scope.spaceGuid);
    q = q.where('users.guid', 'in', (eb) => eb.selectFrom('roles').select('roles.user_guid').where('roles.space_guid', '=', space.guid));
  }
  const { usernames, partial_usernames: partials, origins } = params.filters;
  if (usernames) q = q.where(sql<string>`lower(${usernameExpr})`, 'in', usernames.map((u) => u.toLowerCase()));
  if (partials) {
    // Nested in halves: SQLite parses a flat OR of n terms into a tree n deep and refuses one over 1000 deep.
    const anyOf = (eb: Eb, list: string[]): Expression<SqlBool> =>
      list.length <= 64
        ? eb.or(list.map((p) => eb(sql<string>`lower(${usernameExpr})`, 'like', sql<string>`${`%${likeLiteral(p)}%`} escape '\\'`)))
        : eb.or([anyOf(eb, list.slice(0, list.length >> 1)), anyOf(eb, list.slice(list.length >> 1))]);
    q = q.where((eb) => anyOf(eb, partials));
  }
  if (origins) q = q.where(originExpr, 'in', origins);
  return listPage(q, {
    table: 'users',
    resourceType: 'users',
    page: params.page,
    perPage: params.perPage,
    guids: params.filters.guids,
    timestamps: params.timestamps,
    labelSelector: params.labelSelector,
    orderBy: params.orderBy ? { column: params.orderBy.field, desc: params.orderBy.desc } : undefined,
  });
}

export async function findUser(db: Kysely<Database>, guid: string): Promise<UserRow | undefined> {
  return usersQuery(db).where('users.guid', '=', guid).executeTakeFirst();
}

export async function getUser(ctx: Ctx, guid: string): Promise<UserRow> {
  const user = await usersQuery(ctx.store.db)
    .where('users.guid', '=', guid)
    .where((eb) => userVisible(eb, ctx.access))
    .executeTakeFirst();
  if (!user) throw notFound('User');
  return user;
}

/** Users by guid, ordered by created_at then guid (for `include=user`). */
export async function usersByGuid(db: Kysely<Database>, guids: string[]): Promise<UserRow[]> {
  const unique = [...new Set(guids)];
  if (unique.length === 0) return [];
  return usersQuery(db).where('users.guid', 'in', unique).orderBy('users.created_at').orderBy('users.guid').execute();
}

/** Identity-provider accounts (or CC users remembered from tokens) with this username, case-insensitively. */
export async function accountsNamed(db: Kysely<Database>, username: string): Promise<Array<{ guid: string; origin: string }>> {
  const lower = username.toLowerCase();
  const identity = await db
    .selectFrom('identity_users')
    .select(['guid', 'origin'])
    .where((eb) => eb(eb.fn('lower', ['username']), '=', lower))
    .execute();
  const remembered = await usersQuery(db).where(sql<string>`lower(${usernameExpr})`, '=', lower).execute();
  const byGuid = new Map(identity.map((u) => [u.guid, u.origin]));
  for (const u of remembered) if (u.origin && !byGuid.has(u.guid)) byGuid.set(u.guid, u.origin);
  return [...byGuid].map(([guid, origin]) => ({ guid, origin }));
}

/** What Kiln knows about an account that has no CC user row yet: an identity user or an OAuth client. */
export async function knownAccount(db: Kysely<Database>, guid: string): Promise<{ username: string | null; origin: string | null } | undefined> {
  const identity = await db.selectFrom('identity_users').select(['username', 'origin']).where('guid', '=', guid).executeTakeFirst();
  if (identity) return identity;
  const client = await db.selectFrom('identity_clients').select('client_id').where('client_id', '=', guid).executeTakeFirst();
  return client ? { username: null, origin: null } : undefined;
}

/** Inserts the CC user row for an account seen for the first time (no-op when a concurrent write made it). */
export async function insertCcUser(tx: WriteTx, guid: string, names: { username: string | null; origin: string | null }): Promise<void> {
  await tx.insertIfAbsent('users', { guid, username: names.username, origin: names.origin });
}

/** Only admins create users (upstream's operator option letting org managers do it is not offered). */
export function requireUserCreator(ctx: Ctx): void {
  if (!ctx.access.admin) throw notAuthorized();
}

export async function createUser(ctx: Ctx, input: CreateUser): Promise<{ user: UserRow; metadata: Metadata }> {
  requireUserCreator(ctx);
  validateMetadataRequest(input.metadata);
  const db = ctx.store.db;
  let guid: string;
  let names: { username: string | null; origin: string | null };
  let taken: string;
  if ('guid' in input) {
    guid = input.guid;
    names = (await knownAccount(db, guid)) ?? { username: null, origin: null };
    taken = `User with guid '${guid}' already exists.`;
  } else {
    const account = (await accountsNamed(db, input.username)).find((a) => a.origin === input.origin);
    if (!account) throw unprocessable(`No user exists with the username '${input.username}' and origin '${input.origin}'.`);
    guid = account.guid;
    names = { username: input.username, origin: input.origin };
    taken = `User with username '${input.username}' and origin '${input.origin}' already exists.`;
  }
  try {
    return await ctx.store.write(async (tx) => {
      if (await tx.db.selectFrom('users').select('guid').where('guid', '=', guid).executeTakeFirst()) throw unprocessable(taken);
      await tx.insert('users', { guid, username: names.username, origin: names.origin });
      const metadata = await saveMetadata(tx, 'users', guid, input.metadata);
      await recordAudit(tx, {
        type: 'audit.user.create',
        actor: ctx.principal,
        target: { type: 'user', guid, name: names.username ?? '' },
        data: { request: input },
      });
      return { user: (await findUser(tx.db, guid))!, metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw unprocessable(taken);
    throw err;
  }
}

export async function updateUser(ctx: Ctx, guid: string, input: UpdateUser): Promise<{ user: UserRow; metadata: Metadata }> {
  const user = await getUser(ctx, guid);
  if (!ctx.access.admin) throw notAuthorized();
  validateMetadataRequest(input.metadata);
  return ctx.store.write(async (tx) => {
    await tx.update('users', user.guid, {}, { expectedGeneration: user.generation });
    const metadata = await saveMetadata(tx, 'users', user.guid, input.metadata);
    await recordAudit(tx, {
      type: 'audit.user.update',
      actor: ctx.principal,
      target: { type: 'user', guid: user.guid, name: user.username ?? '' },
      data: { request: input },
    });
    return { user: (await findUser(tx.db, user.guid))!, metadata };
  });
}

/** Returns the job that removes the CC user and its roles (the identity provider's account stays). */
export async function deleteUser(ctx: Ctx, guid: string): Promise<string> {
  const user = await getUser(ctx, guid);
  if (!ctx.access.admin) throw notAuthorized();
  return ctx.store.write(async (tx) => {
    await recordAudit(tx, {
      type: 'audit.user.delete-request',
      actor: ctx.principal,
      target: { type: 'user', guid: user.guid, name: user.username ?? '' },
    });
    return enqueueJob(tx, { operation: 'user.delete', resourceType: 'user', resourceGuid: user.guid, userGuid: ctx.principal.guid });
  });
}

export function registerUserJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('user.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const guid = job.resource_guid;
      await tx.deleteWhere('roles', (eb) => eb('user_guid', '=', guid));
      await deleteMetadata(tx, 'users', [guid]);
      await tx.delete('users', guid);
    });
  });
}
