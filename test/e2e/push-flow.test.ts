import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeZip } from '../staging/zip-fixtures.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * Replays the cf CLI v8 push flow (cf-cli-flows §5.4) against the real server with the local runtime, then
 * talks to the app through Kiln's router: scaling, replacement of a killed instance, crashes, stop, and a
 * malicious upload.
 */

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/apps');
let server: ServerProcess;
let api: string;
let token: string;
let spaceGuid: string;

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);

/** A GET through the router: the Host header names the route, the connection goes to Kiln's port. */
function viaRouter(host: string, urlPath = '/'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const { hostname, port } = new URL(api);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: urlPath, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A zip as the CLI sends it (yazl, Unix modes); unsafe names are allowed, for the malicious-upload case. */
async function zipEntries(entries: Array<{ name: string; data: Buffer }>): Promise<Buffer> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-zip-')), 'package.zip');
  await makeZip(file, entries.map((e) => ({ type: 'file' as const, name: e.name, content: e.data })));
  const buf = fs.readFileSync(file);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  return buf;
}

function appFiles(dir: string) {
  return fs.readdirSync(dir).map((name) => {
    const data = fs.readFileSync(path.join(dir, name));
    return { name, data, sha1: createHash('sha1').update(data).digest('hex') };
  });
}

async function upload(packageGuid: string, zip: Buffer, resources: unknown[] = []) {
  const form = new FormData();
  form.append('resources', JSON.stringify(resources));
  form.append('bits', new Blob([zip], { type: 'application/octet-stream' }), 'package.zip');
  const res = await fetch(`${api}/v3/packages/${packageGuid}/upload`, { method: 'POST', headers: { Authorization: `bearer ${token}` }, body: form });
  return { status: res.status, body: (await res.json()) as any };
}

async function stats(appGuid: string) {
  const procs = await call('GET', `/v3/apps/${appGuid}/processes`);
  const web = procs.body.resources.find((p: { type: string }) => p.type === 'web');
  return (await call('GET', `/v3/processes/${web.guid}/stats`)).body.resources as Array<{ index: number; state: string; details: string | null }>;
}

/** cf push APP from DIR, request by request. Returns the app guid once its instances are RUNNING (or CRASHED). */
async function push(name: string, dir: string): Promise<string> {
  const manifest = await fetch(`${api}/v3/spaces/${spaceGuid}/actions/apply_manifest`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-yaml', Authorization: `bearer ${token}` },
    body: `applications:\n- name: ${name}\n  default-route: true\n`,
  });
  expect(manifest.status).toBe(202);
  const jobUrl = manifest.headers.get('location')!;
  const job = await until('apply_manifest job', async () => {
    const j = await cliCall('GET', jobUrl, token);
    return j.body.state === 'PROCESSING' ? undefined : j.body;
  });
  expect(job.state, JSON.stringify(job.errors)).toBe('COMPLETE');
  const apps = await call('GET', `/v3/apps?names=${name}&space_guids=${spaceGuid}`);
  const appGuid: string = apps.body.resources[0].guid;

  const files = appFiles(dir);
  const matches = await call('POST', '/v3/resource_matches', {
    resources: files.map((f) => ({ path: f.name, mode: '644', checksum: { value: f.sha1 }, size_in_bytes: f.data.length })),
  });
  expect(matches.status).toBe(201);
  const pkg = await call('POST', '/v3/packages', { type: 'bits', relationships: { app: { data: { guid: appGuid } } } });
  expect(pkg.status).toBe(201);
  const uploaded = await upload(pkg.body.guid, await zipEntries(files));
  expect(uploaded.status, JSON.stringify(uploaded.body)).toBe(200);
  expect(uploaded.body.guid).toBe(pkg.body.guid);
  await until('package READY', async () => {
    const p = await call('GET', `/v3/packages/${pkg.body.guid}`);
    expect(p.body.state).not.toBe('FAILED');
    return p.body.state === 'READY' ? true : undefined;
  });
  const build = await call('POST', '/v3/builds', { package: { guid: pkg.body.guid } });
  expect(build.status).toBe(201);
  const staged = await until('build STAGED', async () => {
    const b = await call('GET', `/v3/builds/${build.body.guid}`);
    if (b.body.state === 'FAILED') throw new Error(`staging failed: ${b.body.error}`);
    return b.body.state === 'STAGED' ? b.body : undefined;
  }, 60_000);
  const droplet = await call('GET', `/v3/droplets/${staged.droplet.guid}`);
  expect(droplet.body.state).toBe('STAGED');
  const current = await call('PATCH', `/v3/apps/${appGuid}/relationships/current_droplet`, { data: { guid: droplet.body.guid } });
  expect(current.status).toBe(200);
  const restarted = await call('POST', `/v3/apps/${appGuid}/actions/restart`);
  expect(restarted.status).toBe(200);
  await until('instances up', async () => {
    const s = await stats(appGuid);
    return s.length > 0 && s.every((i) => i.state === 'RUNNING' || i.state === 'CRASHED') ? s : undefined;
  });
  return appGuid;
}

beforeAll(async () => {
  server = await startServerProcess();
  api = server.url;
  token = (await cliLogin(api, 'admin', server.adminPassword)).access_token;
  const org = await call('POST', '/v3/organizations', { name: 'push-org' });
  const space = await call('POST', '/v3/spaces', { name: 'dev', relationships: { organization: { data: { guid: org.body.guid } } } });
  spaceGuid = space.body.guid;
}, 60_000);

afterAll(() => server?.stop());

describe('cf push against the local runtime, through the router', () => {
  let hello: string;

  it('pushes a Node.js app and serves it on its default route', async () => {
    hello = await push('hello', path.join(FIXTURES, 'hello'));
    expect((await stats(hello)).map((i) => i.state)).toEqual(['RUNNING']);
    const routes = await call('GET', `/v3/apps/${hello}/routes`);
    expect(routes.body.resources[0].url).toBe('hello.apps.localhost');
    const res = await viaRouter('hello.apps.localhost', '/greet');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ version: 'v1', index: '0', path: '/greet' });
    expect(res.headers['x-vcap-request-id']).toBeTruthy();
    const unknown = await viaRouter('nope.apps.localhost');
    expect(unknown.status).toBe(404);
    // staging and router lines reach the app's log-cache buffer
    const logs = await call('GET', `/api/v1/read/${hello}?descending=true&envelope_types=LOG&limit=1000&start_time=-6795364578871345152`);
    const types = new Set(logs.body.envelopes.batch.map((e: { tags: { source_type: string } }) => e.tags.source_type));
    expect(types).toContain('STG');
    expect(types).toContain('RTR');
  }, 120_000);

  it('scales to three instances that all answer, and replaces one killed from outside', async () => {
    const web = (await call('GET', `/v3/apps/${hello}/processes/web`)).body;
    expect((await call('POST', `/v3/processes/${web.guid}/actions/scale`, { instances: 3 })).status).toBe(202);
    await until('3 running', async () => ((await stats(hello)).filter((i) => i.state === 'RUNNING').length === 3 ? true : undefined));
    const seen = new Map<string, number>();
    await until('all indexes answer', async () => {
      const r = JSON.parse((await viaRouter('hello.apps.localhost')).body) as { index: string; pid: number };
      seen.set(r.index, r.pid);
      return seen.size === 3 ? true : undefined;
    });
    expect([...seen.keys()].sort()).toEqual(['0', '1', '2']);

    const victim = seen.get('1')!;
    process.kill(victim, 'SIGKILL');
    await until('index 1 replaced', async () => {
      const r = JSON.parse((await viaRouter('hello.apps.localhost')).body) as { index: string; pid: number };
      return r.index === '1' && r.pid !== victim ? true : undefined;
    });
    await until('3 running again', async () => ((await stats(hello)).filter((i) => i.state === 'RUNNING').length === 3 ? true : undefined));
  }, 120_000);

  it('reports a crashing app as CRASHED', async () => {
    const crasher = await push('crasher', path.join(FIXTURES, 'crasher'));
    const s = await until('CRASHED', async () => {
      const st = await stats(crasher);
      return st.some((i) => i.state === 'CRASHED') ? st : undefined;
    });
    expect(s[0]!.state).toBe('CRASHED');
  }, 120_000);

  it('stops serving when the app is stopped', async () => {
    expect((await call('POST', `/v3/apps/${hello}/actions/stop`)).status).toBe(200);
    await until('route no longer served', async () => {
      const r = await viaRouter('hello.apps.localhost');
      return r.status === 503 || r.status === 404 ? r : undefined;
    });
    await until('no instances', async () => ((await stats(hello)).every((i) => i.state === 'DOWN') ? true : undefined));
  }, 60_000);

  it('rejects a zip that escapes the app root and writes nothing outside', async () => {
    const apps = await call('GET', `/v3/apps?names=hello&space_guids=${spaceGuid}`);
    const pkg = await call('POST', '/v3/packages', { type: 'bits', relationships: { app: { data: { guid: apps.body.resources[0].guid } } } });
    const marker = `kiln-escape-${Date.now()}`;
    const evil = await zipEntries([
      { name: 'ok.txt', data: Buffer.from('fine') },
      { name: `../../../../../../tmp/${marker}`, data: Buffer.from('pwned') },
    ]);
    const res = await upload(pkg.body.guid, evil);
    expect(res.status).toBe(422);
    expect(fs.existsSync(path.join(os.tmpdir(), marker))).toBe(false);
    expect(fs.existsSync(path.join('/tmp', marker))).toBe(false);
    const after = await call('GET', `/v3/packages/${pkg.body.guid}`);
    expect(after.body.state).not.toBe('READY');
  }, 60_000);
});
