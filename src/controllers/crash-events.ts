import type { Principal } from '../domain/principal.ts';
import type { InstanceStatus } from '../runtime/runtime.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';

/** What Diego reports to Cloud Controller when an instance crashes (app_crashed_controller.rb's payload). */
export interface CrashPayload {
  instance: string;
  index: number;
  cell_id: string;
  exit_status: number;
  exit_description: string;
  reason: 'CRASHED';
  crash_count: number;
  /** Nanoseconds since the epoch, as Diego reports it. */
  crash_timestamp: number;
  version: string;
}

type Crashed = InstanceStatus & { lastExit: NonNullable<InstanceStatus['lastExit']> };

const crashed = (i: InstanceStatus): i is Crashed => i.lastExit !== undefined && i.crashCount > 0;

export function crashPayload(i: Crashed): CrashPayload {
  const { lastExit } = i;
  return {
    instance: i.id,
    index: i.index,
    cell_id: i.host,
    // A signal death has no exit code; shells report those as 128 + signal, Diego's executor as 255.
    exit_status: lastExit.code ?? 255,
    exit_description: lastExit.reason,
    reason: 'CRASHED',
    crash_count: i.crashCount,
    crash_timestamp: lastExit.at * 1_000_000,
    version: i.version,
  };
}

/** A platform-side actor (the app or the process), recorded with actor type `app` / `process` as upstream does. */
const actor = (guid: string, name: string): Principal => ({
  guid,
  username: name,
  origin: null,
  email: null,
  isClient: false,
  scopes: new Set(),
});

/**
 * Turns the crashes the runtime reports for one process into Cloud Controller's events: `app.crash` (actor and
 * target the app) and `audit.app.process.crash` (actor the process). Every reconcile sees an instance's last exit
 * again, so each crash is keyed on (instance, exit time) in `instance_crashes` and recorded once; keys of
 * instances the runtime no longer runs are dropped. Reads first, so a reconcile with nothing new writes nothing.
 */
export async function recordCrashes(store: Store, proc: Pick<Row<'processes'>, 'guid' | 'type' | 'app_guid'>, observed: InstanceStatus[]): Promise<void> {
  const known = await store.db.selectFrom('instance_crashes').select(['instance_guid', 'crashed_at']).where('process_guid', '=', proc.guid).execute();
  const seen = new Set(known.map((k) => `${k.instance_guid}@${Number(k.crashed_at)}`));
  const fresh = observed.filter(crashed).filter((i) => !seen.has(`${i.id}@${i.lastExit.at}`));
  const live = new Set(observed.map((i) => i.id));
  const stale = [...new Set(known.filter((k) => !live.has(k.instance_guid)).map((k) => k.instance_guid))];
  if (fresh.length === 0 && stale.length === 0) return;

  await store.write(async (tx) => {
    if (stale.length > 0) {
      await tx.db.deleteFrom('instance_crashes').where('process_guid', '=', proc.guid).where('instance_guid', 'in', stale).execute();
    }
    if (fresh.length === 0) return;
    const app = await tx.db.selectFrom('apps').select(['guid', 'name', 'space_guid']).where('guid', '=', proc.app_guid).executeTakeFirst();
    if (!app) return;
    const space = await tx.db.selectFrom('spaces').select('organization_guid').where('guid', '=', app.space_guid).executeTakeFirst();
    for (const i of fresh) {
      const inserted = await tx.db
        .insertInto('instance_crashes')
        .values({ instance_guid: i.id, crashed_at: i.lastExit.at, process_guid: proc.guid })
        .onConflict((oc) => oc.columns(['instance_guid', 'crashed_at']).doNothing())
        .executeTakeFirst();
      // Another reconcile (or replica) recorded it between our read and this write.
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) continue;
      const payload = crashPayload(i);
      const where = { spaceGuid: app.space_guid, organizationGuid: space?.organization_guid ?? null };
      const target = { type: 'app', guid: app.guid, name: app.name };
      const { version: _version, ...appCrash } = payload;
      await recordAudit(tx, { type: 'app.crash', actor: actor(app.guid, app.name), actorType: 'app', target, data: appCrash, ...where });
      await recordAudit(tx, {
        type: 'audit.app.process.crash',
        actor: actor(proc.guid, proc.type),
        actorType: 'process',
        target,
        data: { ...payload },
        ...where,
      });
    }
  });
}

/** Drops the crash keys of a process that no longer exists (its events stay; only the dedup keys go). */
export async function forgetCrashes(store: Store, processGuid: string): Promise<void> {
  const any = await store.db.selectFrom('instance_crashes').select('instance_guid').where('process_guid', '=', processGuid).executeTakeFirst();
  if (!any) return;
  await store.write(async (tx) => {
    await tx.db.deleteFrom('instance_crashes').where('process_guid', '=', processGuid).execute();
  });
}
