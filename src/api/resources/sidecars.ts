import type { Context } from 'hono';
import type { ListParams } from '../../domain/list-params.ts';
import { CreateSidecarSchema, UpdateSidecarSchema } from '../../domain/sidecars.ts';
import * as sidecars from '../../services/sidecars.ts';
import type { Page } from '../../store/list-query.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { presentSidecar } from '../presenters/sidecar.ts';

/**
 * Every Sidecars operation, including the two lists under apps and processes (the cf CLI reads
 * `GET /v3/processes/:guid/sidecars` for every process on push and `cf app`).
 */
export function registerSidecars(app: Api, deps: AppDeps): void {
  const list = (c: Context<Env>, page: Page<sidecars.SidecarView>, params: ListParams) =>
    c.json({
      pagination: pagination(c.var.linker, c.req.path, params, page.total),
      resources: page.rows.map((s) => presentSidecar(s, c.get('linker'))),
    });

  app.get('/v3/apps/:guid/sidecars', async (c) => {
    const params = listParams(c, sidecars.SIDECAR_LIST);
    return list(c, await sidecars.listAppSidecars(ctxOf(c, deps), params, c.req.param('guid')), params);
  });

  app.post('/v3/apps/:guid/sidecars', async (c) => {
    queryOf(c);
    const input = await readJson(c, CreateSidecarSchema);
    return c.json(presentSidecar(await sidecars.createSidecar(ctxOf(c, deps), c.req.param('guid'), input), c.var.linker), 201);
  });

  app.get('/v3/processes/:guid/sidecars', async (c) => {
    const params = listParams(c, sidecars.SIDECAR_LIST);
    return list(c, await sidecars.listProcessSidecars(ctxOf(c, deps), params, c.req.param('guid')), params);
  });

  app.get('/v3/sidecars/:guid', async (c) => {
    queryOf(c);
    return c.json(presentSidecar(await sidecars.getSidecar(ctxOf(c, deps), c.req.param('guid')), c.var.linker));
  });

  app.patch('/v3/sidecars/:guid', async (c) => {
    queryOf(c);
    const input = await readJson(c, UpdateSidecarSchema);
    return c.json(presentSidecar(await sidecars.updateSidecar(ctxOf(c, deps), c.req.param('guid'), input), c.var.linker));
  });

  app.delete('/v3/sidecars/:guid', async (c) => {
    queryOf(c);
    await sidecars.deleteSidecar(ctxOf(c, deps), c.req.param('guid'));
    return c.body(null, 204);
  });
}
