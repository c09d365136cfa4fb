import { Hono, type Context } from 'hono';
import { CONSOLE_PREFIX, consoleAssets, type ConsoleAssets } from './assets.ts';

/**
 * `/console`: the web console's page and static files. Nothing here needs a token: the files are the same public
 * code for everyone, and the console reads and changes data only through the CF V3 API, the identity provider's
 * token endpoint and the log-cache API, each with the user's own bearer token and its own checks.
 *
 * The page is answered at `/console` and `/console/` (the console routes with `#/…` fragments, so no other path
 * is a page); a name that is not in the asset table is a plain 404.
 */
export function consoleRoutes(load: () => ConsoleAssets = consoleAssets): Hono {
  const app = new Hono();
  const serve = (c: Context, key: string) => {
    const { files, csp } = load();
    const file = files.get(key);
    if (!file) return c.text('Not found', 404, { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
    const headers: Record<string, string> = {
      'Content-Type': file.contentType,
      'Cache-Control': file.cacheControl,
      ETag: file.etag,
      'X-Content-Type-Options': 'nosniff',
    };
    if (key === '') {
      Object.assign(headers, { 'Content-Security-Policy': csp, 'Referrer-Policy': 'no-referrer', 'X-Frame-Options': 'DENY' });
    }
    if (matchesEtag(c.req.header('if-none-match'), file.etag)) return c.body(null, 304, headers);
    return c.body(new Uint8Array(file.body), 200, headers);
  };
  app.get(CONSOLE_PREFIX, (c) => serve(c, ''));
  app.get(`${CONSOLE_PREFIX}/`, (c) => serve(c, ''));
  app.get(`${CONSOLE_PREFIX}/*`, (c) => {
    // The raw path, not a decoded one: an asset name never needs escaping, so anything escaped is unknown.
    const raw = new URL(c.req.url).pathname;
    return serve(c, raw.slice(CONSOLE_PREFIX.length + 1));
  });
  return app;
}

/** If-None-Match: `*` or a list of (possibly weak) tags. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}
