import type { Kysely } from 'kysely';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import {
  CreateServiceInstanceSchema,
  INVALID_PLAN,
  ShareSchema,
  UpdateManagedInstanceSchema,
  UpdateUserProvidedInstanceSchema,
  upsiUrlErrors,
} from '../domain/services.ts';
import { ownershipKeys } from '../domain/declared.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { assertNotDeclared } from './declared-guard.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { assertSpaceWritable, findVisibleSpace } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import { assertNoBackupOperation } from './backup-guard.ts';
import { instanceContext, recordOperation, removeSubject } from './broker-operations.ts';
import { callBroker } from './broker-client.ts';
import type { Ctx } from './context.ts';
import { getFeatureFlag, requireFeature } from './feature-flags.ts';
import { enqueueJob } from '../lifecycle/jobs.ts';
import { nameInUse } from './name-in-use.ts';
import { connectionOf } from './service-catalog.ts';
import { brokersByGuid, getServicePlan, offeringsByGuid, purgeInstance } from './service-plans.ts';
import { organizationQuotaOf } from './organization-quotas.ts';
import { spaceQuotaOf } from './space-quotas.ts';
import { serviceInstanceQuotaError } from '../domain/quotas.ts';
import { startUnbind } from './service-bindings.ts';
import { recordServiceUsage } from './service-usage-events.ts';

type Body = Record<string, unknown>;
export type InstanceRow = Row<'service_instances'>;
const RESOURCE = 'service_instances';

/**
 * Service instances (issue 9 §3, §4, §7): user-provided ones are plain rows (201/200/204 at once); managed ones
 * are written with last operation `initial` and a job does the broker call (see broker-operations.ts). An
 * instance is visible in its own space and in every space it is shared into.
 */

/** Instances the caller can read: in a readable space, or shared into one. */
export function visibleInstances(ctx: Ctx, db: Kysely<Database> = ctx.store.db) {
  return db
    .selectFrom('service_instances')
    .selectAll('service_instances')
    .$if(!ctx.access.global, (qb) =>
      qb.where((eb) =>
        eb.or([
          ctx.access.spaceVisible(eb, 'service_instances.space_guid'),
          eb(
            'service_instances.guid',
            'in',
            eb.selectFrom('service_instance_shares as sh').select('sh.service_instance_guid').where((w) => ctx.access.spaceVisible(w, 'sh.space_guid')),
          ),
        ]),
      ),
    );
}

export async function listServiceInstances(ctx: Ctx, params: ListParams): Promise<Page<InstanceRow>> {
  const f = params.filters;
  const q = visibleInstances(ctx)
    .$if(f.names !== undefined, (qb) => qb.where('service_instances.name', 'in', f.names!))
    .$if(f.type !== undefined, (qb) => qb.where('service_instances.type', '=', f.type![0] as InstanceRow['type']))
    .$if(f.space_guids !== undefined, (qb) =>
      qb.where((eb) =>
        eb.or([
          eb('service_instances.space_guid', 'in', f.space_guids!),
          eb('service_instances.guid', 'in', eb.selectFrom('service_instance_shares').select('service_instance_guid').where('space_guid', 'in', f.space_guids!)),
        ]),
      ),
    )
    .$if(f.organization_guids !== undefined, (qb) =>
      qb.where('service_instances.space_guid', 'in', (eb) => eb.selectFrom('spaces').select('guid').where('organization_guid', 'in', f.organization_guids!)),
    )
    .$if(f.service_plan_guids !== undefined, (qb) => qb.where('service_instances.service_plan_guid', 'in', f.service_plan_guids!))
    .$if(f.service_plan_names !== undefined, (qb) =>
      qb.where('service_instances.service_plan_guid', 'in', (eb) => eb.selectFrom('service_plans').select('guid').where('name', 'in', f.service_plan_names!)),
    );
  return listPage(q, listOptions('service_instances', params, { resourceType: RESOURCE }));
}

export async function getServiceInstance(ctx: Ctx, guid: string): Promise<InstanceRow> {
  const inst = await visibleInstances(ctx).where('service_instances.guid', '=', guid).executeTakeFirst();
  if (!inst) throw notFound('Service instance');
  return inst;
}

/** The instance, for writes: visible, and the caller a developer of its own space (shared-in spaces cannot write). */
async function writableInstance(ctx: Ctx, guid: string): Promise<InstanceRow> {
  const inst = await getServiceInstance(ctx, guid);
  if (!(await ctx.access.canWriteSpace(inst.space_guid))) {
    if (await ctx.access.canReadSpace(await spaceRow(ctx.store.db, inst.space_guid))) throw notAuthorized();
    throw new KilnError('SharedServiceInstanceNotUpdatableInTargetSpace');
  }
  return inst;
}

const spaceRow = (db: Kysely<Database>, guid: string) => db.selectFrom('spaces').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

function audit(tx: WriteTx, ctx: Ctx, type: string, inst: Pick<InstanceRow, 'guid' | 'name' | 'space_guid'>, orgGuid: string | null, request: Record<string, unknown>) {
  // Credentials and parameters never reach audit events (issue 9 §8).
  const { credentials: _c, parameters: _p, ...safe } = request;
  return recordAudit(tx, {
    type,
    actor: ctx.principal,
    target: { type: type.includes('user_provided') ? 'user_provided_service_instance' : 'service_instance', guid: inst.guid, name: inst.name },
    data: { request: safe },
    spaceGuid: inst.space_guid,
    organizationGuid: orgGuid,
  });
}

/** The instance holding a name in a space: a create may take the name of one whose create failed. */
const instanceNamed = (db: Kysely<Database>, spaceGuid: string, name: string): Promise<InstanceRow | undefined> =>
  db.selectFrom('service_instances').selectAll().where('space_guid', '=', spaceGuid).where('name', '=', name).executeTakeFirst();

const nameTakenError = (name: string) => unprocessable(`The service instance name is taken: ${name}.`);

/** A plan the caller may use in `space`: exists, visible there, available, and enabled for the org (even for admins). */
async function usablePlan(ctx: Ctx, planGuid: string, space: Row<'spaces'>): Promise<Row<'service_plans'>> {
  const db = ctx.store.db;
  // A plan the caller cannot see at all is answered as one that does not exist (its name is nobody else's business).
  const plan = await getServicePlan(ctx, planGuid).catch(() => undefined);
  if (!plan) throw unprocessable(INVALID_PLAN);
  const offering = await db.selectFrom('service_offerings').selectAll().where('guid', '=', plan.service_offering_guid).executeTakeFirstOrThrow();
  const broker = await db.selectFrom('service_brokers').selectAll().where('guid', '=', offering.service_broker_guid).executeTakeFirstOrThrow();
  const inSpace = plan.visibility_type === 'admin' ? ctx.access.admin : await planEnabledIn(db, plan, broker, space);
  if (!inSpace) {
    if (!ctx.access.admin && plan.visibility_type !== 'space') throw unprocessable(INVALID_PLAN);
    throw unprocessable(
      `Invalid service plan. This could be due to a space-scoped broker which is offering the service plan '${plan.name}' with guid '${plan.guid}' in another space or that the plan is not enabled in this organization. Ensure that the service plan is visible in your current space.`,
    );
  }
  if (!plan.available) {
    throw unprocessable(
      `Invalid service plan. The service plan '${plan.name}' with guid '${plan.guid}' has been removed from the service broker's catalog. It is not possible to create new service instances using this plan.`,
    );
  }
  return plan;
}

/** Whether a plan may be used in a space: public, enabled for its org, or from a broker scoped to it. */
async function planEnabledIn(db: Kysely<Database>, plan: Row<'service_plans'>, broker: Row<'service_brokers'>, space: Row<'spaces'>): Promise<boolean> {
  if (plan.visibility_type === 'public') return true;
  if (plan.visibility_type === 'space') return broker.space_guid === space.guid;
  if (plan.visibility_type !== 'organization') return false;
  const row = await db
    .selectFrom('service_plan_visibilities')
    .select('organization_guid')
    .where('service_plan_guid', '=', plan.guid)
    .where('organization_guid', '=', space.organization_guid)
    .executeTakeFirst();
  return row !== undefined;
}

export type CreateResult = { instance: InstanceRow; metadata: Metadata; jobGuid?: undefined } | { jobGuid: string };

export async function createServiceInstance(ctx: Ctx, body: Body): Promise<CreateResult> {
  const input = CreateServiceInstanceSchema.parse(body);
  validateMetadataRequest(input.metadata);
  const space = await findVisibleSpace(ctx.access, ctx.store.db, input.relationships.space.data.guid).catch(() => {
    throw unprocessable('Invalid space. Ensure that the space exists and you have access to it.');
  });
  if (!(await ctx.access.canWriteSpace(space.guid))) throw notAuthorized();
  assertSpaceWritable(space);
  if (input.type === 'user-provided') {
    const errors = upsiUrlErrors(input);
    if (errors.length > 0) throw unprocessable(errors.join(', '));
  } else if (!ctx.access.admin) {
    await requireFeature(ctx.store.db, 'service_instance_creation');
  }
  const plan = input.type === 'managed' ? await usablePlan(ctx, input.relationships.service_plan.data.guid, space) : undefined;
  try {
    return await ctx.store.write(async (tx) => {
      const taken = await instanceNamed(tx.db, space.guid, input.name);
      if (taken) {
        // A managed instance whose create failed gives its name up to the next create (CC destroys it).
        if (taken.type === 'managed' && taken.last_operation_type === 'create' && taken.last_operation_state === 'failed') await purgeInstance(tx, taken.guid);
        else throw nameTakenError(input.name);
      }
      if (input.type === 'managed') await assertInstanceQuota(tx.db, plan!, space);
      const guid = newGuid();
      const base = {
        guid,
        created_at: tx.now,
        updated_at: tx.now,
        generation: 1,
        name: input.name,
        space_guid: space.guid,
        tags: JSON.stringify(input.tags ?? []),
        last_operation_type: 'create' as const,
        last_operation_created_at: tx.now,
        last_operation_updated_at: tx.now,
      };
      if (input.type === 'user-provided') {
        await tx.insert('service_instances', {
          ...base,
          type: 'user-provided',
          service_plan_guid: null,
          credentials_enc: ctx.store.secrets.sealJson(input.credentials ?? {}),
          parameters_enc: null,
          syslog_drain_url: input.syslog_drain_url || null,
          route_service_url: input.route_service_url || null,
          dashboard_url: null,
          maintenance_info: null,
          last_operation_state: 'succeeded',
          last_operation_description: 'Operation succeeded',
        });
        await recordServiceUsage(tx, guid, 'CREATED');
        const metadata = await saveMetadata(tx, RESOURCE, guid, input.metadata);
        await audit(tx, ctx, 'audit.user_provided_service_instance.create', base, space.organization_guid, { ...input });
        return { instance: (await tx.db.selectFrom('service_instances').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow()), metadata };
      }
      await tx.insert('service_instances', {
        ...base,
        type: 'managed',
        service_plan_guid: plan!.guid,
        credentials_enc: null,
        parameters_enc: ctx.store.secrets.sealJson(input.parameters),
        syslog_drain_url: null,
        route_service_url: null,
        dashboard_url: null,
        maintenance_info: plan!.maintenance_info,
        last_operation_state: 'initial',
        last_operation_description: null,
      });
      await saveMetadata(tx, RESOURCE, guid, input.metadata);
      await audit(tx, ctx, 'audit.service_instance.start_create', base, space.organization_guid, { ...input });
      return { jobGuid: await enqueueJob(tx, { operation: 'service_instance.create', resourceType: 'service_instance', resourceGuid: guid, userGuid: ctx.principal.guid }) };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTakenError(input.name);
    throw err;
  }
}

/** The org and space quotas a new managed instance must fit (count, paid plans), as upstream checks them. */
async function assertInstanceQuota(db: Kysely<Database>, plan: Row<'service_plans'>, space: Row<'spaces'>): Promise<void> {
  const count = async (column: 'space_guid' | 'org') => {
    const q = db.selectFrom('service_instances').select((eb) => eb.fn.countAll<number>().as('n')).where('type', '=', 'managed');
    const row = await (column === 'space_guid'
      ? q.where('space_guid', '=', space.guid)
      : q.where('space_guid', 'in', (eb) => eb.selectFrom('spaces').select('guid').where('organization_guid', '=', space.organization_guid))
    ).executeTakeFirst();
    return Number(row?.n ?? 0);
  };
  const error = serviceInstanceQuotaError(
    { free: plan.free === 1 },
    { quota: await organizationQuotaOf(db, space.organization_guid), instances: await count('org') },
    { quota: await spaceQuotaOf(db, space.guid), instances: await count('space_guid') },
  );
  if (error) throw unprocessable(new KilnError(error).detail);
}

/** An operation is under way: a create not yet answered, or an update/delete in progress. */
function operationInProgress(inst: InstanceRow): boolean {
  return inst.last_operation_state === 'initial' || inst.last_operation_state === 'in progress';
}
const IN_PROGRESS = 'There is an operation in progress for the service instance';

export type UpdateResult = { instance: InstanceRow; metadata: Metadata; jobGuid?: undefined } | { jobGuid: string };

export async function updateServiceInstance(ctx: Ctx, guid: string, body: Body): Promise<UpdateResult> {
  const inst = await writableInstance(ctx, guid);
  const space = await spaceRow(ctx.store.db, inst.space_guid);
  // A declared instance (ServiceInstance resource) is changed through its resource; its labels stay editable.
  const request = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
  const changed = [...Object.keys(request).filter((k) => k !== 'metadata'), ...ownershipKeys(request.metadata as Parameters<typeof ownershipKeys>[0], ctx.access.admin)];
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: RESOURCE, guid: inst.guid, type: 'Service instance', name: inst.name }, changed);
  if (inst.type === 'user-provided') {
    const input = UpdateUserProvidedInstanceSchema.parse(body);
    validateMetadataRequest(input.metadata);
    const errors = upsiUrlErrors(input);
    if (errors.length > 0) throw unprocessable(errors.join(', '));
    try {
      return await ctx.store.write(async (tx) => {
        if (input.name !== undefined && (await nameInUse(tx.db, 'service_instances', input.name, { within: { space_guid: inst.space_guid }, except: inst.guid }))) throw nameTakenError(input.name);
        await tx.update('service_instances', inst.guid, {
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.credentials !== undefined ? { credentials_enc: ctx.store.secrets.sealJson(input.credentials) } : {}),
          ...(input.syslog_drain_url !== undefined ? { syslog_drain_url: input.syslog_drain_url || null } : {}),
          ...(input.route_service_url !== undefined ? { route_service_url: input.route_service_url || null } : {}),
          ...(input.tags !== undefined ? { tags: JSON.stringify(input.tags) } : {}),
        }, { expectedGeneration: inst.generation });
        await recordOperation(tx, RESOURCE, inst.guid, 'update', 'succeeded', 'Operation succeeded');
        await recordServiceUsage(tx, inst.guid, 'UPDATED');
        const metadata = await saveMetadata(tx, RESOURCE, inst.guid, input.metadata);
        await audit(tx, ctx, 'audit.user_provided_service_instance.update', inst, space.organization_guid, { ...input });
        return { instance: (await tx.db.selectFrom('service_instances').selectAll().where('guid', '=', inst.guid).executeTakeFirstOrThrow()), metadata };
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw nameTakenError(input.name ?? inst.name);
      throw err;
    }
  }
  const input = UpdateManagedInstanceSchema.parse(body);
  validateMetadataRequest(input.metadata);
  if (operationInProgress(inst)) throw unprocessable(IN_PROGRESS);
  await assertNoBackupOperation(ctx.store.db, inst.guid);
  let newPlan: Row<'service_plans'> | undefined;
  if (input.relationships?.service_plan) {
    newPlan = await usablePlan(ctx, input.relationships.service_plan.data.guid, space);
    const c = await instanceContext(ctx.store, ctx.store.db, inst.guid);
    if (c && newPlan.service_offering_guid !== c.offering.guid) throw unprocessable('service plan relates to a different service offering');
    const updateable = c?.plan.plan_updateable ?? c?.offering.plan_updateable;
    if (newPlan.guid !== inst.service_plan_guid && !updateable && !c?.offering.plan_updateable) throw new KilnError('ServicePlanNotUpdateable');
  }
  const needsBroker = newPlan !== undefined || input.parameters !== undefined || input.maintenance_info !== undefined;
  try {
    return await ctx.store.write(async (tx) => {
      if (input.name !== undefined && (await nameInUse(tx.db, 'service_instances', input.name, { within: { space_guid: inst.space_guid }, except: inst.guid }))) throw nameTakenError(input.name);
      if (input.name !== undefined && input.name !== inst.name) {
        const shared = await tx.db.selectFrom('service_instance_shares').select('space_guid').where('service_instance_guid', '=', inst.guid).executeTakeFirst();
        if (shared) throw new KilnError('SharedServiceInstanceCannotBeRenamed');
      }
      await tx.update('service_instances', inst.guid, {
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.tags !== undefined ? { tags: JSON.stringify(input.tags) } : {}),
        ...(needsBroker
          ? {
              pending_update_enc: ctx.store.secrets.sealJson({
                ...(newPlan ? { planGuid: newPlan.guid } : {}),
                ...(input.parameters ? { parameters: input.parameters } : {}),
                ...(input.maintenance_info ? { maintenanceInfo: input.maintenance_info } : {}),
              }),
            }
          : {}),
      }, { expectedGeneration: inst.generation });
      const metadata = await saveMetadata(tx, RESOURCE, inst.guid, input.metadata);
      if (!needsBroker) {
        await recordOperation(tx, RESOURCE, inst.guid, 'update', 'succeeded', null);
        await recordServiceUsage(tx, inst.guid, 'UPDATED');
        await audit(tx, ctx, 'audit.service_instance.update', inst, space.organization_guid, { ...input });
        return { instance: (await tx.db.selectFrom('service_instances').selectAll().where('guid', '=', inst.guid).executeTakeFirstOrThrow()), metadata };
      }
      await recordOperation(tx, RESOURCE, inst.guid, 'update', 'initial', null);
      await audit(tx, ctx, 'audit.service_instance.start_update', inst, space.organization_guid, { ...input });
      return { jobGuid: await enqueueJob(tx, { operation: 'service_instance.update', resourceType: 'service_instance', resourceGuid: inst.guid, userGuid: ctx.principal.guid }) };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTakenError(input.name ?? inst.name);
    throw err;
  }
}

/** DELETE: user-provided (or `purge`) at once (204); managed through a job that unbinds, unshares, deprovisions. */
export async function deleteServiceInstance(ctx: Ctx, guid: string, purge: boolean): Promise<{ jobGuid?: string }> {
  const inst = await getServiceInstance(ctx, guid);
  if (!(await ctx.access.canWriteSpace(inst.space_guid))) {
    if (await ctx.access.canReadSpace(await spaceRow(ctx.store.db, inst.space_guid))) throw notAuthorized();
    throw new KilnError('SharedServiceInstanceNotDeletableInTargetSpace');
  }
  if (purge && !ctx.access.admin) throw notAuthorized();
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: RESOURCE, guid: inst.guid, type: 'Service instance', name: inst.name }, 'delete');
  const space = await spaceRow(ctx.store.db, inst.space_guid);
  if (inst.type === 'user-provided' || purge) {
    await ctx.store.write(async (tx) => {
      await purgeInstance(tx, inst.guid);
      await audit(tx, ctx, inst.type === 'user-provided' ? 'audit.user_provided_service_instance.delete' : 'audit.service_instance.purge', inst, space.organization_guid, {});
    });
    return {};
  }
  if (inst.last_operation_state === 'initial' || (inst.last_operation_state === 'in progress' && inst.last_operation_type !== 'create')) throw unprocessable(IN_PROGRESS);
  await assertNoBackupOperation(ctx.store.db, inst.guid);
  return ctx.store.write(async (tx) => {
    await recordOperation(tx, RESOURCE, inst.guid, 'delete', 'initial', null, { poll_next_at: null, poll_deadline: null, broker_operation: null });
    await audit(tx, ctx, 'audit.service_instance.start_delete', inst, space.organization_guid, {});
    return { jobGuid: await enqueueJob(tx, { operation: 'service_instance.delete', resourceType: 'service_instance', resourceGuid: inst.guid, userGuid: ctx.principal.guid }) };
  });
}

/** `GET /credentials` of a user-provided instance (developers of its space, or global secret readers). */
export async function instanceCredentials(ctx: Ctx, guid: string): Promise<Record<string, unknown>> {
  const inst = await getServiceInstance(ctx, guid);
  if (inst.type !== 'user-provided') throw notFound('Service instance');
  if (!(await ctx.access.canReadSpaceSecrets(inst.space_guid))) throw notAuthorized();
  return ctx.store.secrets.openJson<Record<string, unknown>>(inst.credentials_enc) ?? {};
}

/** `GET /parameters` of a managed instance, fetched from the broker (needs `instances_retrievable`). */
export async function instanceParameters(ctx: Ctx, guid: string, timeoutMs: number): Promise<unknown> {
  const inst = await getServiceInstance(ctx, guid);
  if (inst.type !== 'managed') throw new KilnError('BadRequest', 'This service does not support fetching service instance parameters.');
  if (!(await ctx.access.canReadSpaceSecrets(inst.space_guid))) throw notAuthorized();
  const c = await instanceContext(ctx.store, ctx.store.db, inst.guid);
  if (!c || !c.offering.instances_retrievable) throw new KilnError('BadRequest', 'This service does not support fetching service instance parameters.');
  if (operationInProgress(inst)) throw unprocessable(IN_PROGRESS);
  const res = await callBroker(connectionOf(ctx.store, c.broker), 'GET', `/v2/service_instances/${inst.guid}`, { timeoutMs, userGuid: ctx.principal.guid }).catch(() => undefined);
  if (!res || res.status !== 200 || typeof res.json !== 'object' || res.json === null) {
    throw new KilnError('ServiceBrokerRequestRejected', res ? String(res.status) : 'unreachable');
  }
  return (res.json as { parameters?: unknown }).parameters ?? {};
}

export async function instancePermissions(ctx: Ctx, guid: string): Promise<{ read: boolean; manage: boolean }> {
  // Upstream answers {read: false} for an instance the caller cannot see; Kiln answers 404, as for every resource
  // the caller cannot see (never reveal existence, CONVENTIONS.md §13.3).
  const inst = await getServiceInstance(ctx, guid);
  return { read: true, manage: await ctx.access.canWriteSpace(inst.space_guid) };
}

// ---- sharing (issue 9 §7) ----

/**
 * What belongs to the instance's owner — the spaces it is shared into, their usage, its backups — is read from the
 * instance's own space only, as CC's `can_read_from_space?` does: a user of a space it is shared into sees the
 * instance, not where else it went. Anyone else gets the 404 of an instance that does not exist.
 */
export async function getInstanceFromOwnSpace(ctx: Ctx, guid: string): Promise<InstanceRow> {
  const instance = await getServiceInstance(ctx, guid);
  if (!(await ctx.access.canReadSpace(await spaceRow(ctx.store.db, instance.space_guid)))) throw notFound('Service instance');
  return instance;
}

export async function sharedSpaceGuids(ctx: Ctx, guid: string): Promise<{ instance: InstanceRow; guids: string[] }> {
  const instance = await getInstanceFromOwnSpace(ctx, guid);
  const rows = await ctx.store.db
    .selectFrom('service_instance_shares')
    .innerJoin('spaces', 'spaces.guid', 'service_instance_shares.space_guid')
    .select('spaces.guid')
    .where('service_instance_shares.service_instance_guid', '=', instance.guid)
    .orderBy('spaces.id')
    .execute();
  return { instance, guids: rows.map((r) => r.guid) };
}

export async function shareServiceInstance(ctx: Ctx, guid: string, body: Body): Promise<{ instance: InstanceRow; guids: string[] }> {
  const inst = await writableInstance(ctx, guid);
  const input = ShareSchema.parse(body);
  await requireFeature(ctx.store.db, 'service_instance_sharing');
  if (inst.type === 'user-provided') throw unprocessable('User-provided services cannot be shared.');
  const c = await instanceContext(ctx.store, ctx.store.db, inst.guid);
  if (c && !c.offering.shareable) throw unprocessable(`The ${c.offering.name} service does not support service instance sharing.`);
  if (c && !c.plan.available) throw unprocessable(`The service instance could not be shared as the ${c.plan.name} plan is inactive.`);
  const targets: Array<Row<'spaces'>> = [];
  for (const { guid: spaceGuid } of input.data) {
    const space = await ctx.store.db.selectFrom('spaces').selectAll().where('guid', '=', spaceGuid).executeTakeFirst();
    if (!space || !(await ctx.access.canWriteSpace(space.guid))) {
      throw unprocessable(`Unable to share service instance ${inst.name} with spaces ['${spaceGuid}']. Ensure the spaces exist and that you have access to them.`);
    }
    if (space.guid === inst.space_guid) {
      throw unprocessable(`Unable to share service instance '${inst.name}' with space '${space.name}'. Service instances cannot be shared into the space where they were created.`);
    }
    // Sharing gives the target space the plan: it must be enabled there (CC's validate_plan_visibility!), or a
    // plan enabled for one org would reach another through a user with roles in both.
    if (c && !(await planEnabledIn(ctx.store.db, c.plan, c.broker, space))) {
      const org = await ctx.store.db.selectFrom('organizations').select('name').where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
      throw unprocessable(`Access to service ${c.offering.name} and plan ${c.plan.name} is not enabled in ${org.name}/${space.name}.`);
    }
    const clash = await nameInUse(ctx.store.db, 'service_instances', inst.name, { within: { space_guid: space.guid } });
    if (clash) {
      throw unprocessable(`A service instance called ${inst.name} already exists in ${space.name}.`);
    }
    targets.push(space);
  }
  await ctx.store.write(async (tx) => {
    for (const space of targets) {
      await tx.db
        .insertInto('service_instance_shares')
        .values({ service_instance_guid: inst.guid, space_guid: space.guid })
        .onConflict((oc) => oc.columns(['service_instance_guid', 'space_guid']).doNothing())
        .execute();
    }
    tx.changed(RESOURCE, inst.guid, 'update');
    await recordAudit(tx, {
      type: 'audit.service_instance.share',
      actor: ctx.principal,
      target: { type: 'service_instance', guid: inst.guid, name: inst.name },
      data: { target_space_guids: targets.map((s) => s.guid) },
      spaceGuid: inst.space_guid,
    });
  });
  return sharedSpaceGuids(ctx, inst.guid);
}

/**
 * Unsharing removes the app bindings made in the target space: user-provided ones at once, managed ones through
 * their unbind jobs (Cloud Controller unbinds them as part of the unshare).
 */
export async function unshareServiceInstance(ctx: Ctx, guid: string, spaceGuid: string): Promise<void> {
  const inst = await writableInstance(ctx, guid);
  const share = await ctx.store.db.selectFrom('service_instance_shares').select('space_guid').where('service_instance_guid', '=', inst.guid).where('space_guid', '=', spaceGuid).executeTakeFirst();
  if (!share) throw unprocessable(`Unable to unshare service instance from space ${spaceGuid}. Ensure the space exists and the service instance has been shared to this space.`);
  await ctx.store.write(async (tx) => {
    const bindings = await tx.db
      .selectFrom('service_credential_bindings')
      .innerJoin('apps', 'apps.guid', 'service_credential_bindings.app_guid')
      .select(['service_credential_bindings.guid', 'service_credential_bindings.type', 'service_credential_bindings.last_operation_type', 'service_credential_bindings.last_operation_state'])
      .where('service_credential_bindings.service_instance_guid', '=', inst.guid)
      .where('apps.space_guid', '=', spaceGuid)
      .execute();
    for (const b of bindings) {
      if (b.last_operation_type === 'delete' && b.last_operation_state !== 'failed') continue;
      if (inst.type === 'user-provided') await removeSubject(tx, 'service_credential_bindings', b.guid);
      else await startUnbind(tx, b, ctx.principal.guid);
    }
    await tx.db.deleteFrom('service_instance_shares').where('service_instance_guid', '=', inst.guid).where('space_guid', '=', spaceGuid).execute();
    tx.changed(RESOURCE, inst.guid, 'update');
    await recordAudit(tx, {
      type: 'audit.service_instance.unshare',
      actor: ctx.principal,
      target: { type: 'service_instance', guid: inst.guid, name: inst.name },
      data: { target_space_guid: spaceGuid },
      spaceGuid: inst.space_guid,
    });
  });
}

export async function sharedUsageSummary(ctx: Ctx, guid: string): Promise<Array<{ space: { guid: string }; bound_app_count: number }>> {
  const { instance, guids } = await sharedSpaceGuids(ctx, guid);
  const out = [];
  for (const spaceGuid of guids) {
    const row = await ctx.store.db
      .selectFrom('service_credential_bindings')
      .innerJoin('apps', 'apps.guid', 'service_credential_bindings.app_guid')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('service_credential_bindings.service_instance_guid', '=', instance.guid)
      .where('apps.space_guid', '=', spaceGuid)
      .executeTakeFirst();
    out.push({ space: { guid: spaceGuid }, bound_app_count: Number(row?.n ?? 0) });
  }
  return out;
}

export async function sharingEnabled(ctx: Ctx): Promise<boolean> {
  return (await getFeatureFlag(ctx.store.db, 'service_instance_sharing')).enabled;
}

export { removeSubject };

/** Spaces by guid (in id order) and, when asked, their organizations: the `fields[space…]` of instance reads. */
export async function spacesWithOrganizations(
  ctx: Pick<Ctx, 'store'>,
  spaceGuids: string[],
  withOrganizations: boolean,
): Promise<{ spaces: Array<Row<'spaces'>>; organizations: Array<Row<'organizations'>> }> {
  const db = ctx.store.db;
  const spaces = spaceGuids.length ? await db.selectFrom('spaces').selectAll().where('guid', 'in', spaceGuids).orderBy('id').execute() : [];
  if (!withOrganizations) return { spaces, organizations: [] };
  const orgGuids = [...new Set(spaces.map((s) => s.organization_guid))];
  const organizations = orgGuids.length ? await db.selectFrom('organizations').selectAll().where('guid', 'in', orgGuids).orderBy('id').execute() : [];
  return { spaces, organizations };
}

/** The plans of some instances (in id order) with their offerings and, when asked, the offerings' brokers. */
export async function plansOfInstances(ctx: Pick<Ctx, 'store'>, rows: Array<Row<'service_instances'>>, withBrokers: boolean) {
  const db = ctx.store.db;
  const guids = [...new Set(rows.map((r) => r.service_plan_guid).filter((g): g is string => g !== null))];
  const plans = guids.length ? await db.selectFrom('service_plans').selectAll().where('guid', 'in', guids).orderBy('id').execute() : [];
  const offerings = await offeringsByGuid(ctx, plans.map((p) => p.service_offering_guid));
  const brokers = withBrokers ? await brokersByGuid(ctx, offerings.map((o) => o.service_broker_guid)) : [];
  return { plans, offerings, brokers };
}

/** `maintenance_info` of the plans of some instances, by plan guid. */
export async function planMaintenanceOf(ctx: Pick<Ctx, 'store'>, rows: Array<Row<'service_instances'>>): Promise<Map<string, string | null>> {
  const guids = [...new Set(rows.map((r) => r.service_plan_guid).filter((g): g is string => g !== null))];
  const found = guids.length ? await ctx.store.db.selectFrom('service_plans').select(['guid', 'maintenance_info']).where('guid', 'in', guids).execute() : [];
  return new Map(found.map((p) => [p.guid, p.maintenance_info]));
}
