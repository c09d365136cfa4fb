import type { Context } from 'hono';
import { z } from 'zod';
import type { ListParams } from '../../domain/list-params.ts';
import { SERVICE_INSTANCE_LIST } from '../../domain/services.ts';
import * as instances from '../../services/service-instances.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentOrganization } from '../presenters/organization.ts';
import { presentServiceBroker } from '../presenters/service-broker.ts';
import { presentServiceInstance } from '../presenters/service-instance.ts';
import { pickFields, presentServiceOffering, presentServicePlan } from '../presenters/service-offering.ts';
import { presentSpace } from '../presenters/space.ts';
import { presentToMany } from '../presenters/isolation-segment.ts';

const AnyBody = z.record(z.string(), z.unknown());

/** The `fields[...]` of one instance GET (the cf CLI's `service` command sends them). */
const SINGLE_FIELDS = Object.keys(SERVICE_INSTANCE_LIST.fields!).map((k) => `fields[${k}]`);

export function registerServiceInstances(app: Api, deps: AppDeps): void {
  const timeoutMs = deps.config.brokerTimeoutSeconds * 1000;

  /** `included` for `fields[space…]` and `fields[service_plan…]`: each related resource reduced to the asked fields. */
  async function included(c: Context<Env>, rows: Array<Row<'service_instances'>>, fields: ListParams['fields']) {
    const out: Record<string, unknown[]> = {};
    const l = c.get('linker');
    const wantBrokers = fields['service_plan.service_offering.service_broker'] !== undefined;
    const { plans: planRows, offerings, brokers } = await instances.plansOfInstances(deps, rows, wantBrokers);
    if (fields.service_plan) out.service_plans = planRows.map((p) => pickFields(presentServicePlan(p, undefined, l), fields.service_plan!));
    if (fields['service_plan.service_offering']) out.service_offerings = offerings.map((o) => pickFields(presentServiceOffering(o, undefined, l), fields['service_plan.service_offering']!));
    if (wantBrokers) {
      out.service_brokers = brokers.map((b) => pickFields(presentServiceBroker(b, undefined, l), fields['service_plan.service_offering.service_broker']!));
    }
    if (fields.space || fields['space.organization']) {
      const spaceGuids = [...new Set(rows.map((r) => r.space_guid))];
      const { spaces, organizations: orgs } = await instances.spacesWithOrganizations(deps, spaceGuids, fields['space.organization'] !== undefined);
      if (fields.space) out.spaces = spaces.map((s) => pickFields(presentSpace(s, undefined, l), fields.space!));
      if (fields['space.organization']) {
        out.organizations = orgs.map((o) => pickFields(presentOrganization(o, undefined, l), fields['space.organization']!));
      }
    }
    return out;
  }

  app.get('/v3/service_instances', async (c) => {
    const params = listParams(c, SERVICE_INSTANCE_LIST);
    const page = await instances.listServiceInstances(ctxOf(c, deps), params);
    const inc = Object.keys(params.fields).length > 0 ? await included(c, page.rows, params.fields) : undefined;
    const mi = await instances.planMaintenanceOf(deps, page.rows);
    return renderList(c, deps, page, params, (i, m) => presentServiceInstance(i, m, c.get('linker'), i.service_plan_guid ? mi.get(i.service_plan_guid) : null), {
      resourceType: 'service_instances',
      ...(inc ? { included: inc } : {}),
    });
  });

  app.post('/v3/service_instances', async (c) => {
    const body = await readJson(c, AnyBody);
    const r = await instances.createServiceInstance(ctxOf(c, deps), body);
    if ('jobGuid' in r && r.jobGuid) return acceptedJob(c, r.jobGuid);
    if (!('instance' in r)) throw new Error('unreachable');
    return c.json(presentServiceInstance(r.instance, r.metadata, c.get('linker')), 201);
  });

  app.get('/v3/service_instances/:guid', async (c) => {
    const q = queryOf(c, SINGLE_FIELDS);
    const i = await instances.getServiceInstance(ctxOf(c, deps), c.req.param('guid'));
    const mi = await instances.planMaintenanceOf(deps, [i]);
    const body = presentServiceInstance(i, await metadataOf(deps, 'service_instances', i.guid), c.get('linker'), i.service_plan_guid ? mi.get(i.service_plan_guid) : null);
    const fields: ListParams['fields'] = {};
    for (const [k, v] of Object.entries(q)) fields[k.slice('fields['.length, -1)] = v.split(',');
    if (Object.keys(fields).length === 0) return c.json(body);
    return c.json({ ...body, included: await included(c, [i], fields) });
  });

  app.patch('/v3/service_instances/:guid', async (c) => {
    const body = await readJson(c, AnyBody);
    const r = await instances.updateServiceInstance(ctxOf(c, deps), c.req.param('guid'), body);
    if ('jobGuid' in r && r.jobGuid) return acceptedJob(c, r.jobGuid);
    if (!('instance' in r)) throw new Error('unreachable');
    return c.json(presentServiceInstance(r.instance, r.metadata, c.get('linker')));
  });

  app.delete('/v3/service_instances/:guid', async (c) => {
    const { purge } = queryOf(c, ['purge']);
    const r = await instances.deleteServiceInstance(ctxOf(c, deps), c.req.param('guid'), purge === 'true');
    if (r.jobGuid) return acceptedJob(c, r.jobGuid);
    return c.body(null, 204);
  });

  app.get('/v3/service_instances/:guid/credentials', async (c) => {
    queryOf(c);
    return c.json(await instances.instanceCredentials(ctxOf(c, deps), c.req.param('guid')));
  });

  app.get('/v3/service_instances/:guid/parameters', async (c) => {
    queryOf(c);
    return c.json(await instances.instanceParameters(ctxOf(c, deps), c.req.param('guid'), timeoutMs) as object);
  });

  app.get('/v3/service_instances/:guid/permissions', async (c) => {
    queryOf(c);
    return c.json(await instances.instancePermissions(ctxOf(c, deps), c.req.param('guid')));
  });

  app.get('/v3/service_instances/:guid/relationships/shared_spaces', async (c) => {
    const q = queryOf(c, ['fields[space]', 'fields[space.organization]']);
    const { instance, guids } = await instances.sharedSpaceGuids(ctxOf(c, deps), c.req.param('guid'));
    const doc = presentToMany(`service_instances/${instance.guid}`, 'shared_spaces', guids, c.get('linker'), false);
    if (!q['fields[space]'] && !q['fields[space.organization]']) return c.json(doc);
    const { spaces, organizations: orgs } = await instances.spacesWithOrganizations(deps, guids, Boolean(q['fields[space.organization]']));
    const inc: Record<string, unknown[]> = {};
    if (q['fields[space]']) inc.spaces = spaces.map((s) => pickFields(presentSpace(s, undefined, c.get('linker')), q['fields[space]']!.split(',')));
    if (q['fields[space.organization]']) {
      inc.organizations = orgs.map((o) => pickFields(presentOrganization(o, undefined, c.get('linker')), q['fields[space.organization]']!.split(',')));
    }
    return c.json({ ...doc, included: inc });
  });

  app.post('/v3/service_instances/:guid/relationships/shared_spaces', async (c) => {
    const body = await readJson(c, AnyBody);
    const { instance, guids } = await instances.shareServiceInstance(ctxOf(c, deps), c.req.param('guid'), body);
    return c.json(presentToMany(`service_instances/${instance.guid}`, 'shared_spaces', guids, c.get('linker'), false));
  });

  app.delete('/v3/service_instances/:guid/relationships/shared_spaces/:space_guid', async (c) => {
    await instances.unshareServiceInstance(ctxOf(c, deps), c.req.param('guid'), c.req.param('space_guid'));
    return c.body(null, 204);
  });

  app.get('/v3/service_instances/:guid/relationships/shared_spaces/usage_summary', async (c) => {
    queryOf(c);
    const guid = c.req.param('guid');
    const usage = await instances.sharedUsageSummary(ctxOf(c, deps), guid);
    return c.json({
      usage_summary: usage,
      links: {
        self: c.get('linker').link(`/v3/service_instances/${guid}/relationships/shared_spaces/usage_summary`),
        shared_spaces: c.get('linker').link(`/v3/service_instances/${guid}/relationships/shared_spaces`),
        service_instance: c.get('linker').link(`/v3/service_instances/${guid}`),
      },
    });
  });
}
