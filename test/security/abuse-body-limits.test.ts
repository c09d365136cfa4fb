import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeMatcher } from '../../src/api/route-matcher.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { fill, kindOf, operations, type Operation } from './abuse/operations.ts';
import { firstDifference, outcome, snapshot } from './abuse/requests.ts';
import { buildWorld, QUIET_CONTROLLERS, type World } from './abuse/world.ts';

/**
 * Every POST, PATCH and PUT of openapi.json, sent a body over its limit by an admin against real resources: the
 * answer is 413 with a CF error, whether the body declares its length or streams it, and nothing changes.
 * Multipart uploads are held to the same limit for their text fields (their file has its own, larger one).
 * The YAML manifest operations keep CC's documented answer past 1 MB (400 "Manifest size is too large").
 */
const LIMIT = 2048;
const MANIFEST_LIMIT = 1024 * 1024;
const TOO_LARGE = { title: 'CF-MessageParseError', code: 1001, detail: `Request invalid due to parse error: the request body is larger than ${LIMIT} bytes` };

let t: TestKiln;
let world: World;
let served: (method: string, path: string) => boolean;
/** A droplet and a package still awaiting their upload (A's own are done, and refuse more bits unread). */
let awaiting: { droplet: string; package: string };

beforeAll(async () => {
  t = await createTestKiln({ KILN_MAX_JSON_BYTES: String(LIMIT) }, { disabledControllers: QUIET_CONTROLLERS });
  world = await buildWorld(t);
  served = routeMatcher(t.kiln.app.routes);
  const app = { relationships: { app: { data: { guid: world.a.guids.app } } } };
  const droplet = await t.admin.post('/v3/droplets', app);
  const pkg = await t.admin.post('/v3/packages', { type: 'bits', ...app });
  expect([droplet.status, pkg.status]).toEqual([201, 201]);
  awaiting = { droplet: droplet.body.guid, package: pkg.body.guid };
}, 120_000);
afterAll(async () => {
  await t?.close();
  await world?.close();
});

const writes = operations.filter((o) => o.method === 'POST' || o.method === 'PATCH' || o.method === 'PUT');

function urlOf(op: Operation): string {
  if (op.operationId === 'uploadDroplet') return `/v3/droplets/${awaiting.droplet}/upload`;
  if (op.operationId === 'uploadPackageBits') return `/v3/packages/${awaiting.package}/upload`;
  return fill(op.template, ({ param, after }) => {
    if (param === 'type') return 'web';
    if (param === 'index') return '0';
    if (param === 'name') return after === 'features' ? 'ssh' : after === 'feature_flags' ? 'diego_docker' : 'running';
    if (after === 'buildpacks') return world.globals.buildpack;
    const kind = param === 'guid' || param === 'quota_guid' ? kindOf(after) : kindOf(param.replace(/_guid$/, ''));
    return world.a.guids[kind] ?? '00000000-0000-4000-8000-000000000000';
  })!;
}

/** A JSON text of `size` bytes that would be a plausible body if it were small. */
const bigJson = (size: number) => {
  const head = '{"metadata":{"annotations":{"note":"';
  const tail = '"}}}';
  return head + 'x'.repeat(size - head.length - tail.length) + tail;
};

async function request(op: Operation, url: string, body: RequestInit['body'], contentType: string | undefined, length?: number) {
  // FormData sets its own content type (with the boundary).
  const headers: Record<string, string> = { authorization: `bearer ${t.admin.token}`, ...(contentType ? { 'content-type': contentType } : {}) };
  if (length !== undefined) headers['content-length'] = String(length);
  const init: RequestInit & { duplex?: 'half' } = { method: op.method, headers, body };
  if (body instanceof ReadableStream) init.duplex = 'half';
  const res = await t.kiln.app.request(`http://kiln.test${url}`, init);
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: reported below through the status and text
  }
  return { status: res.status, text, body: parsed };
}

/** A body that is never given a length: it arrives in chunks, as a chunked request would. */
function streamed(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(at, at + 512));
      at += 512;
    },
  });
}

let cases = 0;

describe('bodies over their limit', () => {
  it.each(writes.map((op) => [`${op.method} ${op.template}`, op] as const))('%s answers 413 and changes nothing', async (_name, op) => {
    const url = urlOf(op);
    if (!served(op.method, url)) return;
    const problems: string[] = [];
    const before = await snapshot(t.kiln);
    const media = op.mediaTypes[0]!;
    const variants: Array<{ name: string; send: () => Promise<{ status: number; text: string; body: any }>; expect: 'too-large' | 'manifest' }> = [];
    if (media === 'application/x-yaml') {
      const yaml = `applications:\n- name: big\n  env:\n    PAD: ${'y'.repeat(MANIFEST_LIMIT)}\n`;
      variants.push({ name: 'manifest with its length', send: () => request(op, url, yaml, media, Buffer.byteLength(yaml)), expect: 'manifest' });
      variants.push({ name: 'manifest streamed', send: () => request(op, url, streamed(yaml), media), expect: 'manifest' });
    } else {
      const json = bigJson(LIMIT + 1);
      variants.push({ name: 'JSON with its length', send: () => request(op, url, json, 'application/json', json.length), expect: 'too-large' });
      variants.push({ name: 'JSON streamed', send: () => request(op, url, streamed(json), 'application/json'), expect: 'too-large' });
    }
    if (op.mediaTypes.includes('multipart/form-data')) {
      variants.push({
        name: 'multipart text field over the limit',
        send: () => {
          const form = new FormData();
          form.append('resources', `[${' '.repeat(LIMIT)}]`);
          form.append('bits', new Blob([new Uint8Array(16)], { type: 'application/zip' }), 'app.zip');
          return request(op, url, form, undefined);
        },
        expect: 'too-large',
      });
    }
    for (const v of variants) {
      const reply = await v.send();
      cases++;
      const say = (p: string) => problems.push(`${v.name}: ${p} — got ${reply.status} ${reply.text.slice(0, 200)}`);
      if (v.expect === 'too-large') {
        if (reply.status !== 413) say('expected 413');
        else {
          const e = reply.body?.errors;
          if (e?.length !== 1 || e[0].title !== TOO_LARGE.title || e[0].code !== TOO_LARGE.code || e[0].detail !== TOO_LARGE.detail) say(`expected ${JSON.stringify(TOO_LARGE)}`);
        }
      } else if (reply.status !== 400 || !String(reply.body?.errors?.[0]?.detail).endsWith('Manifest size is too large. The maximum supported size is 1MB.')) {
        say("expected CC's 400 Manifest size is too large");
      }
    }
    const after = await snapshot(t.kiln);
    if (after !== before) problems.push(`changed state: ${firstDifference(before, after)}`);
    expect(problems).toEqual([]);
  });

  it('lets a body just under the limit through to the operation', async () => {
    const op = operations.find((o) => o.operationId === 'updateApp')!;
    const url = urlOf(op);
    const json = bigJson(LIMIT - 1);
    const reply = await request(op, url, streamed(json), 'application/json');
    expect(reply.status, reply.text).toBe(200);
    expect(outcome({ status: reply.status, text: reply.text, body: reply.body, specProblems: [] })).toBe('200');
    console.log(`abuse body limits: ${writes.length} write operations, ${cases} oversized requests`);
  });
});
