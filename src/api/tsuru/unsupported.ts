import type { Context } from 'hono';
import type { Env } from '../context.ts';
import { TsuruError, tsuruPath } from './wire.ts';

/**
 * What the facade does not translate answers 501 naming where the same thing lives in CF V3, so a Tsuru user
 * knows which `cf` command or `/v3` call to use instead (research/tsuru.md §6.2: no emulation without a concept).
 */

interface Equivalent {
  method: string | '*';
  path: RegExp;
  cf: string;
}

const EQUIVALENTS: Equivalent[] = [
  // Service routes the CLI's core flows use are in services.ts; the rest of the area:
  { method: '*', path: /^\/services(\/|$)/, cf: '/v3/service_offerings, /v3/service_plans and /v3/service_instances' },
  { method: 'PUT', path: /^\/apps\/[^/]+\/?$/, cf: 'PATCH /v3/apps/:guid and POST /v3/processes/:guid/actions/scale' },
  { method: '*', path: /^\/apps\/[^/]+\/cname\/?$/, cf: 'POST /v3/domains (private) and POST /v3/routes with a destination (cf map-route)' },
  { method: '*', path: /^\/apps\/[^/]+\/run\/?$/, cf: 'POST /v3/apps/:guid/tasks (cf run-task)' },
  { method: '*', path: /^\/apps\/[^/]+\/shell\/?$/, cf: 'cf ssh' },
  { method: '*', path: /^\/apps\/[^/]+\/deploy\/rollback/, cf: 'POST /v3/deployments with a revision (cf rollback)' },
  { method: '*', path: /^\/apps\/[^/]+\/(build|diff|routable|versions)/, cf: 'POST /v3/builds and /v3/deployments; CF runs one revision at a time' },
  { method: '*', path: /^\/apps\/[^/]+\/(routers|routes|certificate)/, cf: 'GET/POST /v3/routes and /v3/apps/:guid/routes (cf routes, cf map-route)' },
  { method: '*', path: /^\/apps\/[^/]+\/units\/autoscale/, cf: 'no CF V3 equivalent (scale with POST /v3/processes/:guid/actions/scale)' },
  { method: '*', path: /^\/apps\/[^/]+\/teams\//, cf: 'POST /v3/roles (an app lives in one space; grant roles in it)' },
  { method: '*', path: /^\/apps\/[^/]+\/quota/, cf: '/v3/space_quotas and /v3/organization_quotas' },
  { method: 'POST', path: /^\/apps\/[^/]+\/log\/?$/, cf: 'no CF V3 equivalent (apps log to stdout; read with GET /api/v1/read/:guid)' },
  { method: '*', path: /^\/(deploys|events)(\/|$)/, cf: 'GET /v3/deployments, /v3/builds and /v3/audit_events' },
  { method: '*', path: /^\/teams(\/|$)/, cf: 'POST/PATCH/DELETE /v3/spaces in the Tsuru org (teams are its spaces)' },
  { method: '*', path: /^\/(users|roles|permissions|role|tokens)(\/|$)/, cf: '/Users (the identity provider) and /v3/roles' },
  { method: '*', path: /^\/platforms(\/|$)/, cf: 'POST/PATCH/DELETE /v3/buildpacks (platforms are buildpacks)' },
  { method: '*', path: /^\/plans(\/|$)/, cf: 'memory_in_mb through POST /v3/processes/:guid/actions/scale (plans are memory presets)' },
  { method: '*', path: /^\/(pools|constraints)(\/|$)/, cf: '/v3/isolation_segments and their organization/space relationships' },
  { method: '*', path: /^\/(routers|volumes|volumeplans)(\/|$)/, cf: 'no CF V3 equivalent in Kiln yet' },
  { method: '*', path: /^\/(provisioner|node|docker|iaas|install|healing|autoscale)(\/|$)/, cf: 'no CF V3 equivalent (Kiln manages its own runtime)' },
];

/** The CF V3 equivalent to name in a 501 for this method and Tsuru path. */
export function cfEquivalent(method: string, path: string): string {
  for (const e of EQUIVALENTS) {
    if ((e.method === '*' || e.method === method) && e.path.test(path)) return e.cf;
  }
  return 'the CF V3 API at /v3 (see docs/tsuru.md for what the Tsuru API translates)';
}

/** The catch-all: 501 with the equivalent; an unknown path still needs no token to learn that. */
export function notImplemented(c: Context<Env>): never {
  const path = tsuruPath(c);
  throw new TsuruError(501, `Kiln's Tsuru API does not implement ${c.req.method} ${path}; use ${cfEquivalent(c.req.method, path)}.`);
}
