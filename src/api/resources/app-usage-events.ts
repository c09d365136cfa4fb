import { APP_USAGE_EVENT_LIST } from '../../domain/services.ts';
import * as usage from '../../services/app-usage-events.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps } from '../context.ts';
import type { Linker } from '../cf/links.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { cfTime } from '../cf/timestamps.ts';

/** An app usage event in CC's shape: `task` is null for process events, `process` (and buildpack) for task events. */
function presentAppUsageEvent(e: Row<'app_usage_events'>, l: Linker) {
  return {
    guid: e.guid,
    created_at: cfTime(e.created_at),
    updated_at: cfTime(e.created_at),
    state: { current: e.state, previous: e.previous_state },
    app: { guid: e.app_guid, name: e.app_name },
    process: e.task_guid ? { guid: null, type: null } : { guid: e.process_guid, type: e.process_type },
    space: { guid: e.space_guid, name: e.space_name },
    organization: { guid: e.organization_guid },
    buildpack: { guid: e.buildpack_guid, name: e.buildpack_name },
    task: { guid: e.task_guid, name: e.task_name },
    memory_in_mb_per_instance: { current: e.memory_in_mb_per_instance, previous: e.previous_memory_in_mb_per_instance },
    instance_count: { current: e.instance_count, previous: e.previous_instance_count },
    links: { self: l.link(`/v3/app_usage_events/${e.guid}`) },
  };
}

export function registerAppUsageEvents(app: Api, deps: AppDeps): void {
  app.get('/v3/app_usage_events', async (c) => {
    const params = listParams(c, APP_USAGE_EVENT_LIST);
    const page = await usage.listAppUsageEvents(ctxOf(c, deps), params);
    const l = c.get('linker');
    return renderList(c, deps, page, params, (e) => presentAppUsageEvent(e, l));
  });

  app.get('/v3/app_usage_events/:guid', async (c) => {
    queryOf(c);
    return c.json(presentAppUsageEvent(await usage.getAppUsageEvent(ctxOf(c, deps), c.req.param('guid')), c.get('linker')));
  });

  app.post('/v3/app_usage_events/actions/destructively_purge_all_and_reseed', async (c) => {
    await usage.purgeAndReseedAppUsage(ctxOf(c, deps));
    return c.json({});
  });
}
