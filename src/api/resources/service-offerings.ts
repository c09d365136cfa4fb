import type { Context } from 'hono';
import { z } from 'zod';
import { SERVICE_OFFERING_LIST, SERVICE_PLAN_LIST } from '../../domain/services.ts';
import type { ListParams } from '../../domain/list-params.ts';
import * as plans from '../../services/service-plans.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { pickFields, presentServiceOffering, presentServicePlan } from '../presenters/service-offering.ts';
import { presentServiceBroker } from '../presenters/service-broker.ts';

const AnyBody = z.record(z.string(), z.unknown());

export function registerServiceOfferings(app: Api, deps: AppDeps): void {
  /** `included` of a plan list: offerings for include=service_offering, brokers for fields[service_offering.service_broker]. */
  async function planIncluded(c: Context<Env>, rows: Array<Row<'service_plans'>>, params: ListParams) {
    const brokerFields = params.fields['service_offering.service_broker'];
    // Always read: a plan's `bindable`/`plan_updateable` fall back to its offering's.
    const offerings = await plans.offeringsByGuid(deps, rows.map((r) => r.service_offering_guid));
    if (!params.include.includes('service_offering') && !brokerFields) return { included: undefined, offerings: new Map(offerings.map((o) => [o.guid, o])) };
    const included: Record<string, unknown[]> = {};
    if (params.include.includes('service_offering')) {
      included.service_offerings = offerings.map((o) => presentServiceOffering(o, undefined, c.get('linker')));
    }
    if (brokerFields) {
      const brokers = await plans.brokersByGuid(deps, offerings.map((o) => o.service_broker_guid));
      included.service_brokers = brokers.map((b) => pickFields(presentServiceBroker(b, undefined, c.get('linker')), brokerFields));
    }
    return { included, offerings: new Map(offerings.map((o) => [o.guid, o])) };
  }

  app.get('/v3/service_offerings', async (c) => {
    const params = listParams(c, SERVICE_OFFERING_LIST);
    const page = await plans.listServiceOfferings(ctxOf(c, deps), params);
    let included: Record<string, unknown[]> | undefined;
    const brokerFields = params.fields.service_broker;
    if (brokerFields) {
      const brokers = await plans.brokersByGuid(deps, page.rows.map((o) => o.service_broker_guid));
      included = { service_brokers: brokers.map((b) => pickFields(presentServiceBroker(b, undefined, c.get('linker')), brokerFields)) };
    }
    return renderList(c, deps, page, params, (o, m) => presentServiceOffering(o, m, c.get('linker')), { resourceType: 'service_offerings', ...(included ? { included } : {}) });
  });

  app.get('/v3/service_offerings/:guid', async (c) => {
    const q = queryOf(c, ['fields[service_broker]']);
    const o = await plans.getServiceOffering(ctxOf(c, deps), c.req.param('guid'));
    const body = presentServiceOffering(o, await metadataOf(deps, 'service_offerings', o.guid), c.get('linker'));
    const brokerFields = q['fields[service_broker]']?.split(',');
    if (!brokerFields) return c.json(body);
    const brokers = await plans.brokersByGuid(deps, [o.service_broker_guid]);
    return c.json({ ...body, included: { service_brokers: brokers.map((b) => pickFields(presentServiceBroker(b, undefined, c.get('linker')), brokerFields)) } });
  });

  app.patch('/v3/service_offerings/:guid', async (c) => {
    const body = await readJson(c, AnyBody);
    const { offering, metadata } = await plans.updateServiceOffering(ctxOf(c, deps), c.req.param('guid'), body);
    return c.json(presentServiceOffering(offering, metadata, c.get('linker')));
  });

  app.delete('/v3/service_offerings/:guid', async (c) => {
    const { purge } = queryOf(c, ['purge']);
    await plans.deleteServiceOffering(ctxOf(c, deps), c.req.param('guid'), purge === 'true');
    return c.body(null, 204);
  });

  app.get('/v3/service_plans', async (c) => {
    const params = listParams(c, SERVICE_PLAN_LIST);
    const page = await plans.listServicePlans(ctxOf(c, deps), params);
    const { included, offerings } = await planIncluded(c, page.rows, params);
    // The marketplace asks for every plan at once: their labels are read in one pass over the type's rows.
    const metadata = await plans.planMetadata(deps, page.rows.map((p) => p.guid));
    const l = c.get('linker');
    return renderList(c, deps, page, params, (p) => presentServicePlan(p, metadata.get(p.guid), l, offerings.get(p.service_offering_guid)), included ? { included } : {});
  });

  app.get('/v3/service_plans/:guid', async (c) => {
    const q = queryOf(c, ['include', 'fields[service_offering.service_broker]']);
    const p = await plans.getServicePlan(ctxOf(c, deps), c.req.param('guid'));
    const [offering] = await plans.offeringsByGuid(deps, [p.service_offering_guid]);
    const body = presentServicePlan(p, await metadataOf(deps, 'service_plans', p.guid), c.get('linker'), offering);
    if (q.include === 'service_offering' && offering) return c.json({ ...body, included: { service_offerings: [presentServiceOffering(offering, undefined, c.get('linker'))] } });
    return c.json(body);
  });

  app.patch('/v3/service_plans/:guid', async (c) => {
    const body = await readJson(c, AnyBody);
    const { plan, metadata } = await plans.updateServicePlan(ctxOf(c, deps), c.req.param('guid'), body);
    const [offering] = await plans.offeringsByGuid(deps, [plan.service_offering_guid]);
    return c.json(presentServicePlan(plan, metadata, c.get('linker'), offering));
  });

  app.delete('/v3/service_plans/:guid', async (c) => {
    queryOf(c);
    await plans.deleteServicePlan(ctxOf(c, deps), c.req.param('guid'));
    return c.body(null, 204);
  });

  app.get('/v3/service_plans/:guid/visibility', async (c) => {
    queryOf(c);
    return c.json(await plans.getPlanVisibility(ctxOf(c, deps), c.req.param('guid')));
  });

  app.post('/v3/service_plans/:guid/visibility', async (c) => {
    const body = await readJson(c, AnyBody);
    return c.json(await plans.applyPlanVisibility(ctxOf(c, deps), c.req.param('guid'), body, false));
  });

  app.patch('/v3/service_plans/:guid/visibility', async (c) => {
    const body = await readJson(c, AnyBody);
    return c.json(await plans.applyPlanVisibility(ctxOf(c, deps), c.req.param('guid'), body, true));
  });

  app.delete('/v3/service_plans/:guid/visibility/:org_guid', async (c) => {
    await plans.removePlanVisibilityOrg(ctxOf(c, deps), c.req.param('guid'), c.req.param('org_guid'));
    return c.body(null, 204);
  });
}
