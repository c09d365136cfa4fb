import { z } from 'zod';
import { APP_LIFECYCLE_TYPES, environmentVariablesErrors, type AppLifecycleType } from './apps.ts';
import { KilnError, unprocessable } from './errors.ts';
import { dashKeys, isObject, manifestApplications } from './manifest-document.ts';
import { logRateInBytes, sizeInMb } from './manifest-units.ts';
import { MetadataRequestSchema, validateMetadataRequest, type MetadataRequest } from './metadata.ts';
import { HEALTH_CHECK_TYPES, type HealthCheckType } from './processes.ts';
import { rubyToS } from './value-text.ts';

/**
 * App manifests (CONVENTIONS.md §21): reading the YAML, validating every application with Cloud Controller's
 * wording (AppManifestMessage, ManifestProcess*Message, ManifestRoutesUpdateMessage), normalising units, and
 * the pure halves of manifest_diff and manifest generation. Nothing here touches the store.
 */

// ---- the model ----

export interface ManifestHealthCheck {
  type?: HealthCheckType;
  endpoint?: string;
  invocationTimeout?: number;
  interval?: number;
  /** Liveness checks only. */
  timeout?: number;
}

export interface ManifestProcess {
  type: string;
  /** null: back to the droplet's detected command. */
  command?: string | null;
  instances?: number;
  memoryInMb?: number;
  diskInMb?: number;
  logRateLimit?: number;
  healthCheck: ManifestHealthCheck;
  readinessCheck: ManifestHealthCheck;
}

export const ROUTE_PROTOCOLS = ['http1', 'http2', 'tcp'] as const;
export type ManifestRouteProtocol = (typeof ROUTE_PROTOCOLS)[number];
export const LOADBALANCING = ['round-robin', 'least-connection'] as const;

/** One `routes` entry, split the ways Cloud Controller tries it: the first candidate whose domain exists wins. */
export interface ManifestRoute {
  route: string;
  protocol?: ManifestRouteProtocol;
  loadbalancing?: string;
  candidates: Array<{ host: string; domain: string }>;
  /** '' or `/…`. */
  path: string;
  port?: number;
}

export interface ManifestService {
  name: string;
  bindingName?: string;
  parameters?: Record<string, unknown>;
}

export interface ManifestSidecar {
  name: string;
  command: string;
  processTypes: string[];
  memoryInMb?: number;
}

export interface ManifestApp {
  name: string;
  lifecycle?: AppLifecycleType;
  /** From `buildpacks`, or the deprecated singular `buildpack`; `[]` means auto-detect. */
  buildpacks?: string[];
  /** The deprecated `buildpack` key was used (the job warns). */
  singularBuildpack: boolean;
  stack?: string;
  docker?: { image: string; username?: string };
  env?: Record<string, string>;
  features?: Record<string, boolean>;
  routes?: ManifestRoute[];
  noRoute?: boolean;
  randomRoute?: boolean;
  defaultRoute?: boolean;
  services?: ManifestService[];
  sidecars?: ManifestSidecar[];
  metadata?: MetadataRequest;
  /** Per-type configuration; the app-level web shorthand is folded into `web` (an explicit `web` entry wins per key). */
  processes: ManifestProcess[];
}

/** App features a manifest may set. */
export const MANIFEST_FEATURES = ['ssh', 'revisions', 'service-binding-k8s', 'file-based-vcap-services'] as const;

/** The app-level keys that configure the web process (dashed form). */
export const WEB_SHORTHAND_KEYS = [
  'instances',
  'memory',
  'disk-quota',
  'log-rate-limit-per-second',
  'command',
  'health-check-type',
  'health-check-http-endpoint',
  'health-check-invocation-timeout',
  'health-check-interval',
  'timeout',
  'readiness-health-check-type',
  'readiness-health-check-http-endpoint',
  'readiness-health-check-invocation-timeout',
  'readiness-health-check-interval',
] as const;

/** Every app-level key Kiln understands (dashed); anything else (e.g. the CLI's local `path`) is ignored, as upstream. */
export const APP_KEYS = new Set<string>([
  'name',
  'lifecycle',
  'buildpacks',
  'buildpack',
  'stack',
  'docker',
  'cnb-credentials',
  'env',
  'features',
  'routes',
  'no-route',
  'random-route',
  'default-route',
  'services',
  'processes',
  'sidecars',
  'metadata',
  ...WEB_SHORTHAND_KEYS,
]);

// ---- validation ----

/** An integer setting (numbers or digit strings, as Rails' numericality accepts them). */
function intSetting(value: unknown, label: string, min: number, errors: string[]): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n)) {
    errors.push(`${label} is not a number`);
    return undefined;
  }
  if (!Number.isInteger(n)) {
    errors.push(`${label} must be an integer`);
    return undefined;
  }
  if (n < min) {
    errors.push(`${label} must be greater than or equal to ${min}`);
    return undefined;
  }
  if (n > 2_147_483_647) {
    errors.push(`${label} must be less than or equal to 2147483647`);
    return undefined;
  }
  return n;
}

function healthCheckType(value: unknown, label: string, errors: string[]): HealthCheckType | undefined {
  if (value === undefined || value === null) return undefined;
  // `none` is the old name of `process`.
  const v = value === 'none' ? 'process' : value;
  if (typeof v === 'string' && (HEALTH_CHECK_TYPES as readonly string[]).includes(v)) return v as HealthCheckType;
  errors.push(`${label} type must be "port", "process", or "http"`);
  return undefined;
}

function endpoint(value: unknown, label: string, errors: string[]): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !/^\/\S*$/.test(value) || value.length > 255) {
    errors.push(`${label} endpoint must be a valid URI path`);
    return undefined;
  }
  return value;
}

/**
 * The process settings of a `processes` entry or of the app level (dashed keys), with the messages of
 * ManifestProcessScaleMessage and ManifestProcessUpdateMessage (unprefixed).
 */
function processSettings(o: Record<string, unknown>, type: string, errors: string[]): ManifestProcess {
  const p: ManifestProcess = { type, healthCheck: {}, readinessCheck: {} };
  if ('command' in o) {
    const c = o.command;
    if (c === null || c === 'null' || c === 'default') p.command = null;
    else if (typeof c !== 'string') errors.push('Command must be a string');
    else if (c.length < 1 || c.length > 4096) errors.push('Command must be between 1 and 4096 characters');
    else p.command = c;
  }
  p.instances = intSetting(o.instances, 'Instances', 0, errors);
  if (o.memory !== undefined && o.memory !== null) {
    const r = sizeInMb(o.memory, 'Memory');
    if (r.error) errors.push(r.error);
    else p.memoryInMb = r.mb;
  }
  if (o['disk-quota'] !== undefined && o['disk-quota'] !== null) {
    const r = sizeInMb(o['disk-quota'], 'Disk quota');
    if (r.error) errors.push(r.error);
    else p.diskInMb = r.mb;
  }
  if (o['log-rate-limit-per-second'] !== undefined && o['log-rate-limit-per-second'] !== null) {
    const r = logRateInBytes(o['log-rate-limit-per-second']);
    if (r.error) errors.push(r.error);
    else p.logRateLimit = r.bytes;
  }
  const hc = p.healthCheck;
  hc.type = healthCheckType(o['health-check-type'], 'Health check', errors);
  hc.endpoint = endpoint(o['health-check-http-endpoint'], 'Health check', errors);
  hc.invocationTimeout = intSetting(o['health-check-invocation-timeout'], 'Health check invocation timeout', 1, errors);
  hc.interval = intSetting(o['health-check-interval'], 'Health check interval', 1, errors);
  hc.timeout = intSetting(o.timeout, 'Timeout', 1, errors);
  if (hc.endpoint !== undefined && hc.type !== undefined && hc.type !== 'http') {
    errors.push('Health check type must be "http" to set a health check HTTP endpoint');
  }
  const rc = p.readinessCheck;
  rc.type = healthCheckType(o['readiness-health-check-type'], 'Readiness health check', errors);
  rc.endpoint = endpoint(o['readiness-health-check-http-endpoint'], 'Readiness health check', errors);
  rc.invocationTimeout = intSetting(o['readiness-health-check-invocation-timeout'], 'Readiness health check invocation timeout', 1, errors);
  rc.interval = intSetting(o['readiness-health-check-interval'], 'Readiness health check interval', 1, errors);
  if (rc.endpoint !== undefined && rc.type !== undefined && rc.type !== 'http') {
    errors.push('Readiness health check type must be "http" to set a health check HTTP endpoint');
  }
  if (o.user !== undefined && o.user !== null && typeof o.user !== 'string') errors.push('User must be a string');
  return p;
}

const definedEntries = (o: object) => Object.entries(o).filter(([, v]) => v !== undefined);

/** `base` overridden by every setting `over` has (an explicit `web` entry wins over the app-level shorthand). */
function mergeProcess(base: ManifestProcess, over: ManifestProcess): ManifestProcess {
  return {
    ...base,
    ...Object.fromEntries(definedEntries(over)),
    healthCheck: { ...base.healthCheck, ...Object.fromEntries(definedEntries(over.healthCheck)) },
    readinessCheck: { ...base.readinessCheck, ...Object.fromEntries(definedEntries(over.readinessCheck)) },
  } as ManifestProcess;
}

const HOST_CHARS = /^[A-Za-z0-9_*.-]+$/;

/**
 * Parses a route as ManifestRoute does: an optional `http://`/`https://`/`tcp://` scheme, `host.domain`,
 * an optional `:port` (TCP routes only) and `/path`. Undefined when it is not a properly formed URL.
 */
export function parseManifestRoute(route: string): Omit<ManifestRoute, 'route' | 'protocol' | 'loadbalancing'> | undefined {
  let rest = route.trim();
  let scheme = 'unspecified';
  const s = /^([a-z][a-z0-9+.-]*):\/\//i.exec(rest);
  if (s) {
    scheme = s[1]!.toLowerCase();
    rest = rest.slice(s[0].length);
  }
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (authority.includes('@')) return undefined; // credentials make it no route at all
  const colon = authority.lastIndexOf(':');
  const host = (colon < 0 ? authority : authority.slice(0, colon)).toLowerCase();
  let port: number | undefined;
  if (colon >= 0) {
    const p = authority.slice(colon + 1);
    if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) return undefined;
    port = Number(p);
  }
  if (host === '' || !HOST_CHARS.test(host) || host.startsWith('.') || host.endsWith('.') || host.includes('..')) return undefined;
  if (port !== undefined ? !['tcp', 'unspecified'].includes(scheme) : !['http', 'https', 'unspecified'].includes(scheme)) return undefined;
  if (/[?#\s]/.test(path)) return undefined;
  const labels = host.split('.');
  const candidates = [{ host: '', domain: host }];
  for (let i = 1; i < labels.length; i++) candidates.push({ host: labels.slice(0, i).join('.'), domain: labels.slice(i).join('.') });
  return { candidates, path, port };
}

function routesOf(value: unknown, errors: string[]): ManifestRoute[] | undefined {
  if (!Array.isArray(value) || !value.every(isObject)) {
    errors.push('Routes must be a list of route objects');
    return undefined;
  }
  const out: ManifestRoute[] = [];
  let ok = true;
  for (const raw of value as Array<Record<string, unknown>>) {
    const r = dashKeys(raw);
    const route = typeof r.route === 'string' ? r.route : '';
    const parsed = typeof r.route === 'string' ? parseManifestRoute(r.route) : undefined;
    if (!parsed) {
      errors.push(`The route '${typeof r.route === 'string' ? r.route : rubyToS(r.route ?? '')}' is not a properly formed URL`);
      ok = false;
    }
    const protocol = r.protocol;
    if (protocol !== undefined && protocol !== null && !(typeof protocol === 'string' && (ROUTE_PROTOCOLS as readonly string[]).includes(protocol))) {
      errors.push("Route protocol must be 'http1', 'http2' or 'tcp'.");
      ok = false;
    }
    let loadbalancing: string | undefined;
    if (r.options !== undefined && r.options !== null) {
      const lb = isObject(r.options) ? r.options.loadbalancing : undefined;
      if (!isObject(r.options)) {
        errors.push(`Route '${route}': options must be an object`);
        ok = false;
      } else if (lb !== undefined && lb !== null) {
        if (typeof lb === 'string' && (LOADBALANCING as readonly string[]).includes(lb)) loadbalancing = lb;
        else {
          errors.push(`Cannot use loadbalancing value '${rubyToS(lb)}' for Route '${route}'; Valid values are: '${LOADBALANCING.join(', ')}'`);
          ok = false;
        }
      }
    }
    if (parsed) out.push({ route, ...(typeof protocol === 'string' ? { protocol: protocol as ManifestRouteProtocol } : {}), ...(loadbalancing ? { loadbalancing } : {}), ...parsed });
  }
  return ok ? out : undefined;
}

function booleanFlag(value: unknown, label: string, errors: string[]): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  errors.push(`${label} must be a boolean`);
  return undefined;
}

function stringList(value: unknown, label: string, errors: string[]): string[] | undefined {
  if (value === null) return [];
  if (!Array.isArray(value)) {
    errors.push(`${label} must be an array`);
    return undefined;
  }
  if (!value.every((b) => typeof b === 'string')) {
    errors.push(`${label} can only contain strings`);
    return undefined;
  }
  return value as string[];
}

/** Env values: scalars are turned into strings (YAML makes `8080` a number); maps and lists are refused. */
function envOf(value: unknown, errors: string[]): Record<string, string> | undefined {
  if (!isObject(value)) {
    errors.push('Env must be an object of keys and values');
    return undefined;
  }
  const env: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) env[k] = typeof v === 'number' || typeof v === 'boolean' ? String(v) : v === null ? '' : v;
  const problems = environmentVariablesErrors(env, 'Env');
  errors.push(...problems);
  return problems.length > 0 ? undefined : (env as Record<string, string>);
}

function servicesOf(value: unknown, errors: string[]): ManifestService[] | undefined {
  const shape = 'Services must be a list of service instance names or objects with a name';
  if (!Array.isArray(value)) {
    errors.push(shape);
    return undefined;
  }
  const out: ManifestService[] = [];
  for (const s of value) {
    if (typeof s === 'string' && s !== '') out.push({ name: s });
    else if (isObject(s) && typeof s.name === 'string' && s.name !== '') {
      const svc = dashKeys(s);
      if (svc.parameters !== undefined && !isObject(svc.parameters)) errors.push(`Service '${s.name}': parameters must be an object`);
      out.push({
        name: s.name,
        ...(typeof svc['binding-name'] === 'string' ? { bindingName: svc['binding-name'] } : {}),
        ...(isObject(svc.parameters) ? { parameters: svc.parameters } : {}),
      });
    } else {
      errors.push(shape);
      return undefined;
    }
  }
  return out;
}

function sidecarsOf(value: unknown, errors: string[]): ManifestSidecar[] | undefined {
  if (!Array.isArray(value) || !value.every(isObject)) {
    errors.push('Sidecars must be an array of sidecar configurations');
    return undefined;
  }
  const out: ManifestSidecar[] = [];
  for (const raw of value as Array<Record<string, unknown>>) {
    const s = dashKeys(raw);
    const name = typeof s.name === 'string' ? s.name : '';
    const label = `Sidecar "${name}"`;
    const before = errors.length;
    if (name === '') errors.push("Sidecar name can't be blank");
    if (typeof s.command !== 'string' || s.command === '') errors.push(`${label}: Command can't be blank`);
    const types = s['process-types'];
    if (!Array.isArray(types) || types.length === 0 || !types.every((t) => typeof t === 'string' && t !== '')) {
      errors.push(`${label}: Process types must have at least 1 process_type`);
    }
    let memoryInMb: number | undefined;
    if (s.memory !== undefined && s.memory !== null) {
      const r = sizeInMb(s.memory, 'Memory');
      if (r.error) errors.push(`${label}: ${r.error}`);
      else memoryInMb = r.mb;
    }
    if (errors.length === before) out.push({ name, command: s.command as string, processTypes: types as string[], ...(memoryInMb ? { memoryInMb } : {}) });
  }
  const names = out.map((s) => s.name);
  for (const n of new Set(names.filter((x, i) => names.indexOf(x) !== i))) errors.push(`Sidecar "${n}" may only be present once`);
  return out;
}

function metadataOf(value: unknown, errors: string[]): MetadataRequest | undefined {
  const parsed = MetadataRequestSchema.safeParse(value);
  if (!parsed.success) {
    if (!isObject(value)) errors.push('Metadata must be an object');
    else {
      const extra = Object.keys(value).filter((k) => k !== 'labels' && k !== 'annotations');
      errors.push(extra.length > 0 ? `Metadata has unexpected field(s): ${extra.map((k) => `'${k}'`).join(', ')}` : "Metadata 'labels' and 'annotations' must be objects of strings");
    }
    return undefined;
  }
  try {
    validateMetadataRequest(parsed.data);
  } catch (err) {
    if (err instanceof KilnError) errors.push(...err.detail.split(', Metadata').map((m, i) => (i === 0 ? m : `Metadata${m}`)));
    else throw err;
    return undefined;
  }
  return parsed.data;
}

/** Validates one `applications[]` entry: every problem, unprefixed, in Cloud Controller's words, or the model. */
export function parseManifestApp(raw: unknown): { errors: string[]; app?: ManifestApp; name?: string } {
  if (!isObject(raw)) return { errors: ['Application must be an object'] };
  const o = dashKeys(raw);
  const errors: string[] = [];
  const name = typeof o.name === 'string' ? o.name : undefined;
  if (name === undefined || name.trim() === '') errors.push(o.name === undefined || o.name === null || o.name === '' ? 'Name must not be empty' : 'Name must be a string');
  else if (name.length > 255) errors.push('Name is too long (maximum is 255 characters)');
  else if (/\p{Cc}/u.test(name)) errors.push('Name must not contain escaped characters');

  let lifecycle: AppLifecycleType | undefined;
  if (o.lifecycle !== undefined && o.lifecycle !== null) {
    if (typeof o.lifecycle === 'string' && (APP_LIFECYCLE_TYPES as readonly string[]).includes(o.lifecycle)) lifecycle = o.lifecycle as AppLifecycleType;
    else errors.push(`Lifecycle must be one of: ${['buildpack', 'cnb', 'docker'].join(', ')}`);
  }

  // Upstream order: the web shorthand, then processes, sidecars, app update, buildpack combinations, docker, env, routes.
  const webShorthand = processSettings(o, 'web', errors);
  const processes: ManifestProcess[] = [];
  if (o.processes !== undefined && o.processes !== null) {
    if (!Array.isArray(o.processes) || !o.processes.every(isObject)) {
      errors.push('Processes must be an array of process configurations');
    } else {
      const entries = (o.processes as Array<Record<string, unknown>>).map(dashKeys);
      if (entries.some((p) => typeof p.type !== 'string' || p.type.trim() === '')) errors.push('All Processes must specify a type');
      for (const p of entries) {
        if (typeof p.type !== 'string' || p.type.trim() === '') continue;
        const perr: string[] = [];
        const config = processSettings(p, p.type, perr);
        errors.push(...perr.map((e) => `Process "${p.type as string}": ${e}`));
        processes.push(config);
      }
      const types = entries.map((p) => p.type).filter((t): t is string => typeof t === 'string');
      for (const t of new Set(types.filter((x, i) => types.indexOf(x) !== i))) errors.push(`Process "${t}" may only be present once`);
    }
  }
  const shorthandGiven = WEB_SHORTHAND_KEYS.some((k) => o[k] !== undefined);
  const explicitWeb = processes.find((p) => p.type === 'web');
  if (explicitWeb) processes.splice(processes.indexOf(explicitWeb), 1, shorthandGiven ? mergeProcess(webShorthand, explicitWeb) : explicitWeb);
  else if (shorthandGiven) processes.unshift(webShorthand);

  let sidecars: ManifestSidecar[] | undefined;
  if (o.sidecars !== undefined && o.sidecars !== null) sidecars = sidecarsOf(o.sidecars, errors);

  let buildpacks: string[] | undefined;
  const singularBuildpack = o.buildpack !== undefined;
  if (o.buildpacks !== undefined) {
    const list = stringList(o.buildpacks, 'Buildpacks', errors);
    if (list) buildpacks = list.filter((b) => b !== 'default' && b !== 'null');
  }
  if (singularBuildpack) {
    const b = o.buildpack;
    if (b !== null && typeof b !== 'string') errors.push('Buildpack must be a string');
    else if (o.buildpacks === undefined) buildpacks = b === null || b === 'default' || b === 'null' || b === '' ? [] : [b];
  }
  if (buildpacks?.some((b) => b.length > 4096)) errors.push('Buildpacks entries must be 4096 characters or less');
  if (o.buildpacks !== undefined && singularBuildpack) errors.push('Buildpack and Buildpacks fields cannot be used together.');

  let stack: string | undefined;
  if (o.stack !== undefined && o.stack !== null) {
    if (typeof o.stack !== 'string') errors.push('Stack must be a string');
    else if (o.stack.length > 255) errors.push('Stack is too long (maximum is 255 characters)');
    else stack = o.stack;
  }

  let docker: ManifestApp['docker'];
  if (o.docker !== undefined && o.docker !== null) {
    if (!isObject(o.docker)) errors.push('Docker must be an object');
    else {
      const image = o.docker.image;
      const username = o.docker.username;
      if (typeof image !== 'string' || image.trim() === '') errors.push('Docker image must be a string');
      if (username !== undefined && username !== null && typeof username !== 'string') errors.push('Docker username must be a string');
      if (o.docker.password !== undefined) errors.push('Docker password is not allowed in a manifest; set CF_DOCKER_PASSWORD on the client');
      if (typeof image === 'string' && image.trim() !== '') docker = { image, ...(typeof username === 'string' ? { username } : {}) };
    }
    if (o.buildpacks !== undefined || singularBuildpack) errors.push('Cannot specify both buildpack(s) and docker keys');
    if (lifecycle !== undefined && lifecycle !== 'docker') errors.push(`Lifecycle ${lifecycle} cannot be used with docker`);
  }
  if (lifecycle === 'docker' && o.docker === undefined) errors.push('Docker must be provided when lifecycle is docker');
  if (lifecycle === 'cnb' && o.buildpacks !== undefined && (buildpacks ?? []).length === 0) {
    errors.push('Buildpacks must specify at least one buildpack when using Cloud Native Buildpacks');
  }
  if (o['cnb-credentials'] !== undefined && !isObject(o['cnb-credentials'])) errors.push('Cnb credentials must be an object');
  if (o['cnb-credentials'] !== undefined && lifecycle !== 'cnb') errors.push('Cnb credentials can only be used with lifecycle cnb');

  let env: Record<string, string> | undefined;
  if (o.env !== undefined && o.env !== null) env = envOf(o.env, errors);

  let features: Record<string, boolean> | undefined;
  if (o.features !== undefined && o.features !== null) {
    const f = o.features;
    if (!isObject(f) || !Object.values(f).every((v) => typeof v === 'boolean')) {
      errors.push('Features must be a map of valid feature names to booleans (true = enabled, false = disabled)');
    } else {
      const unsupported = Object.keys(f).filter((k) => !(MANIFEST_FEATURES as readonly string[]).includes(k));
      if (unsupported.length > 0) errors.push(`Features has unsupported feature(s): ${unsupported.join(', ')}`);
      else features = f as Record<string, boolean>;
    }
  }

  const noRoute = booleanFlag(o['no-route'], 'No-route', errors);
  const randomRoute = booleanFlag(o['random-route'], 'Random-route', errors);
  const defaultRoute = booleanFlag(o['default-route'], 'Default-route', errors);
  if (randomRoute && defaultRoute) errors.push('Random-route and default-route may not be used together');
  let routes: ManifestRoute[] | undefined;
  if (o.routes !== undefined && o.routes !== null) routes = routesOf(o.routes, errors);

  let services: ManifestService[] | undefined;
  if (o.services !== undefined && o.services !== null) {
    services = servicesOf(o.services, errors);
    // Kiln has no service instances yet, so no name can resolve; saying so up front beats failing inside the job.
    for (const s of services ?? []) errors.push(`Service instance '${s.name}' not found`);
  }

  let metadata: MetadataRequest | undefined;
  if (o.metadata !== undefined && o.metadata !== null) metadata = metadataOf(o.metadata, errors);

  if (errors.length > 0) return { errors, name };
  const app: ManifestApp = { name: name!, singularBuildpack, processes };
  if (docker) app.lifecycle = 'docker';
  else if (lifecycle) app.lifecycle = lifecycle;
  if (buildpacks !== undefined) app.buildpacks = buildpacks;
  if (stack !== undefined) app.stack = stack;
  if (docker) app.docker = docker;
  if (env) app.env = env;
  if (features) app.features = features;
  if (routes) app.routes = routes;
  if (noRoute !== undefined) app.noRoute = noRoute;
  if (randomRoute !== undefined) app.randomRoute = randomRoute;
  if (defaultRoute !== undefined) app.defaultRoute = defaultRoute;
  if (services) app.services = services;
  if (sidecars) app.sidecars = sidecars;
  if (metadata) app.metadata = metadata;
  return { errors, app, name };
}

/**
 * Validates every application of a manifest. Problems of all applications come back as one 422 with one
 * error per problem, prefixed `For application '<name>': ` (or `at index <i>` when the name is missing).
 */
export function parseManifestApps(doc: Record<string, unknown>): ManifestApp[] {
  const raws = manifestApplications(doc);
  const problems: string[] = [];
  const apps: ManifestApp[] = [];
  raws.forEach((raw, i) => {
    const { errors, app, name } = parseManifestApp(raw);
    const prefix = name !== undefined && name.trim() !== '' ? `For application '${name}': ` : `For application at index ${i}: `;
    problems.push(...errors.map((e) => prefix + e));
    if (app) apps.push(app);
  });
  const lower = apps.map((a) => a.name.toLowerCase());
  for (const n of new Set(lower.filter((x, i) => lower.indexOf(x) !== i))) {
    problems.push(`For application '${apps[lower.indexOf(n)]!.name}': Application names must be unique within a manifest`);
  }
  if (problems.length > 0) throw unprocessable(problems[0]!).with(...problems.slice(1).map(unprocessable));
  return apps;
}

/** The zod model of a manifest document (already parsed from YAML): validates and normalises it. */
export const ManifestSchema = z.unknown().transform((value, ctx) => {
  if (!isObject(value)) {
    ctx.issues.push({ code: 'custom', message: 'Manifest must be a mapping', input: value });
    return z.NEVER;
  }
  try {
    return parseManifestApps(value);
  } catch (err) {
    if (!(err instanceof KilnError)) throw err;
    for (const e of [err, ...err.more]) ctx.issues.push({ code: 'custom', message: e.detail, input: value });
    return z.NEVER;
  }
});
