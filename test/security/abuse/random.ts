import { exampleBody, MANIFEST } from './bodies.ts';
import { deref, type Operation } from './operations.ts';
import type { Body } from './requests.ts';

/**
 * Seeded random request bodies. One seed (KILN_ABUSE_SEED) reproduces every body of a run, so a failure printed
 * with its seed can be replayed exactly.
 */

/** mulberry32: small, fast and good enough to pick test inputs; not for anything secret. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Dice {
  constructor(readonly next: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}

/** Strings that have broken parsers, validators and SQL before. */
const NASTY_STRINGS = [
  '',
  ' ',
  'a',
  'web',
  'running',
  '*',
  '.',
  '..',
  '../../etc/passwd',
  '/',
  '//',
  '%00',
  '%2e%2e%2f',
  "'; drop table apps; --",
  '" or 1=1 --',
  '\\',
  '\u0000',
  '\u202e',
  '\ud83d\ude00',
  '\ud800',
  'ǅ',
  'İ',
  '\t\n\r',
  'null',
  'true',
  '0',
  '-1',
  '1e309',
  '9007199254740993',
  '0x10',
  'NaN',
  '__proto__',
  'constructor',
  '${PATH}',
  '$(id)',
  '<script>',
  'docker://x',
  'http://169.254.169.254/',
  'https://user:pass@example.com/x.git',
  'cflinuxfs4',
  'nodejs_buildpack',
  '00000000-0000-0000-0000-000000000000',
  '123e4567-e89b-12d3-a456-426614174000',
  'x'.repeat(64),
  'x'.repeat(256),
  'x'.repeat(5000),
  'a.b',
  'example.com',
  'localhost',
  '127.0.0.1',
  '::1',
  'a..b',
  '-a-.com',
  'tcp',
  'icmp',
  'all',
  '10.0.0.0/8',
  '0.0.0.0-255.255.255.255',
  '1-65535',
  '80,443',
  'rolling',
  'canary',
  'process',
  'port',
  'http',
  'http1',
  'http2',
  'tcp',
  '1G',
  '512M',
  '0M',
  '-1M',
  '99999999999T',
  'unlimited',
  'organization_manager',
  'space_developer',
  'bits',
  'docker',
  'buildpack',
  'cnb',
  'STAGED',
  'READY',
  'FAILED',
  'CANCELING',
];

const NASTY_NUMBERS = [0, 1, -1, 2, 7, 100, 1024, 65535, 65536, 2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, 1e21, 1e308, -1e308, 0.5, -0.0001, 3.14159];

const KEYS = ['name', 'guid', 'data', 'metadata', 'labels', 'annotations', 'relationships', 'type', 'state', 'instances', 'memory_in_mb', 'x', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', ' ', 'a/b', 'kiln.io/x'];

/** Any JSON value, up to `depth` levels of containers. */
export function anyValue(d: Dice, depth = 3, guids: readonly string[] = []): unknown {
  const r = d.next();
  if (depth <= 0 || r < 0.55) {
    const leaf = d.int(0, 5);
    if (leaf === 0) return null;
    if (leaf === 1) return d.chance(0.5);
    if (leaf === 2) return d.pick(NASTY_NUMBERS);
    if (leaf === 3 && guids.length > 0) return d.pick(guids);
    return d.pick(NASTY_STRINGS);
  }
  if (r < 0.75) return Array.from({ length: d.int(0, 4) }, () => anyValue(d, depth - 1, guids));
  const o: Record<string, unknown> = {};
  for (let i = d.int(0, 4); i > 0; i--) Object.defineProperty(o, d.pick(KEYS), { value: anyValue(d, depth - 1, guids), enumerable: true, writable: true, configurable: true });
  return o;
}

/**
 * A value for `schema` that mostly follows it (so it gets past the first checks and into the service), with a
 * chance at every node of being something else entirely.
 */
export function fromSchema(d: Dice, schema: unknown, guids: readonly string[], depth = 0): unknown {
  if (depth > 8 || d.chance(0.08)) return anyValue(d, 2, guids);
  const s = deref(schema);
  for (const key of ['oneOf', 'anyOf'] as const) {
    const alts = s[key] as unknown[] | undefined;
    if (Array.isArray(alts) && alts.length > 0) return fromSchema(d, d.pick(alts), guids, depth + 1);
  }
  if (Array.isArray(s.allOf)) {
    const merged: Record<string, unknown> = {};
    for (const part of s.allOf as unknown[]) Object.assign(merged, fromSchema(d, part, guids, depth + 1) as object);
    return merged;
  }
  if (Array.isArray(s.enum) && s.enum.length > 0) return d.chance(0.9) ? d.pick(s.enum as unknown[]) : d.pick(NASTY_STRINGS);
  const types = Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === 'string' ? [s.type] : s.properties ? ['object'] : [];
  const type = types.length > 0 ? d.pick(types) : d.pick(['string', 'object', 'integer', 'null']);
  switch (type) {
    case 'null':
      return null;
    case 'boolean':
      return d.chance(0.5);
    case 'integer':
      return d.chance(0.6) ? d.int(-2, 4096) : d.pick(NASTY_NUMBERS);
    case 'number':
      return d.pick(NASTY_NUMBERS);
    case 'string':
      if (s.format === 'uuid' && guids.length > 0 && d.chance(0.7)) return d.pick(guids);
      return d.pick(NASTY_STRINGS);
    case 'array': {
      const n = d.chance(0.1) ? d.int(0, 120) : d.int(0, 3);
      return Array.from({ length: n }, () => fromSchema(d, s.items ?? {}, guids, depth + 1));
    }
    default: {
      const o: Record<string, unknown> = {};
      const props = (s.properties ?? {}) as Record<string, unknown>;
      const required = new Set((s.required ?? []) as string[]);
      for (const [k, v] of Object.entries(props)) {
        if (required.has(k) ? d.chance(0.95) : d.chance(0.5)) o[k] = fromSchema(d, v, guids, depth + 1);
      }
      if (s.additionalProperties && typeof s.additionalProperties === 'object') {
        for (let i = d.int(0, 3); i > 0; i--) {
          Object.defineProperty(o, d.pick(KEYS), { value: fromSchema(d, s.additionalProperties, guids, depth + 1), enumerable: true, writable: true, configurable: true });
        }
      }
      if (d.chance(0.05)) o[d.pick(KEYS)] = anyValue(d, 1, guids);
      return o;
    }
  }
}

/** `value` with one node somewhere inside replaced by `replacement`. */
export function mutate(d: Dice, value: unknown, replacement: () => unknown): unknown {
  if (value === null || typeof value !== 'object' || d.chance(0.25)) return replacement();
  const copy: any = Array.isArray(value) ? [...value] : { ...(value as object) };
  const keys = Object.keys(copy);
  if (keys.length === 0) return replacement();
  const k = d.pick(keys);
  copy[k] = mutate(d, copy[k], replacement);
  return copy;
}

/** A JSON text nested `depth` levels deep (arrays or objects). */
export function deeplyNested(d: Dice, depth: number): string {
  return d.chance(0.5) ? '['.repeat(depth) + ']'.repeat(depth) : '{"metadata":'.repeat(depth) + '{}' + '}'.repeat(depth);
}

/** Texts that are not JSON at all, or almost. */
export function garbageText(d: Dice, example: string): string {
  switch (d.int(0, 7)) {
    case 0:
      return example.slice(0, d.int(0, Math.max(0, example.length - 1)));
    case 1:
      return `\ufeff${example}`;
    case 2:
      return `${example}${example}`;
    case 3:
      return Array.from({ length: d.int(1, 200) }, () => String.fromCharCode(d.int(0, 0xffff))).join('');
    case 4:
      return d.pick(['null', 'true', '0', '""', '[]', '{}', '[{}]', '"x"', '1e999', '-', '{"a":1,}', "{'a':1}", '{"a":01}', '{"a":"\\x"}']);
    case 5:
      return example.replace(/"/g, d.pick(["'", '', '\\"']));
    case 6:
      return `{"__proto__":{"admin":true},"constructor":{"prototype":{"admin":true}},"name":"x"}`;
    default:
      return example.replace(/:/, ':::');
  }
}

/** The i-th random body of an operation. */
export function randomBody(d: Dice, op: Operation, guids: readonly string[]): Body {
  const media = op.mediaTypes[0]!;
  const example = exampleBody(op);
  if (media === 'application/x-yaml') {
    const yaml = d.pick([
      MANIFEST,
      `applications:\n- name: ${d.pick(['a', '""', '[]', '{x: 1}', '*x', '&a [*a]'])}\n  instances: ${JSON.stringify(anyValue(d, 1))}\n  memory: ${d.pick(['1G', '-1M', 'lots', '0', '99999999T'])}\n`,
      `applications: ${JSON.stringify(anyValue(d, 3, guids))}\n`,
      `version: ${d.int(-1, 3)}\napplications:\n- name: x\n  routes: ${JSON.stringify(anyValue(d, 2))}\n  processes: ${JSON.stringify(anyValue(d, 2))}\n`,
      garbageText(d, MANIFEST),
      `a: &a [*a, *a]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\napplications: [*c]\n`,
    ]);
    return { kind: 'raw', text: yaml, contentType: d.chance(0.9) ? media : d.pick(['application/json', 'text/plain', '']) };
  }
  if (media === 'multipart/form-data' && d.chance(0.7)) {
    const fields: Record<string, string> = {};
    if (d.chance(0.8)) fields.resources = d.chance(0.5) ? JSON.stringify(fromSchema(d, (deref(op.schema).properties as Record<string, unknown> | undefined)?.resources ?? {}, guids)) : garbageText(d, '[]');
    if (d.chance(0.2)) fields[d.pick(['x', 'bits', 'name', ''])] = d.pick(['', 'x', '{}']);
    const file = d.chance(0.8) ? randomFile(d) : undefined;
    return { kind: 'multipart', fields, ...(file ? { file } : {}) };
  }
  const text = JSON.stringify(example);
  switch (d.int(0, 9)) {
    case 0:
    case 1:
    case 2:
      return { kind: 'json', value: fromSchema(d, op.schema ?? {}, guids) };
    case 3:
    case 4:
      return { kind: 'json', value: mutate(d, example, () => anyValue(d, 2, guids)) };
    case 5:
      return { kind: 'json', value: anyValue(d, 4, guids) };
    case 6:
      return { kind: 'raw', text: deeplyNested(d, d.pick([64, 1000, 20_000, 100_000])), contentType: 'application/json' };
    case 7:
      return { kind: 'raw', text: garbageText(d, text), contentType: d.chance(0.8) ? 'application/json' : d.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', '']) };
    default:
      return { kind: 'json', value: mutate(d, fromSchema(d, op.schema ?? {}, guids), () => anyValue(d, 1, guids)) };
  }
}

const ZIP_HEAD = [0x50, 0x4b, 0x03, 0x04];
const GZIP_HEAD = [0x1f, 0x8b, 0x08, 0x00];

/** Bytes that start like a zip or gzip (or not) and then go wrong. */
export function randomFile(d: Dice): Uint8Array {
  const head = d.pick([ZIP_HEAD, GZIP_HEAD, [0x50, 0x4b, 0x05, 0x06], []]);
  const bytes = new Uint8Array(head.length + d.int(0, 2048));
  bytes.set(head);
  for (let i = head.length; i < bytes.length; i++) bytes[i] = d.int(0, 255);
  return bytes;
}

