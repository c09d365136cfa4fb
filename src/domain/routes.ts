import { z } from 'zod';
import type { ListSpec } from './list-params.ts';
import { MetadataRequestSchema, type MetadataRequest } from './metadata.ts';
import { rubyToS } from './value-text.ts';

/**
 * Routes and their destinations: request schemas, worded as Cloud Controller's route messages word their
 * errors, and the pure rules (addresses, URLs, destination sets) the routes service applies.
 */

export const MAX_HOST_LENGTH = 63;
export const MAX_PATH_LENGTH = 128;
export const MAX_FQDN_LENGTH = 253;
export const MAX_DESTINATIONS = 100;
/** The port an app listens on when a destination names none (buildpack apps get `PORT=8080`). */
export const DEFAULT_APP_PORT = 8080;
export const DESTINATION_PROTOCOLS = ['http1', 'http2', 'tcp'] as const;

const HOST_RE = /^([\w-]+|\*)?$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const quoted = (keys: string[]) => keys.map((k) => `'${k}'`).join(', ');
const unknownKeys = (o: Record<string, unknown>, allowed: readonly string[]) => Object.keys(o).filter((k) => !allowed.includes(k));

/** Turns a hand-written validator into a zod schema, so routers validate at the edge as everywhere else. */
function schemaOf<T>(validate: (body: Record<string, unknown>) => { value: T; errors: string[] }) {
  return z.unknown().transform((input, ctx): T => {
    const { value, errors } = validate(isObject(input) ? input : {});
    if (errors.length > 0) {
      for (const message of errors) ctx.issues.push({ code: 'custom', message, input });
      return z.NEVER;
    }
    return value;
  });
}

function metadataErrors(body: Record<string, unknown>): { errors: string[]; metadata?: MetadataRequest } {
  if (!('metadata' in body) || body.metadata === undefined) return { errors: [] };
  const parsed = MetadataRequestSchema.safeParse(body.metadata);
  if (parsed.success) return { errors: [], metadata: parsed.data };
  if (!isObject(body.metadata)) return { errors: ["Metadata must be an object"] };
  const extra = unknownKeys(body.metadata, ['labels', 'annotations']);
  if (extra.length > 0) return { errors: [`Metadata has unexpected field(s): ${quoted(extra)}`] };
  return { errors: ["Metadata 'labels' and 'annotations' must be objects of strings"] };
}

// ---- options ----

export interface RouteOptions {
  loadbalancing?: string;
  hash_header?: string;
  hash_balance?: string;
}

/**
 * `options` of a create or update (`Options …` messages). `hashRouting` is the `hash_based_routing` flag: only
 * with it on are `hash`, `hash_header` and `hash_balance` known. Null values mean "remove this option".
 */
export function routeOptionsErrors(value: unknown, hashRouting: boolean): { errors: string[]; options: Record<string, string | null> } {
  const p = 'Options';
  if (!isObject(value)) return { errors: [`${p} 'options' is not a valid object`], options: {} };
  const errors: string[] = [];
  const known = ['loadbalancing', 'hash_header', 'hash_balance'];
  const extra = unknownKeys(value, known);
  if (extra.length > 0) errors.push(`${p} Unknown field(s): ${quoted(extra)}`);
  const valid = hashRouting ? known : ['loadbalancing'];
  const off = Object.keys(value).filter((k) => known.includes(k) && !valid.includes(k) && value[k] !== null && value[k] !== '');
  if (off.length > 0) errors.push(`${p} Unknown field(s): '${off.join("', '")}'`);
  const algorithms = hashRouting ? ['round-robin', 'least-connection', 'hash'] : ['round-robin', 'least-connection'];
  const lb = value.loadbalancing;
  if (lb !== undefined && lb !== null && lb !== '' && (typeof lb !== 'string' || !algorithms.includes(lb))) {
    errors.push(`${p} Loadbalancing must be one of '${algorithms.join(', ')}' if present`);
  }
  const options: Record<string, string | null> = {};
  if (lb !== undefined) options.loadbalancing = typeof lb === 'string' && lb !== '' ? lb : null;
  if (hashRouting) {
    const header = value.hash_header;
    if (header !== undefined && header !== null) {
      if (typeof header !== 'string' || header.length > 128) errors.push(`${p} Hash header must be at most 128 characters`);
      else options.hash_header = header;
    } else if (header === null) options.hash_header = null;
    const balance = value.hash_balance;
    if (balance !== undefined && balance !== null && balance !== '') {
      const n = typeof balance === 'number' ? balance : typeof balance === 'string' ? Number(balance) : NaN;
      if (rubyToS(balance).length > 16) errors.push(`${p} Hash balance must be at most 16 characters`);
      else if (!Number.isFinite(n)) errors.push(`${p} Hash balance must be a numeric value`);
      else if (!(n === 0 || (n >= 1.1 && n <= 10))) errors.push(`${p} Hash balance must be either 0 or between 1.1 and 10.0`);
      else options.hash_balance = String(Math.round(n * 10) / 10);
    } else if (balance === null) options.hash_balance = null;
    const explicitLb = typeof lb === 'string' && lb !== '';
    if (options.hash_header && explicitLb && lb !== 'hash') errors.push(`${p} Hash header can only be set when loadbalancing is hash`);
    if (options.hash_balance && explicitLb && lb !== 'hash') errors.push(`${p} Hash balance can only be set when loadbalancing is hash`);
  }
  return { errors, options };
}

/**
 * Options after a change: null deletes a key; hash settings only survive with hash load balancing. Returns
 * the 422 detail when hash balancing lacks its header.
 */
export function mergeRouteOptions(current: RouteOptions, change: Record<string, string | null>): { options: RouteOptions; error?: string } {
  const next: Record<string, string> = { ...(current as Record<string, string>) };
  for (const [k, v] of Object.entries(change)) {
    if (v === null) delete next[k];
    else next[k] = v;
  }
  if (next.loadbalancing !== 'hash') {
    delete next.hash_header;
    delete next.hash_balance;
  } else if (!next.hash_header) {
    return { options: next, error: 'Hash header must be present when loadbalancing is set to hash.' };
  }
  return { options: next };
}

// ---- create / update ----

/** A validated `POST /v3/routes` body. */
export interface CreateRoute {
  host: string;
  path: string;
  /** Only set when the body named a port (0 counts as none). */
  port: number | undefined;
  spaceGuid: string;
  domainGuid: string;
  /** Only set when the body had `options`. */
  options?: Record<string, string | null>;
  metadata?: MetadataRequest;
  /** The body as sent, for the audit event. */
  request: Record<string, unknown>;
}

/** `host`: one DNS label or `*`; an empty host is a route on the domain itself. */
export function hostErrors(host: unknown): string[] {
  if (host === undefined || host === null) return [];
  if (typeof host !== 'string') return ['Host must be a string'];
  const errors: string[] = [];
  if (host.length > MAX_HOST_LENGTH) errors.push(`Host is too long (maximum is ${MAX_HOST_LENGTH} characters)`);
  if (!HOST_RE.test(host)) errors.push('Host must be either "*" or contain only alphanumeric characters, "_", or "-"');
  return errors;
}

/** `path`: empty, or `/…` without `?`, not exactly `/`, at most 128 characters. */
export function pathErrors(path: unknown): string[] {
  if (path === undefined || path === null) return [];
  if (typeof path !== 'string') return ['Path must be a string'];
  const errors: string[] = [];
  if (path.length > MAX_PATH_LENGTH) errors.push(`Path is too long (maximum is ${MAX_PATH_LENGTH} characters)`);
  if (path !== '' && !path.startsWith('/')) errors.push('Path must begin with /');
  if (path.includes('?')) errors.push('Path cannot contain ?');
  if (path === '/') errors.push('Path cannot be exactly /');
  return errors;
}

function portErrors(port: unknown): string[] {
  if (port === undefined || port === null) return [];
  if (typeof port !== 'number' || !Number.isFinite(port)) return ['Port is not a number'];
  if (!Number.isInteger(port)) return ['Port must be an integer'];
  if (port < 0) return ['Port must be greater than or equal to 0'];
  if (port > 65535) return ['Port must be less than or equal to 65535'];
  return [];
}

/** A to-one relationship named `name` inside `relationships` (messages prefixed "Relationships"). */
function toOneErrors(name: string, value: unknown): { errors: string[]; guid?: string } {
  const label = name.charAt(0).toUpperCase() + name.slice(1);
  if (value === undefined || value === null) return { errors: [`Relationships ${label} can't be blank`] };
  const data = isObject(value) ? value.data : undefined;
  if (!isObject(value) || !isObject(data) || Object.keys(value).join() !== 'data' || !('guid' in data)) {
    return { errors: [`Relationships ${label} must be structured like this: "${name}: {"data": {"guid": "valid-guid"}}"`] };
  }
  const guid = data.guid;
  if (typeof guid !== 'string') return { errors: [`Relationships ${label} guid must be a string`] };
  if (guid.length < 1 || guid.length > 200) return { errors: [`Relationships ${label} guid must be between 1 and 200 characters`] };
  return { errors: [], guid };
}

export function createRouteSchema(hashRouting: boolean) {
  return schemaOf<CreateRoute>((body) => {
    const errors: string[] = [];
    const extra = unknownKeys(body, ['host', 'path', 'port', 'relationships', 'options', 'metadata']);
    if (extra.length > 0) errors.push(`Unknown field(s): ${quoted(extra)}`);
    errors.push(...hostErrors(body.host), ...pathErrors(body.path), ...portErrors(body.port));
    let spaceGuid = '';
    let domainGuid = '';
    const rel = body.relationships;
    if (rel === undefined || rel === null) {
      errors.push("Relationships can't be blank", "Relationships 'relationships' is not an object");
    } else if (!isObject(rel)) {
      errors.push("Relationships 'relationships' is not an object");
    } else if (Object.keys(rel).length === 0) {
      errors.push("Relationships can't be blank", "Relationships 'relationships' must include one or more valid relationships");
    } else {
      const relExtra = unknownKeys(rel, ['space', 'domain']);
      if (relExtra.length > 0) errors.push(`Relationships Unknown field(s): ${quoted(relExtra)}`);
      const space = toOneErrors('space', rel.space);
      const domain = toOneErrors('domain', rel.domain);
      errors.push(...space.errors, ...domain.errors);
      spaceGuid = space.guid ?? '';
      domainGuid = domain.guid ?? '';
    }
    let options: Record<string, string | null> | undefined;
    if ('options' in body) {
      const o = routeOptionsErrors(body.options, hashRouting);
      errors.push(...o.errors);
      options = o.options;
    }
    const m = metadataErrors(body);
    errors.push(...m.errors);
    const port = typeof body.port === 'number' && body.port > 0 ? body.port : undefined;
    return {
      value: {
        host: typeof body.host === 'string' ? body.host : '',
        path: typeof body.path === 'string' ? body.path : '',
        port,
        spaceGuid,
        domainGuid,
        ...(options ? { options } : {}),
        ...(m.metadata ? { metadata: m.metadata } : {}),
        request: body,
      },
      errors,
    };
  });
}

export interface UpdateRoute {
  options?: Record<string, string | null>;
  metadata?: MetadataRequest;
  request: Record<string, unknown>;
}

export function updateRouteSchema(hashRouting: boolean) {
  return schemaOf<UpdateRoute>((body) => {
    const errors: string[] = [];
    const extra = unknownKeys(body, ['options', 'metadata']);
    if (extra.length > 0) errors.push(`Unknown field(s): ${quoted(extra)}`);
    let options: Record<string, string | null> | undefined;
    if ('options' in body) {
      const o = routeOptionsErrors(body.options, hashRouting);
      errors.push(...o.errors);
      options = o.options;
    }
    const m = metadataErrors(body);
    errors.push(...m.errors);
    return { value: { ...(options ? { options } : {}), ...(m.metadata ? { metadata: m.metadata } : {}), request: body }, errors };
  });
}

// ---- destinations ----

/** One requested destination, with the defaults of an omitted process type applied. */
export interface DestinationRequest {
  appGuid: string;
  processType: string;
  /** Undefined: the app's default port. */
  port: number | undefined;
  /** Undefined: the route protocol's default (http1 for HTTP routes). */
  protocol: string | undefined;
  weight: number | null;
}

const DESTINATIONS_SHAPE = (replace: boolean) =>
  `Destinations must be an array containing between ${replace ? 0 : 1} and ${MAX_DESTINATIONS} destination objects.`;

/**
 * `POST` (insert, `replace` false) and `PATCH` (replace) bodies of `/v3/routes/:guid/destinations`. Weights
 * are only accepted when replacing, and then on every destination, summing to 100.
 */
export function destinationsSchema(replace: boolean) {
  return schemaOf<DestinationRequest[]>((body) => {
    const errors: string[] = [];
    const extra = unknownKeys(body, ['destinations']);
    if (extra.length > 0) errors.push(`Unknown field(s): ${quoted(extra)}`);
    const list = body.destinations;
    const min = replace ? 0 : 1;
    if (!Array.isArray(list) || list.length < min || list.length > MAX_DESTINATIONS) {
      errors.push(DESTINATIONS_SHAPE(replace));
      return { value: [], errors };
    }
    const out: DestinationRequest[] = [];
    const portsPerApp = new Map<string, number>();
    list.forEach((dst: unknown, i) => {
      const err = (m: string) => errors.push(`Destinations[${i}]: ${m}`);
      if (!isObject(dst)) return err('must be an object.');
      if (!('app' in dst)) return err('must have an "app".');
      if (unknownKeys(dst, ['app', 'weight', 'port', 'protocol']).length > 0) {
        return err('must have only "app" and optionally "weight", "port" or "protocol".');
      }
      const app = dst.app;
      let appGuid = '';
      let processType = 'web';
      if (!isObject(app) || typeof app.guid !== 'string' || app.guid.length < 1 || app.guid.length >= 200) {
        err('app must have the structure {"guid": "app_guid"}');
      } else {
        appGuid = app.guid;
        const process = app.process;
        if (process !== undefined && process !== null) {
          if (!isObject(process) || Object.keys(process).join() !== 'type' || typeof process.type !== 'string' || process.type === '') {
            err('process must have the structure {"type": "process_type"}');
          } else processType = process.type;
        }
      }
      const weight = dst.weight;
      if (weight !== undefined && weight !== null) {
        if (!replace) err('weighted destinations can only be used when replacing all destinations.');
        else if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 1 || weight > 100) {
          err('weight must be a positive integer between 1 and 100.');
        }
      }
      const port = dst.port;
      if (port !== undefined && port !== null && (typeof port !== 'number' || !Number.isInteger(port) || port < 1024 || port > 65535)) {
        err('port must be a positive integer between 1024 and 65535 inclusive.');
      }
      const protocol = dst.protocol;
      if (protocol !== undefined && protocol !== null && (typeof protocol !== 'string' || !(DESTINATION_PROTOCOLS as readonly string[]).includes(protocol))) {
        err("protocol must be 'http1', 'http2' or 'tcp'.");
      }
      portsPerApp.set(appGuid, (portsPerApp.get(appGuid) ?? 0) + 1);
      out.push({
        appGuid,
        processType,
        port: typeof port === 'number' ? port : undefined,
        protocol: typeof protocol === 'string' ? protocol : undefined,
        weight: typeof weight === 'number' ? weight : null,
      });
    });
    if ([...portsPerApp.values()].some((n) => n > 10)) errors.push('Process must have at most 10 exposed ports.');
    if (errors.length === 0) {
      const weights = out.map((d) => d.weight);
      if (weights.some((w) => w !== null)) {
        if (weights.some((w) => w === null)) errors.push('Destinations cannot contain both weighted and unweighted destinations.');
        else if (weights.reduce<number>((a, w) => a + (w ?? 0), 0) !== 100) errors.push('Destinations must have weights that sum to 100.');
      }
    }
    return { value: out, errors };
  });
}

/** `PATCH /v3/routes/:guid/destinations/:destination_guid`: only the protocol can change. */
export const UpdateDestinationSchema = schemaOf<{ protocol?: string }>((body) => {
  const errors: string[] = [];
  const extra = unknownKeys(body, ['protocol']);
  if (extra.length > 0) errors.push(`Unknown field(s): ${quoted(extra)}`);
  const protocol = body.protocol;
  if ('protocol' in body && (typeof protocol !== 'string' || !(DESTINATION_PROTOCOLS as readonly string[]).includes(protocol))) {
    errors.push("Destination protocol must be 'http1', 'http2' or 'tcp'.");
  }
  return { value: typeof protocol === 'string' ? { protocol } : {}, errors };
});

/** Whether a destination protocol suits a route protocol; the 422 detail when it does not. */
export function destinationProtocolError(routeProtocol: string, destinationProtocol: string): string | undefined {
  const family: Record<string, string> = { tcp: 'tcp', http1: 'http', http2: 'http' };
  if (family[destinationProtocol] === routeProtocol) return undefined;
  const valid: Record<string, string> = { tcp: 'tcp', http: 'http1, http2' };
  return `Cannot use '${destinationProtocol}' protocol for ${routeProtocol} routes; valid options are: [${valid[routeProtocol] ?? ''}].`;
}

/** `PATCH /v3/routes/:guid/relationships/space` → the target space guid. */
export const TransferOwnerSchema = schemaOf<{ spaceGuid: string }>((body) => {
  const errors: string[] = [];
  const extra = unknownKeys(body, ['data']);
  if (extra.length > 0) errors.push(`Unknown field(s): ${quoted(extra)}`);
  const data = body.data;
  let spaceGuid = '';
  if (data === undefined || data === null) errors.push("Data can't be blank");
  else if (!isObject(data)) errors.push('Data must be an object');
  else {
    if (Object.keys(data).length !== 1) errors.push('Data can only accept one key');
    if (!('guid' in data)) errors.push("Data can only accept key 'guid'");
    const guid = data.guid;
    if (guid !== undefined && guid !== null && typeof guid !== 'string') errors.push(`Data ${rubyToS(guid)} must be a string`);
    else if (guid === '') errors.push("Data guid can't be blank");
    else if (typeof guid === 'string') spaceGuid = guid;
  }
  return { value: { spaceGuid }, errors };
});

// ---- addresses ----

/** What identifies a route's address besides its domain. */
export interface RouteAddress {
  host: string;
  path: string;
  /** 0 = no port (HTTP routes). */
  port: number;
}

/**
 * The route's URL as Cloud Controller renders it (no scheme): `host.domain/path`, `domain/path` for an empty
 * host, `domain:port` for TCP routes.
 */
export function routeUrl(route: RouteAddress, domainName: string): string {
  if (route.port > 0) return `${domainName}:${route.port}`;
  return `${route.host === '' ? domainName : `${route.host}.${domainName}`}${route.path}`;
}

/** Host + domain (the route's fully qualified domain name). */
export const routeFqdn = (host: string, domainName: string) => (host === '' ? domainName : `${host}.${domainName}`);

// ---- lists ----

export const ROUTE_INCLUDES = ['domain', 'space', 'space.organization', 'route_policies'] as const;

export const ROUTE_LIST: ListSpec = {
  filters: ['hosts', 'paths', 'ports', 'domain_guids', 'space_guids', 'organization_guids', 'app_guids', 'service_instance_guids'],
  labelSelector: true,
  include: ROUTE_INCLUDES,
};

/** `GET /v3/routes/:guid/destinations` accepts only these filters (no paging: destinations are not paginated). */
export const DESTINATION_FILTERS = ['guids', 'app_guids'] as const;

/** Ports filter values: integers only (anything else matches nothing, like a port no route has). */
export function parsePorts(values: string[]): number[] {
  return values.filter((v) => /^\d{1,5}$/.test(v)).map(Number);
}
