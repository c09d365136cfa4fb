import { randomUUID } from 'node:crypto';
import type { Body } from './requests.ts';
import { kindOf, type Operation } from './operations.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A place in an example body that holds a guid, with the kind of resource it names. */
export interface GuidSlot {
  path: Array<string | number>;
  kind: string;
}

/**
 * The guid slots of a documented example: `relationships.<rel>.data.guid` (or `data[i].guid`) names a `<rel>`,
 * `<key>.guid` names a `<key>` (`droplet`, `revision`, `app` of a destination), and a top-level `data` of a
 * relationship endpoint names what the endpoint's last segment names.
 */
export function guidSlots(example: unknown, template: string): GuidSlot[] {
  const out: GuidSlot[] = [];
  const last = template.split('/').pop() ?? '';
  const walk = (v: unknown, path: Array<string | number>) => {
    if (typeof v === 'string' && UUID.test(v)) {
      const keys = path.filter((p): p is string => typeof p === 'string' && p !== 'guid' && p !== 'data');
      out.push({ path, kind: kindOf(keys.length > 0 ? keys[keys.length - 1]! : last) });
      return;
    }
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(example, []);
  return out;
}

export function setAt(value: unknown, path: Array<string | number>, to: unknown): unknown {
  const copy = structuredClone(value);
  let node = copy as Record<string | number, unknown>;
  for (const p of path.slice(0, -1)) node = node[p] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = to;
  return copy;
}

/** A small manifest for the YAML operations (apply_manifest, manifest_diff). */
export const MANIFEST = 'applications:\n- name: abuse-app\n  instances: 1\n';

const SOME_GUID = '123e4567-e89b-12d3-a456-426614174000';

/** Bodies for operations whose documented example Kiln (rightly) refuses before it looks anything up. */
const OVERRIDES: Record<string, unknown> = {
  // The example mixes weighted destinations into an insert, which CC refuses ("weighted destinations can only be
  // used when replacing all destinations").
  insertDestinationsForRoute: { destinations: [{ app: { guid: SOME_GUID } }] },
};

/** The documented body of an operation (its first example), or the smallest plausible one. */
export function exampleBody(op: Operation): unknown {
  if (op.operationId in OVERRIDES) return OVERRIDES[op.operationId];
  if (op.examples[0] !== undefined) return op.examples[0];
  const ref = (op.schema as { $ref?: string } | undefined)?.$ref ?? '';
  if (/RelationshipToOne$/.test(ref)) return { data: { guid: SOME_GUID } };
  if (/RelationshipToMany$/.test(ref)) return { data: [{ guid: SOME_GUID }] };
  return {};
}

/** Wraps a JSON value as the operation's first media type wants it. */
export function asBody(op: Operation, value: unknown, file?: Uint8Array): Body {
  const type = op.mediaTypes[0]!;
  if (type === 'application/x-yaml') return { kind: 'raw', text: typeof value === 'string' ? value : MANIFEST, contentType: type };
  if (type === 'multipart/form-data') {
    const resources = (value as { resources?: unknown } | null)?.resources;
    return { kind: 'multipart', fields: { resources: JSON.stringify(resources ?? []) }, ...(file ? { file } : {}) };
  }
  return { kind: 'json', value };
}

export const freshGuid = (): string => randomUUID();
