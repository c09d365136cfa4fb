import { CreateSpaceQuotaSchema, ToManyRelationshipSchema, UpdateSpaceQuotaSchema } from '../../domain/quotas.ts';
import type { Ctx } from '../../services/context.ts';
import * as quotas from '../../services/space-quotas.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import type { Linker } from '../cf/links.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentQuotaRelationship, presentSpaceQuota } from '../presenters/quota.ts';

async function present(ctx: Ctx, quota: Row<'space_quotas'>, l: Linker) {
  const spaces = await quotas.visibleSpacesOf(ctx, [quota.guid]);
  return presentSpaceQuota(quota, spaces.get(quota.guid) ?? [], l);
}

export function registerSpaceQuotas(app: Api, deps: AppDeps): void {
  app.get('/v3/space_quotas', async (c) => {
    const params = listParams(c, quotas.SPACE_QUOTA_LIST);
    const ctx = ctxOf(c, deps);
    const page = await quotas.listSpaceQuotas(ctx, params);
    const spaces = await quotas.visibleSpacesOf(ctx, page.rows.map((q) => q.guid));
    return renderList(c, deps, page, params, (q) => presentSpaceQuota(q, spaces.get(q.guid) ?? [], c.get('linker')));
  });

  app.post('/v3/space_quotas', async (c) => {
    const ctx = ctxOf(c, deps);
    const input = await readJson(c, CreateSpaceQuotaSchema);
    const quota = await quotas.createSpaceQuota(ctx, input);
    return c.json(await present(ctx, quota, c.var.linker), 201);
  });

  app.get('/v3/space_quotas/:guid', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    const quota = await quotas.getSpaceQuota(ctx, c.req.param('guid'));
    return c.json(await present(ctx, quota, c.var.linker));
  });

  // Upstream finds and authorizes the quota before it validates the body of these writes.
  app.patch('/v3/space_quotas/:guid', async (c) => {
    const ctx = ctxOf(c, deps);
    await quotas.findWritableSpaceQuota(ctx, c.req.param('guid'));
    const input = await readJson(c, UpdateSpaceQuotaSchema);
    const quota = await quotas.updateSpaceQuota(ctx, c.req.param('guid'), input);
    return c.json(await present(ctx, quota, c.var.linker));
  });

  app.delete('/v3/space_quotas/:guid', async (c) => {
    queryOf(c);
    const job = await quotas.deleteSpaceQuota(ctxOf(c, deps), c.req.param('guid'));
    return acceptedJob(c, job);
  });

  app.post('/v3/space_quotas/:guid/relationships/spaces', async (c) => {
    const ctx = ctxOf(c, deps);
    const guid = c.req.param('guid');
    await quotas.findWritableSpaceQuota(ctx, guid);
    const { guids } = await readJson(c, ToManyRelationshipSchema);
    const spaceGuids = await quotas.applySpaceQuota(ctx, guid, guids);
    return c.json(presentQuotaRelationship(`/v3/space_quotas/${guid}/relationships/spaces`, spaceGuids, c.var.linker));
  });

  app.delete('/v3/space_quotas/:guid/relationships/spaces/:space_guid', async (c) => {
    queryOf(c);
    await quotas.removeSpaceQuota(ctxOf(c, deps), c.req.param('guid'), c.req.param('space_guid'));
    return c.body(null, 204);
  });
}
