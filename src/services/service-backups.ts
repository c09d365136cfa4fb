import { KilnError, notAuthorized, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import type { Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import { instanceContext, type InstanceContext } from './broker-operations.ts';
import { callBrokerInJob, isObject, jobFailure, requireFeatureOf } from './broker-extensions.ts';
import type { Ctx } from './context.ts';
import { enqueueJob, finishPollingJobs, JobError, type JobHandlers } from '../lifecycle/jobs.ts';
import type { BrokerSettings } from './service-catalog.ts';
import { getInstanceFromOwnSpace } from './service-instances.ts';

/**
 * Backups of managed service instances (issue 15), Kiln's extension of the OSBAPI (docs/service-extensions.md):
 * the broker keeps the backups, Kiln keeps a row per backup with its state, size and timestamps.
 *
 * Creating a backup and restoring from one are jobs: the request writes the row (state CREATING or RESTORING,
 * last operation `in progress`) and enqueues a job in one transaction; the job sends the PUT to the broker. A
 * synchronous answer concludes row and job at once; a 202 stores the broker's operation token in the row, turns
 * the job POLLING, and src/controllers/backup-operation-controller.ts polls from the row — so after a restart the
 * poll resumes from the database alone, and a job that had not reached the broker yet runs again (a PUT with the
 * same backup id is idempotent at the broker).
 */

export type BackupRow = Row<'service_instance_backups'>;
const RESOURCE = 'service_instance_backups';

export const BACKUP_LIST: ListSpec = {
  orderBy: ['created_at', 'updated_at'],
  filters: ['states'],
  createdAts: true,
  updatedAts: true,
};

export const BACKUP_STATES = ['CREATING', 'READY', 'FAILED', 'RESTORING'] as const;

/**
 * The instance with everything a broker call needs; user-provided instances have no broker and no backups. Backups
 * belong to the instance's own space: users of a space it is shared into do not see them.
 */
async function backupContext(ctx: Ctx, instanceGuid: string): Promise<InstanceContext> {
  const inst = await getInstanceFromOwnSpace(ctx, instanceGuid);
  if (inst.type !== 'managed') throw unprocessable('User-provided service instances do not support backups.');
  const c = await instanceContext(ctx.store, ctx.store.db, inst.guid);
  if (!c) throw unprocessable('User-provided service instances do not support backups.');
  return c;
}

/** Writes (create, restore): a space developer of the instance's own space, or an admin. */
async function assertCanWrite(ctx: Ctx, inst: Row<'service_instances'>): Promise<void> {
  if (!(await ctx.access.canWriteSpace(inst.space_guid))) throw notAuthorized();
}

export async function listBackups(ctx: Ctx, instanceGuid: string, params: ListParams): Promise<Page<BackupRow>> {
  const c = await backupContext(ctx, instanceGuid);
  requireFeatureOf(c.offering, 'backups');
  const states = params.filters.states;
  if (states) {
    const bad = states.filter((s) => !(BACKUP_STATES as readonly string[]).includes(s));
    if (bad.length) throw new KilnError('BadQueryParameter', `States must be one of ${BACKUP_STATES.join(', ')}`);
  }
  const q = ctx.store.db
    .selectFrom(RESOURCE)
    .selectAll(RESOURCE)
    .where(`${RESOURCE}.service_instance_guid`, '=', c.instance.guid)
    .$if(states !== undefined, (qb) => qb.where(`${RESOURCE}.state`, 'in', states as BackupRow['state'][]));
  return listPage(q, listOptions(RESOURCE, params));
}

function audit(tx: WriteTx, ctx: Ctx, verb: 'backup_create' | 'backup_restore', c: InstanceContext, backupGuid: string) {
  return recordAudit(tx, {
    type: `audit.service_instance.${verb}`,
    actor: ctx.principal,
    target: { type: 'service_instance', guid: c.instance.guid, name: c.instance.name },
    data: { request: { backup_guid: backupGuid } },
    spaceGuid: c.instance.space_guid,
    organizationGuid: c.org.guid,
  });
}

/** The instance must be at rest: CC refuses a second operation on an instance while one is in progress. */
function assertInstanceIdle(c: InstanceContext): void {
  if (c.instance.last_operation_state === 'in progress') throw new KilnError('AsyncServiceInstanceOperationInProgress', c.instance.name);
}

const RESTORE_RUNNING = 'A restore of this service instance is in progress.';

/** Whether a restore of the instance is under way (read inside the write, so two requests cannot both pass). */
async function restoreRunning(tx: WriteTx, instanceGuid: string): Promise<boolean> {
  const row = await tx.db.selectFrom(RESOURCE).select('guid').where('service_instance_guid', '=', instanceGuid).where('state', '=', 'RESTORING').executeTakeFirst();
  return row !== undefined;
}

export async function createBackup(ctx: Ctx, instanceGuid: string): Promise<{ jobGuid: string; backupGuid: string }> {
  const c = await backupContext(ctx, instanceGuid);
  await assertCanWrite(ctx, c.instance);
  requireFeatureOf(c.offering, 'backups');
  assertInstanceIdle(c);
  return ctx.store.write(async (tx) => {
    if (await restoreRunning(tx, c.instance.guid)) throw unprocessable(RESTORE_RUNNING);
    const guid = newGuid();
    await tx.insert(RESOURCE, {
      guid,
      service_instance_guid: c.instance.guid,
      state: 'CREATING',
      size_in_bytes: null,
      completed_at: null,
      restored_at: null,
      last_operation_type: 'create',
      last_operation_state: 'in progress',
      last_operation_description: null,
      last_operation_updated_at: tx.now,
      broker_operation: null,
      poll_next_at: null,
    });
    await audit(tx, ctx, 'backup_create', c, guid);
    const jobGuid = await enqueueJob(tx, { operation: 'service_instance.backup', resourceType: 'service_instance_backup', resourceGuid: guid, userGuid: ctx.principal.guid });
    return { jobGuid, backupGuid: guid };
  });
}

export async function restoreBackup(ctx: Ctx, instanceGuid: string, backupGuid: string): Promise<{ jobGuid: string }> {
  const c = await backupContext(ctx, instanceGuid);
  const backup = await ctx.store.db.selectFrom(RESOURCE).selectAll().where('guid', '=', backupGuid).where('service_instance_guid', '=', c.instance.guid).executeTakeFirst();
  if (!backup) throw new KilnError('ResourceNotFound', 'Service instance backup not found');
  await assertCanWrite(ctx, c.instance);
  requireFeatureOf(c.offering, 'backups');
  assertInstanceIdle(c);
  return ctx.store.write(async (tx) => {
    // Checked inside the write so two restores of one instance cannot both start.
    if (await restoreRunning(tx, c.instance.guid)) throw unprocessable(RESTORE_RUNNING);
    const current = await tx.db.selectFrom(RESOURCE).selectAll().where('guid', '=', backup.guid).executeTakeFirstOrThrow();
    if (current.state !== 'READY') throw unprocessable(`The backup cannot be restored from while its state is ${current.state}.`);
    await tx.update(RESOURCE, current.guid, {
      state: 'RESTORING',
      last_operation_type: 'restore',
      last_operation_state: 'in progress',
      last_operation_description: null,
      last_operation_updated_at: tx.now,
      broker_operation: null,
      poll_next_at: null,
    }, { expectedGeneration: current.generation });
    await audit(tx, ctx, 'backup_restore', c, current.guid);
    return { jobGuid: await enqueueJob(tx, { operation: 'service_instance.restore', resourceType: 'service_instance_backup', resourceGuid: current.guid, userGuid: ctx.principal.guid }) };
  });
}

// ---- the broker side: jobs and polling

const backupPath = (b: BackupRow) => `/v2/service_instances/${b.service_instance_guid}/backups/${b.guid}`;

/** What a concluded operation writes into the backup row. */
interface Conclusion {
  state: 'succeeded' | 'failed';
  description: string | null;
  sizeInBytes?: number | null;
}

/**
 * Concludes the backup's operation and its job in one transaction: a create ends READY or FAILED, a restore ends
 * READY either way (the backup itself is still good) with the outcome in `last_operation`.
 */
async function conclude(store: Store, guid: string, outcome: Conclusion, failure?: JobError): Promise<void> {
  await store.write(async (tx) => {
    const b = await tx.db.selectFrom(RESOURCE).selectAll().where('guid', '=', guid).executeTakeFirst();
    if (!b || b.last_operation_state !== 'in progress') return;
    const ok = outcome.state === 'succeeded';
    await tx.update(RESOURCE, b.guid, {
      state: b.last_operation_type === 'create' && !ok ? 'FAILED' : 'READY',
      last_operation_state: outcome.state,
      last_operation_description: outcome.description,
      last_operation_updated_at: tx.now,
      broker_operation: null,
      poll_next_at: null,
      ...(b.last_operation_type === 'create' && ok ? { completed_at: tx.now, size_in_bytes: outcome.sizeInBytes ?? null } : {}),
      ...(b.last_operation_type === 'restore' && ok ? { restored_at: tx.now } : {}),
    }, { expectedGeneration: b.generation });
    await finishPollingJobs(tx, b.guid, ok ? undefined : (failure ?? new JobError('CF-ServiceBrokerBadResponse', outcome.description ?? 'The service broker reported that the operation failed')));
  });
}

const sizeOf = (json: unknown) => (isObject(json) && typeof json.size_in_bytes === 'number' && json.size_in_bytes >= 0 ? json.size_in_bytes : null);
const descriptionOf = (json: unknown) => (isObject(json) && typeof json.description === 'string' ? json.description : null);

export interface BackupOps {
  /** One poll of the backup's async create or restore; the delay before the next, or nothing when it ended. */
  poll(guid: string): Promise<{ requeueAfterMs: number } | void>;
  /** Drops the backup records of a deleted instance (their jobs, if any, fail); nothing while it exists. */
  forget(instanceGuid: string): Promise<void>;
}

/**
 * When an instance is deleted its backup records go too: Kiln reaches backups only through their instance, and
 * what happens to the data is the broker's business (deprovisioning is where it learns the instance is gone).
 */
async function forgetBackups(store: Store, instanceGuid: string): Promise<void> {
  await store.write(async (tx) => {
    if (await tx.db.selectFrom('service_instances').select('guid').where('guid', '=', instanceGuid).executeTakeFirst()) return;
    const rows = await tx.db.selectFrom(RESOURCE).select('guid').where('service_instance_guid', '=', instanceGuid).execute();
    for (const r of rows) {
      await finishPollingJobs(tx, r.guid, new JobError('CF-ResourceNotFound', 'The service instance no longer exists', 10010));
      await tx.delete(RESOURCE, r.guid);
    }
  });
}

/**
 * Registers the two job handlers and returns the poller. Each handler: loads the backup; if the broker already
 * accepted the operation (`broker_operation` set) it only hands over to the poller; otherwise it PUTs (again).
 */
export function registerBackupJobs(handlers: JobHandlers, store: Store, settings: BrokerSettings): BackupOps {
  const body = (c: InstanceContext) => ({ service_id: c.offering.broker_catalog_id, plan_id: c.plan.broker_catalog_id });

  async function start(guid: string, userGuid: string | null, restore: boolean): Promise<void | 'polling'> {
    const b = await store.db.selectFrom(RESOURCE).selectAll().where('guid', '=', guid).executeTakeFirst();
    if (!b) throw new KilnError('ResourceNotFound', 'Service instance backup not found');
    if (b.last_operation_state !== 'in progress') return; // concluded before a crash
    const c = await instanceContext(store, store.db, b.service_instance_guid);
    if (!c) {
      const gone = new JobError('CF-ResourceNotFound', 'The service instance no longer exists', 10010);
      await conclude(store, b.guid, { state: 'failed', description: gone.detail }, gone);
      throw gone;
    }
    if (b.broker_operation !== null) return 'polling';
    const path = restore ? `${backupPath(b)}/restore` : backupPath(b);
    let res;
    try {
      res = await callBrokerInJob(c.conn, 'PUT', path, settings.timeoutMs, userGuid, { body: body(c), query: { accepts_incomplete: 'true' } });
    } catch (err) {
      if (err instanceof JobError) await conclude(store, b.guid, { state: 'failed', description: err.detail }, err);
      throw err;
    }
    if (res.status === 202) {
      const operation = isObject(res.json) && typeof res.json.operation === 'string' ? res.json.operation : '';
      await store.write(async (tx) => {
        const cur = await tx.db.selectFrom(RESOURCE).selectAll().where('guid', '=', b.guid).executeTakeFirstOrThrow();
        await tx.update(RESOURCE, cur.guid, { broker_operation: operation, poll_next_at: Date.now(), last_operation_description: descriptionOf(res.json) }, { expectedGeneration: cur.generation });
      });
      return 'polling';
    }
    if (res.status === 200 || res.status === 201) {
      await conclude(store, b.guid, { state: 'succeeded', description: descriptionOf(res.json), sizeInBytes: sizeOf(res.json) });
      return;
    }
    const failure = jobFailure(res);
    await conclude(store, b.guid, { state: 'failed', description: failure.detail }, failure);
    throw failure;
  }

  // The handlers' outcome 'polling' leaves the job POLLING; conclude() (here or in the poller) finishes it.
  handlers.register('service_instance.backup', async ({ job }) => start(job.resource_guid, job.user_guid, false));
  handlers.register('service_instance.restore', async ({ job }) => start(job.resource_guid, job.user_guid, true));

  return {
    forget: (instanceGuid) => forgetBackups(store, instanceGuid),
    async poll(guid) {
      const b = await store.db.selectFrom(RESOURCE).selectAll().where('guid', '=', guid).executeTakeFirst();
      if (!b || b.last_operation_state !== 'in progress' || b.broker_operation === null) return;
      const c = await instanceContext(store, store.db, b.service_instance_guid);
      if (!c) {
        // The instance was deleted under the operation: nothing is left to poll, so end it and its job.
        await conclude(store, b.guid, { state: 'failed', description: 'The service instance no longer exists' });
        return;
      }
      const wait = (b.poll_next_at ?? 0) - Date.now();
      if (wait > 0) return { requeueAfterMs: wait };
      const restore = b.last_operation_type === 'restore';
      const path = restore ? `${backupPath(b)}/restore/last_operation` : backupPath(b);
      let res;
      try {
        res = await callBrokerInJob(c.conn, 'GET', path, settings.timeoutMs, null, { query: { operation: b.broker_operation, ...body(c) } });
      } catch {
        return { requeueAfterMs: settings.pollIntervalMs }; // unreachable for now: look again later
      }
      const state = isObject(res.json) ? res.json.state : undefined;
      if (res.status === 200 && (state === 'succeeded' || state === 'failed')) {
        await conclude(store, b.guid, { state, description: descriptionOf(res.json), sizeInBytes: sizeOf(res.json) }, state === 'failed' ? new JobError('CF-ServiceBrokerBadResponse', descriptionOf(res.json) ?? `The ${restore ? 'restore' : 'backup'} failed`) : undefined);
        return;
      }
      if (res.status === 410 || res.status === 404) {
        await conclude(store, b.guid, { state: 'failed', description: 'The service broker no longer knows this backup' });
        return;
      }
      const next = Math.max(settings.pollIntervalMs, (res.retryAfterSeconds ?? 0) * 1000);
      await store.write(async (tx) => {
        const cur = await tx.db.selectFrom(RESOURCE).selectAll().where('guid', '=', b.guid).executeTakeFirstOrThrow();
        await tx.update(RESOURCE, cur.guid, { poll_next_at: Date.now() + next, last_operation_description: descriptionOf(res.json) ?? cur.last_operation_description }, { expectedGeneration: cur.generation });
      });
      return { requeueAfterMs: next };
    },
  };
}
