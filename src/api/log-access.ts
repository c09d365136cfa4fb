import { notFound } from '../domain/errors.ts';
import type { Principal } from '../domain/principal.ts';
import type { LogAccess } from '../logs/log-cache-api.ts';
import { Access } from '../services/access.ts';
import { readableApp } from '../services/app-scope.ts';
import type { Store } from '../store/store.ts';
import type { TokenVerifier } from './context.ts';

/** Log-cache reads need a token whose user may read the app (its space), as log-cache asks CC upstream. */
export function logAccess(store: Store, tokens: TokenVerifier): LogAccess {
  return {
    async authorize(c, sourceId) {
      // log-cache's cf_auth_middleware answers a missing or unreadable token with 404, as for an unknown source.
      const m = c.req.header('authorization')?.match(/^bearer\s+(\S+)\s*$/i);
      if (!m) throw notFound('App');
      let principal: Principal;
      try {
        principal = await tokens.verifyAccessToken(m[1]!);
      } catch {
        throw notFound('App');
      }
      if (!(await readableApp({ store, principal, access: new Access(store.db, principal) }, sourceId))) throw notFound('App');
    },
  };
}
