import { Hono } from 'hono';
import type { Api, AppDeps, Env } from './context.ts';
import { handleError } from './cf/errors.ts';
import { ListCache } from './middleware/list-cache.ts';
import { authenticate } from './middleware/authenticate.ts';
import { requestContext } from './middleware/request-context.ts';
import { registerResources } from './resources/index.ts';
import { HttpMetrics } from '../observability/metrics.ts';

/** Builds the HTTP API: CF V3 resources, the identity provider's endpoints, health and metrics. */
export function createApi(deps: AppDeps): Api {
  const app = new Hono<Env>();
  const metrics = new HttpMetrics();

  app.use('*', requestContext(deps.log, metrics));
  app.onError(handleError);
  app.notFound((c) => c.json({ errors: [{ detail: 'Unknown request', title: 'CF-NotFound', code: 10000 }] }, 404));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      await deps.store.db.selectFrom('settings').select('key').limit(1).execute();
    } catch {
      return c.json({ status: 'database unavailable' }, 503);
    }
    const details = deps.isolation ? { isolation: deps.isolation } : {};
    if (deps.ready && !deps.ready()) return c.json({ status: 'starting', ...details }, 503);
    return c.json({ status: 'ok', ...details });
  });
  app.get('/metrics', async (c) => {
    c.header('Content-Type', metrics.registry.contentType);
    return c.body(await metrics.registry.metrics());
  });

  for (const routes of deps.rootRoutes ?? []) app.route('/', routes);

  app.use('/v3/*', authenticate(deps.store, deps.tokens));
  app.use('/v3', authenticate(deps.store, deps.tokens));
  if (deps.config.listCacheEntries > 0) app.use('/v3/*', new ListCache(deps.store.dataVersion, deps.config.listCacheEntries).middleware());
  registerResources(app, deps);
  return app;
}
