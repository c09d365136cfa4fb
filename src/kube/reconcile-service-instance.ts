import { KilnError } from '../domain/errors.ts';
import { createServiceInstance, deleteServiceInstance, updateServiceInstance } from '../services/service-instances.ts';
import type { KubeObject } from './kube-client.ts';
import { condition, ensureFinalizer, findSpace, ownedBy, ownership, problem, refOf, releaseFinalizer, stamp, writeStatus, type Outcome, type SyncEnv } from './reconcile.ts';
import { blocked, invalid, lastOperationOf, operationStatus, sameJson, type Kind } from './reconcile-common.ts';
import { ServiceInstanceSpecSchema, type ServiceInstanceSpec } from './schemas.ts';

/**
 * The `ServiceInstance` kind through createServiceInstance/updateServiceInstance/deleteServiceInstance: managed
 * (plan by offering and plan name) or user-provided (credentials from a Secret, read again now and then). Status
 * follows CF's `last_operation`; the instance made is found again by the guid in status (a renamed spec renames
 * it).
 */
const INSTANCE: Kind = { kind: 'ServiceInstance', plural: 'serviceinstances' };

/** The generation whose plan or parameters were last sent to the broker, per resource (lost on restart). */
const updatesSent = new Map<string, number>();

/** The credentials of a user-provided instance, from the Secret the resource names. */
async function secretCredentials(env: SyncEnv, obj: KubeObject, spec: ServiceInstanceSpec): Promise<Record<string, unknown> | undefined> {
  if (!spec.credentials) return undefined;
  const { secretRef, key } = spec.credentials;
  let data: Record<string, string>;
  try {
    data = await env.client.secretData(obj.metadata.namespace ?? 'default', secretRef.name);
  } catch (err) {
    throw new Error(`secret ${secretRef.name} cannot be read: ${(err as { code?: number }).code === 404 ? 'not found' : (err as Error).message}`);
  }
  if (!key) return data;
  if (data[key] === undefined) throw new Error(`secret ${secretRef.name} has no key ${key}`);
  let value: unknown;
  try {
    value = JSON.parse(data[key]);
  } catch {
    throw new Error(`key ${key} of secret ${secretRef.name} is not JSON`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error(`key ${key} of secret ${secretRef.name} does not hold a JSON object`);
  return value as Record<string, unknown>;
}

async function findPlan(env: SyncEnv, spec: ServiceInstanceSpec) {
  const plans = await env.ctx.store.db
    .selectFrom('service_plans')
    .innerJoin('service_offerings', 'service_offerings.guid', 'service_plans.service_offering_guid')
    .innerJoin('service_brokers', 'service_brokers.guid', 'service_offerings.service_broker_guid')
    .select(['service_plans.guid as guid', 'service_brokers.name as broker'])
    .where('service_offerings.name', '=', spec.offering!)
    .where('service_plans.name', '=', spec.plan!)
    .$if(spec.broker !== undefined, (qb) => qb.where('service_brokers.name', '=', spec.broker!))
    .execute();
  return plans;
}

export async function reconcileServiceInstance(env: SyncEnv, obj: KubeObject): Promise<Outcome> {
  const db = env.ctx.store.db;
  const ref = refOf('ServiceInstance', obj);
  const generation = obj.metadata.generation ?? 1;
  const parsed = ServiceInstanceSpecSchema.safeParse(obj.spec ?? {});
  const spec = parsed.success ? parsed.data : undefined;
  const name = spec?.name ?? obj.metadata.name;
  const space = spec ? await findSpace(env, spec.org, spec.space) : undefined;
  const byName = space ? await db.selectFrom('service_instances').selectAll().where('space_guid', '=', space.guid).where('name', '=', name).executeTakeFirst() : undefined;
  // What this resource made, by the guid in its status (the name in the spec may have changed since).
  const made = typeof obj.status?.guid === 'string' ? await db.selectFrom('service_instances').selectAll().where('guid', '=', obj.status.guid).executeTakeFirst() : undefined;
  const mine = made && (await ownedBy(env, 'service_instances', made.guid, ref)) ? made : undefined;
  const inst = byName ?? (mine && mine.space_guid === space?.guid ? mine : undefined);
  const ours = inst ? await ownedBy(env, 'service_instances', inst.guid, ref) : false;

  if (obj.metadata.deletionTimestamp) {
    const target = mine ?? (inst && ours ? inst : undefined);
    if (target) {
      const deleting = target.last_operation_type === 'delete' && (target.last_operation_state === 'initial' || target.last_operation_state === 'in progress');
      // The broker failed the deprovision: the resource keeps its finalizer (the instance still exists at the
      // broker), says so, and asks again every 30 s rather than on every resync.
      if (target.last_operation_type === 'delete' && target.last_operation_state === 'failed') {
        if (condition(obj, 'Ready')?.reason !== 'DeleteFailed') {
          await blocked(env, INSTANCE, obj, 'DeleteFailed', target.last_operation_description || `deleting service instance ${name} failed`, undefined, { guid: target.guid, lastOperation: lastOperationOf(target) });
        }
        const since = Date.now() - Date.parse(target.last_operation_updated_at);
        if (since < 30_000) return { requeueAfterMs: 30_000 - since };
      }
      if (!deleting) {
        try {
          await deleteServiceInstance(env.ctx, target.guid, false);
        } catch (err) {
          if (!(err instanceof KilnError)) throw err;
          // An operation in flight (a create being polled): the delete is asked again once it is over.
          await blocked(env, INSTANCE, obj, 'DeleteRefused', problem(err), undefined, { guid: target.guid, lastOperation: lastOperationOf(target) });
          return { requeueAfterMs: 1000 };
        }
        await env.client.event('ServiceInstance', obj, 'Normal', 'Deleting', `deleting service instance ${name}`);
      }
      return { requeueAfterMs: 300 };
    }
    await releaseFinalizer(env, 'serviceinstances', obj);
    return undefined;
  }
  if (await ensureFinalizer(env, 'serviceinstances', obj)) return undefined;
  if (!spec) return blocked(env, INSTANCE, obj, 'InvalidSpec', invalid(parsed.error!));
  if (spec.type === 'managed' && (!spec.offering || !spec.plan)) return blocked(env, INSTANCE, obj, 'InvalidSpec', 'a managed instance names its offering and plan');
  if (spec.type === 'managed' && (spec.credentials || spec.syslog_drain_url || spec.route_service_url)) {
    return blocked(env, INSTANCE, obj, 'InvalidSpec', 'credentials, syslog_drain_url and route_service_url are for user-provided instances');
  }
  if (spec.type === 'user-provided' && (spec.offering || spec.plan || spec.broker || spec.parameters)) {
    return blocked(env, INSTANCE, obj, 'InvalidSpec', 'offering, plan, broker and parameters are for managed instances');
  }
  if (!space) return blocked(env, INSTANCE, obj, 'SpaceNotFound', `space ${spec.org}/${spec.space} does not exist (declare it with a Space resource)`, 5000);
  if (inst && !ours) return blocked(env, INSTANCE, obj, 'InstanceOwnedElsewhere', `service instance ${name} in ${spec.org}/${spec.space} was not created by this resource; it is left alone`, 10_000);
  if (inst && inst.type !== spec.type) return blocked(env, INSTANCE, obj, 'TypeChanged', `service instance ${name} is ${inst.type}; the type of an instance cannot be changed (delete the resource and declare it again)`, undefined, { guid: inst.guid });

  let credentials: Record<string, unknown> | undefined;
  try {
    credentials = spec.type === 'user-provided' ? await secretCredentials(env, obj, spec) : undefined;
  } catch (err) {
    return blocked(env, INSTANCE, obj, 'SecretNotReadable', (err as Error).message, 5000, inst ? { guid: inst.guid } : {});
  }
  let planGuid: string | undefined;
  if (spec.type === 'managed') {
    const plans = await findPlan(env, spec);
    if (plans.length === 0) return blocked(env, INSTANCE, obj, 'PlanNotFound', `no plan ${spec.plan} of offering ${spec.offering}${spec.broker ? ` from broker ${spec.broker}` : ''}`, 5000);
    if (plans.length > 1) return blocked(env, INSTANCE, obj, 'PlanAmbiguous', `offering ${spec.offering} with plan ${spec.plan} comes from several brokers (${plans.map((p) => p.broker).join(', ')}); name one in spec.broker`);
    planGuid = plans[0]!.guid;
  }

  try {
    if (!inst) {
      const base = { name, tags: spec.tags, metadata: ownership(ref) };
      const body =
        spec.type === 'managed'
          ? { ...base, type: 'managed', relationships: { space: { data: { guid: space.guid } }, service_plan: { data: { guid: planGuid } } }, parameters: spec.parameters }
          : { ...base, type: 'user-provided', relationships: { space: { data: { guid: space.guid } } }, credentials, syslog_drain_url: spec.syslog_drain_url, route_service_url: spec.route_service_url };
      await createServiceInstance(env.ctx, JSON.parse(JSON.stringify(body)));
      await env.client.event('ServiceInstance', obj, 'Normal', 'Created', `${spec.type} service instance ${name} created in ${spec.org}/${spec.space}`);
      return { requeueAfterMs: 100 };
    }
    // The resource is applied again where Kiln differs from it (a changed spec, or a Secret whose data changed).
    const update: Record<string, unknown> = {};
    if (spec.tags !== undefined && !sameJson(spec.tags, JSON.parse(inst.tags || '[]'))) update.tags = spec.tags;
    if (spec.type === 'user-provided') {
      if (!sameJson(credentials ?? {}, env.ctx.store.secrets.openJson(inst.credentials_enc) ?? {})) update.credentials = credentials ?? {};
      if ((spec.syslog_drain_url ?? '') !== (inst.syslog_drain_url ?? '')) update.syslog_drain_url = spec.syslog_drain_url ?? '';
      if ((spec.route_service_url ?? '') !== (inst.route_service_url ?? '')) update.route_service_url = spec.route_service_url ?? '';
    } else {
      // Nothing is sent while an operation runs (CF refuses it), nor to a failed create (CF lets it be deleted
      // or created again, not changed).
      const busy = inst.last_operation_state === 'initial' || inst.last_operation_state === 'in progress';
      const created = !(inst.last_operation_type === 'create' && inst.last_operation_state !== 'succeeded');
      if (busy || !created) delete update.tags;
      else {
        if (planGuid !== inst.service_plan_guid) update.relationships = { service_plan: { data: { guid: planGuid } } };
        if (spec.parameters !== undefined && !sameJson(spec.parameters, env.ctx.store.secrets.openJson(inst.parameters_enc))) update.parameters = spec.parameters;
      }
    }
    if (inst.name !== name) update.name = name;
    // A managed update the broker failed is not sent again for the same generation (CF does not retry either).
    const key = `${ref}#${obj.metadata.uid ?? ''}`;
    if (inst.type === 'managed' && inst.last_operation_type === 'update' && inst.last_operation_state === 'failed' && updatesSent.get(key) === generation) {
      delete update.relationships;
      delete update.parameters;
    }
    if (Object.keys(update).length > 0) {
      if (update.relationships || update.parameters) updatesSent.set(key, generation);
      await updateServiceInstance(env.ctx, inst.guid, update);
      await env.client.event('ServiceInstance', obj, 'Normal', 'Updated', `updated ${Object.keys(update).join(', ')} of ${name}`);
      return { requeueAfterMs: 100 };
    }
  } catch (err) {
    if (!(err instanceof KilnError)) throw err;
    return blocked(env, INSTANCE, obj, 'Rejected', problem(err), 10_000, inst ? { guid: inst.guid, lastOperation: lastOperationOf(inst) } : {});
  }
  const { ready, requeueAfterMs } = operationStatus(`service instance ${name}`, { type: inst.last_operation_type, state: inst.last_operation_state, description: inst.last_operation_description }, generation);
  await writeStatus(env, 'serviceinstances', obj, {
    observedGeneration: generation,
    guid: inst.guid,
    lastOperation: lastOperationOf(inst),
    lastError: ready.status === 'True' ? undefined : inst.last_operation_state === 'failed' ? ready.message : undefined,
    conditions: stamp(obj, [ready]),
  });
  // User-provided credentials follow their Secret: looked at again now and then.
  return { requeueAfterMs: requeueAfterMs ?? (spec.credentials ? 10_000 : undefined) };
}
