import { KilnError } from '../domain/errors.ts';
import { DEFAULT_APP_PORT, type CreateRoute, type DestinationRequest } from '../domain/routes.ts';
import { OWNS_ANNOTATION } from '../domain/declared.ts';
import { createRoute, deleteRoute, destinationsOf, replaceDestinations, routeUri, updateRoute } from '../services/routes.ts';
import { loadOneMetadata } from '../store/metadata.ts';
import { createCredentialBinding, deleteCredentialBinding } from '../services/service-bindings.ts';
import { createServiceInstance, deleteServiceInstance, updateServiceInstance } from '../services/service-instances.ts';
import type { Plural } from './kube-client.ts';
import type { KubeObject } from './kube-client.ts';
import {
  condition,
  ensureFinalizer,
  findSpace,
  ownedBy,
  ownership,
  problem,
  refOf,
  releaseFinalizer,
  sortKeys,
  stamp,
  writeStatus,
  type Outcome,
  type SyncEnv,
} from './reconcile.ts';
import { RouteSpecSchema, ServiceBindingSpecSchema, ServiceInstanceSpecSchema, type KubeCondition, type RouteSpec, type ServiceInstanceSpec } from './schemas.ts';

/**
 * Reconcile functions for the `Route`, `ServiceInstance` and `ServiceBinding` kinds (see kube-sync.ts), through the
 * same services as the CF API (createRoute/replaceDestinations, createServiceInstance/updateServiceInstance,
 * createCredentialBinding and their deletes). As for Apps: what a resource makes carries the ownership label and
 * annotation, a CF object of the same name made by someone else is left alone (`Ready=False, OwnedElsewhere`),
 * the finalizer keeps the resource until Kiln has deleted what it made, and Kiln going away deletes nothing.
 */
type Cond = Omit<KubeCondition, 'lastTransitionTime'>;

interface Kind {
  kind: string;
  plural: Plural;
}

/** `Ready=False` with a reason, in status and (once per reason) as a Warning event. */
async function blocked(env: SyncEnv, k: Kind, obj: KubeObject, reason: string, message: string, requeueAfterMs?: number, extra: Record<string, unknown> = {}): Promise<Outcome> {
  const generation = obj.metadata.generation ?? 1;
  if (condition(obj, 'Ready')?.reason !== reason) await env.client.event(k.kind, obj, 'Warning', reason, message);
  await writeStatus(env, k.plural, obj, {
    ...extra,
    observedGeneration: generation,
    lastError: message,
    conditions: stamp(obj, [{ type: 'Ready', status: 'False', reason, message, observedGeneration: generation }]),
  });
  return requeueAfterMs ? { requeueAfterMs } : undefined;
}

const invalid = (err: { issues: { path: PropertyKey[]; message: string }[] }) => err.issues.map((i) => `spec.${i.path.map(String).join('.')}: ${i.message}`).join('; ');

/** `create` + `in progress` → `CreateInProgress` (a condition reason is CamelCase). */
const operationReason = (type: string, state: string) => `${type}_${state}`.replace(/(^|[ _-])(\w)/g, (_m, _s, c: string) => c.toUpperCase());

/** `Ready` from a CF `last_operation`: succeeded → True; initial/in progress/failed → False; requeue while it runs. */
function operationStatus(what: string, op: { type: string; state: string; description: string | null }, generation: number): { ready: Cond; requeueAfterMs?: number } {
  const reason = operationReason(op.type, op.state);
  const message = op.description || `${what}: ${op.type} ${op.state}`;
  if (op.state === 'succeeded' && op.type !== 'delete') return { ready: { type: 'Ready', status: 'True', reason, message, observedGeneration: generation } };
  if (op.state === 'failed') return { ready: { type: 'Ready', status: 'False', reason, message, observedGeneration: generation }, requeueAfterMs: 10_000 };
  return { ready: { type: 'Ready', status: 'False', reason, message, observedGeneration: generation }, requeueAfterMs: 500 };
}

const lastOperationOf = (row: { last_operation_type: string; last_operation_state: string; last_operation_description: string | null }) => ({
  type: row.last_operation_type,
  state: row.last_operation_state,
  ...(row.last_operation_description ? { description: row.last_operation_description } : {}),
});

const sameJson = (a: unknown, b: unknown) => JSON.stringify(sortKeys(a ?? null)) === JSON.stringify(sortKeys(b ?? null));

// ---- Route

const ROUTE: Kind = { kind: 'Route', plural: 'routes' };

/** A Route resource owns its address, and its destinations when it lists them. */
function routeOwnership(ref: string, spec: RouteSpec) {
  const own = ownership(ref);
  return { labels: own.labels, annotations: { ...own.annotations, [OWNS_ANNOTATION]: spec.destinations ? 'address,destinations' : 'address' } };
}

async function findRouteAt(env: SyncEnv, domainGuid: string, spec: RouteSpec) {
  return env.ctx.store.db
    .selectFrom('routes')
    .selectAll()
    .where('domain_guid', '=', domainGuid)
    .where('host', '=', spec.host ?? '')
    .where('path', '=', spec.path ?? '')
    .where('port', '=', spec.port ?? 0)
    .executeTakeFirst();
}

export async function reconcileRoute(env: SyncEnv, obj: KubeObject): Promise<Outcome> {
  const db = env.ctx.store.db;
  const ref = refOf('Route', obj);
  const generation = obj.metadata.generation ?? 1;
  // What this resource made, by the guid its status names (the address may have changed since).
  const made = typeof obj.status?.guid === 'string' ? await db.selectFrom('routes').selectAll().where('guid', '=', obj.status.guid).executeTakeFirst() : undefined;
  const mine = made && (await ownedBy(env, 'routes', made.guid, ref)) ? made : undefined;
  if (obj.metadata.deletionTimestamp) {
    if (mine) {
      await deleteRoute(env.ctx, mine.guid);
      return { requeueAfterMs: 300 };
    }
    await releaseFinalizer(env, 'routes', obj);
    return undefined;
  }
  if (await ensureFinalizer(env, 'routes', obj)) return undefined;
  const parsed = RouteSpecSchema.safeParse(obj.spec ?? {});
  if (!parsed.success) return blocked(env, ROUTE, obj, 'InvalidSpec', invalid(parsed.error));
  const spec = parsed.data;
  const space = await findSpace(env, spec.org, spec.space);
  if (!space) return blocked(env, ROUTE, obj, 'SpaceNotFound', `space ${spec.org}/${spec.space} does not exist (declare it with a Space resource)`, 5000);
  const domain = await db.selectFrom('domains').select(['guid', 'name']).where('name', '=', spec.domain.toLowerCase()).executeTakeFirst();
  if (!domain) return blocked(env, ROUTE, obj, 'DomainNotFound', `domain ${spec.domain} does not exist`, 5000);

  let route = await findRouteAt(env, domain.guid, spec);
  // The address changed: the route made for the old one goes (routes cannot be moved in CF).
  if (mine && mine.guid !== route?.guid) await deleteRoute(env.ctx, mine.guid);
  if (route && !(await ownedBy(env, 'routes', route.guid, ref))) {
    return blocked(env, ROUTE, obj, 'RouteOwnedElsewhere', `route ${routeUri({ host: spec.host ?? '', path: spec.path ?? '', port: spec.port ?? 0 }, domain.name)} was not created by this resource; it is left alone`, 10_000);
  }
  if (!route) {
    const input: CreateRoute = {
      host: spec.host ?? '',
      path: spec.path ?? '',
      port: spec.port,
      spaceGuid: space.guid,
      domainGuid: domain.guid,
      metadata: routeOwnership(ref, spec),
      request: { host: spec.host, path: spec.path, port: spec.port },
    };
    try {
      route = (await createRoute(env.ctx, input)).route;
    } catch (err) {
      if (!(err instanceof KilnError)) throw err;
      return blocked(env, ROUTE, obj, 'RouteRejected', problem(err), 10_000);
    }
    await env.client.event('Route', obj, 'Normal', 'Created', `route ${routeUri(route, domain.name)} created in ${spec.org}/${spec.space}`);
  }

  // Whether the resource owns the destinations follows its spec (domain/declared.ts).
  const owns = routeOwnership(ref, spec).annotations[OWNS_ANNOTATION];
  if ((await loadOneMetadata(db, 'routes', route.guid)).annotations[OWNS_ANNOTATION] !== owns) {
    await updateRoute(env.ctx, route.guid, { metadata: { annotations: { [OWNS_ANNOTATION]: owns } }, request: {} });
  }
  let existing = (await destinationsOf(db, [route.guid])).get(route.guid) ?? [];
  if (spec.destinations) {
    const names = [...new Set(spec.destinations.map((d) => d.app))];
    const apps = names.length
      ? await db.selectFrom('apps').select(['guid', 'name']).where('space_guid', '=', space.guid).where('name', 'in', names).execute()
      : [];
    const byName = new Map(apps.map((a) => [a.name, a.guid]));
    const missing = names.filter((n) => !byName.has(n));
    if (missing.length) return blocked(env, ROUTE, obj, 'AppNotFound', `app(s) ${missing.join(', ')} do not exist in ${spec.org}/${spec.space}`, 2000, { guid: route.guid });
    const wanted: DestinationRequest[] = spec.destinations.map((d) => ({ appGuid: byName.get(d.app)!, processType: d.process ?? 'web', port: d.port, protocol: d.protocol, weight: d.weight ?? null }));
    const same =
      wanted.length === existing.length &&
      wanted.every((w) =>
        existing.some((e) => e.app_guid === w.appGuid && e.process_type === w.processType && e.port === (w.port ?? DEFAULT_APP_PORT) && (w.protocol === undefined || e.protocol === w.protocol) && e.weight === w.weight),
      );
    if (!same) {
      try {
        existing = (await replaceDestinations(env.ctx, route.guid, wanted)).destinations;
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        return blocked(env, ROUTE, obj, 'DestinationsRejected', problem(err), 10_000, { guid: route.guid });
      }
      await env.client.event('Route', obj, 'Normal', 'Mapped', `destinations: ${spec.destinations.map((d) => d.app).join(', ') || 'none'}`);
    }
  }
  const url = routeUri(route, domain.name);
  await writeStatus(env, 'routes', obj, {
    observedGeneration: generation,
    guid: route.guid,
    url,
    destinations: existing.length,
    conditions: stamp(obj, [{ type: 'Ready', status: 'True', reason: 'RouteReady', message: `${url} → ${existing.length} destination(s)`, observedGeneration: generation }]),
  });
  return undefined;
}

// ---- ServiceInstance

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

// ---- ServiceBinding

const BINDING: Kind = { kind: 'ServiceBinding', plural: 'servicebindings' };

export async function reconcileServiceBinding(env: SyncEnv, obj: KubeObject): Promise<Outcome> {
  const db = env.ctx.store.db;
  const ref = refOf('ServiceBinding', obj);
  const generation = obj.metadata.generation ?? 1;
  const made = typeof obj.status?.guid === 'string' ? await db.selectFrom('service_credential_bindings').selectAll().where('guid', '=', obj.status.guid).executeTakeFirst() : undefined;
  const mine = made && (await ownedBy(env, 'service_credential_bindings', made.guid, ref)) ? made : undefined;
  const unbind = async (b: NonNullable<typeof mine>): Promise<Outcome> => {
    const deleting = b.last_operation_type === 'delete' && (b.last_operation_state === 'initial' || b.last_operation_state === 'in progress');
    if (!deleting) {
      try {
        await deleteCredentialBinding(env.ctx, b.guid);
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        await blocked(env, BINDING, obj, 'DeleteRefused', problem(err), undefined, { guid: b.guid, lastOperation: lastOperationOf(b) });
        return { requeueAfterMs: 1000 };
      }
    }
    return { requeueAfterMs: 300 };
  };
  if (obj.metadata.deletionTimestamp) {
    if (mine) return unbind(mine);
    await releaseFinalizer(env, 'servicebindings', obj);
    return undefined;
  }
  if (await ensureFinalizer(env, 'servicebindings', obj)) return undefined;
  const parsed = ServiceBindingSpecSchema.safeParse(obj.spec ?? {});
  if (!parsed.success) return blocked(env, BINDING, obj, 'InvalidSpec', invalid(parsed.error));
  const spec = parsed.data;
  const space = await findSpace(env, spec.org, spec.space);
  if (!space) return blocked(env, BINDING, obj, 'SpaceNotFound', `space ${spec.org}/${spec.space} does not exist (declare it with a Space resource)`, 5000);
  const app = await db
    .selectFrom('apps')
    .select(['guid', 'name'])
    .where('space_guid', '=', space.guid)
    .where((eb) => eb(eb.fn('lower', ['name']), '=', spec.app.toLowerCase()))
    .executeTakeFirst();
  if (!app) return blocked(env, BINDING, obj, 'AppNotFound', `app ${spec.app} does not exist in ${spec.org}/${spec.space}`, 2000);
  // The instance: in the app's space, or shared into it.
  const inst = await db
    .selectFrom('service_instances')
    .selectAll()
    .where('name', '=', spec.instance)
    .where((eb) =>
      eb.or([
        eb('space_guid', '=', space.guid),
        eb('guid', 'in', eb.selectFrom('service_instance_shares').select('service_instance_guid').where('space_guid', '=', space.guid)),
      ]),
    )
    .orderBy('created_at')
    .executeTakeFirst();
  if (!inst) return blocked(env, BINDING, obj, 'InstanceNotFound', `service instance ${spec.instance} does not exist in ${spec.org}/${spec.space}`, 2000);

  let binding = await db.selectFrom('service_credential_bindings').selectAll().where('app_guid', '=', app.guid).where('service_instance_guid', '=', inst.guid).executeTakeFirst();
  // The binding this resource made is for another app or instance now, or its name or parameters changed:
  // bindings cannot be changed in CF, so it is unbound and made again.
  if (mine && (mine.guid !== binding?.guid || (mine.name ?? undefined) !== spec.name || (spec.parameters !== undefined && !sameJson(spec.parameters, env.ctx.store.secrets.openJson(mine.parameters_enc))))) {
    await unbind(mine);
    return { requeueAfterMs: 300 };
  }
  if (binding && !(await ownedBy(env, 'service_credential_bindings', binding.guid, ref))) {
    return blocked(env, BINDING, obj, 'BindingOwnedElsewhere', `app ${spec.app} is already bound to ${spec.instance} by a binding this resource did not create; it is left alone`, 10_000);
  }
  if (!binding) {
    if (inst.last_operation_type === 'create' && inst.last_operation_state !== 'succeeded') {
      return blocked(env, BINDING, obj, 'InstanceNotReady', `service instance ${spec.instance} is not created yet (${inst.last_operation_state})`, 1000);
    }
    try {
      const result = await createCredentialBinding(
        env.ctx,
        JSON.parse(
          JSON.stringify({
            type: 'app',
            name: spec.name,
            relationships: { service_instance: { data: { guid: inst.guid } }, app: { data: { guid: app.guid } } },
            parameters: spec.parameters,
            metadata: ownership(ref),
          }),
        ),
      );
      binding = result.binding;
    } catch (err) {
      if (!(err instanceof KilnError)) throw err;
      return blocked(env, BINDING, obj, 'BindingRejected', problem(err), 10_000);
    }
    await env.client.event('ServiceBinding', obj, 'Normal', 'Created', `app ${spec.app} bound to ${spec.instance}`);
  }
  const { ready, requeueAfterMs } = operationStatus(`binding of ${spec.app} to ${spec.instance}`, { type: binding.last_operation_type, state: binding.last_operation_state, description: binding.last_operation_description }, generation);
  await writeStatus(env, 'servicebindings', obj, {
    observedGeneration: generation,
    guid: binding.guid,
    lastOperation: lastOperationOf(binding),
    lastError: binding.last_operation_state === 'failed' ? ready.message : undefined,
    conditions: stamp(obj, [ready]),
  });
  return requeueAfterMs ? { requeueAfterMs } : undefined;
}
