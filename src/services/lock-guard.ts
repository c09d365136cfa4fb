import type { Kysely } from 'kysely';
import { unprocessable, type KilnError } from '../domain/errors.ts';
import { lockedMessage } from '../domain/locks.ts';
import type { Principal } from '../domain/principal.ts';
import { deleteMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { nowIso, type WriteTx } from '../store/store.ts';

/**
 * The write side of locks (docs/kiln-openapi.json, `Lock`): a write to an app — push (packages, builds, current
 * droplet), deployment, scale, environment change, start/stop, delete — is refused while the app or its space is
 * held by someone else's unexpired lock; so are new apps in a held space and deleting a space with anything held.
 * The holder (same user or client) works normally. An expired lock is ignored here and deleted by the next create
 * on the resource.
 *
 * The check runs before the use-case's write transaction: a write that passed it just before another client took
 * the lock still completes; every write after the lock is taken is refused. Pipelines take the lock first, then
 * push, so they never race that window themselves.
 */

/**
 * The unexpired lock on the app or its space held by someone other than `principal`, if any (the space's first).
 * One lookup by guid on the unique index: every app write pays for it, and this simple form costs about a third
 * of an OR over (type, guid) pairs, most of which was building the query.
 */
export async function conflictingLock(
  db: Kysely<Database>,
  principal: Pick<Principal, 'guid'>,
  target: { appGuid?: string; spaceGuid: string },
): Promise<Row<'locks'> | undefined> {
  const guids = target.appGuid ? [target.spaceGuid, target.appGuid] : [target.spaceGuid];
  const rows = await db
    .selectFrom('locks')
    .selectAll()
    .where('resource_guid', 'in', guids)
    .where('expires_at', '>', nowIso())
    .where('owner_guid', '!=', principal.guid)
    .execute();
  const held = (type: 'app' | 'space', guid: string | undefined) => rows.find((r) => r.resource_type === type && r.resource_guid === guid);
  return held('space', target.spaceGuid) ?? held('app', target.appGuid);
}

/** The 422 a refused write answers: it names the locked resource, the holder, the expiry and the reason. */
export async function lockedError(db: Kysely<Database>, lock: Row<'locks'>): Promise<KilnError> {
  const table = lock.resource_type === 'app' ? 'apps' : 'spaces';
  const resource = await db.selectFrom(table).select('name').where('guid', '=', lock.resource_guid).executeTakeFirst();
  return unprocessable(
    lockedMessage({
      resourceKind: lock.resource_type === 'app' ? 'App' : 'Space',
      resourceName: resource?.name ?? lock.resource_guid,
      name: lock.name,
      ownerName: lock.owner_name,
      expiresAt: `${lock.expires_at.slice(0, 19)}Z`,
      reason: lock.reason,
    }),
  );
}

/** Throws the 422 when the app (or, without `appGuid`, the space) is locked by someone else. */
export async function assertNotLockedByOthers(
  db: Kysely<Database>,
  principal: Pick<Principal, 'guid'>,
  target: { appGuid?: string; spaceGuid: string },
): Promise<void> {
  const lock = await conflictingLock(db, principal, target);
  if (lock) throw await lockedError(db, lock);
}

/**
 * Deleting a space takes its apps with it: refused while someone else holds the space or any app in it (the
 * space's own lock named first).
 */
export async function assertSpaceContentsNotLockedByOthers(db: Kysely<Database>, principal: Pick<Principal, 'guid'>, spaceGuid: string): Promise<void> {
  const rows = await db
    .selectFrom('locks')
    .selectAll()
    .where('space_guid', '=', spaceGuid)
    .where('expires_at', '>', nowIso())
    .where('owner_guid', '!=', principal.guid)
    .orderBy('resource_type', 'desc')
    .orderBy('created_at')
    .execute();
  if (rows[0]) throw await lockedError(db, rows[0]);
}

/** For the app and space delete cascades: locks go with what they hold (a space's take its apps' locks too). */
export async function deleteLocksOf(tx: WriteTx, type: 'app' | 'space', guids: string[]): Promise<void> {
  if (guids.length === 0) return;
  let q = tx.db.selectFrom('locks').select('guid');
  q = type === 'app' ? q.where('resource_type', '=', 'app').where('resource_guid', 'in', guids) : q.where('space_guid', 'in', guids);
  const lockGuids = (await q.execute()).map((r) => r.guid);
  if (lockGuids.length === 0) return;
  await deleteMetadata(tx, 'locks', lockGuids);
  await tx.deleteWhere('locks', (eb) => eb('guid', 'in', lockGuids));
}
