import { SERVICE_USAGE_EVENT_LIST } from '../../domain/services.ts';
import * as usage from '../../services/service-usage-events.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps } from '../context.ts';
import type { Linker } from '../cf/links.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { cfTime } from '../cf/timestamps.ts';

/** A service usage event in CC's shape (the related objects are `null` where the instance had none). */
function presentServiceUsageEvent(e: Row<'service_usage_events'>, l: Linker) {
  const named = (guid: string | null, name: string | null) => (guid ? { guid, name } : { guid: null, name: null });
  return {
    guid: e.guid,
    created_at: cfTime(e.created_at),
    updated_at: cfTime(e.created_at),
    state: e.state,
    space: { guid: e.space_guid, name: e.space_name },
    organization: { guid: e.organization_guid },
    service_instance: { guid: e.service_instance_guid, name: e.service_instance_name, type: e.service_instance_type },
    service_plan: named(e.service_plan_guid, e.service_plan_name),
    service_offering: named(e.service_offering_guid, e.service_offering_name),
    service_broker: named(e.service_broker_guid, e.service_broker_name),
    links: { self: l.link(`/v3/service_usage_events/${e.guid}`) },
  };
}

export function registerServiceUsageEvents(app: Api, deps: AppDeps): void {
  app.get('/v3/service_usage_events', async (c) => {
    const params = listParams(c, SERVICE_USAGE_EVENT_LIST);
    const page = await usage.listServiceUsageEvents(ctxOf(c, deps), params);
    const l = c.get('linker');
    return renderList(c, deps, page, params, (e) => presentServiceUsageEvent(e, l));
  });

  app.get('/v3/service_usage_events/:guid', async (c) => {
    queryOf(c);
    return c.json(presentServiceUsageEvent(await usage.getServiceUsageEvent(ctxOf(c, deps), c.req.param('guid')), c.get('linker')));
  });

  app.post('/v3/service_usage_events/actions/destructively_purge_all_and_reseed', async (c) => {
    await usage.purgeAndReseedServiceUsage(ctxOf(c, deps));
    return c.json({});
  });
}
