import fs from 'node:fs';
import path from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

/**
 * Validates API responses against the official CF V3 OpenAPI document vendored in vendor/cf-api (see its README)
 * and, for the operations Kiln serves beyond it (locks, registry credentials…), against Kiln's own document
 * docs/kiln-openapi.json. Where the CF document is known to be wrong, the allow-list below says so and why; Kiln's
 * document gets no allow-list: where it is wrong, fix it.
 */

const SPEC_PATH = path.resolve(import.meta.dirname, '../../vendor/cf-api/openapi.json');
const KILN_SPEC_PATH = path.resolve(import.meta.dirname, '../../docs/kiln-openapi.json');

interface OpenApiDoc {
  paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> }>>;
}

const doc = JSON.parse(fs.readFileSync(SPEC_PATH, 'utf8')) as OpenApiDoc;
const kilnDoc = JSON.parse(fs.readFileSync(KILN_SPEC_PATH, 'utf8')) as OpenApiDoc;

// ajv-formats is published as CommonJS; under ESM its default export sits one level down.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv2020) => void;
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addSchema(doc as object, 'openapi.json');
ajv.addSchema(kilnDoc as object, 'kiln-openapi.json');

/** The two documents, CF's first: an operation is looked up in Kiln's only when CF's does not define it. */
const DOCS = [
  { id: 'openapi.json', doc },
  { id: 'kiln-openapi.json', doc: kilnDoc },
] as const;

/**
 * Known defects of openapi.json, each with the reason it is not Kiln's bug. An ajv error is ignored when
 * it matches one entry (instance path pattern + keyword, optionally only for some operations).
 */
export const SPEC_ALLOW_LIST: Array<{ instancePath: RegExp; keyword: string; operation?: RegExp; why: string }> = [
  {
    // RelationshipToOne declares `data: {type: [object, null], $ref: Relationship}`; in JSON Schema 2020-12
    // the $ref (type: object) applies too, so the documented `{"data": null}` of an unset parent can never validate.
    instancePath: /\/relationships\/[a-z_]+\/data$/,
    keyword: 'type',
    why: 'RelationshipToOne + $ref makes null data invalid although CONVENTIONS.md §2 requires it',
  },
  {
    // The same RelationshipToOne defect at the top level of the to-one relationship endpoints (OPERATIONS.md:
    // getDefaultIsolationSegmentForOrganization, getAssignedIsolationSegmentForSpace and their PATCHes), which
    // CONVENTIONS.md §7 documents as answering `{"data": null}` when nothing is assigned.
    instancePath: /^\/data$/,
    keyword: 'type',
    operation: /\/relationships\/(default_isolation_segment|isolation_segment)$/,
    why: 'RelationshipToOne + $ref makes a cleared to-one relationship ({"data": null}) invalid',
  },
  {
    // BaseSchema says guid has format uuid, but a user's guid is the identity provider's user_id or a client_id.
    instancePath: /^(\/resources\/\d+)?(\/included\/users\/\d+)?\/guid$/,
    keyword: 'format',
    operation: /\/(users|roles)/,
    why: 'user guids are identity-provider ids (CONVENTIONS.md §2), not necessarily UUIDs',
  },
  {
    // Upstream renders `previous_droplet: {"guid": null}` for a deployment of an app that had no current droplet
    // (CONVENTIONS.md §1: fields of what has not happened are null; §18 lists previous_droplet{guid}); the
    // Deployment schema types the guid as a string only.
    instancePath: /^(\/resources\/\d+)?\/previous_droplet\/guid$/,
    keyword: 'type',
    operation: /\/v3\/deployments/,
    why: 'previous_droplet.guid is null when the app had no droplet before the deployment',
  },
  {
    // `fields[service_offering.service_broker]` and the `fields[service_plan…]` of service instance lists make CC
    // render `included.service_brokers` / `included.service_plans` (the cf CLI's marketplace and services read
    // them, research/services.md §2); IncludedResources lists neither and forbids additional properties.
    instancePath: /^\/included$/,
    keyword: 'additionalProperties',
    operation: /\/v3\/service_(plans|offerings|instances)/,
    why: 'IncludedResources omits service_brokers and service_plans, which fields[...] on service lists include',
  },
  {
    // CC's AppUsageEvent presenter renders `task: {guid: null, name: null}` for process events (and the process
    // null for task events), and a null buildpack guid where the droplet's buildpack is not a system buildpack
    // (docker, a URL); the schema types these as strings only while typing the names `[string, null]`.
    instancePath: /^(\/resources\/\d+)?\/((task|buildpack)\/guid|process\/(guid|type))$/,
    keyword: 'type',
    operation: /\/v3\/app_usage_events/,
    why: 'task.guid (and buildpack.guid) are null where the event has no task (buildpack)',
  },
];

const compiled = new Map<string, ValidateFunction | null>();

function findTemplate(method: string, actualPath: string): { template: string; spec: (typeof DOCS)[number] } | undefined {
  for (const spec of DOCS) {
    const template = findTemplateIn(spec.doc, method, actualPath);
    if (template) return { template, spec };
  }
  return undefined;
}

function findTemplateIn(doc: OpenApiDoc, method: string, actualPath: string): string | undefined {
  const m = method.toLowerCase();
  let best: { template: string; params: number } | undefined;
  for (const template of Object.keys(doc.paths)) {
    if (!doc.paths[template]?.[m]) continue;
    const re = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    if (!re.test(actualPath)) continue;
    const params = (template.match(/\{/g) ?? []).length;
    if (!best || params < best.params) best = { template, params };
  }
  return best?.template;
}

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

function validatorFor(spec: (typeof DOCS)[number], template: string, method: string, status: number): ValidateFunction | null | undefined {
  const key = `${spec.id} ${method} ${template} ${status}`;
  if (compiled.has(key)) return compiled.get(key);
  const op = spec.doc.paths[template]?.[method.toLowerCase()];
  const response = op?.responses?.[String(status)];
  if (!response) return undefined;
  const schema = response.content?.['application/json']?.schema;
  if (!schema) {
    compiled.set(key, null);
    return null;
  }
  const ref = `${spec.id}#/paths/${escapePointer(template)}/${method.toLowerCase()}/responses/${status}/content/application~1json/schema`;
  const fn = ajv.compile({ $ref: ref });
  compiled.set(key, fn);
  return fn;
}

const errorDocument = ajv.compile({
  type: 'object',
  required: ['errors'],
  properties: {
    errors: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['detail', 'title', 'code'],
        properties: { detail: { type: 'string' }, title: { type: 'string' }, code: { type: 'integer' } },
      },
    },
  },
});

function allowed(e: ErrorObject, operation: string): boolean {
  return SPEC_ALLOW_LIST.some(
    (a) => a.keyword === e.keyword && a.instancePath.test(e.instancePath) && (!a.operation || a.operation.test(operation)),
  );
}

/**
 * Returns a list of problems (empty when the response conforms). Errors (status ≥ 400) must be CF error
 * documents; successes must match the operation's declared response, when the spec declares one.
 */
export function openApiProblems(method: string, urlPath: string, status: number, body: unknown): string[] {
  const pathOnly = urlPath.split('?')[0]!.replace(/\/$/, '') || '/';
  if (status >= 400) {
    return errorDocument(body) ? [] : [`error response is not a CF error document: ${JSON.stringify(body)}`];
  }
  const found = findTemplate(method, pathOnly);
  if (!found) {
    const covered = pathOnly.startsWith('/v3') || pathOnly === '/' || pathOnly.startsWith('/kiln/');
    return covered ? [`no operation ${method} ${pathOnly} in openapi.json or kiln-openapi.json`] : [];
  }
  const { template, spec } = found;
  const validate = validatorFor(spec, template, method, status);
  if (validate === undefined) return [`${spec.id} declares no ${status} response for ${method} ${template}`];
  if (validate === null || body === undefined || body === null || body === '') return [];
  if (validate(body)) return [];
  const operation = `${method} ${template}`;
  return (validate.errors ?? [])
    .filter((e) => spec.id !== 'openapi.json' || !allowed(e, operation))
    // oneOf/anyOf/allOf wrappers fail whenever an allowed inner error did; report them only with a real cause.
    .filter((e, _, all) => !['oneOf', 'anyOf', 'allOf', 'if'].includes(e.keyword) || all.some((o) => !['oneOf', 'anyOf', 'allOf', 'if'].includes(o.keyword)))
    .map((e) => `${operation} ${status}: ${e.instancePath || '(root)'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`);
}

/** The paths and methods Kiln's extension document defines (for the test that keeps it and the routes in step). */
export function kilnOperations(): Array<{ method: string; template: string }> {
  return Object.entries(kilnDoc.paths).flatMap(([template, item]) =>
    Object.keys(item)
      .filter((m) => ['get', 'post', 'patch', 'put', 'delete'].includes(m))
      .map((m) => ({ method: m.toUpperCase(), template })),
  );
}

/** Whether CF's document defines this operation (Kiln's must not redefine one). */
export const cfDefines = (method: string, template: string): boolean => findTemplateIn(doc, method, template.replace(/\{[^}]+\}/g, 'x')) !== undefined;
