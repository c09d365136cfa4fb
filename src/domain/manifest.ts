import { parseDocument, visit } from 'yaml';
import { z } from 'zod';
import { APP_LIFECYCLE_TYPES, environmentVariablesErrors, type AppLifecycleType } from './apps.ts';
import { badRequest, KilnError, unprocessable } from './errors.ts';
import { MetadataRequestSchema, validateMetadataRequest, type MetadataRequest } from './metadata.ts';
import { HEALTH_CHECK_TYPES, type HealthCheckType } from './processes.ts';
import { rubyToS } from './value-text.ts';

/**
 * App manifests (CONVENTIONS.md §21): reading the YAML, validating every application with Cloud Controller's
 * wording (AppManifestMessage, ManifestProcess*Message, ManifestRoutesUpdateMessage), normalising units, and
 * the pure halves of manifest_diff and manifest generation. Nothing here touches the store.
 */

export const MAX_MANIFEST_BYTES = 1024 * 1024;
export const MANIFEST_TOO_LARGE = 'Manifest size is too large. The maximum supported size is 1MB.';
export const NO_APPLICATIONS = "Cannot parse manifest with no 'applications' field.";
export const UNSUPPORTED_VERSION = 'Unsupported manifest schema version. Currently supported versions: [1].';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Manifest keys may be written with `-` or `_`; the canonical form here is dashed, as the cf CLI writes them. */
export const dashed = (key: string) => key.replace(/_/g, '-');

/** An object's keys in canonical (dashed) form; on a clash the later spelling wins, as a YAML re-key would. */
function dashKeys(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[dashed(k)] = v;
  return out;
}

// ---- reading the document ----

/** Whether a request Content-Type is YAML (the cf CLI sends `application/x-yaml`). */
export function isYamlContentType(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return ['application/x-yaml', 'application/yaml', 'text/yaml', 'text/x-yaml'].includes(type);
}

/**
 * Parses a manifest body into a plain object: 400 for anything that is not a YAML mapping (anchors and aliases
 * are refused, as Cloud Controller loads YAML without them), 422 for a version other than 1.
 */
export function parseManifestText(text: string): Record<string, unknown> {
  if (Buffer.byteLength(text, 'utf8') > MAX_MANIFEST_BYTES) throw badRequest(MANIFEST_TOO_LARGE);
  // YAML 1.1 like Ruby's Psych (yes/no are booleans); duplicate keys are tolerated as Psych does (last wins).
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: false, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) throw new KilnError('MessageParseError', syntax.message.split('\n')[0] ?? 'invalid YAML');
  let aliases = false;
  visit(doc, {
    Alias() {
      aliases = true;
      return visit.BREAK;
    },
  });
  if (aliases) throw badRequest('Manifest does not support Anchors and Aliases');
  const value: unknown = doc.toJS({ maxAliasCount: 0 });
  if (!isObject(value)) throw new KilnError('MessageParseError', 'invalid request body');
  const version = value.version;
  if (version !== undefined && version !== null && version !== 1 && version !== '1') throw unprocessable(UNSUPPORTED_VERSION);
  return value;
}

/** The `applications` of a parsed manifest, or 422 when there are none. */
export function manifestApplications(doc: Record<string, unknown>): unknown[] {
  const apps = doc.applications;
  if (!Array.isArray(apps) || apps.length === 0) throw unprocessable(NO_APPLICATIONS);
  return apps;
}

// ---- units ----

const UNIT_ERROR = 'must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB';
const UNIT_FACTORS: Record<string, number> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([BKMGT])B?$/i;

/** Bytes of a size such as `512M`, `1G`, `1.5GB` (case-insensitive); an error phrase when it is not one. */
export function parseByteSize(value: unknown): { bytes?: number; error?: 'not-a-number' | 'unit' | 'negative' } {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined;
  if (text === undefined || !/^-?\d/.test(text)) return { error: 'not-a-number' };
  if (text.startsWith('-')) return { error: 'negative' };
  const m = SIZE_RE.exec(text);
  if (!m) return { error: 'unit' };
  return { bytes: Math.floor(Number(m[1]) * UNIT_FACTORS[m[2]!.toUpperCase()]!) };
}

/** Megabytes of a memory/disk size (whole MB, rounded down), or the CF validation message. */
export function sizeInMb(value: unknown, label: string): { mb?: number; error?: string } {
  const { bytes, error } = parseByteSize(value);
  if (error === 'not-a-number') return { error: `${label} is not a number` };
  if (error === 'unit') return { error: `${label} ${UNIT_ERROR}` };
  const mb = error === 'negative' ? 0 : Math.floor(bytes! / 1024 ** 2);
  if (mb <= 0) return { error: `${label} must be greater than 0MB` };
  if (mb > 2_147_483_647) return { error: `${label} must be less than or equal to 2147483647MB` };
  return { mb };
}

/** Bytes per second of a log rate limit: `-1` is unlimited, `0` silences the app, else a size with a unit. */
export function logRateInBytes(value: unknown): { bytes?: number; error?: string } {
  if (value === -1 || value === '-1') return { bytes: -1 };
  if (value === 0 || value === '0') return { bytes: 0 };
  const { bytes, error } = parseByteSize(value);
  if (error === 'not-a-number') return { error: 'Log rate limit per second is not a number' };
  if (error === 'negative') return { error: 'Log rate limit in bytes per second must be an integer greater than or equal to -1B' };
  if (error === 'unit') return { error: `Log rate limit per second ${UNIT_ERROR}` };
  if (bytes! > Number.MAX_SAFE_INTEGER) return { error: 'Log rate limit in bytes per second is too large' };
  return { bytes };
}

/** `1024` → `1024M`: how manifests render memory and disk. */
export const formatMegabytes = (mb: number) => `${mb}M`;

/** A log rate in the largest unit that divides it evenly (`1K`, `5M`), `-1` unlimited; what generated manifests show. */
export function formatLogRate(bytes: number): string | number {
  if (bytes <= 0) return bytes;
  for (const unit of ['T', 'G', 'M', 'K'] as const) {
    const f = UNIT_FACTORS[unit]!;
    if (bytes % f === 0) return `${bytes / f}${unit}`;
  }
  return `${bytes}B`;
}

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

// ---- the manifest of an existing app ----

export interface ProcessState {
  type: string;
  command: string | null;
  instances: number;
  memoryInMb: number;
  diskInMb: number;
  logRateLimit: number;
  healthCheckType: string;
  healthCheckEndpoint: string | null;
  healthCheckInvocationTimeout: number | null;
  healthCheckInterval: number | null;
  healthCheckTimeout: number | null;
  readinessCheckType: string;
  readinessCheckEndpoint: string | null;
  readinessCheckInvocationTimeout: number | null;
  readinessCheckInterval: number | null;
}

export interface AppState {
  name: string;
  lifecycleType: string;
  buildpacks: string[];
  stack: string | null;
  docker?: { image: string; username?: string | null };
  env: Record<string, string>;
  features: Record<string, boolean>;
  /** Mapped routes (`host.domain/path`), with the destination protocol. */
  routes: Array<{ route: string; protocol: string }>;
  metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  processes: ProcessState[];
}

function processManifest(p: ProcessState): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: p.type,
    instances: p.instances,
    memory: formatMegabytes(p.memoryInMb),
    'disk-quota': formatMegabytes(p.diskInMb),
    'log-rate-limit-per-second': formatLogRate(p.logRateLimit),
  };
  if (p.command !== null) out.command = p.command;
  out['health-check-type'] = p.healthCheckType;
  if (p.healthCheckEndpoint !== null) out['health-check-http-endpoint'] = p.healthCheckEndpoint;
  if (p.healthCheckInvocationTimeout !== null) out['health-check-invocation-timeout'] = p.healthCheckInvocationTimeout;
  if (p.healthCheckInterval !== null) out['health-check-interval'] = p.healthCheckInterval;
  if (p.healthCheckTimeout !== null) out.timeout = p.healthCheckTimeout;
  out['readiness-health-check-type'] = p.readinessCheckType;
  if (p.readinessCheckEndpoint !== null) out['readiness-health-check-http-endpoint'] = p.readinessCheckEndpoint;
  if (p.readinessCheckInvocationTimeout !== null) out['readiness-health-check-invocation-timeout'] = p.readinessCheckInvocationTimeout;
  if (p.readinessCheckInterval !== null) out['readiness-health-check-interval'] = p.readinessCheckInterval;
  return out;
}

/** One `applications[]` entry describing an app as it is (dashed keys, units as manifests write them). */
export function appManifest(app: AppState): Record<string, unknown> {
  const out: Record<string, unknown> = { name: app.name };
  if (app.lifecycleType === 'docker') {
    if (app.docker) out.docker = { image: app.docker.image, ...(app.docker.username ? { username: app.docker.username } : {}) };
  } else {
    if (app.lifecycleType === 'cnb') out.lifecycle = 'cnb';
    if (app.stack) out.stack = app.stack;
    if (app.buildpacks.length > 0) out.buildpacks = [...app.buildpacks];
  }
  out.features = { ...app.features };
  if (Object.keys(app.env).length > 0) out.env = { ...app.env };
  if (app.routes.length > 0) out.routes = app.routes.map((r) => ({ route: r.route, protocol: r.protocol }));
  else out['no-route'] = true;
  const { labels, annotations } = app.metadata;
  if (Object.keys(labels).length > 0 || Object.keys(annotations).length > 0) out.metadata = { labels: { ...labels }, annotations: { ...annotations } };
  out.processes = [...app.processes].sort((a, b) => (a.type === 'web' ? -1 : b.type === 'web' ? 1 : a.type.localeCompare(b.type))).map(processManifest);
  return out;
}

// ---- diff ----

export interface DiffOp {
  op: 'add' | 'remove' | 'replace';
  path: string;
  was?: unknown;
  value?: unknown;
}

/** Route flags describe an action, not state: the diff leaves them (and the CLI's local `path`) out. */
const NOT_DIFFED = new Set(['no-route', 'random-route', 'default-route', 'path', 'buildpack', 'cnb-credentials']);
/** space_diff_manifest.rb leaves app-level sizes out "for backwards compatibility"; per-process ones still diff. */
const APP_LEVEL_NOT_DIFFED = new Set(['memory', 'disk-quota']);

const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && equal(a[k], b[k]));
  }
  return false;
}

/** A manifest value as the diff compares it: sizes in whole MB, log rates in their canonical unit, `none` → `process`. */
function normalizedValue(key: string, value: unknown): unknown {
  if (key === 'memory' || key === 'disk-quota') {
    const r = sizeInMb(value, key);
    return r.mb !== undefined ? formatMegabytes(r.mb) : value;
  }
  if (key === 'log-rate-limit-per-second') {
    const r = logRateInBytes(value);
    return r.bytes !== undefined ? formatLogRate(r.bytes) : value;
  }
  if (key === 'health-check-type' || key === 'readiness-health-check-type') return value === 'none' ? 'process' : value;
  if (['instances', 'timeout', 'health-check-invocation-timeout', 'health-check-interval', 'readiness-health-check-invocation-timeout', 'readiness-health-check-interval'].includes(key)) {
    return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  }
  return value;
}

function diffValue(path: string, current: unknown, value: unknown, out: DiffOp[]): void {
  if (current === undefined || current === null) {
    if (value !== undefined && value !== null) out.push({ op: 'add', path, value });
  } else if (!equal(current, value)) {
    out.push({ op: 'replace', path, was: current, value });
  }
}

/** Maps are merged by apply (env, features, labels): keys the manifest leaves out are not reported as removed. */
function diffMap(path: string, current: unknown, value: unknown, out: DiffOp[]): void {
  if (!isObject(value) || !isObject(current)) return diffValue(path, current, value, out);
  for (const [k, v] of Object.entries(value)) diffValue(`${path}/${pointer(k)}`, current[k], v, out);
}

/** Lists of keyed entries (processes by type, routes by route, sidecars by name): entries are compared per key. */
function diffKeyed(
  path: string,
  current: unknown,
  value: unknown,
  key: string,
  out: DiffOp[],
  entry: (path: string, current: Record<string, unknown>, value: Record<string, unknown>, out: DiffOp[]) => void,
): void {
  if (!Array.isArray(value) || !Array.isArray(current)) return diffValue(path, current, value, out);
  value.forEach((v, i) => {
    if (!isObject(v)) return;
    const match = current.find((c) => isObject(c) && c[key] === v[key]) as Record<string, unknown> | undefined;
    if (!match) out.push({ op: 'add', path: `${path}/${i}`, value: v });
    else entry(`${path}/${i}`, match, v, out);
  });
}

/** Per-key comparison of one object whose keys may be spelled with `_` (paths keep the client's spelling). */
function diffFields(path: string, current: Record<string, unknown>, value: Record<string, unknown>, out: DiffOp[], skip: Set<string> = new Set()): void {
  for (const [k, v] of Object.entries(value)) {
    const key = dashed(k);
    if (skip.has(key)) continue;
    diffValue(`${path}/${pointer(k)}`, current[key], normalizedValue(key, v), out);
  }
}

/**
 * The changes applying `applications` would make, in the `{op, path, was, value}` form of manifest_diff.
 * `existing` gives, per application index, the app's current manifest ({@link appManifest}) or undefined
 * when no app of that name exists (everything is then an `add`).
 */
export function diffManifest(applications: unknown[], existing: Array<Record<string, unknown> | undefined>): DiffOp[] {
  const out: DiffOp[] = [];
  applications.forEach((raw, index) => {
    if (!isObject(raw)) return;
    const current = existing[index] ?? {};
    // The web shorthand is compared with the web process.
    const web = Array.isArray(current.processes) ? (current.processes as unknown[]).find((p) => isObject(p) && p.type === 'web') : undefined;
    const flat: Record<string, unknown> = { ...current, ...(isObject(web) ? web : {}) };
    delete flat.type;
    for (const [k, v] of Object.entries(raw)) {
      const key = dashed(k);
      if (!APP_KEYS.has(key) || NOT_DIFFED.has(key) || APP_LEVEL_NOT_DIFFED.has(key)) continue;
      const path = `/applications/${index}/${pointer(k)}`;
      const cur = flat[key];
      if (key === 'processes') {
        diffKeyed(path, cur, v, 'type', out, (p, c, val, o) => diffFields(p, c, val, o, new Set(['type'])));
      } else if (key === 'routes') {
        diffKeyed(path, cur, v, 'route', out, (p, c, val, o) => diffFields(p, c, val, o, new Set(['route'])));
      } else if (key === 'sidecars') {
        diffKeyed(path, cur, v, 'name', out, (p, c, val, o) => diffFields(p, c, val, o, new Set(['name'])));
      } else if (key === 'env' || key === 'features') {
        diffMap(path, cur, key === 'env' && isObject(v) ? Object.fromEntries(Object.entries(v).map(([ek, ev]) => [ek, typeof ev === 'number' || typeof ev === 'boolean' ? String(ev) : ev])) : v, out);
      } else if (key === 'metadata' && isObject(v) && isObject(cur)) {
        for (const part of ['labels', 'annotations']) if (v[part] !== undefined) diffMap(`${path}/${part}`, cur[part], v[part], out);
      } else if (key === 'metadata' && isObject(v)) {
        for (const part of ['labels', 'annotations']) if (isObject(v[part]) && Object.keys(v[part] as object).length > 0) out.push({ op: 'add', path: `${path}/${part}`, value: v[part] });
      } else {
        diffValue(path, cur, normalizedValue(key, v), out);
      }
    }
  });
  return out;
}
