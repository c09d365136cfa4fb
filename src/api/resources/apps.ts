import type { Context } from 'hono';
import { CreateAppSchema, SetCurrentDropletSchema, UpdateAppFeatureSchema, UpdateAppSchema } from '../../domain/apps.ts';
import { UpdateEnvironmentVariableGroupSchema } from '../../domain/environment-variable-groups.ts';
import { parseListParams, type ListParams } from '../../domain/list-params.ts';
import * as apps from '../../services/apps.ts';
import { metadataOf, metadataOfMany } from '../../services/metadata-reads.ts';
import type { Page } from '../../store/list-query.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import {
  presentApp,
  presentAppFeature,
  presentCurrentDropletRelationship,
  presentEnvironmentVariables,
} from '../presenters/app.ts';
import { presentDroplet } from '../presenters/droplet.ts';
import { presentOrganization } from '../presenters/organization.ts';
import { presentSpace } from '../presenters/space.ts';

/** `included.spaces` / `included.organizations` for `include=space|space.organization|org`. */
async function included(c: Context<Env>, deps: AppDeps, rows: Array<Row<'apps'>>, include: string[]) {
  const parents = await apps.appParents(deps, rows, include);
  const out: Record<string, unknown[]> = {};
  if (parents.spaces) {
    const m = await metadataOfMany(deps, 'spaces', parents.spaces.map((s) => s.guid));
    out.spaces = parents.spaces.map((s) => presentSpace(s, m.get(s.guid), c.get('linker')));
  }
  if (parents.organizations) {
    const m = await metadataOfMany(deps, 'organizations', parents.organizations.map((o) => o.guid));
    out.organizations = parents.organizations.map((o) => presentOrganization(o, m.get(o.guid), c.get('linker')));
  }
  return out;
}

/** The `include` of a single-app GET, validated like the list's. */
function singleInclude(c: Context<Env>): string[] {
  const { include } = queryOf(c, ['include']);
  return parseListParams(new URLSearchParams(include === undefined ? {} : { include }), { include: apps.APP_INCLUDES }).include;
}

/** A page of apps with its `included` resources (also served by `GET /v3/stacks/:guid/apps`). */
export async function renderApps(c: Context<Env>, deps: AppDeps, params: ListParams, page: Page<Row<'apps'>>) {
  return renderList(c, deps, page, params, (a, m) => presentApp(a, m, c.get('linker')), {
    resourceType: 'apps',
    included: params.include.length > 0 ? await included(c, deps, page.rows, params.include) : undefined,
  });
}

export function registerApps(app: Api, deps: AppDeps): void {
  const presentOne = async (c: Context<Env>, row: Row<'apps'>) =>
    presentApp(row, await metadataOf(deps, 'apps', row.guid), c.var.linker);

  app.get('/v3/apps', async (c) => {
    const params = listParams(c, apps.APP_LIST);
    return renderApps(c, deps, params, await apps.listApps(ctxOf(c, deps), params));
  });

  app.post('/v3/apps', async (c) => {
    const input = await readJson(c, CreateAppSchema);
    const { app: row, metadata } = await apps.createApp(ctxOf(c, deps), input);
    return c.json(presentApp(row, metadata, c.var.linker), 201);
  });

  app.get('/v3/apps/:guid', async (c) => {
    const include = singleInclude(c);
    const row = await apps.getApp(ctxOf(c, deps), c.req.param('guid'));
    const body = await presentOne(c, row);
    if (include.length === 0) return c.json(body);
    return c.json({ ...body, included: await included(c, deps, [row], include) });
  });

  app.patch('/v3/apps/:guid', async (c) => {
    const input = await readJson(c, UpdateAppSchema);
    const { app: row, metadata } = await apps.updateApp(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentApp(row, metadata, c.var.linker));
  });

  app.delete('/v3/apps/:guid', async (c) => {
    queryOf(c);
    return acceptedJob(c, await apps.deleteApp(ctxOf(c, deps), c.req.param('guid')));
  });

  for (const [action, run] of [
    ['start', apps.startApp],
    ['stop', apps.stopApp],
    ['restart', apps.restartApp],
  ] as const) {
    app.post(`/v3/apps/:guid/actions/${action}`, async (c) => {
      queryOf(c);
      const row = await run(ctxOf(c, deps), c.req.param('guid'));
      return c.json(await presentOne(c, row));
    });
  }

  app.post('/v3/apps/:guid/actions/clear_buildpack_cache', async (c) => {
    queryOf(c);
    return acceptedJob(c, await apps.clearBuildpackCache(ctxOf(c, deps), c.req.param('guid')));
  });

  app.get('/v3/apps/:guid/droplets/current', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    const { scope, droplet } = await apps.getCurrentDroplet(ctx, c.req.param('guid'));
    const metadata = await metadataOf(deps, 'droplets', droplet.guid);
    const secrets = await ctx.access.canReadSpaceSecrets(scope.space.guid);
    return c.json(presentDroplet(droplet, metadata, secrets, c.var.linker));
  });

  app.get('/v3/apps/:guid/relationships/current_droplet', async (c) => {
    queryOf(c);
    const guid = c.req.param('guid');
    const dropletGuid = await apps.currentDropletGuid(ctxOf(c, deps), guid);
    return c.json(presentCurrentDropletRelationship(guid, dropletGuid, c.var.linker));
  });

  app.patch('/v3/apps/:guid/relationships/current_droplet', async (c) => {
    const input = await readJson(c, SetCurrentDropletSchema);
    const { app: row, droplet } = await apps.setCurrentDroplet(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentCurrentDropletRelationship(row.guid, droplet.guid, c.var.linker));
  });

  app.get('/v3/apps/:guid/env', async (c) => {
    queryOf(c);
    return c.json(await apps.getAppEnvironment(ctxOf(c, deps), c.req.param('guid'), c.var.linker.origin));
  });

  app.get('/v3/apps/:guid/environment_variables', async (c) => {
    queryOf(c);
    const { app: row, vars } = await apps.getEnvironmentVariables(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentEnvironmentVariables(row.guid, vars, c.var.linker));
  });

  app.patch('/v3/apps/:guid/environment_variables', async (c) => {
    const input = await readJson(c, UpdateEnvironmentVariableGroupSchema);
    const { app: row, vars } = await apps.updateEnvironmentVariables(ctxOf(c, deps), c.req.param('guid'), input.var);
    return c.json(presentEnvironmentVariables(row.guid, vars, c.var.linker));
  });

  app.get('/v3/apps/:guid/features', async (c) => {
    queryOf(c);
    const features = await apps.listAppFeatures(ctxOf(c, deps), c.req.param('guid'));
    // Upstream answers this fixed list with a one-page pagination block.
    const params = parseListParams(new URLSearchParams(), {});
    params.perPage = Math.max(1, features.length);
    return c.json({
      resources: features.map(presentAppFeature),
      pagination: pagination(c.var.linker, c.req.path, params, features.length),
    });
  });

  app.get('/v3/apps/:guid/features/:name', async (c) => {
    queryOf(c);
    return c.json(presentAppFeature(await apps.getAppFeature(ctxOf(c, deps), c.req.param('guid'), c.req.param('name'))));
  });

  app.patch('/v3/apps/:guid/features/:name', async (c) => {
    const input = await readJson(c, UpdateAppFeatureSchema);
    const feature = await apps.updateAppFeature(ctxOf(c, deps), c.req.param('guid'), c.req.param('name'), input);
    return c.json(presentAppFeature(feature));
  });

  app.get('/v3/apps/:guid/permissions', async (c) => {
    queryOf(c);
    return c.json(await apps.appPermissions(ctxOf(c, deps), c.req.param('guid')));
  });

  app.get('/v3/apps/:guid/ssh_enabled', async (c) => {
    queryOf(c);
    return c.json(await apps.appSshEnabled(ctxOf(c, deps), c.req.param('guid')));
  });
}
