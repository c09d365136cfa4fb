import { z } from 'zod';
import type { ListSpec } from './list-params.ts';
import { MetadataRequestSchema, type MetadataRequest } from './metadata.ts';

/**
 * Route policies (CC `route_policies`, issue 12 item 17): which callers may reach a route on a domain with
 * `enforce_route_policies`. A source names an app, a space or an org by guid, or `cf:any` (any caller that
 * presents a valid instance identity). The guid is not checked against anything (CC allows other orgs' and
 * not-yet-existing guids); `cf:any` and specific sources never share a route.
 */

export const ROUTE_POLICY_SOURCE_TYPES = ['app', 'space', 'org', 'any'] as const;
export type RoutePolicySourceType = (typeof ROUTE_POLICY_SOURCE_TYPES)[number];

/** CC's RoutePolicy::SOURCE_REGEX: lowercase uuids only. */
const SOURCE_RE = /^(?:cf:(app|space|org):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})|cf:any)$/;

export const SOURCE_FORMAT_ERROR = "Source must be in format 'cf:app:<uuid>', 'cf:space:<uuid>', 'cf:org:<uuid>', or 'cf:any'";

export interface ParsedSource {
  type: RoutePolicySourceType;
  /** '' for cf:any. */
  guid: string;
}

export function parseSource(source: string): ParsedSource | undefined {
  const m = SOURCE_RE.exec(source);
  if (!m) return undefined;
  if (source === 'cf:any') return { type: 'any', guid: '' };
  return { type: m[1] as RoutePolicySourceType, guid: m[2]! };
}

export const sourceOf = (row: { source_type: string; source_guid: string }): string =>
  row.source_guid === '' ? 'cf:any' : `cf:${row.source_type}:${row.source_guid}`;

export interface CreateRoutePolicy {
  source: ParsedSource & { text: string };
  routeGuid: string;
  metadata?: MetadataRequest;
}

const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** `POST /v3/route_policies`: CC's RoutePolicyCreateMessage (source, relationships.route, metadata). */
export const CreateRoutePolicySchema = z
  .object({
    source: z.unknown().optional(),
    relationships: z.unknown().optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict()
  .transform((body, ctx): CreateRoutePolicy => {
    const errors: string[] = [];
    let source: CreateRoutePolicy['source'] | undefined;
    if (body.source === undefined || body.source === null || body.source === '') errors.push("Source can't be blank");
    else if (typeof body.source !== 'string') errors.push('Source must be a string');
    else {
      const parsed = parseSource(body.source);
      if (parsed) source = { ...parsed, text: body.source };
      else errors.push(SOURCE_FORMAT_ERROR);
    }
    const rel = body.relationships;
    let routeGuid: string | undefined;
    if (rel === undefined || rel === null) errors.push("Relationships can't be blank", 'Relationships must be an object');
    else if (typeof rel !== 'object' || Array.isArray(rel)) errors.push('Relationships must be an object');
    else {
      const extra = Object.keys(rel).filter((k) => k !== 'route');
      if (extra.length > 0) errors.push(`Relationships Unknown field(s): '${extra.join("', '")}'`);
      const route = (rel as Record<string, unknown>).route as { data?: { guid?: unknown } } | undefined;
      if (!has(rel, 'route') || route === null || route === undefined) errors.push("Route can't be blank");
      const guid = route?.data?.guid;
      if (route !== undefined && route !== null && (typeof route !== 'object' || typeof route.data !== 'object' || route.data === null || typeof guid !== 'string')) {
        errors.push('Route must be structured like this: "route: {"data": {"guid": "valid-guid"}}"');
      } else if (typeof guid === 'string') routeGuid = guid;
    }
    if (errors.length > 0 || !source || routeGuid === undefined) {
      for (const message of errors) ctx.issues.push({ code: 'custom', message, input: body });
      return z.NEVER;
    }
    return { source, routeGuid, ...(body.metadata ? { metadata: body.metadata } : {}) };
  });

/** `PATCH /v3/route_policies/:guid`: metadata only. */
export const UpdateRoutePolicySchema = z.object({ metadata: MetadataRequestSchema.optional() }).strict();
export type UpdateRoutePolicy = z.infer<typeof UpdateRoutePolicySchema>;

export const ROUTE_POLICY_INCLUDES = ['route', 'source', 'app', 'space', 'organization'] as const;

export const ROUTE_POLICY_LIST: ListSpec = {
  filters: ['route_guids', 'space_guids', 'sources', 'source_guids'],
  labelSelector: true,
  include: ROUTE_POLICY_INCLUDES,
};

/** The read-only relationship a source populates (`cf:org` fills `organization`); none for cf:any. */
export function sourceRelationship(type: string): 'app' | 'space' | 'organization' | undefined {
  if (type === 'app') return 'app';
  if (type === 'space') return 'space';
  if (type === 'org') return 'organization';
  return undefined;
}

/** CC's domain create rule: only an external HTTP domain can have its routes' callers checked. */
export const ROUTE_POLICY_SCOPES = ['any', 'org', 'space'] as const;
