import { CreateBuildSchema, UpdateBuildSchema } from '../../domain/builds.ts';
import * as builds from '../../services/builds.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentBuild } from '../presenters/build.ts';

export function registerBuilds(app: Api, deps: AppDeps): void {
  app.get('/v3/builds', async (c) => {
    const params = listParams(c, builds.BUILD_LIST);
    const page = await builds.listBuilds(ctxOf(c, deps), params);
    return renderList(c, deps, page, params, (b, m) => presentBuild(b, m, c.get('linker')), { resourceType: 'builds' });
  });

  app.get('/v3/apps/:guid/builds', async (c) => {
    const params = listParams(c, builds.APP_BUILD_LIST);
    const page = await builds.listBuilds(ctxOf(c, deps), params, { appGuid: c.req.param('guid') });
    return renderList(c, deps, page, params, (b, m) => presentBuild(b, m, c.get('linker')), { resourceType: 'builds' });
  });

  app.post('/v3/builds', async (c) => {
    const input = await readJson(c, CreateBuildSchema);
    const { build, metadata } = await builds.createBuild(ctxOf(c, deps), input);
    return c.json(presentBuild(build, metadata, c.var.linker), 201);
  });

  app.get('/v3/builds/:guid', async (c) => {
    queryOf(c);
    const { build } = await builds.findVisibleBuild(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentBuild(build, await metadataOf(deps, 'builds', build.guid), c.var.linker));
  });

  app.patch('/v3/builds/:guid', async (c) => {
    const input = await readJson(c, UpdateBuildSchema);
    const { build, metadata } = await builds.updateBuild(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentBuild(build, metadata, c.var.linker));
  });
}
