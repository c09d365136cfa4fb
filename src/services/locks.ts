import type { Kysely } from 'kysely';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { LOCK_TTL_DEFAULT, leaseEnd, type CreateLock, type LockResourceType, type UpdateLock } from '../domain/locks.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, loadMetadata, loadOneMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, nowIso, type WriteTx } from '../store/store.ts';
import { assertSpaceMutable, readableApp } from './app-scope.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { conflictingLock, lockedError } from './lock-guard.ts';

/**
 * Locks (Kiln extension, docs/kiln-openapi.json): a named, expiring hold on an app or a space that refuses
 * conflicting writes by others (services/lock-guard.ts). The lease is `ttl_in_seconds` long and every PATCH by the
 * holder renews it. An expired lock no longer exists for the API: it is not enforced, listed or renewable (404),
 * and the next create on the resource deletes its row ("reclaims" it). Nothing runs on a timer, so a crash at
 * any point leaves either the old lock (until it expires) or the new one.
 *
 * Roles (CONVENTIONS.md Appendix B style): read — whoever can read the locked resource (A AR GA OM SM SD SA SS);
 * create — A SD SS of the space (those who push, scale and change env); renew — the holder; delete — the holder,
 * an admin, or a manager of the space or its org (to break a lock whose holder is gone).
 */

export const LOCK_LIST: ListSpec = {
  orderBy: ['name', 'expires_at'],
  filters: ['names', 'app_guids', 'space_guids', 'organization_guids', 'owner_guids', 'resource_types'],
  labelSelector: true,
};

export interface LockView {
  lock: Row<'locks'>;
  organizationGuid: string;
  /** Loaded with the lock for lists (see listLocks). */
  metadata?: Metadata;
}

// ---- reading ----

const visibleLocks = (ctx: Ctx) =>
  ctx.store.db
    .selectFrom('locks')
    .innerJoin('spaces', 'spaces.guid', 'locks.space_guid')
    .selectAll('locks')
    .select('spaces.organization_guid as organization_guid')
    .where('locks.expires_at', '>', nowIso())
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.spaceVisible(eb, 'locks.space_guid')));

const viewOf = ({ organization_guid, ...lock }: Row<'locks'> & { organization_guid: string }): LockView => ({ lock, organizationGuid: organization_guid });

export async function listLocks(ctx: Ctx, params: ListParams): Promise<Page<LockView>> {
  const f = params.filters;
  let q = visibleLocks(ctx);
  if (f.names) q = q.where('locks.name', 'in', f.names);
  if (f.app_guids) q = q.where('locks.resource_type', '=', 'app').where('locks.resource_guid', 'in', f.app_guids);
  if (f.space_guids) q = q.where('locks.space_guid', 'in', f.space_guids);
  if (f.organization_guids) q = q.where('spaces.organization_guid', 'in', f.organization_guids);
  if (f.owner_guids) q = q.where('locks.owner_guid', 'in', f.owner_guids);
  // Values other than app/space match nothing, as an unknown name in `names` does.
  if (f.resource_types) q = q.where('locks.resource_type', 'in', f.resource_types as LockResourceType[]);
  const page = await listPage(q, listOptions('locks', params));
  const metadata = await loadMetadata(ctx.store.db, 'locks', page.rows.map((r) => r.guid));
  return { rows: page.rows.map((r) => ({ ...viewOf(r), metadata: metadata.get(r.guid)! })), total: page.total };
}

/** An unexpired lock on a resource the caller can read, else 404 `Lock not found`. */
export async function findVisibleLock(ctx: Ctx, guid: string): Promise<LockView> {
  const row = await visibleLocks(ctx).where('locks.guid', '=', guid).executeTakeFirst();
  if (!row) throw notFound('Lock');
  return viewOf(row);
}

export async function getLock(ctx: Ctx, guid: string): Promise<{ view: LockView; metadata: Metadata }> {
  const view = await findVisibleLock(ctx, guid);
  return { view, metadata: await loadOneMetadata(ctx.store.db, 'locks', guid) };
}

// ---- writing ----

interface LockTarget {
  type: 'app' | 'space';
  guid: string;
  name: string;
  space: Row<'spaces'>;
}

/** The resource a create names: visible, or 422 as CONVENTIONS.md §13.3 says for guids in a body. */
async function resolveTarget(ctx: Ctx, input: CreateLock): Promise<LockTarget> {
  const db = ctx.store.db;
  if (input.relationships.app) {
    const scope = await readableApp(ctx, input.relationships.app.data.guid);
    if (!scope) throw unprocessable('Invalid app. Ensure that the app exists and you have access to it.');
    return { type: 'app', guid: scope.app.guid, name: scope.app.name, space: scope.space };
  }
  const space = await db.selectFrom('spaces').selectAll().where('guid', '=', input.relationships.space!.data.guid).executeTakeFirst();
  if (!space || !(await ctx.access.canReadSpace(space))) throw unprocessable('Invalid space. Ensure that the space exists and you have access to it.');
  return { type: 'space', guid: space.guid, name: space.name, space };
}

/** The lock that stops `principal` from taking `target`: on the resource itself (anyone's), its space, or its apps. */
async function blockingLock(db: Kysely<Database>, ctx: Ctx, target: LockTarget, now: string): Promise<Row<'locks'> | undefined> {
  const own = await db
    .selectFrom('locks')
    .selectAll()
    .where('resource_type', '=', target.type)
    .where('resource_guid', '=', target.guid)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  if (own) return own;
  if (target.type === 'app') return conflictingLock(db, ctx.principal, { spaceGuid: target.space.guid });
  // A space lock must not overrule another holder's locks on apps of the space.
  return db
    .selectFrom('locks')
    .selectAll()
    .where('space_guid', '=', target.guid)
    .where('resource_type', '=', 'app')
    .where('owner_guid', '!=', ctx.principal.guid)
    .where('expires_at', '>', now)
    .executeTakeFirst();
}

/** Deletes every expired lock (their rows only ever wait for the next write here). */
async function reclaimExpired(tx: WriteTx): Promise<void> {
  const expired = await tx.db.selectFrom('locks').select('guid').where('expires_at', '<=', tx.now).execute();
  if (expired.length === 0) return;
  const guids = expired.map((r) => r.guid);
  await deleteMetadata(tx, 'locks', guids);
  await tx.deleteWhere('locks', (eb) => eb('guid', 'in', guids));
}

function auditLock(tx: WriteTx, ctx: Ctx, action: string, lock: Pick<Row<'locks'>, 'guid' | 'name' | 'space_guid'>, orgGuid: string, data: Record<string, unknown>) {
  return recordAudit(tx, {
    type: `audit.lock.${action}`,
    actor: ctx.principal,
    target: { type: 'lock', guid: lock.guid, name: lock.name },
    data,
    spaceGuid: lock.space_guid,
    organizationGuid: orgGuid,
  });
}

const loadLock = (db: Kysely<Database>, guid: string) => db.selectFrom('locks').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

export async function createLock(ctx: Ctx, input: CreateLock): Promise<{ view: LockView; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const target = await resolveTarget(ctx, input);
  if (!(await ctx.access.canManageApps(target.space.guid))) throw notAuthorized();
  await assertSpaceMutable(ctx, target.space);
  const ttl = input.ttl_in_seconds ?? LOCK_TTL_DEFAULT;
  try {
    return await ctx.store.write(async (tx) => {
      await reclaimExpired(tx);
      const blocking = await blockingLock(tx.db, ctx, target, tx.now);
      if (blocking) throw await lockedError(tx.db, blocking);
      const guid = newGuid();
      await tx.insert('locks', {
        guid,
        name: input.name,
        reason: input.reason ?? null,
        resource_type: target.type,
        resource_guid: target.guid,
        space_guid: target.space.guid,
        owner_guid: ctx.principal.guid,
        owner_name: ctx.principal.username ?? ctx.principal.guid,
        ttl_seconds: ttl,
        expires_at: leaseEnd(tx.now, ttl),
      });
      const metadata = await saveMetadata(tx, 'locks', guid, input.metadata);
      const lock = await loadLock(tx.db, guid);
      await auditLock(tx, ctx, 'create', lock, target.space.organization_guid, {
        request: { name: input.name, ttl_in_seconds: ttl, resource_type: target.type, resource_guid: target.guid },
      });
      return { view: { lock, organizationGuid: target.space.organization_guid }, metadata };
    });
  } catch (err) {
    // Two clients taking the same resource at once: the unique index let one in; the other is refused by name.
    if (isUniqueViolation(err)) {
      const winner = await ctx.store.db
        .selectFrom('locks')
        .selectAll()
        .where('resource_type', '=', target.type)
        .where('resource_guid', '=', target.guid)
        .executeTakeFirst();
      if (winner) throw await lockedError(ctx.store.db, winner);
    }
    throw err;
  }
}

/** Renews the lease (heartbeat) and applies the changes; only the holder may. */
export async function updateLock(ctx: Ctx, guid: string, input: UpdateLock): Promise<{ view: LockView; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const view = await findVisibleLock(ctx, guid);
  const { lock } = view;
  if (lock.owner_guid !== ctx.principal.guid) throw notAuthorized();
  return ctx.store.write(async (tx) => {
    // Re-read in the write: the lease may have run out (and been reclaimed) since the lookup.
    const current = await tx.db.selectFrom('locks').selectAll().where('guid', '=', guid).executeTakeFirst();
    if (!current || current.expires_at <= tx.now) throw notFound('Lock');
    const ttl = input.ttl_in_seconds ?? current.ttl_seconds;
    await tx.update('locks', guid, {
      ttl_seconds: ttl,
      expires_at: leaseEnd(tx.now, ttl),
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
    }, { expectedGeneration: current.generation });
    const metadata = await saveMetadata(tx, 'locks', guid, input.metadata);
    const updated = await loadLock(tx.db, guid);
    await auditLock(tx, ctx, 'update', updated, view.organizationGuid, { request: { ttl_in_seconds: ttl, ...(input.reason !== undefined ? { reason: input.reason } : {}) } });
    return { view: { lock: updated, organizationGuid: view.organizationGuid }, metadata };
  });
}

/** Releases a lock: its holder, an admin, or a manager of its space or org (breaking a stuck lock). */
export async function deleteLock(ctx: Ctx, guid: string): Promise<void> {
  const view = await findVisibleLock(ctx, guid);
  const { lock } = view;
  const allowed =
    lock.owner_guid === ctx.principal.guid ||
    ctx.access.admin ||
    (await ctx.access.hasSpaceRole(lock.space_guid, 'space_manager')) ||
    (await ctx.access.hasOrgRole(view.organizationGuid, 'organization_manager'));
  if (!allowed) throw notAuthorized();
  await ctx.store.write(async (tx) => {
    await deleteMetadata(tx, 'locks', [guid]);
    await tx.delete('locks', guid);
    await auditLock(tx, ctx, 'delete', lock, view.organizationGuid, { owner_guid: lock.owner_guid });
  });
}
