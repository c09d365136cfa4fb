/**
 * One listener for the API port: requests for an app route go to the router, everything else to the CF API.
 *
 * The split is by Host only (not path), so an app host with path routes still gets the router's 404 page for an
 * unmapped path instead of a CF API error. The API's own hosts are decided first: a Host naming the API is
 * served by the API even when some route claims it, so no tenant can capture the API's traffic (and with it
 * other users' bearer tokens). Hosts in or under `appsDomains` that have no route also go to the router, so
 * `unknown.apps.example.com` (or `apps.example.com` itself, or with stray trailing dots) answers "route
 * unknown" rather than serving the API on an app domain.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { getRequestListener } from '@hono/node-server';
import { normalizeHost } from './route-table.ts';
import { enableFastPath } from './fast-path.ts';
import type { Router } from './router.ts';

export type NodeListener = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;
export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface FrontDoorOptions {
  /** The API: a node listener, or a fetch handler (e.g. a Hono app's `fetch`) adapted with @hono/node-server. */
  api: NodeListener | { fetch: FetchHandler };
  router: Router;
  /**
   * Decides which hosts belong to the router (given a normalized host); default: hosts with a route, plus
   * hosts in or under `appsDomains`. Never asked about `apiHosts`.
   */
  isRouted?: (host: string) => boolean;
  /** Domains that are app traffic (with their subdomains) even without a route: 404 from the router. */
  appsDomains?: readonly string[];
  /** Hosts always served by the API, whatever routes exist (e.g. `api.example.com`, `localhost`, `127.0.0.1`). */
  apiHosts?: readonly string[];
  /**
   * Serve plain app requests on the raw connection (fast-path.ts) and hand the rest to node's http server
   * (default true). Off, every request goes through node's http server, as before the fast path.
   */
  fastPath?: boolean;
}

export interface FrontDoor {
  /** Node `request` listener. */
  listener: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Node `upgrade` listener: routed hosts are passed through; the API does not upgrade, so others are refused. */
  upgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Whether a Host header value goes to the router. */
  isRouted: (hostHeader: string | undefined) => boolean;
  /** The same for a host already normalized (normalizeHost). */
  routedHost: (host: string) => boolean;
}

export function createFrontDoor(opts: FrontDoorOptions): FrontDoor {
  const api: NodeListener = typeof opts.api === 'function' ? opts.api : getRequestListener(opts.api.fetch);
  const { router } = opts;
  const appsDomains = (opts.appsDomains ?? []).map((d) => withoutTrailingDots(normalizeHost(d)));
  const apiHosts = new Set((opts.apiHosts ?? []).map(normalizeHost));
  const custom = opts.isRouted;

  const inAppsDomain = (host: string): boolean => {
    // `x.apps.example.com..` is no API host either: every trailing dot goes before comparing.
    const bare = withoutTrailingDots(host);
    return appsDomains.some((d) => bare === d || bare.endsWith(`.${d}`));
  };

  const routedHost = (host: string): boolean => {
    if (apiHosts.has(host)) return false;
    if (custom) return custom(host);
    return router.table.hasHost(host) || inAppsDomain(host);
  };

  const isRouted = (hostHeader: string | undefined): boolean =>
    hostHeader !== undefined && hostHeader !== '' && routedHost(normalizeHost(hostHeader));

  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (isRouted(req.headers.host)) {
      router.handle(req, res);
      return;
    }
    const done = api(req, res);
    if (done instanceof Promise) {
      done.catch(() => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end();
      });
    }
  };

  const upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (isRouted(req.headers.host)) {
      router.handleUpgrade(req, socket, head);
      return;
    }
    socket.on('error', () => socket.destroy());
    socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  };

  return { listener, upgrade, isRouted, routedHost };
}

function withoutTrailingDots(host: string): string {
  let end = host.length;
  while (end > 0 && host.charCodeAt(end - 1) === 46) end--;
  return host.slice(0, end);
}

/** A node http server wired to a front door (request and upgrade); call `.listen()` on it. */
export function createFrontDoorServer(opts: FrontDoorOptions, serverOptions: http.ServerOptions = {}): http.Server {
  const door = createFrontDoor(opts);
  const server = http.createServer(serverOptions, door.listener);
  server.on('upgrade', door.upgrade);
  if (opts.fastPath !== false) {
    const { router } = opts;
    enableFastPath(server, {
      router,
      routeFor: (hostHeader, url) => {
        const host = normalizeHost(hostHeader);
        if (host === '' || !door.routedHost(host)) return undefined;
        const route = router.table.lookupHost(host, url);
        // Unknown routes (404), route policies and route services take the full path.
        if (!route || route.backends.length === 0 || route.access || route.routeServiceUrl) return undefined;
        return route;
      },
    });
  }
  return server;
}
