import { parseFeatureFlagListParams, UpdateFeatureFlagSchema } from '../../domain/feature-flags.ts';
import * as flags from '../../services/feature-flags.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentFeatureFlag } from '../presenters/feature-flag.ts';

export function registerFeatureFlags(app: Api, deps: AppDeps): void {
  app.get('/v3/feature_flags', async (c) => {
    const params = parseFeatureFlagListParams(new URL(c.req.url).searchParams);
    const page = await flags.listFeatureFlags(ctxOf(c, deps), params);
    return c.json({
      pagination: pagination(c.var.linker, c.req.path, params, page.total),
      resources: page.rows.map((f) => presentFeatureFlag(f, c.get('linker'))),
    });
  });

  app.get('/v3/feature_flags/:name', async (c) => {
    queryOf(c);
    const flag = await flags.showFeatureFlag(ctxOf(c, deps), c.req.param('name'));
    return c.json(presentFeatureFlag(flag, c.var.linker));
  });

  app.patch('/v3/feature_flags/:name', async (c) => {
    const ctx = ctxOf(c, deps);
    flags.authorizeFeatureFlagUpdate(ctx, c.req.param('name'));
    const input = await readJson(c, UpdateFeatureFlagSchema);
    const flag = await flags.updateFeatureFlag(ctx, c.req.param('name'), input);
    return c.json(presentFeatureFlag(flag, c.var.linker));
  });
}
