import { z } from 'zod';
import { ROUTE_POLICY_SCOPES } from './route-policies.ts';
import { MetadataRequestSchema, type MetadataRequest } from './metadata.ts';

/** RFC 1035 labels joined by dots, at least two labels (Cloud Controller's DomainDecorator::DOMAIN_REGEX). */
const DOMAIN_RE = /^(([a-z0-9]|[a-z0-9][a-z0-9-]{0,61}[a-z0-9])\.)+([a-z0-9]|[a-z0-9][a-z0-9-]{0,61}[a-z0-9])$/i;
export const MIN_DOMAIN_LENGTH = 3;
export const MAX_DOMAIN_LENGTH = 253;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (o: Record<string, unknown>, k: string) => Object.hasOwn(o, k);
const quoted = (keys: string[]) => keys.map((k) => `'${k}'`).join(', ');

/**
 * Problems with a domain name, worded and ordered as Cloud Controller's DomainCreateMessage reports them
 * (several may apply at once, e.g. "a" is too short, not RFC 1035 and has no dot).
 */
export function domainNameErrors(name: unknown): string[] {
  if (name === undefined || name === null) return ["Name can't be blank", 'Name must be a string'];
  if (typeof name !== 'string') return ['Name must be a string'];
  const errors: string[] = [];
  if (name.trim() === '') errors.push("Name can't be blank");
  if (name.length < MIN_DOMAIN_LENGTH) errors.push(`Name is too short (minimum is ${MIN_DOMAIN_LENGTH} characters)`);
  if (name.length > MAX_DOMAIN_LENGTH) errors.push(`Name is too long (maximum is ${MAX_DOMAIN_LENGTH} characters)`);
  if (!DOMAIN_RE.test(name)) errors.push('Name does not comply with RFC 1035 standards');
  if (!name.includes('.')) errors.push('Name must contain at least one "."');
  if (name.split('.').some((label) => label.length > 63)) errors.push('Name subdomains must each be at most 63 characters');
  if (/[^a-z0-9\-.]/i.test(name)) errors.push('Name must consist of alphanumeric characters and hyphens');
  if (looksLikeIpAddress(name)) errors.push('Name must not be an IP address');
  return errors;
}

/**
 * Whether a name would be read as an IP address by URL parsers and resolvers: a last label of digits (or
 * `0x` hex), as in `127.0.0.1` or `10.1`. No top-level domain is numeric, so no real domain is refused.
 */
export function looksLikeIpAddress(name: string): boolean {
  const last = name.replace(/\.+$/, '').split('.').pop() ?? '';
  return /^(\d+|0x[0-9a-f]*)$/i.test(last);
}

/** What a domain name may not claim: the hosts Kiln's API is reached by (see router/api-hosts.ts). */
export interface PlatformNames {
  systemDomain: string;
  apiHosts: ReadonlySet<string>;
}

/**
 * Why a new domain may not have this name, if it names the platform: no domain may equal an API host; a
 * private domain also may not be or sit under the system domain, nor sit above an API host (a route
 * `host.<domain>` could then spell it). Shared domains are the admin's to lay out (`example.com` beside a
 * system domain `sys.example.com` is common). Returns the 422 detail.
 */
export function reservedDomainProblem(name: string, platform: PlatformNames, privateDomain: boolean): string | undefined {
  const lower = name.toLowerCase();
  const reserved = privateDomain
    ? `The domain name "${name}" is reserved and cannot be used for org-scoped domains.`
    : `The domain name "${name}" is reserved by the platform.`;
  const sd = platform.systemDomain;
  if (privateDomain && (lower === sd || lower.endsWith(`.${sd}`))) return reserved;
  for (const host of platform.apiHosts) {
    if (host === lower || (privateDomain && host.endsWith(`.${lower}`))) return reserved;
  }
  return undefined;
}

/**
 * The parent domains of a name that could own it, and the name itself: `a.b.example.com` →
 * `example.com`, `b.example.com`, `a.b.example.com` (a bare top-level label is never a domain).
 */
export function intermediateDomains(name: string): string[] {
  const labels = name.split('.');
  const out: string[] = [];
  for (let i = labels.length - 2; i >= 0; i--) out.push(labels.slice(i).join('.'));
  return out;
}

function guidErrors(attr: string, guid: unknown): string[] {
  if (typeof guid !== 'string') return [`${attr} must be a string`];
  if (guid.length < 1 || guid.length > 200) return [`${attr} must be between 1 and 200 characters`];
  return [];
}

/** `relationships` of a create body (organization and shared_organizations), each message prefixed "Relationships". */
function relationshipErrors(value: unknown): string[] {
  const p = 'Relationships';
  if (!isObject(value)) return [`${p} 'relationships' is not an object`];
  const keys = Object.keys(value);
  if (keys.length === 0) return [`${p} 'relationships' must include one or more valid relationships`];
  const errors: string[] = [];
  const extra = keys.filter((k) => k !== 'organization' && k !== 'shared_organizations');
  if (extra.length > 0) errors.push(`${p} Unknown field(s): ${quoted(extra)}`);
  const org = value.organization;
  if (org !== undefined && org !== null) {
    const ok =
      isObject(org) &&
      Object.keys(org).join() === 'data' &&
      (org.data === null || (isObject(org.data) && Object.keys(org.data).join() === 'guid'));
    if (!ok) errors.push(`${p} Organization must be structured like this: "organization: {"data": {"guid": "valid-guid"}}"`);
    else if (isObject(org.data)) errors.push(...guidErrors(`${p} Organization guid`, org.data.guid));
  }
  const shared = value.shared_organizations;
  if (shared !== undefined && shared !== null) {
    const data = isObject(shared) ? shared.data : undefined;
    const ok = Array.isArray(data) && data.every((d) => isObject(d) && Object.keys(d).join() === 'guid');
    if (!ok) {
      errors.push(
        `${p} Shared organizations must be structured like this: "shared_organizations: {"data": [{"guid": "valid-guid"},{"guid": "valid-guid"}]}"`,
      );
    } else {
      for (const d of data as Array<{ guid: unknown }>) errors.push(...guidErrors(`${p} Shared organization guids`, d.guid));
    }
  }
  if (has(value, 'shared_organizations') && !has(value, 'organization')) {
    errors.push(`${p} cannot contain shared_organizations without an owning organization.`);
  }
  return errors;
}

function routerGroupErrors(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!isObject(value)) return ['Router group must be an object'];
  const errors: string[] = [];
  const extra = Object.keys(value).filter((k) => k !== 'guid');
  if (extra.length > 0) errors.push(`Router group Unknown field(s): ${quoted(extra)}`);
  if (typeof value.guid !== 'string') errors.push('Router group guid must be a string');
  return errors;
}

/** A validated `POST /v3/domains` body. */
export interface CreateDomain {
  name: string;
  internal: boolean;
  /** Present (possibly null) when the body asked for a router group. */
  routerGroupGuid: string | null | undefined;
  /**
   * Set when the body had `relationships` (a private domain request). `null` when it named no usable
   * organization (`{"data": null}`), which the service reports as an unknown organization.
   */
  organizationGuid: string | null | undefined;
  sharedOrganizationGuids: string[];
  /** CC's `enforce_route_policies` (issue 12 item 17): the router checks callers against route policies. */
  enforceRoutePolicies: boolean;
  /** CC's optional `route_policies_scope` (any, org, space): which callers the router admits before the policies. */
  routePoliciesScope: string | null;
  metadata?: MetadataRequest;
}

export const CreateDomainSchema = z
  .object({
    name: z.unknown().optional(),
    internal: z.unknown().optional(),
    router_group: z.unknown().optional(),
    relationships: z.unknown().optional(),
    enforce_route_policies: z.unknown().optional(),
    route_policies_scope: z.unknown().optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict()
  .transform((body, ctx): CreateDomain => {
    const requested = (k: string) => has(body, k);
    const errors: string[] = [];
    if (requested('relationships')) errors.push(...relationshipErrors(body.relationships));
    errors.push(...domainNameErrors(body.name));
    errors.push(...routerGroupErrors(body.router_group));
    const enforce = body.enforce_route_policies === true;
    if (body.internal === true) {
      if (requested('relationships')) errors.push('Cannot associate an internal domain with an organization');
      if (requested('router_group')) errors.push('Internal domains cannot be associated to a router group.');
      if (enforce) errors.push('Internal domains cannot have route policy enforcement. Internal routes bypass GoRouter.');
    }
    if (requested('router_group') && enforce) {
      errors.push('Domains with a router group cannot have route policy enforcement. TCP routes do not support mTLS policy enforcement.');
    }
    if (requested('relationships') && requested('router_group')) {
      errors.push('Domains scoped to an organization cannot be associated to a router group.');
    }
    if (body.internal !== undefined && body.internal !== null && typeof body.internal !== 'boolean') {
      errors.push('Internal must be a boolean');
    }
    if (body.enforce_route_policies !== undefined && body.enforce_route_policies !== null && typeof body.enforce_route_policies !== 'boolean') {
      errors.push('Enforce route policies must be a boolean');
    }
    const scope = body.route_policies_scope;
    if (scope !== undefined && scope !== null && !(typeof scope === 'string' && (ROUTE_POLICY_SCOPES as readonly string[]).includes(scope))) {
      errors.push("Route policies scope must be one of 'any', 'org', 'space'");
    }
    if (errors.length > 0) {
      for (const message of errors) ctx.issues.push({ code: 'custom', message, input: body });
      return z.NEVER;
    }
    // Every shape below was checked by the error functions above.
    const rel = body.relationships as Record<string, unknown> | undefined;
    const org = rel?.organization as { data: { guid: string } | null } | null | undefined;
    const shared = rel?.shared_organizations as { data: Array<{ guid: string }> } | null | undefined;
    const routerGroup = body.router_group as { guid: string } | null | undefined;
    return {
      name: body.name as string,
      internal: body.internal === true,
      routerGroupGuid: requested('router_group') ? (routerGroup?.guid ?? null) : undefined,
      organizationGuid: requested('relationships') ? (org?.data?.guid ?? null) : undefined,
      sharedOrganizationGuids: shared?.data.map((d) => d.guid) ?? [],
      enforceRoutePolicies: enforce,
      routePoliciesScope: typeof scope === 'string' ? scope : null,
      ...(body.metadata ? { metadata: body.metadata } : {}),
    };
  });

export const UpdateDomainSchema = z.object({ metadata: MetadataRequestSchema.optional() }).strict();
export type UpdateDomain = z.infer<typeof UpdateDomainSchema>;

const SHARE_SHAPE = 'Data must have the structure "data": [{"guid": shared_org_guid_1}, {"guid": shared_org_guid_2}]';

/** `POST /v3/domains/:guid/relationships/shared_organizations` → the org guids to share with. */
export const ShareDomainSchema = z
  .object({ data: z.unknown().optional() })
  .strict()
  .transform((body, ctx): string[] => {
    const data = body.data;
    const ok =
      Array.isArray(data) &&
      data.every((d) => isObject(d) && typeof d.guid === 'string' && d.guid.length >= 1 && d.guid.length <= 200);
    if (!ok) {
      ctx.issues.push({ code: 'custom', message: SHARE_SHAPE, input: body });
      return z.NEVER;
    }
    return [...new Set((data as Array<{ guid: string }>).map((d) => d.guid))];
  });

// ---- GET /v3/domains/:guid/route_reservations ----

/** Which routes on a domain a reservation check asks about; any match means the route is taken. */
export interface RouteReservationQuery {
  hosts: string[];
  paths: string[];
  ports: number[];
}

export const ROUTE_RESERVATION_PARAMS = ['host', 'path', 'port'] as const;

/**
 * Reads the query of a reservation check. Omitted parts mean "none" (host `''`, path `''`, port 0), as
 * upstream does; values are comma-lists like every CF filter. Returns the detail of a 400 for a bad port.
 */
export function parseRouteReservationQuery(query: Record<string, string | undefined>): RouteReservationQuery | string {
  const list = (v: string) => v.split(',').map((s, i) => (i === 0 ? s : s.replace(/^\s+/, '')));
  const ports: number[] = [];
  for (const p of query.port === undefined ? ['0'] : list(query.port)) {
    if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) return 'Port must be an integer between 0 and 65535';
    ports.push(Number(p));
  }
  return {
    hosts: query.host === undefined ? [''] : list(query.host),
    paths: query.path === undefined ? [''] : list(query.path),
    ports,
  };
}
