import type { Context } from 'hono';
import type { ListParams } from '../../domain/list-params.ts';
import { UpdateRevisionSchema } from '../../domain/revisions.ts';
import * as revisions from '../../services/revisions.ts';
import type { Page } from '../../store/list-query.ts';
import { metadataOf, metadataOfMany } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { presentRevision, presentRevisionEnvironmentVariables } from '../presenters/revision.ts';

export function registerRevisions(app: Api, deps: AppDeps): void {
  const one = async (c: Context<Env>, r: Row<'revisions'>) => {
    const metadata = await metadataOf(deps, 'revisions', r.guid);
    const deployable = await revisions.deployableDroplets(deps, [r]);
    return presentRevision(r, metadata, deployable.has(r.droplet_guid), c.var.linker);
  };
  const list = async (c: Context<Env>, page: Page<Row<'revisions'>>, params: ListParams) => {
    const metadata = await metadataOfMany(deps, 'revisions', page.rows.map((r) => r.guid));
    const deployable = await revisions.deployableDroplets(deps, page.rows);
    return c.json({
      pagination: pagination(c.var.linker, c.req.path, params, page.total),
      resources: page.rows.map((r) => presentRevision(r, metadata.get(r.guid), deployable.has(r.droplet_guid), c.get('linker'))),
    });
  };

  app.get('/v3/apps/:guid/revisions', async (c) => {
    const params = listParams(c, revisions.REVISION_LIST);
    return list(c, await revisions.listRevisions(ctxOf(c, deps), params, c.req.param('guid')), params);
  });

  app.get('/v3/apps/:guid/revisions/deployed', async (c) => {
    const params = listParams(c, revisions.DEPLOYED_REVISION_LIST);
    return list(c, await revisions.listDeployedRevisions(ctxOf(c, deps), params, c.req.param('guid')), params);
  });

  app.get('/v3/revisions/:guid', async (c) => {
    queryOf(c);
    return c.json(await one(c, (await revisions.findVisibleRevision(ctxOf(c, deps), c.req.param('guid'))).revision));
  });

  app.patch('/v3/revisions/:guid', async (c) => {
    queryOf(c);
    const input = await readJson(c, UpdateRevisionSchema);
    return c.json(await one(c, (await revisions.updateRevision(ctxOf(c, deps), c.req.param('guid'), input)).revision));
  });

  app.get('/v3/revisions/:guid/environment_variables', async (c) => {
    queryOf(c);
    const { revision, vars } = await revisions.getRevisionEnvironmentVariables(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentRevisionEnvironmentVariables(revision, vars, c.var.linker));
  });
}
