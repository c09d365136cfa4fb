import { CreateOrganizationSchema, UpdateOrganizationSchema } from '../../domain/organizations.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import * as orgs from '../../services/organizations.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentOrganization } from '../presenters/organization.ts';

export function registerOrganizations(app: Api, deps: AppDeps): void {
  app.get('/v3/organizations', async (c) => {
    const params = listParams(c, orgs.ORG_LIST);
    const page = await orgs.listOrganizations(ctxOf(c, deps), params);
    // c.var rebuilds an object on every access, so the linker is read once, not once per row.
    const linker = c.get('linker');
    return renderList(c, deps, page, params, (o, m) => presentOrganization(o, m, linker), {
      resourceType: 'organizations',
    });
  });

  app.post('/v3/organizations', async (c) => {
    const input = await readJson(c, CreateOrganizationSchema);
    const { org, metadata } = await orgs.createOrganization(ctxOf(c, deps), input);
    return c.json(presentOrganization(org, metadata, c.var.linker), 201);
  });

  app.get('/v3/organizations/:guid', async (c) => {
    queryOf(c);
    const org = await orgs.getOrganization(ctxOf(c, deps), c.req.param('guid'));
    const metadata = await metadataOf(deps, 'organizations', org.guid);
    return c.json(presentOrganization(org, metadata, c.var.linker));
  });

  app.patch('/v3/organizations/:guid', async (c) => {
    const input = await readJson(c, UpdateOrganizationSchema);
    const { org, metadata } = await orgs.updateOrganization(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentOrganization(org, metadata, c.var.linker));
  });

  app.delete('/v3/organizations/:guid', async (c) => {
    const job = await orgs.deleteOrganization(ctxOf(c, deps), c.req.param('guid'));
    return acceptedJob(c, job);
  });
}
