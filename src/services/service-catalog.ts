import { KilnError } from '../domain/errors.ts';
import type { Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { BrokerError, callBroker, statusText, unexpectedAnswer, type BrokerConnection } from './broker-client.ts';
import { JobError } from '../lifecycle/jobs.ts';

/** What Kiln needs to talk to brokers: the request timeout and the shortest poll interval. */
export interface BrokerSettings {
  timeoutMs: number;
  pollIntervalMs: number;
}

export const DEFAULT_BROKER_SETTINGS: BrokerSettings = { timeoutMs: 60_000, pollIntervalMs: 60_000 };

/** The broker's connection, its credentials decrypted for this call only. */
export function connectionOf(store: Store, broker: Pick<Row<'service_brokers'>, 'url' | 'auth_enc'>): BrokerConnection {
  const auth = store.secrets.openJson<{ username: string; password: string }>(broker.auth_enc)!;
  return { url: broker.url, username: auth.username, password: auth.password };
}

interface CatalogPlan {
  id: string;
  name: string;
  description: string;
  free: boolean;
  bindable: boolean | null;
  plan_updateable: boolean | null;
  maximum_polling_duration: number | null;
  maintenance_info: { version: string; description?: string } | null;
  schemas: unknown;
  metadata: Record<string, unknown>;
  costs: unknown[];
}

interface CatalogService {
  id: string;
  name: string;
  description: string;
  bindable: boolean;
  plan_updateable: boolean;
  instances_retrievable: boolean;
  bindings_retrievable: boolean;
  allow_context_updates: boolean;
  tags: string[];
  requires: string[];
  metadata: Record<string, unknown>;
  plans: CatalogPlan[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const ruby = (v: unknown) => (v === undefined || v === null ? 'nil' : typeof v === 'string' ? `"${v}"` : JSON.stringify(v));

/**
 * Validates a `/v2/catalog` answer as Cloud Controller's CatalogService/CatalogPlan models do and returns it
 * normalised, or throws ServiceBrokerCatalogInvalid with CC's nested message (`Service X\n  Plan Y\n    …`).
 */
export function validateCatalog(catalog: Record<string, unknown>): CatalogService[] {
  const top: string[] = [];
  const nested: string[] = [];
  const services = catalog.services;
  if (!Array.isArray(services) || services.length === 0) {
    throw new KilnError('ServiceBrokerCatalogInvalid', '\nService broker must provide at least one service\n');
  }
  const out: CatalogService[] = [];
  const serviceIds = new Set<string>();
  const serviceNames = new Set<string>();
  const planIds = new Set<string>();
  for (const raw of services) {
    const s = isObject(raw) ? raw : {};
    const errs: string[] = [];
    const planLines: string[] = [];
    if (typeof s.id !== 'string' || s.id === '') errs.push(`Service id must be a string, but has value ${ruby(s.id)}`);
    else if (serviceIds.has(s.id)) top.push('Service ids must be unique');
    else serviceIds.add(s.id);
    if (typeof s.name !== 'string' || s.name === '') errs.push(`Service name must be a string, but has value ${ruby(s.name)}`);
    else if (serviceNames.has(s.name)) top.push(`Service names must be unique within a broker. Duplicate names: ${s.name}`);
    else serviceNames.add(s.name);
    if (typeof s.description !== 'string') errs.push(`Service description must be a string, but has value ${ruby(s.description)}`);
    if (typeof s.bindable !== 'boolean') errs.push(`Service "bindable" field must be a boolean, but has value ${ruby(s.bindable)}`);
    if (s.tags !== undefined && (!Array.isArray(s.tags) || s.tags.some((t) => typeof t !== 'string'))) errs.push(`Service tags must be an array of strings, but has value ${ruby(s.tags)}`);
    if (s.requires !== undefined && (!Array.isArray(s.requires) || s.requires.some((t) => typeof t !== 'string'))) errs.push(`Service "requires" field must be an array of strings, but has value ${ruby(s.requires)}`);
    if (s.metadata !== undefined && !isObject(s.metadata)) errs.push(`Service metadata must be a hash, but has value ${ruby(s.metadata)}`);
    const plans: CatalogPlan[] = [];
    if (!Array.isArray(s.plans) || s.plans.length === 0) {
      errs.push('At least one plan is required');
    } else {
      const planNames = new Set<string>();
      for (const rawPlan of s.plans) {
        const p = isObject(rawPlan) ? rawPlan : {};
        const perrs: string[] = [];
        if (typeof p.id !== 'string' || p.id === '') perrs.push(`Plan id must be a string, but has value ${ruby(p.id)}`);
        else if (planIds.has(p.id)) top.push('Plan ids must be unique');
        else planIds.add(p.id);
        if (typeof p.name !== 'string' || p.name === '') perrs.push(`Plan name must be a string, but has value ${ruby(p.name)}`);
        else if (planNames.has(p.name)) errs.push(`Plan names must be unique within a service. Service ${String(s.name)} already has a plan named ${p.name}`);
        else planNames.add(p.name);
        if (typeof p.description !== 'string') perrs.push(`Plan description must be a string, but has value ${ruby(p.description)}`);
        if (p.free !== undefined && typeof p.free !== 'boolean') perrs.push(`Plan free must be a boolean, but has value ${ruby(p.free)}`);
        if (p.bindable !== undefined && typeof p.bindable !== 'boolean') perrs.push(`Plan bindable must be a boolean, but has value ${ruby(p.bindable)}`);
        if (p.maximum_polling_duration !== undefined && !Number.isInteger(p.maximum_polling_duration)) {
          perrs.push(`Maximum polling duration must be an integer, but has value ${ruby(p.maximum_polling_duration)}`);
        }
        const mi = p.maintenance_info;
        if (mi !== undefined && (!isObject(mi) || typeof mi.version !== 'string')) perrs.push('Maintenance info version must be a string');
        if (perrs.length > 0) planLines.push(`  Plan ${typeof p.name === 'string' ? p.name : ''}`, ...perrs.map((e) => `    ${e}`));
        plans.push({
          id: String(p.id),
          name: String(p.name),
          description: String(p.description ?? ''),
          free: p.free !== false,
          bindable: typeof p.bindable === 'boolean' ? p.bindable : null,
          plan_updateable: typeof p.plan_updateable === 'boolean' ? p.plan_updateable : null,
          maximum_polling_duration: typeof p.maximum_polling_duration === 'number' ? p.maximum_polling_duration : null,
          maintenance_info: isObject(mi) && typeof mi.version === 'string' ? { version: mi.version, ...(typeof mi.description === 'string' ? { description: mi.description } : {}) } : null,
          schemas: isObject(p.schemas) ? p.schemas : {},
          metadata: isObject(p.metadata) ? p.metadata : {},
          costs: isObject(p.metadata) && Array.isArray(p.metadata.costs) ? p.metadata.costs : [],
        });
      }
    }
    if (errs.length > 0 || planLines.length > 0) nested.push(`Service ${typeof s.name === 'string' ? s.name : ''}`, ...errs.map((e) => `  ${e}`), ...planLines);
    out.push({
      id: String(s.id),
      name: String(s.name),
      description: String(s.description ?? ''),
      bindable: s.bindable === true,
      plan_updateable: s.plan_updateable === true,
      instances_retrievable: s.instances_retrievable === true,
      bindings_retrievable: s.bindings_retrievable === true,
      allow_context_updates: s.allow_context_updates === true,
      tags: Array.isArray(s.tags) ? (s.tags as string[]) : [],
      requires: Array.isArray(s.requires) ? (s.requires as string[]) : [],
      metadata: isObject(s.metadata) ? s.metadata : {},
      plans,
    });
  }
  const lines = [...new Set(top), ...nested];
  if (lines.length > 0) throw new KilnError('ServiceBrokerCatalogInvalid', `\n${lines.join('\n')}\n`);
  return out;
}

/** GET /v2/catalog, with CC's errors for each way it can fail (as job errors). */
export async function fetchCatalog(conn: BrokerConnection, settings: BrokerSettings, userGuid: string | null): Promise<CatalogService[]> {
  let res;
  try {
    res = await callBroker(conn, 'GET', '/v2/catalog', { timeoutMs: settings.timeoutMs, userGuid });
  } catch (err) {
    if (err instanceof BrokerError) throw new JobError(err.title, err.detail, err.code);
    throw err;
  }
  if (res.status === 401) {
    const e = unexpectedAnswer(res);
    throw new JobError(e.title, e.detail);
  }
  if (res.status >= 400 && res.status < 500) throw new KilnError('ServiceBrokerRequestRejected', statusText(res.status));
  if (res.status !== 200) {
    const e = unexpectedAnswer(res);
    throw new JobError(e.title, e.detail);
  }
  if (!isObject(res.json)) throw new KilnError('ServiceBrokerRequestMalformed');
  return validateCatalog(res.json);
}

const flag = (b: boolean) => (b ? 1 : 0);

/**
 * Makes the broker's offerings and plans match its catalog in one transaction: new ones are inserted (plans
 * admin-only, or `space` for a space-scoped broker), known ones (by catalog id) updated, vanished plans deleted —
 * or, while instances use them, kept as unavailable (CC's "removed from the service broker's catalog").
 */
export async function upsertCatalog(tx: WriteTx, broker: Row<'service_brokers'>, services: CatalogService[]): Promise<void> {
  const existingOfferings = await tx.db.selectFrom('service_offerings').selectAll().where('service_broker_guid', '=', broker.guid).execute();
  const byId = new Map(existingOfferings.map((o) => [o.broker_catalog_id, o]));
  const keptOfferings = new Set<string>();
  for (const s of services) {
    const values = {
      name: s.name,
      description: s.description,
      available: 1,
      bindable: flag(s.bindable),
      plan_updateable: flag(s.plan_updateable),
      instances_retrievable: flag(s.instances_retrievable),
      bindings_retrievable: flag(s.bindings_retrievable),
      allow_context_updates: flag(s.allow_context_updates),
      shareable: flag(s.metadata.shareable === true),
      tags: JSON.stringify(s.tags),
      requires: JSON.stringify(s.requires),
      documentation_url: typeof s.metadata.documentationUrl === 'string' ? s.metadata.documentationUrl : null,
      catalog_metadata: JSON.stringify(s.metadata),
    };
    let offeringGuid: string;
    const current = byId.get(s.id);
    if (current) {
      offeringGuid = current.guid;
      await tx.update('service_offerings', current.guid, values, { expectedGeneration: current.generation });
    } else {
      offeringGuid = newGuid();
      await tx.insert('service_offerings', { guid: offeringGuid, service_broker_guid: broker.guid, broker_catalog_id: s.id, ...values });
    }
    keptOfferings.add(offeringGuid);
    const existingPlans = await tx.db.selectFrom('service_plans').selectAll().where('service_offering_guid', '=', offeringGuid).execute();
    const plansById = new Map(existingPlans.map((p) => [p.broker_catalog_id, p]));
    const keptPlans = new Set<string>();
    for (const p of s.plans) {
      const pv = {
        name: p.name,
        description: p.description,
        available: 1,
        free: flag(p.free),
        bindable: p.bindable === null ? null : flag(p.bindable),
        plan_updateable: p.plan_updateable === null ? null : flag(p.plan_updateable),
        maximum_polling_duration: p.maximum_polling_duration,
        maintenance_info: p.maintenance_info ? JSON.stringify(p.maintenance_info) : null,
        schemas: JSON.stringify(p.schemas),
        costs: JSON.stringify(p.costs),
        catalog_metadata: JSON.stringify(p.metadata),
      };
      const cur = plansById.get(p.id);
      if (cur) {
        keptPlans.add(cur.guid);
        await tx.update('service_plans', cur.guid, pv, { expectedGeneration: cur.generation });
      } else {
        const guid = newGuid();
        keptPlans.add(guid);
        await tx.insert('service_plans', {
          guid,
          service_offering_guid: offeringGuid,
          broker_catalog_id: p.id,
          visibility_type: broker.space_guid ? 'space' : 'admin',
          ...pv,
        });
      }
    }
    for (const old of existingPlans) if (!keptPlans.has(old.guid)) await retirePlan(tx, old);
  }
  for (const old of existingOfferings) {
    if (keptOfferings.has(old.guid)) continue;
    const plans = await tx.db.selectFrom('service_plans').selectAll().where('service_offering_guid', '=', old.guid).execute();
    for (const p of plans) await retirePlan(tx, p);
    const left = await tx.db.selectFrom('service_plans').select('guid').where('service_offering_guid', '=', old.guid).executeTakeFirst();
    if (left) await tx.update('service_offerings', old.guid, { available: 0 }, { expectedGeneration: old.generation });
    else await deleteOffering(tx, old.guid);
  }
}

async function retirePlan(tx: WriteTx, plan: Row<'service_plans'>): Promise<void> {
  const used = await tx.db.selectFrom('service_instances').select('guid').where('service_plan_guid', '=', plan.guid).executeTakeFirst();
  if (used) {
    if (plan.available) await tx.update('service_plans', plan.guid, { available: 0 }, { expectedGeneration: plan.generation });
    return;
  }
  await deletePlan(tx, plan.guid);
}

export async function deletePlan(tx: WriteTx, guid: string): Promise<void> {
  await tx.db.deleteFrom('service_plan_visibilities').where('service_plan_guid', '=', guid).execute();
  await tx.db.deleteFrom('labels').where('resource_type', '=', 'service_plans').where('resource_guid', '=', guid).execute();
  await tx.db.deleteFrom('annotations').where('resource_type', '=', 'service_plans').where('resource_guid', '=', guid).execute();
  await tx.delete('service_plans', guid);
}

export async function deleteOffering(tx: WriteTx, guid: string): Promise<void> {
  const plans = await tx.db.selectFrom('service_plans').select('guid').where('service_offering_guid', '=', guid).execute();
  for (const p of plans) await deletePlan(tx, p.guid);
  await tx.db.deleteFrom('labels').where('resource_type', '=', 'service_offerings').where('resource_guid', '=', guid).execute();
  await tx.db.deleteFrom('annotations').where('resource_type', '=', 'service_offerings').where('resource_guid', '=', guid).execute();
  await tx.delete('service_offerings', guid);
}
