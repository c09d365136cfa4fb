import { CreateOrganizationQuotaSchema, ToManyRelationshipSchema, UpdateOrganizationQuotaSchema } from '../../domain/quotas.ts';
import * as quotas from '../../services/organization-quotas.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import type { Ctx } from '../../services/context.ts';
import type { Linker } from '../cf/links.ts';
import { presentOrganizationQuota, presentQuotaRelationship } from '../presenters/quota.ts';

async function present(ctx: Ctx, quota: Row<'organization_quotas'>, l: Linker) {
  const orgs = await quotas.visibleOrganizationsOf(ctx, [quota.guid]);
  return presentOrganizationQuota(quota, orgs.get(quota.guid) ?? [], l);
}

export function registerOrganizationQuotas(app: Api, deps: AppDeps): void {
  app.get('/v3/organization_quotas', async (c) => {
    const params = listParams(c, quotas.ORG_QUOTA_LIST);
    const ctx = ctxOf(c, deps);
    const page = await quotas.listOrganizationQuotas(ctx, params);
    const orgs = await quotas.visibleOrganizationsOf(ctx, page.rows.map((q) => q.guid));
    return renderList(c, deps, page, params, (q) => presentOrganizationQuota(q, orgs.get(q.guid) ?? [], c.get('linker')));
  });

  app.post('/v3/organization_quotas', async (c) => {
    const ctx = ctxOf(c, deps);
    // Upstream refuses non-admins before it looks at the body.
    quotas.assertCanManageOrganizationQuotas(ctx);
    const input = await readJson(c, CreateOrganizationQuotaSchema);
    const quota = await quotas.createOrganizationQuota(ctx, input);
    return c.json(await present(ctx, quota, c.var.linker), 201);
  });

  app.get('/v3/organization_quotas/:guid', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    const quota = await quotas.getOrganizationQuota(ctx, c.req.param('guid'));
    return c.json(await present(ctx, quota, c.var.linker));
  });

  app.patch('/v3/organization_quotas/:guid', async (c) => {
    const ctx = ctxOf(c, deps);
    quotas.assertCanManageOrganizationQuotas(ctx);
    const input = await readJson(c, UpdateOrganizationQuotaSchema);
    const quota = await quotas.updateOrganizationQuota(ctx, c.req.param('guid'), input);
    return c.json(await present(ctx, quota, c.var.linker));
  });

  app.delete('/v3/organization_quotas/:guid', async (c) => {
    queryOf(c);
    const job = await quotas.deleteOrganizationQuota(ctxOf(c, deps), c.req.param('guid'));
    return acceptedJob(c, job);
  });

  app.post('/v3/organization_quotas/:guid/relationships/organizations', async (c) => {
    const ctx = ctxOf(c, deps);
    quotas.assertCanManageOrganizationQuotas(ctx);
    const { guids } = await readJson(c, ToManyRelationshipSchema);
    const guid = c.req.param('guid');
    const orgGuids = await quotas.applyOrganizationQuota(ctx, guid, guids);
    return c.json(presentQuotaRelationship(`/v3/organization_quotas/${guid}/relationships/organizations`, orgGuids, c.var.linker));
  });
}
