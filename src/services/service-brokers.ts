import type { Kysely } from 'kysely';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { brokerUrlError, CreateServiceBrokerSchema, UpdateServiceBrokerSchema } from '../domain/services.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, loadOneMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { findVisibleSpace } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { requireFeature } from './feature-flags.ts';
import { enqueueJob, type JobHandlers } from '../lifecycle/jobs.ts';
import { nameInUse } from './name-in-use.ts';
import { connectionOf, deleteOffering, fetchCatalog, upsertCatalog, type BrokerSettings } from './service-catalog.ts';

const RESOURCE = 'service_brokers';
const NAME_TAKEN = 'Name must be unique';
type Body = Record<string, unknown>;
export type BrokerRow = Row<'service_brokers'>;

/** Admins and global readers see every broker; space developers the space-scoped brokers of their spaces. */
function visibleBrokers(ctx: Ctx) {
  return ctx.store.db
    .selectFrom('service_brokers')
    .selectAll('service_brokers')
    .$if(!ctx.access.global, (qb) =>
      qb.where('service_brokers.space_guid', 'in', (eb) =>
        eb.selectFrom('roles').select('roles.space_guid').where('roles.user_guid', '=', ctx.principal.guid).where('roles.type', '=', 'space_developer'),
      ),
    );
}

export async function listServiceBrokers(ctx: Ctx, params: ListParams): Promise<Page<BrokerRow>> {
  let q = visibleBrokers(ctx);
  if (params.filters.names) q = q.where('service_brokers.name', 'in', params.filters.names);
  if (params.filters.space_guids) q = q.where('service_brokers.space_guid', 'in', params.filters.space_guids.length ? params.filters.space_guids : ['']);
  return listPage(q, listOptions('service_brokers', params, { resourceType: RESOURCE }));
}

export async function getServiceBroker(ctx: Ctx, guid: string): Promise<BrokerRow> {
  const b = await visibleBrokers(ctx).where('service_brokers.guid', '=', guid).executeTakeFirst();
  if (!b) throw notFound('Service broker');
  return b;
}

/** Who may change a broker: admins any; space developers the space-scoped brokers of their space. */
async function assertCanManage(ctx: Ctx, broker: BrokerRow): Promise<void> {
  if (ctx.access.admin) return;
  if (broker.space_guid && (await ctx.access.hasSpaceRole(broker.space_guid, 'space_developer'))) return;
  throw notAuthorized();
}

function audit(tx: WriteTx, ctx: Ctx, verb: string, b: Pick<BrokerRow, 'guid' | 'name' | 'space_guid'>, request: Record<string, unknown>) {
  // Credentials never reach audit events (issue 9 §8).
  const { authentication: _omit, ...safe } = request;
  return recordAudit(tx, {
    type: `audit.service_broker.${verb}`,
    actor: ctx.principal,
    target: { type: 'service_broker', guid: b.guid, name: b.name },
    data: { request: safe },
    spaceGuid: b.space_guid,
  });
}

export async function createServiceBroker(ctx: Ctx, body: Body): Promise<{ jobGuid: string }> {
  const input = CreateServiceBrokerSchema.parse(body);
  validateMetadataRequest(input.metadata);
  const spaceGuid = input.relationships?.space.data.guid ?? null;
  if (spaceGuid) {
    const space = await findVisibleSpace(ctx.access, ctx.store.db, spaceGuid).catch(() => {
      throw unprocessable('Invalid space. Ensure that the space exists and you have access to it.');
    });
    if (!ctx.access.admin) {
      if (!(await ctx.access.hasSpaceRole(space.guid, 'space_developer'))) throw notAuthorized();
      await requireFeature(ctx.store.db, 'space_scoped_private_broker_creation');
    }
  } else if (!ctx.access.admin) {
    throw notAuthorized();
  }
  const urlError = brokerUrlError(input.url);
  if (urlError) throw unprocessable(urlError);
  try {
    return await ctx.store.write(async (tx) => {
      if (await nameInUse(tx.db, 'service_brokers', input.name)) throw unprocessable(NAME_TAKEN);
      const guid = newGuid();
      await tx.insert('service_brokers', {
        guid,
        name: input.name,
        url: input.url,
        auth_enc: ctx.store.secrets.sealJson(input.authentication.credentials)!,
        space_guid: spaceGuid,
        state: 'SYNCHRONIZING',
      });
      await saveMetadata(tx, RESOURCE, guid, input.metadata);
      await audit(tx, ctx, 'create', { guid, name: input.name, space_guid: spaceGuid }, { ...input });
      const jobGuid = await enqueueJob(tx, { operation: 'service_broker.catalog.synchronize', resourceType: 'service_broker', resourceGuid: guid, userGuid: ctx.principal.guid });
      return { jobGuid };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw unprocessable(NAME_TAKEN);
    throw err;
  }
}

/** PATCH: metadata only → 200 with the broker; anything else → 202 with a re-synchronising job. */
export async function updateServiceBroker(ctx: Ctx, guid: string, body: Body): Promise<{ broker: BrokerRow; metadata: Metadata } | { jobGuid: string }> {
  const broker = await getServiceBroker(ctx, guid);
  await assertCanManage(ctx, broker);
  const input = UpdateServiceBrokerSchema.parse(body);
  validateMetadataRequest(input.metadata);
  if (input.url !== undefined) {
    const urlError = brokerUrlError(input.url);
    if (urlError) throw unprocessable(urlError);
  }
  const resync = input.name !== undefined || input.url !== undefined || input.authentication !== undefined;
  if (resync && (await jobRunning(ctx.store.db, broker.guid))) {
    throw unprocessable('Cannot update a broker when other operation is already in progress');
  }
  try {
    return await ctx.store.write(async (tx) => {
      if (input.name !== undefined && input.name !== broker.name) {
        if (await nameInUse(tx.db, 'service_brokers', input.name)) throw unprocessable(NAME_TAKEN);
      }
      const metadata = await saveMetadata(tx, RESOURCE, broker.guid, input.metadata);
      await audit(tx, ctx, 'update', broker, { ...input });
      if (!resync) {
        await tx.update('service_brokers', broker.guid, {}, { expectedGeneration: broker.generation });
        return { broker: (await tx.db.selectFrom('service_brokers').selectAll().where('guid', '=', broker.guid).executeTakeFirstOrThrow()), metadata };
      }
      await tx.update('service_brokers', broker.guid, {
        name: input.name ?? broker.name,
        url: input.url ?? broker.url,
        auth_enc: input.authentication ? ctx.store.secrets.sealJson(input.authentication.credentials)! : broker.auth_enc,
        state: 'SYNCHRONIZING',
      }, { expectedGeneration: broker.generation });
      return { jobGuid: await enqueueJob(tx, { operation: 'service_broker.update', resourceType: 'service_broker', resourceGuid: broker.guid, userGuid: ctx.principal.guid }) };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw unprocessable(NAME_TAKEN);
    throw err;
  }
}

async function jobRunning(db: Kysely<Database>, brokerGuid: string): Promise<boolean> {
  const j = await db.selectFrom('jobs').select('guid').where('resource_guid', '=', brokerGuid).where('state', 'in', ['PROCESSING', 'POLLING']).executeTakeFirst();
  return j !== undefined;
}

async function instancesOf(db: Kysely<Database>, brokerGuid: string): Promise<boolean> {
  const row = await db
    .selectFrom('service_instances')
    .innerJoin('service_plans', 'service_plans.guid', 'service_instances.service_plan_guid')
    .innerJoin('service_offerings', 'service_offerings.guid', 'service_plans.service_offering_guid')
    .select('service_instances.guid')
    .where('service_offerings.service_broker_guid', '=', brokerGuid)
    .executeTakeFirst();
  return row !== undefined;
}

export async function deleteServiceBroker(ctx: Ctx, guid: string): Promise<{ jobGuid: string }> {
  const broker = await getServiceBroker(ctx, guid);
  await assertCanManage(ctx, broker);
  return ctx.store.write(async (tx) => {
    if (await instancesOf(tx.db, broker.guid)) throw new KilnError('ServiceBrokerNotRemovable', broker.name);
    const current = await tx.db.selectFrom('service_brokers').selectAll().where('guid', '=', broker.guid).executeTakeFirstOrThrow();
    await tx.update('service_brokers', broker.guid, { state: 'DELETE_IN_PROGRESS' }, { expectedGeneration: current.generation });
    await audit(tx, ctx, 'delete', broker, {});
    return { jobGuid: await enqueueJob(tx, { operation: 'service_broker.delete', resourceType: 'service_broker', resourceGuid: broker.guid, userGuid: ctx.principal.guid }) };
  });
}

export const brokerMetadata = (ctx: Pick<Ctx, 'store'>, guid: string) => loadOneMetadata(ctx.store.db, RESOURCE, guid);

/**
 * The broker jobs. Synchronising fetches the catalog outside any transaction, then upserts it in one; a failure
 * leaves the broker row (state SYNCHRONIZATION_FAILED) as Cloud Controller does. Both are idempotent.
 */
export function registerServiceBrokerJobs(handlers: JobHandlers, store: Store, settings: BrokerSettings): void {
  const synchronize = async (job: { resource_guid: string; user_guid: string | null }) => {
    const broker = await store.db.selectFrom('service_brokers').selectAll().where('guid', '=', job.resource_guid).executeTakeFirst();
    if (!broker) throw new KilnError('ServiceBrokerGone');
    let services;
    try {
      services = await fetchCatalog(connectionOf(store, broker), settings, job.user_guid);
    } catch (err) {
      await store.write(async (tx) => {
        await tx.updateStatus(RESOURCE, broker.guid, { state: 'SYNCHRONIZATION_FAILED' });
      });
      throw err;
    }
    await store.write(async (tx) => {
      const current = await tx.db.selectFrom('service_brokers').selectAll().where('guid', '=', broker.guid).executeTakeFirst();
      if (!current) throw new KilnError('ServiceBrokerGone');
      await upsertCatalog(tx, current, services);
      await tx.updateStatus(RESOURCE, broker.guid, { state: 'AVAILABLE' });
    });
  };
  handlers.register('service_broker.catalog.synchronize', ({ job }) => synchronize(job));
  handlers.register('service_broker.update', ({ job }) => synchronize(job));
  handlers.register('service_broker.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const broker = await tx.db.selectFrom('service_brokers').selectAll().where('guid', '=', job.resource_guid).executeTakeFirst();
      if (!broker) return;
      if (await instancesOf(tx.db, broker.guid)) throw new KilnError('ServiceBrokerNotRemovable', broker.name);
      const offerings = await tx.db.selectFrom('service_offerings').select('guid').where('service_broker_guid', '=', broker.guid).execute();
      for (const o of offerings) await deleteOffering(tx, o.guid);
      await deleteMetadata(tx, RESOURCE, [broker.guid]);
      await tx.delete('service_brokers', broker.guid);
    });
  });
}
