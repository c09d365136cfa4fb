import type { MiddlewareHandler } from 'hono';
import type { Env } from '../context.ts';

const encoder = new TextEncoder();

interface Entry {
  /** Encoded once: writing a string re-encodes ~40 KB of UTF-8 on every response. */
  body: Uint8Array<ArrayBuffer>;
  headers: Record<string, string>;
  /** The handler's route pattern, so metrics label a cached answer like a computed one. */
  route: string;
}

/**
 * Answers a repeated, identical list request from memory while the database is unchanged.
 *
 * Clients poll lists (`cf apps`, dashboards, CI waiting for a state) far more often than anything changes, and
 * a list page costs a count, a page query, metadata and ~40 KB of JSON each time. An entry is only ever served
 * for the same caller (guid, client flag and scopes: everything Access decides visibility from, besides roles
 * kept in the database), the same origin (links are absolute) and the same path and query, and only while the
 * store's data version is the one it was built under — any committed write anywhere empties the cache. Only
 * bodies rendered by renderList are stored, so endpoints that show observed runtime state (process
 * instances, stats) are never cached. On PostgreSQL the version check is one round trip per list request.
 */
export class ListCache {
  private version = '';
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  /** Paths renderList has answered; only their requests pay for a version check (a round trip on PostgreSQL). */
  private readonly listPaths = new Set<string>();

  /** `maxBytes` bounds the bodies kept in all (64 MiB by default); a body over a quarter of it is never kept. */
  constructor(
    private readonly currentVersion: () => string | Promise<string>,
    private readonly maxEntries: number,
    private readonly maxBytes = 64 * 1024 * 1024,
  ) {}

  /** Bytes of response bodies held. */
  get heldBytes(): number {
    return this.bytes;
  }

  get size(): number {
    return this.entries.size;
  }

  middleware(): MiddlewareHandler<Env> {
    return async (c, next) => {
      const principal = c.get('principal');
      if (c.req.method !== 'GET' || !principal) return next();
      if (!this.listPaths.has(c.req.path)) {
        await next();
        if (c.get('listCacheBody') !== undefined) {
          if (this.listPaths.size >= 10_000) this.listPaths.clear();
          this.listPaths.add(c.req.path);
        }
        return;
      }
      const version = await this.currentVersion();
      if (version !== this.version) {
        this.entries.clear();
        this.bytes = 0;
        this.version = version;
      }
      const url = c.req.url;
      const key = `${principal.guid}\n${principal.isClient}\n${[...principal.scopes].join(' ')}\n${c.var.linker.origin}\n${url.slice(url.indexOf('/', url.indexOf('//') + 2))}`;
      const hit = this.entries.get(key);
      if (hit) {
        this.entries.delete(key);
        this.entries.set(key, hit);
        c.set('cachedRoute', hit.route);
        return c.body(hit.body, 200, hit.headers);
      }
      await next();
      const body = c.get('listCacheBody');
      // A write that committed while this page was read may be in it; such a page is not kept.
      if (body === undefined || c.res.status !== 200 || (await this.currentVersion()) !== version) return;
      const encoded = encoder.encode(body);
      if (encoded.byteLength > this.maxBytes / 4) return;
      const headers: Record<string, string> = {};
      c.res.headers.forEach((value, name) => {
        if (name !== 'x-vcap-request-id') headers[name] = value;
      });
      const previous = this.entries.get(key);
      if (previous) {
        this.entries.delete(key);
        this.bytes -= previous.body.byteLength;
      }
      // Least recently used first: Map iteration follows insertion order and hits re-insert.
      while (this.entries.size > 0 && (this.entries.size >= this.maxEntries || this.bytes + encoded.byteLength > this.maxBytes)) {
        const [oldest, entry] = this.entries.entries().next().value!;
        this.entries.delete(oldest);
        this.bytes -= entry.body.byteLength;
      }
      this.entries.set(key, { body: encoded, headers, route: c.req.routePath });
      this.bytes += encoded.byteLength;
    };
  }
}
