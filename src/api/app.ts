import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import type { Api, AppDeps, Env } from './context.ts';
import { handleError } from './cf/errors.ts';
import { KilnError } from '../domain/errors.ts';
import { ListCache } from './middleware/list-cache.ts';
import { authenticate } from './middleware/authenticate.ts';
import { requestBodyLimits } from './middleware/body-limit.ts';
import { rejectNulInUrl } from './middleware/reject-nul.ts';
import { requestContext } from './middleware/request-context.ts';
import { registerResources } from './resources/index.ts';
import { HttpMetrics } from '../observability/metrics.ts';
import { routeMatcher } from './route-matcher.ts';
import { consoleRoutes } from '../console/routes.ts';

/** Whether an Authorization header carries exactly this bearer token (compared in constant time). */
function bearerMatches(header: string | undefined, token: string): boolean {
  const sent = header?.match(/^bearer\s+(\S+)\s*$/i)?.[1];
  if (sent === undefined) return false;
  const a = createHash('sha256').update(sent).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}
import { KILN_API_PREFIX, registerConditions } from './kiln/conditions.ts';
import { registerGitSources } from './kiln/gitsources.ts';
import { TSURU_PREFIX, tsuruApi } from './tsuru/index.ts';

/** Builds the HTTP API: CF V3 resources, the identity provider's endpoints, health and metrics. */
export function createApi(deps: AppDeps): Api {
  const app = new Hono<Env>();
  const metrics = new HttpMetrics();

  app.use('*', requestContext(deps.log, metrics));
  app.use('*', requestBodyLimits({ jsonBytes: deps.config.maxJsonBytes }));
  app.use('*', rejectNulInUrl());
  app.onError(handleError);
  app.notFound((c) => c.json({ errors: [{ detail: 'Unknown request', title: 'CF-NotFound', code: 10000 }] }, 404));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      await deps.store.db.selectFrom('settings').select('key').limit(1).execute();
    } catch {
      return c.json({ status: 'database unavailable' }, 503);
    }
    const details = { ...(deps.isolation ? { isolation: deps.isolation } : {}), ...(deps.leadership ? await deps.leadership() : {}) };
    if (deps.ready && !deps.ready()) return c.json({ status: 'starting', ...details }, 503);
    return c.json({ status: 'ok', ...details });
  });
  app.get('/metrics', async (c) => {
    if (deps.config.metricsToken !== undefined && !bearerMatches(c.req.header('authorization'), deps.config.metricsToken)) {
      c.header('WWW-Authenticate', 'Bearer realm="kiln-metrics"');
      throw new KilnError('NotAuthenticated');
    }
    c.header('Content-Type', metrics.registry.contentType);
    const more = await Promise.all((deps.metrics ?? []).map((r) => r.metrics()));
    return c.body([await metrics.registry.metrics(), ...more].join('\n'));
  });

  for (const routes of deps.rootRoutes ?? []) app.route('/', routes);
  // The web console's page and files are public; everything it shows comes through the token-checked APIs below.
  app.route('/', consoleRoutes());

  // Cloud Controller matches routes before it authenticates: an unknown path is 404 even without a token.
  let routed: (method: string, path: string) => boolean = () => true;
  const auth = authenticate(deps.store, deps.tokens, (method, path) => routed(method, path));
  app.use('/v3/*', auth);
  app.use('/v3', auth);
  if (deps.config.listCacheEntries > 0) app.use('/v3/*', new ListCache(deps.store.dataVersion, deps.config.listCacheEntries).middleware());
  registerResources(app, deps);
  app.use(`${KILN_API_PREFIX}/*`, authenticate(deps.store, deps.tokens));
  registerConditions(app, deps);
  registerGitSources(app, deps);
  routed = routeMatcher(app.routes);
  // After the matcher is built: the Tsuru API answers every path under its prefix (501 where it has no translation).
  app.route(TSURU_PREFIX, tsuruApi(deps));
  return app;
}
