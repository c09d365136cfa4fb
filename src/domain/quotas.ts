import { z } from 'zod';

/**
 * Organization and space quotas: request schemas and the pure rules that decide whether a change fits.
 * Kiln stores "unlimited" as NULL (Cloud Controller stores -1 and renders it as null); every rule below
 * treats `null` as no limit.
 */

// ---- limits ----

/** The limit columns both quota kinds share; names match the API fields (and the table columns). */
export const APP_LIMITS = [
  'total_memory_in_mb',
  'per_process_memory_in_mb',
  'total_instances',
  'per_app_tasks',
  'log_rate_limit_in_bytes_per_second',
] as const;
export const SERVICE_LIMITS = ['total_service_instances', 'total_service_keys'] as const;
export const ROUTE_LIMITS = ['total_routes', 'total_reserved_ports'] as const;
export const DOMAIN_LIMITS = ['total_domains'] as const;

export type LimitField =
  | (typeof APP_LIMITS)[number]
  | (typeof SERVICE_LIMITS)[number]
  | (typeof ROUTE_LIMITS)[number]
  | (typeof DOMAIN_LIMITS)[number];

/** A quota's limits; `null` = unlimited. `total_domains` only exists on organization quotas. */
export type QuotaLimits = Record<Exclude<LimitField, 'total_domains'>, number | null> & {
  paid_services_allowed: boolean;
  total_domains?: number | null;
};

/** The limits Cloud Controller gives a new quota for every field the request leaves out: all unlimited. */
export const DEFAULT_LIMITS: QuotaLimits = {
  total_memory_in_mb: null,
  per_process_memory_in_mb: null,
  total_instances: null,
  per_app_tasks: null,
  log_rate_limit_in_bytes_per_second: null,
  paid_services_allowed: true,
  total_service_instances: null,
  total_service_keys: null,
  total_routes: null,
  total_reserved_ports: null,
};

// ---- request validation ----

export const MAX_QUOTA_NAME_LENGTH = 250;
/** Upper bound of the integer columns (upstream's MAX_DB_INT). */
const MAX_DB_INT = 2147483647;
/**
 * Upstream allows log rates up to 2^63-1 (a bigint column); a JSON number beyond 2^53 cannot be held
 * exactly by JavaScript, so Kiln stops at the largest safe integer.
 */
const MAX_LOG_RATE = Number.MAX_SAFE_INTEGER;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const quoted = (keys: string[]) => keys.map((k) => `'${k}'`).join(', ');
/** Rails' `humanize`: `total_memory_in_mb` → `Total memory in mb`. */
const humanize = (field: string) => {
  const s = field.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
};
/** Ruby's `Array#to_s`, which upstream puts into its "guids … do not exist" messages. */
export const rubyList = (items: string[]) => `[${items.map((i) => JSON.stringify(i)).join(', ')}]`;

/** ActiveModel numericality messages for one optional limit (null allowed = unlimited). */
function limitErrors(field: string, value: unknown, max: number): string[] {
  if (value === null) return [];
  const name = humanize(field);
  if (typeof value !== 'number' || !Number.isFinite(value)) return [`${name} is not a number`];
  if (!Number.isInteger(value)) return [`${name} must be an integer`];
  if (value < 0) return [`${name} must be greater than or equal to 0`];
  if (value > max) return [`${name} must be less than or equal to ${max}`];
  return [];
}

interface Section {
  key: 'apps' | 'services' | 'routes' | 'domains';
  limits: readonly LimitField[];
  booleans: readonly 'paid_services_allowed'[];
}

const SECTIONS: Record<Section['key'], Section> = {
  apps: { key: 'apps', limits: APP_LIMITS, booleans: [] },
  services: { key: 'services', limits: SERVICE_LIMITS, booleans: ['paid_services_allowed'] },
  routes: { key: 'routes', limits: ROUTE_LIMITS, booleans: [] },
  domains: { key: 'domains', limits: DOMAIN_LIMITS, booleans: [] },
};

/** What a quota create/update asks for, flattened to column names; absent keys are left untouched. */
export interface QuotaChanges {
  name?: string;
  /** A limit set to `null` becomes unlimited. */
  limits: Partial<Record<LimitField, number | null>>;
  /** `null` restores the default (true). */
  paid_services_allowed?: boolean | null;
}

function sectionErrors(section: Section, value: unknown, out: QuotaChanges): string[] {
  const prefix = humanize(section.key);
  if (!isObject(value)) return [`${prefix} must be an object`];
  const errors: string[] = [];
  const allowed: readonly string[] = [...section.limits, ...section.booleans];
  const unknown = Object.keys(value).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) errors.push(`${prefix} Unknown field(s): ${quoted(unknown)}`);
  for (const field of section.limits) {
    if (!(field in value)) continue;
    const v = value[field];
    const problems = limitErrors(field, v, field === 'log_rate_limit_in_bytes_per_second' ? MAX_LOG_RATE : MAX_DB_INT);
    if (problems.length > 0) errors.push(...problems.map((p) => `${prefix} ${p}`));
    else out.limits[field] = v as number | null;
  }
  for (const field of section.booleans) {
    if (!(field in value)) continue;
    const v = value[field];
    if (v !== null && typeof v !== 'boolean') errors.push(`${prefix} ${humanize(field)} must be a boolean`);
    else out.paid_services_allowed = v;
  }
  return errors;
}

function nameErrors(value: unknown, opts: { blankAllowed: boolean }): string[] {
  if (typeof value !== 'string') return ['Name must be a string'];
  const errors: string[] = [];
  if (value.length < 1) errors.push('Name is too short (minimum is 1 character)');
  if (value.length > MAX_QUOTA_NAME_LENGTH) errors.push(`Name is too long (maximum is ${MAX_QUOTA_NAME_LENGTH} characters)`);
  if (!opts.blankAllowed && value.trim() === '') errors.push("Name can't be blank");
  return errors;
}

/** `relationships.<name>` as a to-many relationship: `{"data": [{"guid": …}, …]}`. */
function toManyErrors(name: string, value: unknown): { errors: string[]; guids: string[] } {
  const structure = `Relationships ${humanize(name)} must be structured like this: "${name}: {"data": [{"guid": "valid-guid"},{"guid": "valid-guid"}]}"`;
  const data = isObject(value) ? value.data : undefined;
  if (!Array.isArray(data) || !data.every((d) => isObject(d) && Object.keys(d).length === 1 && 'guid' in d)) {
    return { errors: [structure], guids: [] };
  }
  const errors: string[] = [];
  const guids: string[] = [];
  const singular = humanize(name.replace(/s$/, ''));
  for (const d of data as Array<{ guid: unknown }>) {
    if (typeof d.guid !== 'string') errors.push(`Relationships ${singular} guids must be a string`);
    else if (d.guid.length < 1 || d.guid.length > 200) errors.push(`Relationships ${singular} guids must be between 1 and 200 characters`);
    else guids.push(d.guid);
  }
  return { errors, guids };
}

/** `relationships.organization` as a to-one relationship that must name an org. */
function toOneErrors(name: string, value: unknown): { errors: string[]; guid?: string } {
  const data = isObject(value) && Object.keys(value).length === 1 ? value.data : undefined;
  if (!isObject(data) || Object.keys(data).length !== 1 || !('guid' in data)) {
    const shape = `"${name}: {"data": {"guid": "valid-guid"}}"`;
    return { errors: [`Relationships ${humanize(name)} must be structured like this: ${shape}`] };
  }
  const guid = data.guid;
  if (typeof guid !== 'string') return { errors: [`Relationships ${humanize(name)} guid must be a string`] };
  if (guid.length < 1 || guid.length > 200) return { errors: [`Relationships ${humanize(name)} guid must be between 1 and 200 characters`] };
  return { errors: [], guid };
}

function relationshipsErrors(value: unknown, allowed: string[]): string[] {
  if (!isObject(value)) return ["Relationships 'relationships' is not an object"];
  if (Object.keys(value).length === 0) return ["Relationships 'relationships' must include one or more valid relationships"];
  const unknown = Object.keys(value).filter((k) => !allowed.includes(k));
  return unknown.length > 0 ? [`Relationships Unknown field(s): ${quoted(unknown)}`] : [];
}

/** Turns a hand-written validator into a zod schema, so routers validate at the edge as everywhere else. */
function schemaOf<T>(validate: (body: Record<string, unknown>) => { value: T; errors: string[] }) {
  return z.unknown().transform((input, ctx): T => {
    const body = isObject(input) ? input : {};
    const { value, errors } = validate(body);
    if (errors.length > 0) {
      for (const message of errors) ctx.issues.push({ code: 'custom', message, input });
      return z.NEVER;
    }
    return value;
  });
}

interface QuotaBodyRules {
  sections: Array<Section['key']>;
  create: boolean;
  /** Space quota names may not be blank even on update; organization quota names only on create. */
  blankNameOnUpdate: boolean;
  relationships?: string[];
}

function validateQuotaBody(body: Record<string, unknown>, rules: QuotaBodyRules) {
  const out: QuotaChanges = { limits: {} };
  const errors: string[] = [];
  const allowed = ['name', ...rules.sections, ...(rules.relationships ? ['relationships'] : [])];
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) errors.push(`Unknown field(s): ${quoted(unknown)}`);
  if ('name' in body) {
    const problems = nameErrors(body.name, { blankAllowed: !rules.create && !rules.blankNameOnUpdate });
    if (problems.length > 0) errors.push(...problems);
    else out.name = body.name as string;
  } else if (rules.create) {
    errors.push("Name can't be blank");
  }
  for (const key of rules.sections) {
    if (key in body) errors.push(...sectionErrors(SECTIONS[key], body[key], out));
  }
  return { out, errors };
}

export interface CreateOrganizationQuota extends QuotaChanges {
  name: string;
  organizationGuids: string[];
  /** The body as sent, for the audit event. */
  request: Record<string, unknown>;
}

export const CreateOrganizationQuotaSchema = schemaOf<CreateOrganizationQuota>((body) => {
  const { out, errors } = validateQuotaBody(body, {
    sections: ['apps', 'services', 'routes', 'domains'],
    create: true,
    blankNameOnUpdate: false,
    relationships: ['organizations'],
  });
  let organizationGuids: string[] = [];
  if ('relationships' in body) {
    const relErrors = relationshipsErrors(body.relationships, ['organizations']);
    errors.push(...relErrors);
    const rel = body.relationships;
    if (relErrors.length === 0 && isObject(rel) && 'organizations' in rel) {
      const orgs = toManyErrors('organizations', rel.organizations);
      errors.push(...orgs.errors);
      organizationGuids = [...new Set(orgs.guids)];
    }
  }
  return { value: { ...out, name: out.name ?? '', organizationGuids, request: body }, errors };
});

export interface UpdateQuota extends QuotaChanges {
  request: Record<string, unknown>;
}

export const UpdateOrganizationQuotaSchema = schemaOf<UpdateQuota>((body) => {
  const { out, errors } = validateQuotaBody(body, {
    sections: ['apps', 'services', 'routes', 'domains'],
    create: false,
    blankNameOnUpdate: false,
  });
  return { value: { ...out, request: body }, errors };
});

export interface CreateSpaceQuota extends QuotaChanges {
  name: string;
  organizationGuid: string;
  spaceGuids: string[];
  request: Record<string, unknown>;
}

export const CreateSpaceQuotaSchema = schemaOf<CreateSpaceQuota>((body) => {
  const { out, errors } = validateQuotaBody(body, {
    sections: ['apps', 'services', 'routes'],
    create: true,
    blankNameOnUpdate: true,
    relationships: ['organization', 'spaces'],
  });
  let organizationGuid = '';
  let spaceGuids: string[] = [];
  const relErrors = relationshipsErrors(body.relationships, ['organization', 'spaces']);
  errors.push(...relErrors);
  const rel = body.relationships;
  if (relErrors.length === 0 && isObject(rel)) {
    const org = toOneErrors('organization', rel.organization);
    errors.push(...org.errors);
    organizationGuid = org.guid ?? '';
    if ('spaces' in rel) {
      const spaces = toManyErrors('spaces', rel.spaces);
      errors.push(...spaces.errors);
      spaceGuids = [...new Set(spaces.guids)];
    }
  }
  return { value: { ...out, name: out.name ?? '', organizationGuid, spaceGuids, request: body }, errors };
});

/**
 * Upstream's space quota PATCH happens to reuse the organization quota message and so also accepts (and
 * ignores) `domains`; Kiln validates space quota updates with the space quota fields only.
 */
export const UpdateSpaceQuotaSchema = schemaOf<UpdateQuota>((body) => {
  const { out, errors } = validateQuotaBody(body, {
    sections: ['apps', 'services', 'routes'],
    create: false,
    blankNameOnUpdate: true,
  });
  return { value: { ...out, request: body }, errors };
});

/** `POST …/relationships/<name>` bodies: `{"data": [{"guid": …}, …]}` with at least one entry. */
export const ToManyRelationshipSchema = schemaOf<{ guids: string[] }>((body) => {
  const errors: string[] = [];
  const unknown = Object.keys(body).filter((k) => k !== 'data');
  if (unknown.length > 0) errors.push(`Unknown field(s): ${quoted(unknown)}`);
  const data = body.data;
  const guids: string[] = [];
  if (data === undefined || data === null || (Array.isArray(data) && data.length === 0)) errors.push("Data can't be blank");
  else if (!Array.isArray(data)) errors.push('Data must be an array');
  else {
    data.forEach((d: unknown, i) => {
      const guid = isObject(d) ? d.guid : undefined;
      if (typeof guid !== 'string') errors.push(`Invalid data type: Data[${i}] guid should be a string.`);
      else guids.push(guid);
    });
  }
  return { value: { guids: [...new Set(guids)] }, errors };
});

/** The limits a quota ends up with after `changes` are applied to `current`. */
export function applyChanges<Q extends QuotaLimits>(current: Q, changes: QuotaChanges): Q {
  const next = { ...current };
  for (const [field, value] of Object.entries(changes.limits) as Array<[LimitField, number | null]>) {
    (next as Record<LimitField, number | null>)[field] = value;
  }
  if (changes.paid_services_allowed !== undefined) next.paid_services_allowed = changes.paid_services_allowed ?? true;
  return next;
}

// ---- consistency of a quota's own limits ----

export const ORG_RESERVED_PORTS_ERROR =
  'Total reserved ports must be -1, 0, or a positive integer, and must be less than or equal to total routes.';
export const SPACE_RESERVED_PORTS_ERROR =
  'Total reserved ports must be -1, 0, or a positive integer, must be less than or equal to total routes, ' +
  'and must be less than or equal to total reserved ports for the organization quota.';

/** An organization quota may not reserve more ports than it allows routes. */
export function organizationQuotaError(q: Pick<QuotaLimits, 'total_routes' | 'total_reserved_ports'>): string | undefined {
  if (q.total_reserved_ports !== null && q.total_routes !== null && q.total_reserved_ports > q.total_routes) return ORG_RESERVED_PORTS_ERROR;
  return undefined;
}

/**
 * A space quota may not reserve more ports than it allows routes, nor more than the organization's quota
 * reserves (`orgQuota` undefined/null when the org has no quota: no constraint).
 */
export function spaceQuotaError(
  q: Pick<QuotaLimits, 'total_routes' | 'total_reserved_ports'>,
  orgQuota: Pick<QuotaLimits, 'total_reserved_ports'> | null | undefined,
): string | undefined {
  const ports = q.total_reserved_ports;
  if (ports === null) return undefined;
  if (q.total_routes !== null && ports > q.total_routes) return SPACE_RESERVED_PORTS_ERROR;
  if (orgQuota && orgQuota.total_reserved_ports !== null && ports > orgQuota.total_reserved_ports) return SPACE_RESERVED_PORTS_ERROR;
  return undefined;
}

// ---- enforcement (used by apps, processes, tasks, routes, domains, services) ----

/** `used + requested` fits under `limit` (null = unlimited). */
export const fits = (limit: number | null | undefined, used: number, requested: number): boolean =>
  limit === null || limit === undefined || used + requested <= limit;

/** A log rate of -1 on a process or task means "unlimited". */
export const UNLIMITED_LOG_RATE = -1;

/** What is already consumed in an org or a space, not counting the process or task being checked. */
export interface AppUsage {
  /** memory × instances of started processes, plus memory of pending and running tasks. */
  memoryInMb: number;
  /** Instances of started processes. */
  instances: number;
  /** log rate × instances of started processes, plus log rates of pending and running tasks. */
  logRate: number;
  /** Pending and running tasks. */
  activeTasks: number;
}

export interface QuotaScope {
  /** The quota in force, or null when none applies (a space without a space quota). */
  quota: QuotaLimits | null;
  usage: AppUsage;
  /** The org's or space's name, for the "cannot be unlimited in …" messages. */
  name: string;
}

export interface ProcessDemand {
  started: boolean;
  instances: number;
  memoryInMb: number;
  /** -1 = unlimited. */
  logRate: number;
}

/**
 * Whether a process may run as described, against its org's and space's quotas. Returns Cloud
 * Controller's validation messages (empty = allowed), in the order upstream checks them; a stopped
 * process consumes nothing and always passes.
 */
export function processQuotaErrors(p: ProcessDemand, org: QuotaScope, space: QuotaScope): string[] {
  if (!p.started) return [];
  const errors: string[] = [];
  const memory = p.memoryInMb * p.instances;
  if (space.quota && !fits(space.quota.total_memory_in_mb, space.usage.memoryInMb, memory)) errors.push('memory space_quota_exceeded');
  if (org.quota && !fits(org.quota.total_memory_in_mb, org.usage.memoryInMb, memory)) errors.push('memory quota_exceeded');
  if (org.quota && !fits(org.quota.per_process_memory_in_mb, 0, p.memoryInMb)) errors.push('memory instance_memory_limit_exceeded');
  if (space.quota && !fits(space.quota.per_process_memory_in_mb, 0, p.memoryInMb)) errors.push('memory space_instance_memory_limit_exceeded');
  if (org.quota && !fits(org.quota.total_instances, org.usage.instances, p.instances)) errors.push('app_instance_limit app_instance_limit_exceeded');
  if (space.quota && !fits(space.quota.total_instances, space.usage.instances, p.instances)) {
    errors.push('app_instance_limit space_app_instance_limit_exceeded');
  }
  errors.push(...logRateErrors('space', space, p.logRate, p.instances));
  errors.push(...logRateErrors('organization', org, p.logRate, p.instances));
  return errors;
}

function logRateErrors(kind: 'space' | 'organization', scope: QuotaScope, logRate: number, instances: number): string[] {
  const limit = scope.quota?.log_rate_limit_in_bytes_per_second ?? null;
  if (limit === null) return [];
  if (logRate === UNLIMITED_LOG_RATE) return [`log_rate_limit cannot be unlimited in ${kind} '${scope.name}'.`];
  if (!fits(limit, scope.usage.logRate, logRate * instances)) return [`log_rate_limit exceeds ${kind} log rate quota`];
  return [];
}

export interface TaskDemand {
  memoryInMb: number;
  /** -1 = unlimited. */
  logRate: number;
}

/**
 * Whether a new task may start, against its org's and space's quotas (organization first, as upstream).
 * `per_app_tasks` limits the pending and running tasks of the whole org or space, as Cloud Controller does.
 */
export function taskQuotaErrors(t: TaskDemand, org: QuotaScope, space: QuotaScope): string[] {
  const errors: string[] = [];
  for (const [kind, scope] of [
    ['organization', org],
    ['space', space],
  ] as const) {
    const q = scope.quota;
    if (!q) continue;
    if (!fits(q.total_memory_in_mb, scope.usage.memoryInMb, t.memoryInMb)) errors.push(`memory_in_mb exceeds ${kind} memory quota`);
    if (!fits(q.per_process_memory_in_mb, 0, t.memoryInMb)) errors.push(`memory_in_mb exceeds ${kind} instance memory quota`);
    errors.push(...logRateErrors(kind, scope, t.logRate, 1));
    if (q.per_app_tasks !== null && q.per_app_tasks <= scope.usage.activeTasks) errors.push('app_task_limit quota exceeded');
  }
  return errors;
}

/**
 * Whether one more route fits: the space's quota (if any) is checked before the org's. Returns upstream's
 * 422 detail, or undefined when allowed.
 */
export function routeQuotaError(
  org: { quota: QuotaLimits | null; name: string; routes: number },
  space: { quota: QuotaLimits | null; name: string; routes: number },
): string | undefined {
  if (space.quota && !fits(space.quota.total_routes, space.routes, 1)) return `Routes quota exceeded for space '${space.name}'.`;
  if (org.quota && !fits(org.quota.total_routes, org.routes, 1)) return `Routes quota exceeded for organization '${org.name}'.`;
  return undefined;
}

/**
 * Whether one more route with a reserved (TCP) port fits. With unlimited reserved ports the route limit
 * still caps them, as upstream's MaxReservedRoutePortsPolicy does.
 */
export function allowsAnotherReservedPort(quota: Pick<QuotaLimits, 'total_reserved_ports' | 'total_routes'>, existingPorts: number): boolean {
  if (quota.total_reserved_ports === null) return quota.total_routes === null || existingPorts < quota.total_routes;
  return existingPorts < quota.total_reserved_ports;
}

export function reservedPortQuotaError(
  org: { quota: QuotaLimits | null; name: string; ports: number },
  space: { quota: QuotaLimits | null; name: string; ports: number },
): string | undefined {
  if (space.quota && !allowsAnotherReservedPort(space.quota, space.ports)) return `Reserved route ports quota exceeded for space '${space.name}'.`;
  if (org.quota && !allowsAnotherReservedPort(org.quota, org.ports)) return `Reserved route ports quota exceeded for organization '${org.name}'.`;
  return undefined;
}

/** Whether the org may own one more private domain; the detail upstream reports otherwise. */
export function privateDomainQuotaError(org: { quota: QuotaLimits | null; name: string; domains: number }): string | undefined {
  if (!org.quota || fits(org.quota.total_domains, org.domains, 1)) return undefined;
  return `The number of private domains exceeds the quota for organization "${org.name}"`;
}

/** Catalogue entries a managed service instance create can fail with (space checks win, as upstream). */
export type ServiceInstanceQuotaError =
  | 'ServiceInstanceSpaceQuotaExceeded'
  | 'ServiceInstanceQuotaExceeded'
  | 'ServiceInstanceServicePlanNotAllowedBySpaceQuota'
  | 'ServiceInstanceServicePlanNotAllowed';

export function serviceInstanceQuotaError(
  plan: { free: boolean },
  org: { quota: QuotaLimits | null; instances: number },
  space: { quota: QuotaLimits | null; instances: number },
): ServiceInstanceQuotaError | undefined {
  if (space.quota && !fits(space.quota.total_service_instances, space.instances, 1)) return 'ServiceInstanceSpaceQuotaExceeded';
  if (org.quota && !fits(org.quota.total_service_instances, org.instances, 1)) return 'ServiceInstanceQuotaExceeded';
  if (!plan.free && space.quota && !space.quota.paid_services_allowed) return 'ServiceInstanceServicePlanNotAllowedBySpaceQuota';
  if (!plan.free && org.quota && !org.quota.paid_services_allowed) return 'ServiceInstanceServicePlanNotAllowed';
  return undefined;
}

/** Whether one more service key fits; the 422 detail upstream reports otherwise. */
export function serviceKeyQuotaError(
  org: { quota: QuotaLimits | null; keys: number },
  space: { quota: QuotaLimits | null; keys: number },
): string | undefined {
  if (space.quota && !fits(space.quota.total_service_keys, space.keys, 1)) {
    return "You have exceeded your space's limit for service binding of type key.";
  }
  if (org.quota && !fits(org.quota.total_service_keys, org.keys, 1)) {
    return "You have exceeded your organization's limit for service binding of type key.";
  }
  return undefined;
}

/**
 * Applying a quota with a log rate limit to orgs/spaces that run processes with an unlimited log rate is
 * refused; `names` are the affected orgs or spaces (sorted), as upstream lists at most two of them.
 */
export function unlimitedLogRateConflict(kind: 'org' | 'space', names: string[]): string | undefined {
  if (names.length === 0) return undefined;
  const shown = names.slice(0, 2).join("', '");
  const which =
    names.length === 1
      ? `${kind} '${shown}' which contains`
      : names.length > 2
        ? `${kind}s '${shown}' and ${names.length - 2} other ${kind}s which contain`
        : `${kind}s '${shown}' which contain`;
  return `Current usage exceeds new quota values. This quota is applied to ${which} apps running with an unlimited log rate limit.`;
}

/** The same refusal when a quota is being assigned (rather than updated). */
export function unlimitedLogRateAssignmentConflict(kind: 'org' | 'space'): string {
  return `Current usage exceeds new quota values. The ${kind}(s) being assigned this quota contain apps running with an unlimited log rate limit.`;
}
