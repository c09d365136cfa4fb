import type { Metadata } from '../../domain/metadata.ts';
import { sourceOf, sourceRelationship } from '../../domain/route-policies.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/**
 * A route policy as Cloud Controller renders it (route_policy_presenter; its request spec): `app`, `space` and
 * `organization` are read-only relationships filled from the source's kind (the others `{"data": null}`), and
 * the source's resource gets a link whether or not it exists (CC does not resolve source guids).
 */
export function presentRoutePolicy(policy: Row<'route_policies'>, metadata: Metadata | undefined, l: Linker) {
  const kind = sourceRelationship(policy.source_type);
  const related = (k: 'app' | 'space' | 'organization') => toOne(kind === k ? policy.source_guid : null);
  const links: { self: Link; route: Link; app?: Link; space?: Link; organization?: Link } = {
    self: l.link(`/v3/route_policies/${policy.guid}`),
    route: l.link(`/v3/routes/${policy.route_guid}`),
  };
  if (kind === 'app') links.app = l.link(`/v3/apps/${policy.source_guid}`);
  if (kind === 'space') links.space = l.link(`/v3/spaces/${policy.source_guid}`);
  if (kind === 'organization') links.organization = l.link(`/v3/organizations/${policy.source_guid}`);
  return {
    guid: policy.guid,
    created_at: cfTime(policy.created_at),
    updated_at: cfTime(policy.updated_at),
    source: sourceOf(policy),
    metadata: metadataOf(metadata),
    relationships: {
      route: toOne(policy.route_guid),
      app: related('app'),
      space: related('space'),
      organization: related('organization'),
    },
    links,
  };
}

const uuid = { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' };
const time = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$' };
const link = { type: 'object', required: ['href'], properties: { href: { type: 'string', pattern: '^https?://' } }, additionalProperties: false };
const toOneSchema = (nullable: boolean) => ({
  type: 'object',
  required: ['data'],
  additionalProperties: false,
  properties: {
    data: nullable
      ? { oneOf: [{ type: 'null' }, { type: 'object', required: ['guid'], additionalProperties: false, properties: { guid: uuid } }] }
      : { type: 'object', required: ['guid'], additionalProperties: false, properties: { guid: uuid } },
  },
});

/**
 * JSON Schema of the resource, written from CC's V3 docs (`docs/v3/source/includes/resources/route_policies/
 * _object.md.erb`) because the vendored openapi.json has no route policies (OPERATIONS.md cross-check). The
 * API tests validate every route policy response against it.
 */
export const ROUTE_POLICY_SCHEMA = {
  type: 'object',
  required: ['guid', 'created_at', 'updated_at', 'source', 'metadata', 'relationships', 'links'],
  additionalProperties: false,
  properties: {
    guid: uuid,
    created_at: time,
    updated_at: time,
    source: { type: 'string', pattern: '^(cf:(app|space|org):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|cf:any)$' },
    metadata: {
      type: 'object',
      required: ['labels', 'annotations'],
      additionalProperties: false,
      properties: {
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        annotations: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    relationships: {
      type: 'object',
      required: ['route', 'app', 'space', 'organization'],
      additionalProperties: false,
      properties: { route: toOneSchema(false), app: toOneSchema(true), space: toOneSchema(true), organization: toOneSchema(true) },
    },
    links: {
      type: 'object',
      required: ['self', 'route'],
      additionalProperties: false,
      properties: { self: link, route: link, app: link, space: link, organization: link },
    },
  },
} as const;
