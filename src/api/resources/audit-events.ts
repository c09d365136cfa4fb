import * as events from '../../services/audit-events.ts';
import type { Api, AppDeps } from '../context.ts';
import { queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentAuditEvent } from '../presenters/audit-event.ts';

export function registerAuditEvents(app: Api, deps: AppDeps): void {
  app.get('/v3/audit_events', async (c) => {
    const params = events.parseAuditEventListParams(new URL(c.req.url).searchParams);
    const page = await events.listAuditEvents(ctxOf(c, deps), params);
    return renderList(c, deps, page, params, (e) => presentAuditEvent(e, c.get('linker')));
  });

  app.get('/v3/audit_events/:guid', async (c) => {
    queryOf(c);
    const event = await events.getAuditEvent(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentAuditEvent(event, c.var.linker));
  });
}
