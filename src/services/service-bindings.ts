import type { Kysely } from 'kysely';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { CreateCredentialBindingSchema, CreateRouteBindingSchema } from '../domain/services.ts';
import { ownershipKeys } from '../domain/declared.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { assertNotDeclared } from './declared-guard.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { readableApp } from './app-scope.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import { instanceContext, recordOperation, removeSubject } from './broker-operations.ts';
import { callBroker } from './broker-client.ts';
import type { Ctx } from './context.ts';
import { enqueueJob } from '../lifecycle/jobs.ts';
import { connectionOf } from './service-catalog.ts';
import { visibleInstances } from './service-instances.ts';
import { organizationQuotaOf } from './organization-quotas.ts';
import { spaceQuotaOf } from './space-quotas.ts';
import { serviceKeyQuotaError } from '../domain/quotas.ts';
import { updateMetadataOnly } from './metadata-only.ts';
import { nameInUse } from './name-in-use.ts';

type Body = Record<string, unknown>;
export type CredentialBindingRow = Row<'service_credential_bindings'>;
export type RouteBindingRow = Row<'service_route_bindings'>;

/**
 * Credential bindings (type `app` and `key`) and route bindings (issue 9 §5). Bindings to user-provided instances
 * are immediate (201/204); bindings to managed instances are written `initial` and a job asks the broker.
 */

/** App bindings of apps in readable spaces, and keys of instances in readable spaces. */
function visibleCredentialBindings(ctx: Ctx) {
  return ctx.store.db
    .selectFrom('service_credential_bindings')
    .selectAll('service_credential_bindings')
    .$if(!ctx.access.global, (qb) =>
      qb.where((eb) =>
        eb.or([
          eb('service_credential_bindings.app_guid', 'in', eb.selectFrom('apps').select('apps.guid').where((w) => ctx.access.spaceVisible(w, 'apps.space_guid'))),
          eb.and([
            eb('service_credential_bindings.type', '=', 'key'),
            eb(
              'service_credential_bindings.service_instance_guid',
              'in',
              eb.selectFrom('service_instances as ki').select('ki.guid').where((w) => ctx.access.spaceVisible(w, 'ki.space_guid')),
            ),
          ]),
        ]),
      ),
    );
}

export async function listCredentialBindings(ctx: Ctx, params: ListParams): Promise<Page<CredentialBindingRow>> {
  const f = params.filters;
  const q = visibleCredentialBindings(ctx)
    .$if(f.names !== undefined, (qb) => qb.where('service_credential_bindings.name', 'in', f.names!))
    .$if(f.type !== undefined, (qb) => qb.where('service_credential_bindings.type', '=', f.type![0] as 'app' | 'key'))
    .$if(f.service_instance_guids !== undefined, (qb) => qb.where('service_credential_bindings.service_instance_guid', 'in', f.service_instance_guids!))
    .$if(f.service_instance_names !== undefined, (qb) => qb.where('service_credential_bindings.service_instance_guid', 'in', (eb) => eb.selectFrom('service_instances').select('guid').where('name', 'in', f.service_instance_names!)))
    .$if(f.app_guids !== undefined, (qb) => qb.where('service_credential_bindings.app_guid', 'in', f.app_guids!))
    .$if(f.app_names !== undefined, (qb) => qb.where('service_credential_bindings.app_guid', 'in', (eb) => eb.selectFrom('apps').select('guid').where('name', 'in', f.app_names!)))
    .$if(f.service_plan_guids !== undefined, (qb) =>
      qb.where('service_credential_bindings.service_instance_guid', 'in', (eb) => eb.selectFrom('service_instances').select('guid').where('service_plan_guid', 'in', f.service_plan_guids!)),
    )
    .$if(f.service_plan_names !== undefined, (qb) =>
      qb.where('service_credential_bindings.service_instance_guid', 'in', (eb) =>
        eb.selectFrom('service_instances').innerJoin('service_plans', 'service_plans.guid', 'service_instances.service_plan_guid').select('service_instances.guid').where('service_plans.name', 'in', f.service_plan_names!),
      ),
    )
    .$if(f.service_offering_guids !== undefined || f.service_offering_names !== undefined, (qb) =>
      qb.where('service_credential_bindings.service_instance_guid', 'in', (eb) =>
        eb
          .selectFrom('service_instances')
          .innerJoin('service_plans', 'service_plans.guid', 'service_instances.service_plan_guid')
          .innerJoin('service_offerings', 'service_offerings.guid', 'service_plans.service_offering_guid')
          .select('service_instances.guid')
          .$if(f.service_offering_guids !== undefined, (x) => x.where('service_offerings.guid', 'in', f.service_offering_guids!))
          .$if(f.service_offering_names !== undefined, (x) => x.where('service_offerings.name', 'in', f.service_offering_names!)),
      ),
    );
  return listPage(q, listOptions('service_credential_bindings', params, { resourceType: 'service_credential_bindings' }));
}

export async function getCredentialBinding(ctx: Ctx, guid: string): Promise<CredentialBindingRow> {
  const b = await visibleCredentialBindings(ctx).where('service_credential_bindings.guid', '=', guid).executeTakeFirst();
  if (!b) throw notFound('Service credential binding');
  return b;
}

async function spaceOfBinding(db: Kysely<Database>, b: CredentialBindingRow): Promise<string> {
  if (b.app_guid) return (await db.selectFrom('apps').select('space_guid').where('guid', '=', b.app_guid).executeTakeFirstOrThrow()).space_guid;
  return (await db.selectFrom('service_instances').select('space_guid').where('guid', '=', b.service_instance_guid).executeTakeFirstOrThrow()).space_guid;
}

function bindingAudit(tx: WriteTx, ctx: Ctx, type: string, b: { guid: string; name: string | null }, spaceGuid: string, request: Record<string, unknown>) {
  const { parameters: _p, ...safe } = request;
  return recordAudit(tx, {
    type,
    actor: ctx.principal,
    target: { type: type.includes('service_key') ? 'service_key' : 'service_binding', guid: b.guid, name: b.name ?? '' },
    data: { request: safe },
    spaceGuid,
  });
}

const bindable = (plan: Row<'service_plans'>, offering: Row<'service_offerings'>) => (plan.bindable === null ? offering.bindable === 1 : plan.bindable === 1);

export async function createCredentialBinding(ctx: Ctx, body: Body): Promise<{ binding: CredentialBindingRow; metadata: Metadata } | { jobGuid: string; binding: CredentialBindingRow }> {
  const input = CreateCredentialBindingSchema.parse(body);
  validateMetadataRequest(input.metadata);
  const instGuid = input.relationships.service_instance.data.guid;
  const inst = await visibleInstances(ctx).where('service_instances.guid', '=', instGuid).executeTakeFirst();
  if (!inst) throw unprocessable(`The service instance could not be found: '${instGuid}'.`);
  let app: Row<'apps'> | undefined;
  let spaceGuid = inst.space_guid;
  if (input.type === 'app') {
    const appGuid = input.relationships.app?.data.guid;
    if (!appGuid) throw unprocessable("Relationships app can't be blank");
    app = (await readableApp(ctx, appGuid))?.app;
    if (!app) throw unprocessable(`The app could not be found: '${appGuid}'.`);
    spaceGuid = app.space_guid;
    if (app.space_guid !== inst.space_guid) {
      const shared = await ctx.store.db.selectFrom('service_instance_shares').select('space_guid').where('service_instance_guid', '=', inst.guid).where('space_guid', '=', app.space_guid).executeTakeFirst();
      if (!shared) throw unprocessable('The service instance and the app are in different spaces');
    }
  } else {
    if (!input.name) throw unprocessable("Name can't be blank");
  }
  if (!(await ctx.access.canWriteSpace(spaceGuid))) throw notAuthorized();
  if (inst.type === 'user-provided') {
    if (input.type === 'key') throw unprocessable("Service credential bindings of type 'key' are not supported for user-provided service instances.");
    if (input.parameters !== undefined) throw unprocessable('Binding parameters are not supported for user-provided service instances');
  } else {
    const c = await instanceContext(ctx.store, ctx.store.db, inst.guid);
    if (c && !bindable(c.plan, c.offering)) throw unprocessable(input.type === 'key' ? 'Service plan does not allow bindings.' : 'Service plan does not allow bindings');
    if (inst.last_operation_type === 'create' && inst.last_operation_state !== 'succeeded') throw unprocessable('There is an operation in progress for the service instance.');
    if (inst.last_operation_type === 'delete' && inst.last_operation_state === 'in progress') throw unprocessable('There is an operation in progress for the service instance.');
  }
  return ctx.store.write(async (tx) => {
    // A binding whose create failed gives way to a new attempt (CC deletes it and binds again).
    const failed = await tx.db
      .selectFrom('service_credential_bindings')
      .select('guid')
      .where('service_instance_guid', '=', inst.guid)
      .where('last_operation_type', '=', 'create')
      .where('last_operation_state', '=', 'failed')
      .$if(input.type === 'app', (qb) => qb.where('app_guid', '=', app!.guid))
      .$if(input.type === 'key', (qb) => qb.where('type', '=', 'key').where('name', '=', input.name!))
      .execute();
    for (const f of failed) await removeSubject(tx, 'service_credential_bindings', f.guid);
    if (input.type === 'app') {
      const existing = await tx.db.selectFrom('service_credential_bindings').select('guid').where('app_guid', '=', app!.guid).where('service_instance_guid', '=', inst.guid).executeTakeFirst();
      if (existing) throw unprocessable('The app is already bound to the service instance');
      if (input.name) {
        if (await nameInUse(tx.db, 'service_credential_bindings', input.name, { within: { app_guid: app!.guid } })) throw unprocessable(`The binding name is invalid. App binding names must be unique. The app already has a binding with name '${input.name}'.`);
      }
    } else {
      const keyCount = async (orgWide: boolean) => {
        const row = await tx.db
          .selectFrom('service_credential_bindings')
          .innerJoin('service_instances', 'service_instances.guid', 'service_credential_bindings.service_instance_guid')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('service_credential_bindings.type', '=', 'key')
          .$if(!orgWide, (qb) => qb.where('service_instances.space_guid', '=', inst.space_guid))
          .$if(orgWide, (qb) =>
            qb.where('service_instances.space_guid', 'in', (eb) =>
              eb.selectFrom('spaces').select('guid').where('organization_guid', 'in', eb.selectFrom('spaces as s2').select('s2.organization_guid').where('s2.guid', '=', inst.space_guid)),
            ),
          )
          .executeTakeFirst();
        return Number(row?.n ?? 0);
      };
      const orgGuid = (await tx.db.selectFrom('spaces').select('organization_guid').where('guid', '=', inst.space_guid).executeTakeFirstOrThrow()).organization_guid;
      const quotaError = serviceKeyQuotaError(
        { quota: await organizationQuotaOf(tx.db, orgGuid), keys: await keyCount(true) },
        { quota: await spaceQuotaOf(tx.db, inst.space_guid), keys: await keyCount(false) },
      );
      if (quotaError) throw unprocessable(quotaError);
      if (await nameInUse(tx.db, 'service_credential_bindings', input.name!, { within: { service_instance_guid: inst.guid, type: 'key' } })) {
        throw unprocessable(`The binding name is invalid. Key binding names must be unique. The service instance already has a key binding with name '${input.name}'.`);
      }
    }
    const guid = newGuid();
    const managed = inst.type === 'managed';
    await tx.insert('service_credential_bindings', {
      guid,
      type: input.type,
      name: input.name ?? null,
      service_instance_guid: inst.guid,
      app_guid: app?.guid ?? null,
      credentials_enc: null,
      parameters_enc: ctx.store.secrets.sealJson(input.parameters),
      syslog_drain_url: managed ? null : inst.syslog_drain_url,
      last_operation_type: 'create',
      last_operation_state: managed ? 'initial' : 'succeeded',
      last_operation_description: null,
      last_operation_created_at: tx.now,
      last_operation_updated_at: tx.now,
    });
    const metadata = await saveMetadata(tx, 'service_credential_bindings', guid, input.metadata);
    const row = await tx.db.selectFrom('service_credential_bindings').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
    const kind = input.type === 'key' ? 'service_key' : 'service_binding';
    await bindingAudit(tx, ctx, managed ? `audit.${kind}.start_create` : `audit.${kind}.create`, row, spaceGuid, { ...input });
    if (!managed) return { binding: row, metadata };
    const operation = input.type === 'key' ? 'service_keys.create' : 'service_bindings.create';
    return { binding: row, jobGuid: await enqueueJob(tx, { operation, resourceType: 'service_credential_binding', resourceGuid: guid, userGuid: ctx.principal.guid }) };
  });
}

export async function updateCredentialBinding(ctx: Ctx, guid: string, body: Body): Promise<{ binding: CredentialBindingRow; metadata: Metadata }> {
  const b = await getCredentialBinding(ctx, guid);
  if (!(await ctx.access.canWriteSpace(await spaceOfBinding(ctx.store.db, b)))) throw notAuthorized();
  const request = (body && typeof body === 'object' ? body : {}) as { metadata?: Parameters<typeof ownershipKeys>[0] };
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'service_credential_bindings', guid: b.guid, type: 'Service binding', name: b.name ?? b.guid }, ownershipKeys(request.metadata, ctx.access.admin));
  const { row, metadata } = await updateMetadataOnly(ctx.store, 'service_credential_bindings', b, body);
  return { binding: row, metadata };
}

export async function deleteCredentialBinding(ctx: Ctx, guid: string): Promise<{ jobGuid?: string }> {
  const b = await getCredentialBinding(ctx, guid);
  const spaceGuid = await spaceOfBinding(ctx.store.db, b);
  if (!(await ctx.access.canWriteSpace(spaceGuid))) throw notAuthorized();
  const inst = await ctx.store.db.selectFrom('service_instances').selectAll().where('guid', '=', b.service_instance_guid).executeTakeFirstOrThrow();
  // A binding declared by a ServiceBinding resource, or by an App resource's `services`, goes with its resource.
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'service_credential_bindings', guid: b.guid, type: 'Service binding', name: b.name ?? inst.name }, 'delete');
  if (b.app_guid) {
    const app = await ctx.store.db.selectFrom('apps').select(['guid', 'name']).where('guid', '=', b.app_guid).executeTakeFirst();
    if (app) await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'apps', guid: app.guid, type: 'App', name: app.name }, [`service:${inst.name}`]);
  }
  const kind = b.type === 'key' ? 'service_key' : 'service_binding';
  if (inst.type === 'user-provided') {
    await ctx.store.write(async (tx) => {
      await removeSubject(tx, 'service_credential_bindings', b.guid);
      await bindingAudit(tx, ctx, `audit.${kind}.delete`, b, spaceGuid, {});
    });
    return {};
  }
  if (b.last_operation_state === 'initial' || (b.last_operation_state === 'in progress' && b.last_operation_type === 'delete')) {
    throw unprocessable('There is an operation in progress for the service binding.');
  }
  return ctx.store.write(async (tx) => {
    await bindingAudit(tx, ctx, `audit.${kind}.start_delete`, b, spaceGuid, {});
    return { jobGuid: await startUnbind(tx, b, ctx.principal.guid) };
  });
}

/**
 * Marks a managed binding for deletion and enqueues the job that unbinds it at the broker (no permission check:
 * also used when unsharing an instance removes the bindings made in the other space).
 */
export async function startUnbind(tx: WriteTx, b: Pick<CredentialBindingRow, 'guid' | 'type'>, userGuid: string | null): Promise<string> {
  await recordOperation(tx, 'service_credential_bindings', b.guid, 'delete', 'initial', null, { poll_next_at: null, poll_deadline: null, broker_operation: null });
  const operation = b.type === 'key' ? 'service_keys.delete' : 'service_bindings.delete';
  return enqueueJob(tx, { operation, resourceType: 'service_credential_binding', resourceGuid: b.guid, userGuid });
}

/** `GET /details`: the credentials (for user-provided instances, the instance's current ones). */
export async function credentialBindingDetails(ctx: Ctx, guid: string): Promise<Record<string, unknown>> {
  const b = await getCredentialBinding(ctx, guid);
  if (!(await ctx.access.canReadSpaceSecrets(await spaceOfBinding(ctx.store.db, b)))) throw notAuthorized();
  if (b.last_operation_type === 'create' && b.last_operation_state !== 'succeeded') throw notFound('Service credential binding');
  const inst = await ctx.store.db.selectFrom('service_instances').selectAll().where('guid', '=', b.service_instance_guid).executeTakeFirstOrThrow();
  const credentials = inst.type === 'user-provided' ? ctx.store.secrets.openJson(inst.credentials_enc) : ctx.store.secrets.openJson(b.credentials_enc);
  const out: Record<string, unknown> = { credentials: credentials ?? {} };
  const drain = inst.type === 'user-provided' ? inst.syslog_drain_url : b.syslog_drain_url;
  if (drain) out.syslog_drain_url = drain;
  const mounts = JSON.parse(b.volume_mounts) as unknown[];
  if (mounts.length > 0) out.volume_mounts = mounts;
  return out;
}

export async function credentialBindingParameters(ctx: Ctx, guid: string, timeoutMs: number): Promise<unknown> {
  const b = await getCredentialBinding(ctx, guid);
  if (!(await ctx.access.canReadSpaceSecrets(await spaceOfBinding(ctx.store.db, b)))) throw notAuthorized();
  const c = await instanceContext(ctx.store, ctx.store.db, b.service_instance_guid);
  if (!c) throw new KilnError('BadRequest', 'This service does not support fetching service binding parameters.');
  if (!c.offering.bindings_retrievable) throw new KilnError('BadRequest', 'This service does not support fetching service binding parameters.');
  const res = await callBroker(connectionOf(ctx.store, c.broker), 'GET', `/v2/service_instances/${c.instance.guid}/service_bindings/${b.guid}`, { timeoutMs, userGuid: ctx.principal.guid }).catch(() => undefined);
  if (!res || res.status !== 200 || typeof res.json !== 'object' || res.json === null) throw new KilnError('ServiceBrokerRequestRejected', res ? String(res.status) : 'unreachable');
  return (res.json as { parameters?: unknown }).parameters ?? {};
}

export async function appsByGuid(ctx: Pick<Ctx, 'store'>, guids: (string | null)[]): Promise<Array<Row<'apps'>>> {
  const db = ctx.store.db;
  const unique = [...new Set(guids.filter((g): g is string => g !== null))];
  return unique.length ? db.selectFrom('apps').selectAll().where('guid', 'in', unique).orderBy('id').execute() : [];
}

export async function instancesByGuid(ctx: Pick<Ctx, 'store'>, guids: string[]): Promise<Array<Row<'service_instances'>>> {
  const db = ctx.store.db;
  const unique = [...new Set(guids)];
  return unique.length ? db.selectFrom('service_instances').selectAll().where('guid', 'in', unique).orderBy('id').execute() : [];
}

// ---- route bindings ----

function visibleRouteBindings(ctx: Ctx) {
  return ctx.store.db
    .selectFrom('service_route_bindings')
    .selectAll('service_route_bindings')
    .$if(!ctx.access.global, (qb) =>
      qb.where('service_route_bindings.route_guid', 'in', (eb) => eb.selectFrom('routes').select('routes.guid').where((w) => ctx.access.spaceVisible(w, 'routes.space_guid'))),
    );
}

export async function listRouteBindings(ctx: Ctx, params: ListParams): Promise<Page<RouteBindingRow>> {
  const f = params.filters;
  const q = visibleRouteBindings(ctx)
    .$if(f.route_guids !== undefined, (qb) => qb.where('service_route_bindings.route_guid', 'in', f.route_guids!))
    .$if(f.service_instance_guids !== undefined, (qb) => qb.where('service_route_bindings.service_instance_guid', 'in', f.service_instance_guids!))
    .$if(f.service_instance_names !== undefined, (qb) =>
      qb.where('service_route_bindings.service_instance_guid', 'in', (eb) => eb.selectFrom('service_instances').select('guid').where('name', 'in', f.service_instance_names!)),
    );
  return listPage(q, listOptions('service_route_bindings', params, { resourceType: 'service_route_bindings' }));
}

export async function getRouteBinding(ctx: Ctx, guid: string): Promise<RouteBindingRow> {
  const b = await visibleRouteBindings(ctx).where('service_route_bindings.guid', '=', guid).executeTakeFirst();
  if (!b) throw notFound('Service route binding');
  return b;
}

export async function createRouteBinding(ctx: Ctx, body: Body): Promise<{ binding: RouteBindingRow; metadata: Metadata; jobGuid?: string }> {
  const input = CreateRouteBindingSchema.parse(body);
  validateMetadataRequest(input.metadata);
  const instGuid = input.relationships.service_instance.data.guid;
  const routeGuid = input.relationships.route.data.guid;
  const inst = await visibleInstances(ctx).where('service_instances.guid', '=', instGuid).executeTakeFirst();
  if (!inst) throw unprocessable(`The service instance could not be found: '${instGuid}'.`);
  const route = await ctx.store.db.selectFrom('routes').selectAll().where('guid', '=', routeGuid).executeTakeFirst();
  const routeSpace = route ? await ctx.store.db.selectFrom('spaces').selectAll().where('guid', '=', route.space_guid).executeTakeFirst() : undefined;
  // A route the caller cannot see is answered as one that does not exist.
  if (!route || !routeSpace || !(await ctx.access.canReadSpace(routeSpace))) throw unprocessable(`The route could not be found: '${routeGuid}'.`);
  if (!(await ctx.access.canWriteSpace(route.space_guid))) throw notAuthorized();
  if (inst.type === 'user-provided') {
    if (!inst.route_service_url) throw unprocessable('This service instance does not support route binding.');
  } else {
    const c = await instanceContext(ctx.store, ctx.store.db, inst.guid);
    if (!c || !(JSON.parse(c.offering.requires) as string[]).includes('route_forwarding')) throw unprocessable('This service instance does not support route binding.');
    if (!bindable(c.plan, c.offering)) throw unprocessable('Service plan does not allow bindings.');
  }
  if (route.space_guid !== inst.space_guid) throw unprocessable('The service instance and the route are in different spaces.');
  return ctx.store.write(async (tx) => {
    const existing = await tx.db.selectFrom('service_route_bindings').select(['guid', 'service_instance_guid']).where('route_guid', '=', route.guid).executeTakeFirst();
    if (existing) {
      if (existing.service_instance_guid === inst.guid) throw unprocessable('The route and service instance are already bound.');
      throw unprocessable('A route may only be bound to a single service instance');
    }
    const guid = newGuid();
    const managed = inst.type === 'managed';
    await tx.insert('service_route_bindings', {
      guid,
      service_instance_guid: inst.guid,
      route_guid: route.guid,
      route_service_url: managed ? null : inst.route_service_url,
      parameters_enc: ctx.store.secrets.sealJson(input.parameters),
      last_operation_type: 'create',
      last_operation_state: managed ? 'initial' : 'succeeded',
      last_operation_description: null,
      last_operation_created_at: tx.now,
      last_operation_updated_at: tx.now,
    });
    const metadata = await saveMetadata(tx, 'service_route_bindings', guid, input.metadata);
    await recordAudit(tx, {
      type: managed ? 'audit.service_route_binding.start_create' : 'audit.service_route_binding.create',
      actor: ctx.principal,
      target: { type: 'service_route_binding', guid, name: '' },
      data: { request: { relationships: input.relationships } },
      spaceGuid: route.space_guid,
    });
    const binding = await tx.db.selectFrom('service_route_bindings').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
    if (!managed) return { binding, metadata };
    return { binding, metadata, jobGuid: await enqueueJob(tx, { operation: 'service_route_bindings.create', resourceType: 'service_route_binding', resourceGuid: guid, userGuid: ctx.principal.guid }) };
  });
}

/** `GET /parameters` of a route binding, fetched from the broker (needs `bindings_retrievable`). */
export async function routeBindingParameters(ctx: Ctx, guid: string, timeoutMs: number): Promise<unknown> {
  const b = await getRouteBinding(ctx, guid);
  const c = await instanceContext(ctx.store, ctx.store.db, b.service_instance_guid);
  if (!c || !c.offering.bindings_retrievable) throw new KilnError('BadRequest', 'This service does not support fetching service binding parameters.');
  const res = await callBroker(connectionOf(ctx.store, c.broker), 'GET', `/v2/service_instances/${c.instance.guid}/service_bindings/${b.guid}`, { timeoutMs, userGuid: ctx.principal.guid }).catch(() => undefined);
  if (!res || res.status !== 200 || typeof res.json !== 'object' || res.json === null) throw new KilnError('ServiceBrokerRequestRejected', res ? String(res.status) : 'unreachable');
  return (res.json as { parameters?: unknown }).parameters ?? {};
}

export async function updateRouteBinding(ctx: Ctx, guid: string, body: Body): Promise<{ binding: RouteBindingRow; metadata: Metadata }> {
  const b = await getRouteBinding(ctx, guid);
  const route = await ctx.store.db.selectFrom('routes').select('space_guid').where('guid', '=', b.route_guid).executeTakeFirstOrThrow();
  if (!(await ctx.access.canWriteSpace(route.space_guid))) throw notAuthorized();
  const { row, metadata } = await updateMetadataOnly(ctx.store, 'service_route_bindings', b, body);
  return { binding: row, metadata };
}

export async function deleteRouteBinding(ctx: Ctx, guid: string): Promise<{ jobGuid?: string }> {
  const b = await getRouteBinding(ctx, guid);
  const route = await ctx.store.db.selectFrom('routes').select('space_guid').where('guid', '=', b.route_guid).executeTakeFirstOrThrow();
  if (!(await ctx.access.canWriteSpace(route.space_guid))) throw notAuthorized();
  const inst = await ctx.store.db.selectFrom('service_instances').select('type').where('guid', '=', b.service_instance_guid).executeTakeFirstOrThrow();
  const audit = (tx: WriteTx, type: string) =>
    recordAudit(tx, { type, actor: ctx.principal, target: { type: 'service_route_binding', guid: b.guid, name: '' }, data: {}, spaceGuid: route.space_guid });
  if (inst.type === 'user-provided') {
    await ctx.store.write(async (tx) => {
      await removeSubject(tx, 'service_route_bindings', b.guid);
      await audit(tx, 'audit.service_route_binding.delete');
    });
    return {};
  }
  return ctx.store.write(async (tx) => {
    await recordOperation(tx, 'service_route_bindings', b.guid, 'delete', 'initial', null, { poll_next_at: null, poll_deadline: null, broker_operation: null });
    await audit(tx, 'audit.service_route_binding.start_delete');
    return { jobGuid: await enqueueJob(tx, { operation: 'service_route_bindings.delete', resourceType: 'service_route_binding', resourceGuid: b.guid, userGuid: ctx.principal.guid }) };
  });
}
