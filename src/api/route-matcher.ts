import type { RouterRoute } from 'hono/types';
import { TrieRouter } from 'hono/router/trie-router';

/**
 * Whether a method and path reach a handler among `routes` (Hono's `app.routes`). Middleware is registered with
 * method ALL and is left out, so a path only middleware matches counts as unknown.
 */
export function routeMatcher(routes: readonly RouterRoute[]): (method: string, path: string) => boolean {
  const router = new TrieRouter<true>();
  for (const r of routes) if (r.method !== 'ALL') router.add(r.method, r.path, true);
  return (method, path) => {
    const m = method === 'HEAD' ? 'GET' : method;
    return router.match(m, path)[0].length > 0;
  };
}
