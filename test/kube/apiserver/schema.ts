import { Ajv, type ValidateFunction } from 'ajv';
import type { StatusCause } from './errors.ts';

/**
 * Structural-schema handling for custom resources, as the real server does it on create/update/patch:
 * defaults are applied, fields the schema does not know are pruned (or, with `fieldValidation=Strict`,
 * reported), then the object is validated against `openAPIV3Schema` (ajv; the `x-kubernetes-*` extensions are
 * honoured for pruning and int-or-string, otherwise ignored).
 */
export type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  default?: unknown;
  required?: string[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  [k: string]: unknown;
};

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const compiled = new WeakMap<Schema, ValidateFunction>();

/** The schema without `metadata` (ObjectMeta is validated by the server, not by the CRD's schema). */
function forValidation(schema: Schema): Schema {
  const props = { ...(schema.properties ?? {}) };
  delete props.metadata;
  return rewrite({ ...schema, properties: props, required: (schema.required ?? []).filter((r) => r !== 'metadata') });
}

/** int-or-string has no `type`; ajv needs it said. */
function rewrite(s: Schema): Schema {
  const out: Schema = { ...s };
  if (s['x-kubernetes-int-or-string']) {
    delete out.type;
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  if (s.properties) out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, rewrite(v)]));
  if (s.items) out.items = rewrite(s.items);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') out.additionalProperties = rewrite(s.additionalProperties);
  delete out.default;
  return out;
}

/** Applies defaults and prunes unknown fields in place; returns the paths it pruned. */
export function defaultAndPrune(value: unknown, schema: Schema | undefined, path: string, pruned: string[], top = false): void {
  if (!schema || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) defaultAndPrune(value[i], schema.items, `${path}[${i}]`, pruned);
    return;
  }
  const obj = value as Record<string, unknown>;
  for (const [k, sub] of Object.entries(schema.properties ?? {})) {
    if (obj[k] === undefined && sub.default !== undefined) obj[k] = JSON.parse(JSON.stringify(sub.default));
  }
  if (schema['x-kubernetes-preserve-unknown-fields'] || schema['x-kubernetes-embedded-resource']) {
    for (const [k, v] of Object.entries(obj)) defaultAndPrune(v, schema.properties?.[k], `${path}.${k}`, pruned);
    return;
  }
  for (const [k, v] of Object.entries(obj)) {
    if (top && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
    const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
    if (!sub && schema.additionalProperties !== true) {
      pruned.push(path ? `${path}.${k}` : k);
      delete obj[k];
      continue;
    }
    defaultAndPrune(v, sub, path ? `${path}.${k}` : k, pruned);
  }
}

export function validate(obj: Record<string, unknown>, schema: Schema): StatusCause[] {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = ajv.compile(forValidation(schema));
    compiled.set(schema, fn);
  }
  const { metadata: _, ...rest } = obj;
  if (fn(rest)) return [];
  return (fn.errors ?? []).map((e) => {
    const field = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
    const missing = e.keyword === 'required' ? (e.params as { missingProperty: string }).missingProperty : undefined;
    return {
      reason: missing ? 'FieldValueRequired' : e.keyword === 'enum' ? 'FieldValueNotSupported' : 'FieldValueInvalid',
      field: missing ? (field ? `${field}.${missing}` : missing) : field,
      message: missing ? 'Required value' : (e.message ?? 'invalid'),
    };
  });
}
