import type { MiddlewareHandler } from 'hono';
import { KilnError, notAuthorized } from '../../domain/errors.ts';
import { methodAllowed, type Principal } from '../../domain/principal.ts';
import { Access } from '../../services/access.ts';
import type { Store } from '../../store/store.ts';
import type { Env, TokenVerifier } from '../context.ts';

/** Endpoints anyone may call without a token (CONVENTIONS.md §12). */
const PUBLIC = new Set(['/v3', '/v3/', '/v3/info', '/v3/kiln-openapi.json']);

/**
 * The marketplace reads: without a token they answer as an anonymous caller, who sees public plans only — unless
 * the feature flag hide_marketplace_from_unauthenticated_users is on (research/services.md §1).
 */
const MARKETPLACE = /^\/v3\/service_(offerings|plans)(\/[^/]+)?\/?$/;
const ANONYMOUS: Principal = { guid: '', username: null, origin: null, email: null, isClient: false, scopes: new Set() };

/**
 * Verifies the bearer token, applies the scope-by-method gate and makes the caller's Access available.
 * A token sent to a public endpoint is still honoured, but a bad one there is ignored.
 */
export function authenticate(
  store: Store,
  tokens: TokenVerifier,
  routed: (method: string, path: string) => boolean = () => true,
): MiddlewareHandler<Env> {
  const remember = userRecorder(store);

  return async (c, next) => {
    const isPublic = c.req.method === 'GET' && PUBLIC.has(c.req.path);
    const header = c.req.header('authorization');
    const match = header?.match(/^bearer\s+(\S+)\s*$/i);
    if (!match) {
      // Unknown paths fall through to the 404 handler before any token is asked for, as upstream routes first.
      if (isPublic || !routed(c.req.method, c.req.path)) return next();
      if (c.req.method === 'GET' && MARKETPLACE.test(c.req.path)) {
        const hidden = await store.db.selectFrom('feature_flags').select('enabled').where('name', '=', 'hide_marketplace_from_unauthenticated_users').executeTakeFirst();
        if (!hidden?.enabled) {
          const access = new Access(store.db, ANONYMOUS);
          c.set('principal', ANONYMOUS);
          c.set('access', access);
          c.set('ctx', { store, access, principal: ANONYMOUS });
          return next();
        }
      }
      throw new KilnError('NotAuthenticated');
    }
    let principal: Principal;
    try {
      principal = await tokens.verifyAccessToken(match[1]!);
    } catch (err) {
      if (isPublic || !routed(c.req.method, c.req.path)) return next();
      throw err instanceof KilnError ? err : new KilnError('InvalidAuthToken');
    }
    if (!isPublic && !methodAllowed(principal, c.req.method)) throw notAuthorized();
    await remember(principal);
    const access = new Access(store.db, principal);
    c.set('principal', principal);
    c.set('access', access);
    c.set('ctx', { store, access, principal });
    return next();
  };
}

/**
 * Records a token's user in Cloud Controller's users table on first sight (as CC does with a token's user_id or
 * client_id); shared by every front door that accepts Kiln tokens.
 */
export function userRecorder(store: Store): (p: Principal) => Promise<void> {
  const known = new Set<string>();
  return async (p: Principal) => {
    if (known.has(p.guid)) return;
    // Cloud Controller creates its user record on first sight of a token's user_id (or client_id).
    await store.write(async (tx) => {
      const existing = await tx.db.selectFrom('users').select('guid').where('guid', '=', p.guid).executeTakeFirst();
      if (existing) return;
      await tx.insertIfAbsent('users', { guid: p.guid, username: p.username, origin: p.origin });
    });
    if (known.size > 100_000) known.clear();
    known.add(p.guid);
  };
}
