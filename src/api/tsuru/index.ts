import { Hono, type MiddlewareHandler } from 'hono';
import { methodAllowed, type Principal } from '../../domain/principal.ts';
import { Access } from '../../services/access.ts';
import type { AppDeps, Env } from '../context.ts';
import { userRecorder } from '../middleware/authenticate.ts';
import { registerTsuruApps } from './apps.ts';
import { registerTsuruCatalog } from './catalog.ts';
import { registerTsuruDeploy } from './deploy.ts';
import { registerTsuruLog } from './log.ts';
import { registerTsuruServices } from './services.ts';
import { notImplemented } from './unsupported.ts';
import { handleTsuruError, route, SUPPORTED_TSURU, TsuruError } from './wire.ts';

/** Where the Tsuru API is mounted; the CLI's target is `<kiln>/tsuru` (TSURU_TARGET). */
export const TSURU_PREFIX = '/tsuru';

/**
 * Tsuru's token rule (auth/token.go): the last word of a one- or two-word Authorization header, so `bearer T`,
 * `b T` and a bare `T` all work. An unknown or expired token leaves the caller anonymous and the handler
 * answers 401, as tsuru does; a valid one gets the same scope-by-method gate as the CF API.
 */
function tsuruAuth(deps: AppDeps): MiddlewareHandler<Env> {
  const remember = userRecorder(deps.store);
  return async (c, next) => {
    c.header('Supported-Tsuru', SUPPORTED_TSURU);
    const words = (c.req.header('authorization') ?? '').trim().split(/\s+/).filter((w) => w !== '');
    if (words.length === 1 || words.length === 2) {
      let principal: Principal | undefined;
      try {
        principal = await deps.tokens.verifyAccessToken(words[words.length - 1]!);
      } catch {
        principal = undefined;
      }
      if (principal) {
        if (!methodAllowed(principal, c.req.method)) throw new TsuruError(403, "You don't have permission to do this action");
        await remember(principal);
        const access = new Access(deps.store.db, principal);
        c.set('principal', principal);
        c.set('access', access);
        c.set('ctx', { store: deps.store, access, principal });
      }
    }
    return next();
  };
}

/**
 * The Tsuru API as a second front door (docs/tsuru.md): a stateless translator that owns no tables and calls
 * the services the CF API calls, with the caller's own permissions. Mounted at /tsuru by createApi.
 */
export function tsuruApi(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  app.onError(handleTsuruError);
  app.use('*', tsuruAuth(deps));

  route(app, 'get', '/', (c) => c.text('Kiln: the Tsuru API (core flows) translated onto Cloud Foundry V3; see docs/tsuru.md.\n'));
  route(app, 'get', '/info', (c) => c.json({ version: SUPPORTED_TSURU, kiln: true }));
  route(app, 'get', '/healthcheck', (c) => c.text('WORKING'));

  registerTsuruCatalog(app, deps);
  registerTsuruApps(app, deps);
  registerTsuruDeploy(app, deps);
  registerTsuruLog(app, deps);
  registerTsuruServices(app, deps);

  app.all('*', notImplemented);
  return app;
}
