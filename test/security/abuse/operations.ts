import fs from 'node:fs';
import path from 'node:path';

/**
 * The operations of the vendored openapi.json, as the abuse suite walks them: every cross-tenant case, body-limit
 * case and random-body case is generated from this list, so an operation added to the document is covered
 * without anyone writing a case for it.
 */

const SPEC_PATH = path.resolve(import.meta.dirname, '../../../vendor/cf-api/openapi.json');

interface MediaType {
  schema?: unknown;
  example?: unknown;
  examples?: Record<string, { value?: unknown }>;
}

interface RawOperation {
  operationId?: string;
  parameters?: Array<{ $ref?: string; name?: string; in?: string }>;
  requestBody?: { content?: Record<string, MediaType> };
}

export interface Operation {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** The path template, e.g. `/v3/apps/{guid}/actions/start`. */
  template: string;
  operationId: string;
  /** The first segment after /v3 (`apps`), or `''` for the roots: what the exemptions are keyed by. */
  family: string;
  /** Media types the request body may have, first one first (`application/json` when none is declared). */
  mediaTypes: string[];
  /** The request body's schema for its first media type, when declared. */
  schema: unknown;
  /** The documented example bodies (first media type), possibly none. */
  examples: unknown[];
  /** Names of the declared query parameters. */
  query: string[];
}

export const spec = JSON.parse(fs.readFileSync(SPEC_PATH, 'utf8')) as {
  paths: Record<string, Record<string, RawOperation>>;
  components: { schemas: Record<string, unknown> };
};

const METHODS = ['get', 'post', 'patch', 'put', 'delete'] as const;

export const operations: Operation[] = Object.entries(spec.paths).flatMap(([template, ops]) =>
  METHODS.filter((m) => ops[m]).map((m) => {
    const op = ops[m]!;
    const content = op.requestBody?.content ?? {};
    const mediaTypes = Object.keys(content);
    const first = mediaTypes[0] ? content[mediaTypes[0]]! : undefined;
    const examples = first?.examples ? Object.values(first.examples).map((e) => e.value) : first?.example !== undefined ? [first.example] : [];
    return {
      method: m.toUpperCase() as Operation['method'],
      template,
      operationId: op.operationId ?? `${m} ${template}`,
      family: template.split('/')[2] ?? '',
      mediaTypes: mediaTypes.length > 0 ? mediaTypes : ['application/json'],
      schema: first?.schema,
      examples: examples.filter((e) => e !== undefined),
      query: (op.parameters ?? []).map((p) => (p.$ref ? (deref(p) as { name?: string; in?: string }) : p)).filter((p) => p.in === 'query').map((p) => p.name!),
    };
  }),
);

/** The `{name}` placeholders of a template with the path segment before each (`apps`, `guid`). */
export function placeholders(template: string): Array<{ param: string; after: string }> {
  const segments = template.split('/');
  const out: Array<{ param: string; after: string }> = [];
  segments.forEach((s, i) => {
    const m = /^\{(.+)\}$/.exec(s);
    if (m) out.push({ param: m[1]!, after: segments[i - 1] ?? '' });
  });
  return out;
}

/** Fills a template's placeholders; `value` answers undefined when it has nothing for one. */
export function fill(template: string, value: (p: { param: string; after: string }) => string | undefined): string | undefined {
  let missing = false;
  const segments = template.split('/');
  const out = segments.map((s, i) => {
    const m = /^\{(.+)\}$/.exec(s);
    if (!m) return s;
    const v = value({ param: m[1]!, after: segments[i - 1] ?? '' });
    if (v === undefined) missing = true;
    return encodeURIComponent(v ?? '');
  });
  return missing ? undefined : out.join('/');
}

/** Resolves a local `$ref` (`#/components/schemas/X`) in the document. */
export function deref(schema: unknown): Record<string, unknown> {
  let s = schema as Record<string, unknown> | undefined;
  for (let i = 0; i < 10 && s && typeof s.$ref === 'string'; i++) {
    const parts = (s.$ref as string).replace(/^#\//, '').split('/');
    let node: unknown = spec;
    for (const p of parts) node = (node as Record<string, unknown>)[p];
    // Sibling keywords of a $ref (description, nullable type) are kept beside the target's.
    const { $ref: _ref, ...rest } = s;
    s = { ...(node as Record<string, unknown>), ...rest };
  }
  return s ?? {};
}

/** The kind of resource a key of a request body or a path segment names (`organizations` → `org`). */
export function kindOf(key: string): string {
  const k = key.replace(/^(shared_|running_|staging_|current_|default_)/, '');
  const singular: Record<string, string> = {
    organizations: 'org',
    organization: 'org',
    org: 'org',
    spaces: 'space',
    space: 'space',
    apps: 'app',
    app: 'app',
    processes: 'process',
    process: 'process',
    packages: 'package',
    package: 'package',
    droplets: 'droplet',
    droplet: 'droplet',
    builds: 'build',
    build: 'build',
    tasks: 'task',
    deployments: 'deployment',
    revisions: 'revision',
    revision: 'revision',
    sidecars: 'sidecar',
    routes: 'route',
    route: 'route',
    destinations: 'destination',
    domains: 'domain',
    domain: 'domain',
    roles: 'role',
    users: 'user',
    user: 'user',
    space_quotas: 'space_quota',
    organization_quotas: 'org_quota',
    security_groups: 'security_group',
    isolation_segments: 'isolation_segment',
    isolation_segment: 'isolation_segment',
    audit_events: 'audit_event',
    jobs: 'job',
    stacks: 'stack',
    buildpacks: 'buildpack',
    service_brokers: 'service_broker',
    service_broker: 'service_broker',
    service_offerings: 'service_offering',
    service_offering: 'service_offering',
    service_plans: 'service_plan',
    service_plan: 'service_plan',
    service_instances: 'service_instance',
    service_instance: 'service_instance',
    service_credential_bindings: 'service_credential_binding',
    service_route_bindings: 'service_route_binding',
    service_usage_events: 'service_usage_event',
    app_usage_events: 'app_usage_event',
  };
  return singular[k] ?? k;
}
