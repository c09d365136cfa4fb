/**
 * The router's view of the world: which running instances serve which route (host + optional path prefix).
 *
 * Routes are kept in a Map keyed by normalized host; each host holds its routes sorted by path length, longest
 * first, so a lookup is one Map get plus a short scan. Path matching follows gorouter: a route path matches on
 * whole path segments (`/foo` serves `/foo` and `/foo/bar`, never `/foobar`), case-insensitively. A wildcard
 * host (`*.example.com`) serves any host below it that has no route of its own.
 */

export interface Backend {
  /** Runtime instance id (InstanceSpec.id); drain() and in-flight accounting use it. */
  instanceId: string;
  processGuid: string;
  appGuid: string;
  /** CF instance index, reported in access logs as app_index. */
  index: number;
  host: string;
  port: number;
}

/**
 * The route is on a domain with `enforce_route_policies`: only callers that present a valid instance identity
 * over the router's mTLS listener and match one of `sources` (`cf:any`, `cf:app|space|org:<guid>`) get through.
 */
export interface RouteAccess {
  sources: readonly string[];
  /**
   * The domain's `route_policies_scope` (gorouter's mtls_scope_auth): `org`/`space` admit only callers of the
   * route's own org/space, `any` (or none) anyone; checked before the sources.
   */
  scope?: string;
  /** The route's space and org, which the scope compares the caller's with. */
  spaceGuid?: string;
  organizationGuid?: string;
}

export interface Route {
  key: string;
  host: string;
  /** '' for a host-only route, else '/seg[/seg…]' without a trailing slash. */
  path: string;
  backends: readonly Backend[];
  /** Round-robin cursor; survives backend replacement so traffic keeps spreading after a scale. */
  cursor: number;
  /** The route service a request passes through first, when the route is bound to one (issue 9 §5). */
  routeServiceUrl?: string | undefined;
  /** Set for routes whose callers are checked against route policies. */
  access?: RouteAccess;
}

/** Lowercases a Host header value and strips the port (`[::1]:8080` → `::1`) and a trailing dot. */
export function normalizeHost(raw: string): string {
  let host = raw.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end === -1 ? host.slice(1) : host.slice(1, end);
  } else {
    const colon = host.indexOf(':');
    // More than one colon without brackets is a bare IPv6 address, which has no port to strip.
    if (colon !== -1 && host.indexOf(':', colon + 1) === -1) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host;
}

/** Canonical route path: leading slash, no trailing slash, lowercase, '' for "no path". */
export function normalizeRoutePath(raw: string | undefined): string {
  if (raw === undefined) return '';
  let path = raw.trim().toLowerCase();
  if (path === '' || path === '/') return '';
  if (!path.startsWith('/')) path = `/${path}`;
  while (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return path;
}

/** The key a route is stored under: normalized host followed by normalized path (`app.example.com/api`). */
export function routeKey(host: string, path?: string): string {
  return normalizeHost(host) + normalizeRoutePath(path);
}

function splitKey(key: string): { host: string; path: string } {
  const slash = key.indexOf('/');
  if (slash === -1) return { host: normalizeHost(key), path: '' };
  return { host: normalizeHost(key.slice(0, slash)), path: normalizeRoutePath(key.slice(slash)) };
}

/** True when request path `reqPath` (lowercased, no query) lies under route path `routePath` on a segment boundary. */
function pathMatches(routePath: string, reqPath: string): boolean {
  if (routePath === '') return true;
  if (!reqPath.startsWith(routePath)) return false;
  if (reqPath.length === routePath.length) return true;
  return reqPath.charCodeAt(routePath.length) === 47 /* '/' */;
}

/** The part of a request target used for matching: path only, lowercased (query and fragment dropped). */
export function requestPath(url: string | undefined): string {
  if (url === undefined || url === '') return '/';
  let end = url.length;
  const q = url.indexOf('?');
  if (q !== -1) end = q;
  const h = url.indexOf('#');
  if (h !== -1 && h < end) end = h;
  let path = end === url.length ? url : url.slice(0, end);
  // Absolute-form targets ("GET http://host/path") carry the authority; only the path takes part in matching.
  if (!path.startsWith('/')) {
    const scheme = path.indexOf('://');
    if (scheme !== -1) {
      const slash = path.indexOf('/', scheme + 3);
      path = slash === -1 ? '/' : path.slice(slash);
    }
  }
  return path.toLowerCase();
}

export class RouteTable {
  private readonly byHost = new Map<string, Route[]>();
  private readonly byKey = new Map<string, Route>();

  /**
   * Replaces the backends of a route in one step (creating the route if needed). An empty list keeps the route's
   * host claimed (the front door still sends it to the router), but the router answers it as gorouter answers a
   * pruned pool: 404 unknown_route.
   */
  setBackends(key: string, backends: readonly Backend[]): Route {
    const { host, path } = splitKey(key);
    const canonical = host + path;
    const snapshot = Object.freeze(backends.slice());
    const existing = this.byKey.get(canonical);
    if (existing) {
      existing.backends = snapshot;
      return existing;
    }
    const route: Route = { key: canonical, host, path, backends: snapshot, cursor: 0 };
    this.byKey.set(canonical, route);
    const list = this.byHost.get(host);
    if (list) {
      list.push(route);
      list.sort((a, b) => b.path.length - a.path.length);
    } else {
      this.byHost.set(host, [route]);
    }
    return route;
  }

  /** Sets (or, with undefined, lifts) the route policy check of an existing route. */
  setAccess(key: string, access: RouteAccess | undefined): void {
    const route = this.get(key);
    if (!route) return;
    if (access) route.access = { ...access, sources: Object.freeze(access.sources.slice()) };
    else delete route.access;
  }

  /** Removes a route; returns whether it existed. */
  removeRoute(key: string): boolean {
    const { host, path } = splitKey(key);
    const route = this.byKey.get(host + path);
    if (!route) return false;
    this.byKey.delete(route.key);
    const list = this.byHost.get(host);
    if (list) {
      const remaining = list.filter((r) => r !== route);
      if (remaining.length === 0) this.byHost.delete(host);
      else this.byHost.set(host, remaining);
    }
    return true;
  }

  /** Takes an instance out of every route at once; returns how many routes it was removed from. */
  removeBackend(instanceId: string): number {
    let removed = 0;
    for (const route of this.byKey.values()) {
      if (route.backends.some((b) => b.instanceId === instanceId)) {
        route.backends = Object.freeze(route.backends.filter((b) => b.instanceId !== instanceId));
        removed++;
      }
    }
    return removed;
  }

  get(key: string): Route | undefined {
    const { host, path } = splitKey(key);
    return this.byKey.get(host + path);
  }

  /** All routes, in no particular order. */
  routes(): Route[] {
    return [...this.byKey.values()];
  }

  get size(): number {
    return this.byKey.size;
  }

  private routesForHost(host: string): Route[] | undefined {
    const exact = this.byHost.get(host);
    if (exact) return exact;
    // Like gorouter, walk up the labels so `*.example.com` also serves `a.b.example.com`.
    let dot = host.indexOf('.');
    while (dot !== -1) {
      const wildcard = this.byHost.get(`*${host.slice(dot)}`);
      if (wildcard) return wildcard;
      dot = host.indexOf('.', dot + 1);
    }
    return undefined;
  }

  /** True when some route (exact or wildcard) exists for the host, whatever its path. */
  hasHost(rawHost: string): boolean {
    return this.routesForHost(normalizeHost(rawHost)) !== undefined;
  }

  /**
   * Finds the route serving a request. `host` may be a raw Host header; `url` is the request target (query
   * allowed). Longest matching path prefix wins.
   */
  lookup(rawHost: string, url: string | undefined): Route | undefined {
    return this.lookupHost(normalizeHost(rawHost), url);
  }

  /** `lookup` for a host already normalized (normalizeHost). */
  lookupHost(host: string, url: string | undefined): Route | undefined {
    const routes = this.routesForHost(host);
    if (!routes) return undefined;
    const path = requestPath(url);
    for (const route of routes) {
      if (pathMatches(route.path, path)) return route;
    }
    return undefined;
  }

  /** Round-robin pick among the route's backends, skipping excluded instance ids (already-failed attempts). */
  static pick(route: Route, exclude?: ReadonlySet<string>): Backend | undefined {
    const backends = route.backends;
    const n = backends.length;
    if (n === 0) return undefined;
    for (let i = 0; i < n; i++) {
      const candidate = backends[route.cursor++ % n]!;
      if (route.cursor >= 0x3fffffff) route.cursor = 0;
      if (!exclude || !exclude.has(candidate.instanceId)) return candidate;
    }
    return undefined;
  }
}
