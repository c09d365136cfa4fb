import { badRequest, KubeError } from './errors.ts';

/**
 * The three patch formats of the API: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge
 * patch, the format kubectl's client-side apply sends for built-in kinds. Strategic merge needs to know which
 * lists are merged by key; the real server reads that from Go struct tags, here it is the table below (the
 * keys of the core/apps/batch kinds the tests use). A list not in the table is replaced, as the real server does
 * for lists without a patch strategy.
 */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JObj = { [k: string]: Json };

const isObj = (v: unknown): v is JObj => v !== null && typeof v === 'object' && !Array.isArray(v);
const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObj(patch)) return clone(patch);
  const out: JObj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ---- JSON patch (RFC 6902)

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw badRequest(`invalid JSON pointer: ${path}`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, segs: string[]): { parent: Json; key: string } {
  let cur: Json = doc;
  for (const seg of segs.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(seg)] as Json;
    else if (isObj(cur)) cur = cur[seg] as Json;
    else cur = undefined as unknown as Json;
    if (cur === undefined) throw new KubeError('Invalid', `the server rejected our request due to an error in our request: path ${segs.join('/')} does not exist`);
  }
  return { parent: cur, key: segs[segs.length - 1]! };
}

function getAt(doc: Json, path: string): Json {
  let cur: Json | undefined = doc;
  for (const seg of pointer(path)) {
    if (Array.isArray(cur)) cur = cur[Number(seg)];
    else if (isObj(cur)) cur = cur[seg];
    else cur = undefined;
  }
  if (cur === undefined) throw new KubeError('Invalid', `the server rejected our request: path ${path} not found`);
  return cur;
}

function removeAt(doc: Json, path: string): Json {
  const { parent, key } = parentOf(doc, pointer(path));
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!(i >= 0 && i < parent.length)) throw new KubeError('Invalid', `the server rejected our request: index ${key} out of range`);
    return parent.splice(i, 1)[0]!;
  }
  if (isObj(parent) && Object.hasOwn(parent, key)) {
    const v = parent[key]!;
    delete parent[key];
    return v;
  }
  throw new KubeError('Invalid', `the server rejected our request due to an error in our request: unable to remove nonexistent key: ${key}`);
}

function addAt(doc: Json, path: string, value: Json, replace: boolean): Json {
  const segs = pointer(path);
  if (segs.length === 0) return clone(value);
  const { parent, key } = parentOf(doc, segs);
  if (Array.isArray(parent)) {
    if (key === '-') parent.push(clone(value));
    else {
      const i = Number(key);
      if (!(i >= 0 && i <= parent.length)) throw new KubeError('Invalid', `the server rejected our request: index ${key} out of range`);
      if (replace) parent[i] = clone(value);
      else parent.splice(i, 0, clone(value));
    }
  } else if (isObj(parent)) {
    if (replace && !Object.hasOwn(parent, key)) throw new KubeError('Invalid', `the server rejected our request due to an error in our request: replace operation does not apply: doc is missing key: ${path}`);
    parent[key] = clone(value);
  } else throw new KubeError('Invalid', `the server rejected our request: ${path} has no parent`);
  return doc;
}

export function jsonPatch(doc: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw badRequest('json patch must be an array of operations');
  let out = clone(doc);
  for (const raw of ops) {
    const op = raw as { op?: string; path?: string; from?: string; value?: Json };
    const path = op.path ?? '';
    switch (op.op) {
      case 'add':
        out = addAt(out, path, op.value as Json, false);
        break;
      case 'replace':
        out = addAt(out, path, op.value as Json, true);
        break;
      case 'remove':
        removeAt(out, path);
        break;
      case 'move': {
        const v = removeAt(out, op.from ?? '');
        out = addAt(out, path, v, false);
        break;
      }
      case 'copy':
        out = addAt(out, path, getAt(out, op.from ?? ''), false);
        break;
      case 'test':
        if (JSON.stringify(getAt(out, path)) !== JSON.stringify(op.value))
          throw new KubeError('Invalid', `the server rejected our request due to an error in our request: testing value ${path} failed`);
        break;
      default:
        throw badRequest(`unexpected json patch operation: ${String(op.op)}`);
    }
  }
  return out;
}

// ---- strategic merge patch

/** List field name → merge key, for the built-in kinds. `ports` is keyed by whichever of its keys items carry. */
const MERGE_KEYS: Record<string, string | ((items: JObj[]) => string)> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  conditions: 'type',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  ports: (items) => (items.some((i) => 'containerPort' in i) ? 'containerPort' : 'port'),
};
/** Lists of scalars merged as sets. */
const PRIMITIVE_MERGE = new Set(['finalizers']);

function mergeKeyFor(field: string, items: JObj[]): string | undefined {
  const k = MERGE_KEYS[field];
  return typeof k === 'function' ? k(items) : k;
}

function strategicList(field: string, current: Json | undefined, patch: Json[]): Json[] {
  const cur = Array.isArray(current) ? clone(current) : [];
  if (PRIMITIVE_MERGE.has(field)) {
    const out = [...cur];
    for (const v of patch) if (!out.some((c) => JSON.stringify(c) === JSON.stringify(v))) out.push(clone(v));
    return out;
  }
  const objs = patch.filter(isObj);
  const key = objs.length === patch.length ? mergeKeyFor(field, objs) : undefined;
  if (!key) return clone(patch).filter((p) => !(isObj(p) && '$patch' in p));
  if (objs.some((o) => o.$patch === 'replace')) return clone(objs.filter((o) => o.$patch !== 'replace'));
  const out = cur.filter(isObj);
  for (const item of objs) {
    const idx = out.findIndex((c) => JSON.stringify(c[key]) === JSON.stringify(item[key]));
    if (item.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = strategicMerge(out[idx], item) as JObj;
    else out.push(strategicMerge({}, item) as JObj);
  }
  return out;
}

export function strategicMerge(target: Json | undefined, patch: Json): Json {
  if (!isObj(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  let out: JObj = isObj(target) ? clone(target) : {};
  const retain = patch.$retainKeys;
  if (Array.isArray(retain)) {
    const keep = new Set(retain.map(String));
    out = Object.fromEntries(Object.entries(out).filter(([k]) => keep.has(k)));
  }
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const drop = new Set((Array.isArray(v) ? v : []).map((x) => JSON.stringify(x)));
      const list = out[field];
      if (Array.isArray(list)) out[field] = list.filter((x) => !drop.has(JSON.stringify(x)));
      continue;
    }
    if (v === null) delete out[k];
    else if (isObj(v) && v.$patch === 'delete') delete out[k];
    else if (Array.isArray(v)) out[k] = strategicList(k, out[k], v);
    else if (isObj(v)) out[k] = strategicMerge(out[k], v);
    else out[k] = v;
  }
  return out;
}
