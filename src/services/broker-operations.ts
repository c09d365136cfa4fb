import type { Kysely } from 'kysely';
import { KilnError } from '../domain/errors.ts';
import type { Database, Row } from '../store/schema.ts';
import type { Store, WriteTx } from '../store/store.ts';
import { BrokerError, callBroker, malformed, unexpectedAnswer, type BrokerConnection, type BrokerResponse } from './broker-client.ts';
import { finishPollingJobs, JobError, type JobHandlers } from '../lifecycle/jobs.ts';
import { connectionOf, type BrokerSettings } from './service-catalog.ts';
import { recordDeletedUsage, recordServiceUsage } from './service-usage-events.ts';

/**
 * The broker side of service instances and bindings (OSBAPI, as Cloud Controller drives it): provision, update,
 * deprovision, bind and unbind, always with `accepts_incomplete=true`. A 202 answer is polled at once, in the same
 * job run; if the operation is still in progress the job turns POLLING and the broker-operation reconciler polls
 * `last_operation` from then on (no in-memory timer: the columns `poll_next_at`/`poll_deadline` survive restarts).
 *
 * Crash safety: the job handler reruns from the start after a crash; it looks at the row's last operation first
 * (already `in progress` → just hand over to the poller), and brokers must treat a repeated PUT as idempotent
 * (OSBAPI: 200 for identical, 202 when already in progress).
 */

export type SubjectKind = 'service_instances' | 'service_credential_bindings' | 'service_route_bindings';
export type OpType = 'create' | 'update' | 'delete';

/** Everything a broker call about one instance needs. */
export interface InstanceContext {
  instance: Row<'service_instances'>;
  plan: Row<'service_plans'>;
  offering: Row<'service_offerings'>;
  broker: Row<'service_brokers'>;
  space: Row<'spaces'>;
  org: Row<'organizations'>;
  conn: BrokerConnection;
}

export async function instanceContext(store: Store, db: Kysely<Database>, instanceGuid: string): Promise<InstanceContext | undefined> {
  const instance = await db.selectFrom('service_instances').selectAll().where('guid', '=', instanceGuid).executeTakeFirst();
  if (!instance || !instance.service_plan_guid) return undefined;
  const plan = await db.selectFrom('service_plans').selectAll().where('guid', '=', instance.service_plan_guid).executeTakeFirstOrThrow();
  const offering = await db.selectFrom('service_offerings').selectAll().where('guid', '=', plan.service_offering_guid).executeTakeFirstOrThrow();
  const broker = await db.selectFrom('service_brokers').selectAll().where('guid', '=', offering.service_broker_guid).executeTakeFirstOrThrow();
  const space = await db.selectFrom('spaces').selectAll().where('guid', '=', instance.space_guid).executeTakeFirstOrThrow();
  const org = await db.selectFrom('organizations').selectAll().where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
  return { instance, plan, offering, broker, space, org, conn: connectionOf(store, broker) };
}

/** OSBAPI `context` for Cloud Foundry. */
function cfContext(c: InstanceContext) {
  return {
    platform: 'cloudfoundry',
    organization_guid: c.org.guid,
    organization_name: c.org.name,
    organization_annotations: {},
    space_guid: c.space.guid,
    space_name: c.space.name,
    space_annotations: {},
    instance_name: c.instance.name,
    instance_annotations: {},
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const instancePath = (guid: string) => `/v2/service_instances/${guid}`;
const bindingPath = (instanceGuid: string, bindingGuid: string) => `/v2/service_instances/${instanceGuid}/service_bindings/${bindingGuid}`;

/** What one broker call concluded. */
type Answer =
  | { kind: 'done'; body: Record<string, unknown> }
  | { kind: 'async'; operation: string | null; body: Record<string, unknown> }
  | { kind: 'gone' };

/** Judges an answer to PUT/PATCH/DELETE by CC's rules (response_parser.rb). */
function judge(res: BrokerResponse, op: 'provision' | 'update' | 'deprovision' | 'bind' | 'unbind'): Answer {
  const body = isObject(res.json) ? res.json : undefined;
  const deleting = op === 'deprovision' || op === 'unbind';
  if (deleting && res.status === 410) return { kind: 'gone' };
  if (res.status === 202) {
    if (res.text && !body) throw malformed(res, 'expected valid JSON object in body');
    return { kind: 'async', operation: typeof body?.operation === 'string' ? body.operation : null, body: body ?? {} };
  }
  const okStatuses = deleting || op === 'update' ? [200] : [200, 201];
  if (okStatuses.includes(res.status)) {
    if (!body) throw malformed(res, 'expected valid JSON object in body');
    if (op === 'bind' && body.credentials !== undefined && !isObject(body.credentials)) throw malformed(res, 'expected credentials to be a valid JSON object');
    return { kind: 'done', body };
  }
  if (res.status === 201 && deleting) throw malformed(res, 'expected status 200 or 202');
  throw unexpectedAnswer(res);
}

/**
 * What a bind answer may carry depends on what the offering declared it needs (CC's response parser): a syslog
 * drain only with `requires: [syslog_drain]`, volume mounts only with `volume_mount`. Anything else fails the
 * binding, and the broker's binding is unbound again (orphan mitigation).
 */
function checkBindingAnswer(body: Record<string, unknown>, requires: string[]): void {
  if (typeof body.syslog_drain_url === 'string' && body.syslog_drain_url !== '' && !requires.includes('syslog_drain')) {
    throw new BrokerError(
      'CF-ServiceBrokerInvalidSyslogDrainUrl',
      'The service is attempting to stream logs from your application, but is not registered as a logging service. Please contact the service provider.',
      true,
    );
  }
  if (Array.isArray(body.volume_mounts) && body.volume_mounts.length > 0 && !requires.includes('volume_mount')) {
    throw new BrokerError(
      'CF-ServiceBrokerInvalidVolumeMounts',
      'The service is attempting to supply volume mounts from your application, but is not registered as a volume mount service. Please contact the service provider.',
      true,
    );
  }
}

export interface Outcome {
  state: 'succeeded' | 'in progress' | 'failed';
  description: string | null;
}

/** Writes the last operation of a subject (and optionally more columns) in `tx`. */
export async function recordOperation(
  tx: WriteTx,
  kind: SubjectKind,
  guid: string,
  type: OpType,
  state: Outcome['state'] | 'initial',
  description: string | null,
  extra: Record<string, unknown> = {},
): Promise<void> {
  // The three tables share the last-operation columns; kysely cannot see that through the union.
  const db = tx.db as unknown as Kysely<Record<string, Record<string, unknown>>>;
  const current = await db.selectFrom(kind).select(['last_operation_type', 'last_operation_created_at']).where('guid', '=', guid).executeTakeFirst();
  if (!current) return;
  const newOp = current.last_operation_type !== type || state === 'initial';
  // What the broker reported: status, so generation stays.
  await tx.updateStatus(kind as 'service_instances', guid, {
    last_operation_type: type,
    last_operation_state: state,
    last_operation_description: description,
    last_operation_updated_at: tx.now,
    ...(newOp ? { last_operation_created_at: tx.now } : {}),
    ...extra,
  });
}

/** Poll scheduling: next poll after max(interval, Retry-After), deadline from the plan (≤ 7 days). */
function pollColumns(settings: BrokerSettings, plan: Row<'service_plans'> | undefined, retryAfterSeconds: number | undefined, deadline?: number | null) {
  const wait = Math.max(settings.pollIntervalMs, Math.min((retryAfterSeconds ?? 0) * 1000, 86_400_000));
  const maxMs = Math.min((plan?.maximum_polling_duration ?? Infinity) * 1000, 10080 * 60_000);
  return { poll_next_at: Date.now() + wait, poll_deadline: deadline ?? Date.now() + maxMs };
}

/** The job error for a failed operation: CC's UnableToPerform with the broker's text. */
export const unableTo = (what: string, message: string) => new KilnError('UnableToPerform', what, message);

/** Best-effort deprovision/unbind after a failed create (CC's orphan mitigation; the broker may have made it). */
async function mitigateOrphan(conn: BrokerConnection, settings: BrokerSettings, path: string, c: InstanceContext, userGuid: string | null): Promise<void> {
  try {
    await callBroker(conn, 'DELETE', path, {
      query: { accepts_incomplete: 'true', plan_id: c.plan.broker_catalog_id, service_id: c.offering.broker_catalog_id },
      timeoutMs: settings.timeoutMs,
      userGuid,
    });
  } catch {
    // Orphan mitigation is best effort: Cloud Controller retries it in the background; a lost one leaves a broker-side orphan.
  }
}

export interface BrokerOps {
  /** Runs the operation the instance's last operation names (create/update/delete) against the broker. */
  instanceJob(instanceGuid: string, type: OpType, userGuid: string | null): Promise<void | 'polling'>;
  bindingJob(kind: 'service_credential_bindings' | 'service_route_bindings', bindingGuid: string, type: 'create' | 'delete', userGuid: string | null): Promise<void | 'polling'>;
  poll(kind: SubjectKind, guid: string): Promise<{ requeueAfterMs?: number } | void>;
  /** Polls at once, whatever the schedule says (for operations waited for inside another job). */
  pollNow(kind: SubjectKind, guid: string): Promise<{ requeueAfterMs?: number } | void>;
}

/** What an update asks the broker for (kept in the job's instance row until the broker answered). */
export interface InstanceUpdateRequest {
  planGuid?: string;
  parameters?: Record<string, unknown>;
  maintenanceInfo?: { version: string };
}

export function brokerOps(store: Store, settings: BrokerSettings): BrokerOps {
  const call = (conn: BrokerConnection, method: string, path: string, opts: { body?: unknown; query?: Record<string, string | undefined>; userGuid: string | null }) =>
    callBroker(conn, method, path, { ...opts, timeoutMs: settings.timeoutMs });

  /** Ends a subject's operation: success or failure written, POLLING/PROCESSING jobs finished, in one transaction. */
  async function conclude(kind: SubjectKind, guid: string, type: OpType, outcome: Outcome, failure?: KilnError | JobError, extra: Record<string, unknown> = {}) {
    await store.write(async (tx) => {
      // The job's immediate poll and the reconciler may both see the end of one operation: conclude it once.
      const db = tx.db as unknown as Kysely<Record<string, Record<string, unknown>>>;
      const current = await db.selectFrom(kind).select(['last_operation_type', 'last_operation_state']).where('guid', '=', guid).executeTakeFirst();
      if (!current || (current.last_operation_type === type && (current.last_operation_state === 'succeeded' || current.last_operation_state === 'failed'))) {
        await finishPollingJobs(tx, guid, failure);
        return;
      }
      if (type === 'delete' && outcome.state === 'succeeded') {
        if (kind === 'service_instances') await recordDeletedUsage(tx, guid);
        await removeSubject(tx, kind, guid);
      } else {
        await recordOperation(tx, kind, guid, type, outcome.state, outcome.description, { broker_operation: null, poll_next_at: null, poll_deadline: null, poll_count: 0, ...extra });
        if (kind === 'service_instances' && outcome.state === 'succeeded') await recordServiceUsage(tx, guid, type === 'create' ? 'CREATED' : 'UPDATED');
      }
      await finishPollingJobs(tx, guid, failure);
    });
    if (failure) throw failure;
  }

  /** Records `in progress` and the poll schedule, then polls once at once (CC does so in the same job run). */
  async function goAsync(kind: SubjectKind, guid: string, type: OpType, operation: string | null, plan: Row<'service_plans'>, extra: Record<string, unknown>): Promise<void | 'polling'> {
    await store.write((tx) => recordOperation(tx, kind, guid, type, 'in progress', null, { broker_operation: operation, ...pollColumns(settings, plan, undefined), poll_count: 0, ...extra }));
    const r = await poll(kind, guid, true);
    return r === undefined ? undefined : 'polling';
  }

  async function instanceJob(instanceGuid: string, type: OpType, userGuid: string | null): Promise<void | 'polling'> {
    const c = await instanceContext(store, store.db, instanceGuid);
    if (!c) return;
    const inst = c.instance;
    if (inst.last_operation_type === type && inst.last_operation_state === 'in progress') return 'polling';
    if (inst.last_operation_type === type && inst.last_operation_state === 'succeeded') return;
    const what = type === 'create' ? 'provision' : type === 'update' ? 'update' : 'deprovision';
    // An update's request waits, encrypted, on the row until the broker has answered.
    const request = type === 'update' ? (store.secrets.openJson<InstanceUpdateRequest>(inst.pending_update_enc) ?? {}) : {};
    if (type === 'delete') await unbindAll(c, userGuid);
    let res: BrokerResponse;
    let answer: Answer;
    try {
      if (type === 'create') {
        const params = store.secrets.openJson<Record<string, unknown>>(inst.parameters_enc);
        res = await call(c.conn, 'PUT', instancePath(inst.guid), {
          query: { accepts_incomplete: 'true' },
          body: {
            service_id: c.offering.broker_catalog_id,
            plan_id: c.plan.broker_catalog_id,
            organization_guid: c.org.guid,
            space_guid: c.space.guid,
            context: cfContext(c),
            ...(params ? { parameters: params } : {}),
            ...(c.plan.maintenance_info ? { maintenance_info: JSON.parse(c.plan.maintenance_info) } : {}),
          },
          userGuid,
        });
      } else if (type === 'update') {
        const newPlan = request.planGuid ? await store.db.selectFrom('service_plans').selectAll().where('guid', '=', request.planGuid).executeTakeFirstOrThrow() : c.plan;
        res = await call(c.conn, 'PATCH', instancePath(inst.guid), {
          query: { accepts_incomplete: 'true' },
          body: {
            service_id: c.offering.broker_catalog_id,
            plan_id: newPlan.broker_catalog_id,
            previous_values: { plan_id: c.plan.broker_catalog_id, service_id: c.offering.broker_catalog_id, organization_id: c.org.guid, space_id: c.space.guid, ...(inst.maintenance_info ? { maintenance_info: JSON.parse(inst.maintenance_info) } : {}) },
            context: cfContext(c),
            ...(request.parameters ? { parameters: request.parameters } : {}),
            ...(request.maintenanceInfo ? { maintenance_info: request.maintenanceInfo } : {}),
          },
          userGuid,
        });
      } else {
        res = await call(c.conn, 'DELETE', instancePath(inst.guid), {
          query: { accepts_incomplete: 'true', plan_id: c.plan.broker_catalog_id, service_id: c.offering.broker_catalog_id },
          userGuid,
        });
      }
      answer = judge(res, what);
    } catch (err) {
      if (!(err instanceof BrokerError)) throw err;
      if (type === 'create' && err.orphan) await mitigateOrphan(c.conn, settings, instancePath(inst.guid), c, userGuid);
      return conclude('service_instances', inst.guid, type, { state: 'failed', description: err.detail }, unableTo(what, err.detail), { pending_update_enc: null });
    }
    const dashboard = typeof (answer as { body?: Record<string, unknown> }).body?.dashboard_url === 'string' ? { dashboard_url: (answer as { body: Record<string, unknown> }).body.dashboard_url } : {};
    const updated = type === 'update' ? updateColumns(request) : {};
    if (answer.kind === 'async') return goAsync('service_instances', inst.guid, type, answer.operation, c.plan, { ...dashboard, ...updated });
    return conclude('service_instances', inst.guid, type, { state: 'succeeded', description: null }, undefined, { ...dashboard, ...updated });
  }

  const updateColumns = (request: InstanceUpdateRequest) => ({
    ...(request.planGuid ? { service_plan_guid: request.planGuid } : {}),
    ...(request.maintenanceInfo ? { maintenance_info: JSON.stringify(request.maintenanceInfo) } : {}),
    ...(request.parameters ? { parameters_enc: store.secrets.sealJson(request.parameters) } : {}),
    pending_update_enc: null,
  });

  /** Before a deprovision, CC's delete action unbinds route bindings, app bindings and keys and unshares. */
  async function unbindAll(c: InstanceContext, userGuid: string | null): Promise<void> {
    const creds = await store.db.selectFrom('service_credential_bindings').select('guid').where('service_instance_guid', '=', c.instance.guid).execute();
    const routes = await store.db.selectFrom('service_route_bindings').select('guid').where('service_instance_guid', '=', c.instance.guid).execute();
    for (const [kind, rows] of [['service_route_bindings', routes], ['service_credential_bindings', creds]] as const) {
      // An async unbind inside a delete is waited for here (bounded by the plan's polling deadline).
      for (const r of rows) await untilDone(self, kind, r.guid, () => bindingJob(kind, r.guid, 'delete', userGuid), settings);
    }
    await store.write(async (tx) => {
      await tx.db.deleteFrom('service_instance_shares').where('service_instance_guid', '=', c.instance.guid).execute();
    });
  }

  async function bindingJob(kind: 'service_credential_bindings' | 'service_route_bindings', bindingGuid: string, type: 'create' | 'delete', userGuid: string | null): Promise<void | 'polling'> {
    const db = store.db;
    const binding =
      kind === 'service_credential_bindings'
        ? await db.selectFrom('service_credential_bindings').selectAll().where('guid', '=', bindingGuid).executeTakeFirst()
        : await db.selectFrom('service_route_bindings').selectAll().where('guid', '=', bindingGuid).executeTakeFirst();
    if (!binding) return;
    if (binding.last_operation_type === type && binding.last_operation_state === 'in progress') return 'polling';
    if (binding.last_operation_type === type && binding.last_operation_state === 'succeeded') return;
    const c = await instanceContext(store, db, binding.service_instance_guid);
    if (!c) {
      // User-provided: nothing to ask a broker.
      return conclude(kind, bindingGuid, type, { state: 'succeeded', description: null });
    }
    const what = type === 'create' ? 'bind' : 'unbind';
    let answer: Answer;
    try {
      let res: BrokerResponse;
      if (type === 'create') {
        const params = store.secrets.openJson<Record<string, unknown>>(binding.parameters_enc);
        let bindResource: Record<string, unknown> = {};
        let appGuid: string | undefined;
        if ('app_guid' in binding && binding.app_guid) {
          appGuid = binding.app_guid;
          bindResource = { app_guid: binding.app_guid, space_guid: c.space.guid, app_annotations: {} };
        } else if ('route_guid' in binding) {
          bindResource = { route: await routeUri(db, binding.route_guid) };
        }
        res = await call(c.conn, 'PUT', bindingPath(c.instance.guid, bindingGuid), {
          query: { accepts_incomplete: 'true' },
          body: {
            service_id: c.offering.broker_catalog_id,
            plan_id: c.plan.broker_catalog_id,
            ...(appGuid ? { app_guid: appGuid } : {}),
            bind_resource: bindResource,
            context: cfContext(c),
            ...(params ? { parameters: params } : {}),
          },
          userGuid,
        });
      } else {
        res = await call(c.conn, 'DELETE', bindingPath(c.instance.guid, bindingGuid), {
          query: { accepts_incomplete: 'true', plan_id: c.plan.broker_catalog_id, service_id: c.offering.broker_catalog_id },
          userGuid,
        });
      }
      answer = judge(res, what);
      if (type === 'create' && answer.kind === 'done') checkBindingAnswer(answer.body, JSON.parse(c.offering.requires) as string[]);
    } catch (err) {
      if (!(err instanceof BrokerError)) throw err;
      if (type === 'create' && err.orphan) await mitigateOrphan(c.conn, settings, bindingPath(c.instance.guid, bindingGuid), c, userGuid);
      return conclude(kind, bindingGuid, type, { state: 'failed', description: err.detail }, unableTo(what, err.detail));
    }
    if (answer.kind === 'async') return goAsync(kind, bindingGuid, type, answer.operation, c.plan, {});
    return conclude(kind, bindingGuid, type, { state: 'succeeded', description: null }, undefined, answer.kind === 'done' ? bindingColumns(kind, answer.body) : {});
  }

  const bindingColumns = (kind: SubjectKind, body: Record<string, unknown>): Record<string, unknown> => {
    if (kind === 'service_route_bindings') return { route_service_url: typeof body.route_service_url === 'string' ? body.route_service_url : null };
    return {
      credentials_enc: store.secrets.sealJson(isObject(body.credentials) ? body.credentials : {}),
      syslog_drain_url: typeof body.syslog_drain_url === 'string' ? body.syslog_drain_url : null,
      volume_mounts: JSON.stringify(Array.isArray(body.volume_mounts) ? body.volume_mounts : []),
    };
  };

  /**
   * One `last_operation` poll (CC's rules: 410 → succeeded for a delete, else still in progress; 400 → failed; other
   * errors → keep polling; past the deadline → failed with JobTimeout). Returns `{requeueAfterMs}` while in progress.
   */
  async function poll(kind: SubjectKind, guid: string, now = false): Promise<{ requeueAfterMs?: number } | void> {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const row = (await (store.db as unknown as Kysely<any>).selectFrom(kind).selectAll().where('guid', '=', guid).executeTakeFirst()) as
      | (Row<'service_route_bindings'> & Partial<Row<'service_credential_bindings'>> & Partial<Row<'service_instances'>>)
      | undefined;
    if (!row || row.last_operation_state !== 'in progress') return;
    const type = row.last_operation_type;
    const instanceGuid = kind === 'service_instances' ? row.guid : row.service_instance_guid;
    const c = await instanceContext(store, store.db, instanceGuid);
    if (!c) return conclude(kind, guid, type, { state: 'failed', description: 'The service instance is gone' });
    if (!now && row.poll_next_at && Date.now() < row.poll_next_at) return { requeueAfterMs: row.poll_next_at - Date.now() };
    if (row.poll_deadline && Date.now() > row.poll_deadline) {
      const description = `Service Broker failed to ${type === 'create' ? 'provision' : type === 'update' ? 'update' : 'deprovision'} within the required time.`;
      if (type === 'create') {
        const path = kind === 'service_instances' ? instancePath(guid) : bindingPath(instanceGuid, guid);
        await mitigateOrphan(c.conn, settings, path, c, null);
      }
      return conclude(kind, guid, type, { state: 'failed', description }, new KilnError('JobTimeout'));
    }
    const path = kind === 'service_instances' ? `${instancePath(guid)}/last_operation` : `${bindingPath(instanceGuid, guid)}/last_operation`;
    let res: BrokerResponse | undefined;
    try {
      res = await call(c.conn, 'GET', path, {
        query: { operation: row.broker_operation ?? undefined, plan_id: c.plan.broker_catalog_id, service_id: c.offering.broker_catalog_id },
        userGuid: null,
      });
    } catch {
      res = undefined; // unreachable or timed out: keep polling
    }
    const body = res && isObject(res.json) ? res.json : undefined;
    let state: string | undefined = typeof body?.state === 'string' ? body.state : undefined;
    if (res?.status === 410) state = type === 'delete' ? 'succeeded' : 'in progress';
    if (res?.status === 400) state = 'failed';
    const description = typeof body?.description === 'string' ? body.description : null;
    if (state === 'succeeded') {
      let extra: Record<string, unknown> = {};
      if (kind !== 'service_instances' && type === 'create') {
        // An async binding's credentials are fetched once it has succeeded (needs bindings_retrievable).
        try {
          const fetched = await call(c.conn, 'GET', bindingPath(instanceGuid, guid), { userGuid: null });
          if (fetched.status === 200 && isObject(fetched.json)) extra = bindingColumns(kind, fetched.json);
        } catch {
          // Left without credentials; CC fails the binding here — see the report's gaps.
        }
      }
      return conclude(kind, guid, type, { state: 'succeeded', description }, undefined, extra);
    }
    if (state === 'failed') {
      const what = kind === 'service_instances' ? `${type} managed` : type === 'create' ? 'bind' : 'unbind';
      return conclude(kind, guid, type, { state: 'failed', description }, unableTo(what, description ?? 'failed'));
    }
    const next = pollColumns(settings, c.plan, res?.retryAfterSeconds, row.poll_deadline);
    await store.write((tx) =>
      recordOperation(tx, kind, guid, type, 'in progress', description ?? row.last_operation_description, { poll_next_at: next.poll_next_at, poll_count: (row.poll_count ?? 0) + 1 }),
    );
    return { requeueAfterMs: next.poll_next_at - Date.now() };
  }

  const self: BrokerOps = {
    instanceJob,
    bindingJob,
    pollNow: (kind, guid) => poll(kind, guid, true),
    poll: async (kind, guid) => {
      try {
        return await poll(kind, guid);
      } catch (err) {
        // A failure concluded into the row and its job is the end of the story for the poller.
        if (err instanceof KilnError || err instanceof JobError) return;
        throw err;
      }
    },
  };
  return self;
}

/** Runs a broker operation and, if the broker answers asynchronously, polls it here until it ends. */
async function untilDone(ops: BrokerOps, kind: SubjectKind, guid: string, start: () => Promise<void | 'polling'>, settings: BrokerSettings): Promise<void> {
  let outcome = await start();
  while (outcome === 'polling') {
    await new Promise((res) => setTimeout(res, Math.min(settings.pollIntervalMs, 5000)));
    outcome = (await ops.pollNow(kind, guid)) === undefined ? undefined : 'polling';
  }
}

async function routeUri(db: Kysely<Database>, routeGuid: string): Promise<string> {
  const r = await db
    .selectFrom('routes')
    .innerJoin('domains', 'domains.guid', 'routes.domain_guid')
    .select(['routes.host', 'routes.path', 'domains.name'])
    .where('routes.guid', '=', routeGuid)
    .executeTakeFirst();
  return r ? `${r.host ? `${r.host}.` : ''}${r.name}${r.path}` : '';
}

/** Deletes an instance or binding row (and its metadata) once the broker confirmed the delete. */
export async function removeSubject(tx: WriteTx, kind: SubjectKind, guid: string): Promise<void> {
  if (kind === 'service_instances') {
    await tx.db.deleteFrom('service_instance_shares').where('service_instance_guid', '=', guid).execute();
  }
  await tx.db.deleteFrom('labels').where('resource_type', '=', kind).where('resource_guid', '=', guid).execute();
  await tx.db.deleteFrom('annotations').where('resource_type', '=', kind).where('resource_guid', '=', guid).execute();
  await tx.delete(kind, guid);
}

/** The asynchronous halves of instance and binding operations. */
export function registerBrokerOperationJobs(handlers: JobHandlers, store: Store, settings: BrokerSettings): BrokerOps {
  const ops = brokerOps(store, settings);
  handlers.register('service_instance.create', ({ job }) => ops.instanceJob(job.resource_guid, 'create', job.user_guid));
  handlers.register('service_instance.update', ({ job }) => ops.instanceJob(job.resource_guid, 'update', job.user_guid));
  handlers.register('service_instance.delete', ({ job }) => ops.instanceJob(job.resource_guid, 'delete', job.user_guid));
  for (const op of ['service_bindings.create', 'service_keys.create']) {
    handlers.register(op, ({ job }) => ops.bindingJob('service_credential_bindings', job.resource_guid, 'create', job.user_guid));
  }
  for (const op of ['service_bindings.delete', 'service_keys.delete']) {
    handlers.register(op, ({ job }) => ops.bindingJob('service_credential_bindings', job.resource_guid, 'delete', job.user_guid));
  }
  handlers.register('service_route_bindings.create', ({ job }) => ops.bindingJob('service_route_bindings', job.resource_guid, 'create', job.user_guid));
  handlers.register('service_route_bindings.delete', ({ job }) => ops.bindingJob('service_route_bindings', job.resource_guid, 'delete', job.user_guid));

  // Deleting an app unbinds it at the brokers first; deleting a space or an org deprovisions its instances (with
  // their bindings) first, as Cloud Controller's delete actions do. The cascades then remove the rows.
  handlers.before('app.delete', async ({ job }) => {
    const rows = await store.db.selectFrom('service_credential_bindings').select('guid').where('app_guid', '=', job.resource_guid).execute();
    for (const r of rows) await untilDone(ops, 'service_credential_bindings', r.guid, () => ops.bindingJob('service_credential_bindings', r.guid, 'delete', job.user_guid), settings);
  });
  const deprovisionSpaces = async (spaceGuids: string[], userGuid: string | null) => {
    if (spaceGuids.length === 0) return;
    const apps = await store.db.selectFrom('apps').select('guid').where('space_guid', 'in', spaceGuids).execute();
    if (apps.length > 0) {
      // Bindings of apps in these spaces to instances shared in from elsewhere.
      const rows = await store.db.selectFrom('service_credential_bindings').select('guid').where('app_guid', 'in', apps.map((a) => a.guid)).execute();
      for (const r of rows) await untilDone(ops, 'service_credential_bindings', r.guid, () => ops.bindingJob('service_credential_bindings', r.guid, 'delete', userGuid), settings);
    }
    const instances = await store.db.selectFrom('service_instances').select(['guid', 'type']).where('space_guid', 'in', spaceGuids).execute();
    for (const i of instances) {
      if (i.type !== 'managed') continue;
      await store.write((tx) => recordOperation(tx, 'service_instances', i.guid, 'delete', 'initial', null, { poll_next_at: null, poll_deadline: null, broker_operation: null }));
      await untilDone(ops, 'service_instances', i.guid, () => ops.instanceJob(i.guid, 'delete', userGuid), settings);
    }
  };
  handlers.before('space.delete', ({ job }) => deprovisionSpaces([job.resource_guid], job.user_guid));
  handlers.before('organization.delete', async ({ job }) => {
    const spaces = await store.db.selectFrom('spaces').select('guid').where('organization_guid', '=', job.resource_guid).execute();
    await deprovisionSpaces(spaces.map((s) => s.guid), job.user_guid);
  });
  return ops;
}
