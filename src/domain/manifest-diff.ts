/** The pure half of `manifest_diff`: JSON-pointer operations from an app's current manifest to the requested one. */
import { APP_KEYS } from './manifest.ts';
import { dashed, isObject } from './manifest-document.ts';
import { formatLogRate, formatMegabytes, logRateInBytes, sizeInMb } from './manifest-units.ts';

export interface DiffOp {
  op: 'add' | 'remove' | 'replace';
  path: string;
  was?: unknown;
  value?: unknown;
}

/** Route flags describe an action, not state: the diff leaves them (and the CLI's local `path`) out. */
const NOT_DIFFED = new Set(['no-route', 'random-route', 'default-route', 'path', 'buildpack', 'cnb-credentials']);
/** space_diff_manifest.rb leaves app-level sizes out "for backwards compatibility"; per-process ones still diff. */
const APP_LEVEL_NOT_DIFFED = new Set(['memory', 'disk-quota']);

const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && equal(a[k], b[k]));
  }
  return false;
}

/** A manifest value as the diff compares it: sizes in whole MB, log rates in their canonical unit, `none` → `process`. */
function normalizedValue(key: string, value: unknown): unknown {
  if (key === 'memory' || key === 'disk-quota') {
    const r = sizeInMb(value, key);
    return r.mb !== undefined ? formatMegabytes(r.mb) : value;
  }
  if (key === 'log-rate-limit-per-second') {
    const r = logRateInBytes(value);
    return r.bytes !== undefined ? formatLogRate(r.bytes) : value;
  }
  if (key === 'health-check-type' || key === 'readiness-health-check-type') return value === 'none' ? 'process' : value;
  if (['instances', 'timeout', 'health-check-invocation-timeout', 'health-check-interval', 'readiness-health-check-invocation-timeout', 'readiness-health-check-interval'].includes(key)) {
    return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  }
  return value;
}

function diffValue(path: string, current: unknown, value: unknown, out: DiffOp[]): void {
  if (current === undefined || current === null) {
    if (value !== undefined && value !== null) out.push({ op: 'add', path, value });
  } else if (!equal(current, value)) {
    out.push({ op: 'replace', path, was: current, value });
  }
}

/** Maps are merged by apply (env, features, labels): keys the manifest leaves out are not reported as removed. */
function diffMap(path: string, current: unknown, value: unknown, out: DiffOp[]): void {
  if (!isObject(value) || !isObject(current)) return diffValue(path, current, value, out);
  for (const [k, v] of Object.entries(value)) diffValue(`${path}/${pointer(k)}`, current[k], v, out);
}

/** Lists of keyed entries (processes by type, routes by route, sidecars by name): entries are compared per key. */
function diffKeyed(
  path: string,
  current: unknown,
  value: unknown,
  key: string,
  out: DiffOp[],
  entry: (path: string, current: Record<string, unknown>, value: Record<string, unknown>, out: DiffOp[]) => void,
): void {
  if (!Array.isArray(value) || !Array.isArray(current)) return diffValue(path, current, value, out);
  value.forEach((v, i) => {
    if (!isObject(v)) return;
    const match = current.find((c) => isObject(c) && c[key] === v[key]) as Record<string, unknown> | undefined;
    if (!match) out.push({ op: 'add', path: `${path}/${i}`, value: v });
    else entry(`${path}/${i}`, match, v, out);
  });
}

/** Per-key comparison of one object whose keys may be spelled with `_` (paths keep the client's spelling). */
function diffFields(path: string, current: Record<string, unknown>, value: Record<string, unknown>, out: DiffOp[], skip: Set<string> = new Set()): void {
  for (const [k, v] of Object.entries(value)) {
    const key = dashed(k);
    if (skip.has(key)) continue;
    diffValue(`${path}/${pointer(k)}`, current[key], normalizedValue(key, v), out);
  }
}

/**
 * The changes applying `applications` would make, in the `{op, path, was, value}` form of manifest_diff.
 * `existing` gives, per application index, the app's current manifest ({@link appManifest}) or undefined
 * when no app of that name exists (everything is then an `add`).
 */
export function diffManifest(applications: unknown[], existing: Array<Record<string, unknown> | undefined>): DiffOp[] {
  const out: DiffOp[] = [];
  applications.forEach((raw, index) => {
    if (!isObject(raw)) return;
    const current = existing[index] ?? {};
    // The web shorthand is compared with the web process.
    const web = Array.isArray(current.processes) ? (current.processes as unknown[]).find((p) => isObject(p) && p.type === 'web') : undefined;
    const flat: Record<string, unknown> = { ...current, ...(isObject(web) ? web : {}) };
    delete flat.type;
    for (const [k, v] of Object.entries(raw)) {
      const key = dashed(k);
      if (!APP_KEYS.has(key) || NOT_DIFFED.has(key) || APP_LEVEL_NOT_DIFFED.has(key)) continue;
      const path = `/applications/${index}/${pointer(k)}`;
      const cur = flat[key];
      if (key === 'processes') {
        diffKeyed(path, cur, v, 'type', out, (p, c, val, o) => diffFields(p, c, val, o, new Set(['type'])));
      } else if (key === 'routes') {
        diffKeyed(path, cur, v, 'route', out, (p, c, val, o) => diffFields(p, c, val, o, new Set(['route'])));
      } else if (key === 'sidecars') {
        diffKeyed(path, cur, v, 'name', out, (p, c, val, o) => diffFields(p, c, val, o, new Set(['name'])));
      } else if (key === 'env' || key === 'features') {
        diffMap(path, cur, key === 'env' && isObject(v) ? Object.fromEntries(Object.entries(v).map(([ek, ev]) => [ek, typeof ev === 'number' || typeof ev === 'boolean' ? String(ev) : ev])) : v, out);
      } else if (key === 'metadata' && isObject(v) && isObject(cur)) {
        for (const part of ['labels', 'annotations']) if (v[part] !== undefined) diffMap(`${path}/${part}`, cur[part], v[part], out);
      } else if (key === 'metadata' && isObject(v)) {
        for (const part of ['labels', 'annotations']) if (isObject(v[part]) && Object.keys(v[part] as object).length > 0) out.push({ op: 'add', path: `${path}/${part}`, value: v[part] });
      } else {
        diffValue(path, cur, normalizedValue(key, v), out);
      }
    }
  });
  return out;
}
