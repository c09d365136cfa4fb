import type { Identity } from '../runtime/local/sandbox.ts';
import type { Store } from '../store/store.ts';

/**
 * First uid/gid handed to apps: far above the ranges distributions give people (1000–60000) and system services,
 * and above 65534 (nobody), so an app's uid never owns anything on the host but its own sandbox's files.
 */
export const SANDBOX_UID_BASE = 200_000;

/**
 * The app's own uid/gid (equal numbers), allocated on first use and recorded in the store; the same app always
 * gets the same one, on every replica. Never 0, never reused by another app.
 */
export async function sandboxIdentity(store: Store, appGuid: string): Promise<Identity> {
  const existing = await store.db.selectFrom('app_sandbox_ids').select('id').where('app_guid', '=', appGuid).executeTakeFirst();
  const id =
    existing?.id ??
    (await store.write(async (tx) => {
      // Another replica (or a concurrent caller) may have inserted it since: the unique index keeps one row.
      await tx.db
        .insertInto('app_sandbox_ids')
        .values({ app_guid: appGuid, created_at: tx.now })
        .onConflict((oc) => oc.column('app_guid').doNothing())
        .execute();
      const row = await tx.db.selectFrom('app_sandbox_ids').select('id').where('app_guid', '=', appGuid).executeTakeFirstOrThrow();
      return row.id;
    }));
  const uid = SANDBOX_UID_BASE + id;
  return { uid, gid: uid };
}
