import type { Context } from 'hono';
import { CreateDeploymentSchema, UpdateDeploymentSchema } from '../../domain/deployments.ts';
import * as deployments from '../../services/deployments.ts';
import { metadataOf, metadataOfMany } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { presentDeployment } from '../presenters/deployment.ts';

export function registerDeployments(app: Api, deps: AppDeps): void {
  const one = async (c: Context<Env>, d: Row<'deployments'>) => {
    const metadata = await metadataOf(deps, 'deployments', d.guid);
    const versions = await deployments.revisionVersions(deps, [d]);
    return presentDeployment(d, metadata, d.revision_guid ? versions.get(d.revision_guid) : undefined, c.var.linker);
  };

  app.get('/v3/deployments', async (c) => {
    const params = listParams(c, deployments.DEPLOYMENT_LIST);
    const page = await deployments.listDeployments(ctxOf(c, deps), params);
    const metadata = await metadataOfMany(deps, 'deployments', page.rows.map((d) => d.guid));
    const versions = await deployments.revisionVersions(deps, page.rows);
    return c.json({
      pagination: pagination(c.var.linker, c.req.path, params, page.total),
      resources: page.rows.map((d) => presentDeployment(d, metadata.get(d.guid), d.revision_guid ? versions.get(d.revision_guid) : undefined, c.get('linker'))),
    });
  });

  app.post('/v3/deployments', async (c) => {
    queryOf(c);
    const input = await readJson(c, CreateDeploymentSchema);
    const { deployment } = await deployments.createDeployment(ctxOf(c, deps), input);
    return c.json(await one(c, deployment), 201);
  });

  app.get('/v3/deployments/:guid', async (c) => {
    queryOf(c);
    const { deployment } = await deployments.findVisibleDeployment(ctxOf(c, deps), c.req.param('guid'));
    return c.json(await one(c, deployment));
  });

  app.patch('/v3/deployments/:guid', async (c) => {
    queryOf(c);
    const input = await readJson(c, UpdateDeploymentSchema);
    const { deployment } = await deployments.updateDeployment(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(await one(c, deployment));
  });

  // Upstream answers both actions with 200 and an empty body (CONVENTIONS.md §9).
  app.post('/v3/deployments/:guid/actions/cancel', async (c) => {
    queryOf(c);
    await deployments.cancelDeployment(ctxOf(c, deps), c.req.param('guid'));
    return c.body(null, 200);
  });

  app.post('/v3/deployments/:guid/actions/continue', async (c) => {
    queryOf(c);
    await deployments.continueDeployment(ctxOf(c, deps), c.req.param('guid'));
    return c.body(null, 200);
  });
}
