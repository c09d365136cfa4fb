import { z } from 'zod';
import { API_GROUP, API_VERSION, KINDS, type KindDefinition } from './schemas.ts';

/**
 * The CustomResourceDefinitions of `kiln.dev`, generated from the zod schemas in `schemas.ts`. Kubernetes wants
 * *structural* schemas: every node typed, `properties` and `additionalProperties` not together, no
 * `additionalProperties: false`, unions only as `x-kubernetes-int-or-string`; JSON Schema from zod is turned
 * into that here.
 */
type Node = Record<string, unknown>;

function structural(node: Node): Node {
  if (node.intOrString === true || (Array.isArray(node.anyOf) && isIntOrString(node.anyOf as Node[]))) return { 'x-kubernetes-int-or-string': true };
  const out: Node = {};
  if (Object.keys(node).length === 0 || (node.type === undefined && node.anyOf === undefined)) {
    return { 'x-kubernetes-preserve-unknown-fields': true };
  }
  for (const key of ['type', 'enum', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'required', 'description', 'default', 'format']) {
    if (node[key] !== undefined) out[key] = node[key];
  }
  // zod's safe-integer bounds say nothing to a user.
  if (out.minimum === -9007199254740991) delete out.minimum;
  if (out.maximum === 9007199254740991) delete out.maximum;
  if (Array.isArray(out.required) && out.required.length === 0) delete out.required;
  if (node.properties) out.properties = Object.fromEntries(Object.entries(node.properties as Record<string, Node>).map(([k, v]) => [k, structural(v)]));
  else if (node.additionalProperties && typeof node.additionalProperties === 'object') {
    const inner = node.additionalProperties as Node;
    out.additionalProperties = Object.keys(inner).length === 0 ? { 'x-kubernetes-preserve-unknown-fields': true } : structural(inner);
    if (Object.keys(inner).length === 0) {
      delete out.additionalProperties;
      out['x-kubernetes-preserve-unknown-fields'] = true;
    }
  }
  if (node.items) out.items = structural(node.items as Node);
  return out;
}

function isIntOrString(options: Node[]): boolean {
  const types = options.map((o) => o.type).sort();
  return types.length === 2 && (types[0] === 'integer' || types[0] === 'number') && types[1] === 'string';
}

function jsonSchema(schema: z.ZodType): Node {
  const raw = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    override: (ctx) => {
      if ((ctx.jsonSchema as Node).intOrString === true) {
        for (const k of Object.keys(ctx.jsonSchema)) delete (ctx.jsonSchema as Node)[k];
        (ctx.jsonSchema as Node).intOrString = true;
      }
    },
  }) as Node;
  delete raw.$schema;
  return structural(raw);
}

export function crdFor(def: KindDefinition): Record<string, unknown> {
  const spec = jsonSchema(def.spec);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${API_GROUP}`, labels: { 'app.kubernetes.io/part-of': 'kiln' } },
    spec: {
      group: API_GROUP,
      scope: def.scope,
      names: { kind: def.kind, listKind: `${def.kind}List`, plural: def.plural, singular: def.singular, shortNames: def.shortNames, categories: ['kiln'] },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              // An Organization may be written without a spec; kinds whose spec has required fields need one.
              ...(spec.required ? { required: ['spec'] } : {}),
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                status: jsonSchema(def.status),
              },
            },
          },
        },
      ],
    },
  };
}

/** File name → CRD, for `crds/`. */
export function generatedCrds(): Map<string, Record<string, unknown>> {
  return new Map(KINDS.map((k) => [`${API_GROUP}_${k.plural}.yaml`, crdFor(k)]));
}
