import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { nameMismatch, READ_ONLY_DEFINITION_FIELDS, type CreateServicePlan, type UpdatePlanDefinition } from '../domain/plan-definitions.ts';
import { isAdminReadOnly } from '../domain/principal.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import type { Row } from '../store/schema.ts';
import { newGuid, type Store } from '../store/store.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { BrokerConnection } from './broker-client.ts';
import { callBrokerInJob, callBrokerNow, isObject, jobFailure, offeringSupports, requireFeatureOf } from './broker-extensions.ts';
import type { Ctx } from './context.ts';
import { assertMatchesSchema } from './definition-schema.ts';
import { enqueueJob, JobError, type JobHandlers } from '../lifecycle/jobs.ts';
import { connectionOf, fetchCatalog, upsertCatalog, type BrokerSettings } from './service-catalog.ts';
import { nameInUse } from './name-in-use.ts';

/**
 * Plan definitions (issue 15), Kiln's extension of the OSBAPI (docs/service-extensions.md): a broker whose offering
 * declares `plan_definitions` publishes a JSON schema for its plans and lets the platform create, replace and
 * delete plans by definition. Kiln validates a definition against that schema before sending it, and resynchronises
 * the broker's catalog after each change, so `service_plans` always comes from the catalog (one source of truth).
 *
 * Reads and writes are for admins and service admins (the `kiln.service_admin` scope); admin read-only may read.
 * Writes are jobs: the request row (`service_plan_definition_requests`) holds what to send, the job sends it (PUTs
 * and DELETEs are idempotent at the broker), then syncs the catalog and deletes the request row in one transaction
 * — a crash anywhere before that commit makes the job run again from the start.
 */

/** The scope of a service admin: manages plans of every broker, nothing else an admin can. */
export const SERVICE_ADMIN_SCOPE = 'kiln.service_admin';

export const SCHEMA_LIST: ListSpec = { filters: ['service_offering_guids', 'service_broker_guids'], createdAts: false, updatedAts: false };
export const DEFINITION_LIST: ListSpec = { filters: ['service_offering_guids', 'service_plan_guids'], createdAts: false, updatedAts: false };

const canWrite = (ctx: Ctx) => ctx.access.admin || ctx.principal.scopes.has(SERVICE_ADMIN_SCOPE);
const canRead = (ctx: Ctx) => canWrite(ctx) || isAdminReadOnly(ctx.principal);

function assertRead(ctx: Ctx) {
  if (!canRead(ctx)) throw notAuthorized();
}
function assertWrite(ctx: Ctx) {
  if (!canWrite(ctx)) throw notAuthorized();
}

export interface DefinitionSchema {
  json_schema: Record<string, unknown>;
  ui_schema: Record<string, unknown> | null;
  version: string;
}

export interface SchemaView {
  offering: Row<'service_offerings'>;
  schema: DefinitionSchema | null;
}

export interface DefinitionView {
  plan: Row<'service_plans'>;
  definition: Record<string, unknown> | null;
  createdAt: string | null;
  resourceVersion: string | null;
}

interface OfferingContext {
  offering: Row<'service_offerings'>;
  conn: BrokerConnection;
}

async function offeringContext(store: Store, offering: Row<'service_offerings'>): Promise<OfferingContext> {
  const broker = await store.db.selectFrom('service_brokers').selectAll().where('guid', '=', offering.service_broker_guid).executeTakeFirstOrThrow();
  return { offering, conn: connectionOf(store, broker) };
}

const schemaPath = (o: Row<'service_offerings'>) => `/v2/services/${encodeURIComponent(o.broker_catalog_id)}/plan_definition_schema`;
const definitionPath = (o: Row<'service_offerings'>, planId: string) => `/v2/services/${encodeURIComponent(o.broker_catalog_id)}/plan_definitions/${encodeURIComponent(planId)}`;

function parseSchema(json: unknown): DefinitionSchema | null {
  if (!isObject(json) || !isObject(json.json_schema)) return null;
  return { json_schema: json.json_schema, ui_schema: isObject(json.ui_schema) ? json.ui_schema : null, version: typeof json.version === 'string' ? json.version : '' };
}

/** The broker's schema, or null on any failure (issue 15: "the schema will be null but the offering is still included"). */
async function schemaOrNull(ctx: Ctx, timeoutMs: number, offering: Row<'service_offerings'>): Promise<DefinitionSchema | null> {
  if (!offeringSupports(offering, 'plan_definitions')) return null;
  const { conn } = await offeringContext(ctx.store, offering);
  try {
    const res = await callBrokerNow(conn, 'GET', schemaPath(offering), timeoutMs, ctx.principal.guid, [200]);
    return parseSchema(res.json);
  } catch {
    return null;
  }
}

/** The schema a write is validated against; here a broker failure is the request's failure (502). */
async function requiredSchema(ctx: Ctx, timeoutMs: number, oc: OfferingContext): Promise<DefinitionSchema> {
  const res = await callBrokerNow(oc.conn, 'GET', schemaPath(oc.offering), timeoutMs, ctx.principal.guid, [200]);
  const schema = parseSchema(res.json);
  if (!schema) throw new KilnError('ServiceBrokerRequestMalformed');
  return schema;
}

async function offeringOrNotFound(ctx: Ctx, guid: string): Promise<Row<'service_offerings'>> {
  const o = await ctx.store.db.selectFrom('service_offerings').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!o) throw notFound('Service offering');
  return o;
}

async function planOrNotFound(ctx: Ctx, guid: string): Promise<{ plan: Row<'service_plans'>; offering: Row<'service_offerings'> }> {
  const plan = await ctx.store.db.selectFrom('service_plans').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!plan) throw notFound('Service plan');
  const offering = await ctx.store.db.selectFrom('service_offerings').selectAll().where('guid', '=', plan.service_offering_guid).executeTakeFirstOrThrow();
  return { plan, offering };
}

// ---- schemas

export async function listPlanDefinitionSchemas(ctx: Ctx, params: ListParams, timeoutMs: number): Promise<Page<SchemaView>> {
  assertRead(ctx);
  const f = params.filters;
  const q = ctx.store.db
    .selectFrom('service_offerings')
    .selectAll('service_offerings')
    .$if(f.service_offering_guids !== undefined, (qb) => qb.where('service_offerings.guid', 'in', f.service_offering_guids!.length ? f.service_offering_guids! : ['']))
    .$if(f.service_broker_guids !== undefined, (qb) => qb.where('service_offerings.service_broker_guid', 'in', f.service_broker_guids!.length ? f.service_broker_guids! : ['']));
  const page = await listPage(q, listOptions('service_offerings', params));
  const rows = await Promise.all(page.rows.map(async (offering) => ({ offering, schema: await schemaOrNull(ctx, timeoutMs, offering) })));
  return { rows, total: page.total };
}

export async function getPlanDefinitionSchema(ctx: Ctx, offeringGuid: string, timeoutMs: number): Promise<SchemaView> {
  assertRead(ctx);
  const offering = await offeringOrNotFound(ctx, offeringGuid);
  return { offering, schema: await schemaOrNull(ctx, timeoutMs, offering) };
}

// ---- definitions

function parseDefinition(plan: Row<'service_plans'>, json: unknown): DefinitionView {
  const body = isObject(json) ? json : {};
  return {
    plan,
    definition: isObject(body.definition) ? body.definition : null,
    createdAt: typeof body.created_at === 'string' ? body.created_at : null,
    resourceVersion: typeof body.resource_version === 'string' || typeof body.resource_version === 'number' ? String(body.resource_version) : null,
  };
}

export async function listPlanDefinitions(ctx: Ctx, params: ListParams, timeoutMs: number): Promise<Page<DefinitionView>> {
  assertRead(ctx);
  const f = params.filters;
  const offerings = (await ctx.store.db.selectFrom('service_offerings').selectAll().execute()).filter((o) => offeringSupports(o, 'plan_definitions'));
  const byGuid = new Map(offerings.map((o) => [o.guid, o]));
  let offeringGuids = offerings.map((o) => o.guid);
  if (f.service_offering_guids) offeringGuids = offeringGuids.filter((g) => f.service_offering_guids!.includes(g));
  const q = ctx.store.db
    .selectFrom('service_plans')
    .selectAll('service_plans')
    .where('service_plans.service_offering_guid', 'in', offeringGuids.length ? offeringGuids : [''])
    .$if(f.service_plan_guids !== undefined, (qb) => qb.where('service_plans.guid', 'in', f.service_plan_guids!.length ? f.service_plan_guids! : ['']));
  const page = await listPage(q, listOptions('service_plans', params));
  const contexts = new Map<string, OfferingContext>();
  for (const o of offerings) if (page.rows.some((p) => p.service_offering_guid === o.guid)) contexts.set(o.guid, await offeringContext(ctx.store, o));
  const rows = await Promise.all(
    page.rows.map(async (plan) => {
      const oc = contexts.get(plan.service_offering_guid)!;
      try {
        const res = await callBrokerNow(oc.conn, 'GET', definitionPath(byGuid.get(plan.service_offering_guid)!, plan.broker_catalog_id), timeoutMs, ctx.principal.guid, [200]);
        return parseDefinition(plan, res.json);
      } catch {
        // As for schemas: a plan whose broker fails is listed with a null definition rather than failing the list.
        return { plan, definition: null, createdAt: null, resourceVersion: null };
      }
    }),
  );
  return { rows, total: page.total };
}

export async function getPlanDefinition(ctx: Ctx, planGuid: string, timeoutMs: number): Promise<DefinitionView> {
  assertRead(ctx);
  const { plan, offering } = await planOrNotFound(ctx, planGuid);
  requireFeatureOf(offering, 'plan_definitions');
  const oc = await offeringContext(ctx.store, offering);
  const res = await callBrokerNow(oc.conn, 'GET', definitionPath(offering, plan.broker_catalog_id), timeoutMs, ctx.principal.guid, [200, 404]);
  if (res.status === 404) throw notFound('Service plan definition');
  return parseDefinition(plan, res.json);
}

function withoutReadOnly(definition: Record<string, unknown>): Record<string, unknown> {
  const copy = { ...definition };
  for (const k of READ_ONLY_DEFINITION_FIELDS) delete copy[k];
  return copy;
}

async function enqueueRequest(ctx: Ctx, action: 'create' | 'update' | 'delete', offering: Row<'service_offerings'>, planId: string, definition: Record<string, unknown>, target: { type: string; guid: string; name: string }): Promise<string> {
  return ctx.store.write(async (tx) => {
    const guid = newGuid();
    await tx.insert('service_plan_definition_requests', { guid, action, service_offering_guid: offering.guid, broker_plan_id: planId, definition: JSON.stringify(definition) });
    await recordAudit(tx, {
      type: action === 'create' ? 'audit.service_plan.create' : `audit.service_plan_definition.${action}`,
      actor: ctx.principal,
      target,
      data: { request: action === 'delete' ? {} : { definition } },
    });
    return enqueueJob(tx, { operation: action === 'create' ? 'service_plan.create' : `service_plan_definition.${action}`, resourceType: 'service_plan', resourceGuid: guid, userGuid: ctx.principal.guid });
  });
}

export async function createServicePlan(ctx: Ctx, input: CreateServicePlan, timeoutMs: number): Promise<{ jobGuid: string }> {
  assertWrite(ctx);
  const offering = await ctx.store.db.selectFrom('service_offerings').selectAll().where('guid', '=', input.relationships.service_offering.data.guid).executeTakeFirst();
  if (!offering) throw unprocessable('Invalid service offering. Ensure that the service offering exists.');
  requireFeatureOf(offering, 'plan_definitions');
  const mismatch = nameMismatch(input, input.definition);
  if (mismatch) throw unprocessable(mismatch);
  if (await nameInUse(ctx.store.db, 'service_plans', input.name, { within: { service_offering_guid: offering.guid } })) throw unprocessable(`The service offering '${offering.name}' already has a plan named '${input.name}'.`);
  const definition = withoutReadOnly(input.definition);
  const oc = await offeringContext(ctx.store, offering);
  assertMatchesSchema((await requiredSchema(ctx, timeoutMs, oc)).json_schema, definition);
  // The plan has no Kiln guid until the catalog sync makes it: the create is audited on its offering.
  return { jobGuid: await enqueueRequest(ctx, 'create', offering, newGuid(), definition, { type: 'service_offering', guid: offering.guid, name: offering.name }) };
}

export async function updatePlanDefinition(ctx: Ctx, planGuid: string, input: UpdatePlanDefinition, timeoutMs: number): Promise<{ jobGuid: string }> {
  assertWrite(ctx);
  const { plan, offering } = await planOrNotFound(ctx, planGuid);
  requireFeatureOf(offering, 'plan_definitions');
  const mismatch = nameMismatch(input, input.definition);
  if (mismatch) throw unprocessable(mismatch);
  const definition = withoutReadOnly(input.definition);
  const oc = await offeringContext(ctx.store, offering);
  assertMatchesSchema((await requiredSchema(ctx, timeoutMs, oc)).json_schema, definition);
  return { jobGuid: await enqueueRequest(ctx, 'update', offering, plan.broker_catalog_id, definition, { type: 'service_plan', guid: plan.guid, name: plan.name }) };
}

const hasInstances = async (store: Store, planGuid: string) =>
  (await store.db.selectFrom('service_instances').select('guid').where('service_plan_guid', '=', planGuid).executeTakeFirst()) !== undefined;

export async function deletePlanDefinition(ctx: Ctx, planGuid: string): Promise<{ jobGuid: string }> {
  assertWrite(ctx);
  const { plan, offering } = await planOrNotFound(ctx, planGuid);
  requireFeatureOf(offering, 'plan_definitions');
  if (await hasInstances(ctx.store, plan.guid)) throw unprocessable(`The service plan '${plan.name}' has service instances; delete them before its definition.`);
  return { jobGuid: await enqueueRequest(ctx, 'delete', offering, plan.broker_catalog_id, {}, { type: 'service_plan', guid: plan.guid, name: plan.name }) };
}

/** The three jobs: send the request to the broker, then resync its catalog and drop the request in one write. */
export function registerPlanDefinitionJobs(handlers: JobHandlers, store: Store, settings: BrokerSettings): void {
  const run = async (requestGuid: string, userGuid: string | null) => {
    const req = await store.db.selectFrom('service_plan_definition_requests').selectAll().where('guid', '=', requestGuid).executeTakeFirst();
    if (!req) return; // done before a crash: the request row goes in the transaction that syncs the catalog
    const offering = await store.db.selectFrom('service_offerings').selectAll().where('guid', '=', req.service_offering_guid).executeTakeFirst();
    if (!offering) throw notFound('Service offering');
    const broker = await store.db.selectFrom('service_brokers').selectAll().where('guid', '=', offering.service_broker_guid).executeTakeFirstOrThrow();
    const conn = connectionOf(store, broker);
    const path = definitionPath(offering, req.broker_plan_id);
    if (req.action === 'delete') {
      if (await hasInstances(store, (await store.db.selectFrom('service_plans').select('guid').where('service_offering_guid', '=', offering.guid).where('broker_catalog_id', '=', req.broker_plan_id).executeTakeFirst())?.guid ?? '')) {
        throw unprocessable('The service plan has service instances; delete them before its definition.');
      }
      const res = await callBrokerInJob(conn, 'DELETE', path, settings.timeoutMs, userGuid);
      if (res.status !== 200 && res.status !== 204 && res.status !== 410) throw jobFailure(res);
    } else {
      const res = await callBrokerInJob(conn, 'PUT', path, settings.timeoutMs, userGuid, { body: { definition: JSON.parse(req.definition) } });
      if (res.status !== 200 && res.status !== 201) throw jobFailure(res);
    }
    const services = await fetchCatalog(conn, settings, userGuid);
    await store.write(async (tx) => {
      const current = await tx.db.selectFrom('service_brokers').selectAll().where('guid', '=', broker.guid).executeTakeFirst();
      if (!current) throw new KilnError('ServiceBrokerGone');
      await upsertCatalog(tx, current, services);
      await tx.delete('service_plan_definition_requests', req.guid);
    });
  };
  // A failure that fails the job (a CF or broker error; not a crash, which the work queue retries) drops the
  // request too: nothing will send it again.
  const dropRequest = (guid: string) =>
    store.write(async (tx) => {
      await tx.delete('service_plan_definition_requests', guid);
    });
  for (const op of ['service_plan.create', 'service_plan_definition.update', 'service_plan_definition.delete']) {
    handlers.register(op, async ({ job }) => {
      try {
        await run(job.resource_guid, job.user_guid);
      } catch (err) {
        if (err instanceof KilnError || err instanceof JobError) await dropRequest(job.resource_guid);
        throw err;
      }
    });
  }
}
