import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parsePushArgs, push, runPush, type PushIO, type PushOptions } from '../../src/cli/push.ts';
import { PushUsageError } from '../../src/cli/manifest.ts';
import { listZip } from '../../src/staging/zip.ts';
import { createHash } from 'node:crypto';

/**
 * A scripted Cloud Controller: enough of the V3 API, UAA and log-cache for one push, answering the way the
 * real one does (jobs PROCESSING then COMPLETE, package PROCESSING_UPLOAD then READY, build STAGING then
 * STAGED, instances STARTING then RUNNING) and recording every request.
 */
interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: string;
  form?: FormData;
}

interface FakeOptions {
  orgs?: string[];
  spaces?: string[];
  buildFails?: boolean;
  crash?: boolean;
  noApplyManifest?: boolean;
  matchedSha1s?: string[];
  warning?: string;
}

const API = 'http://api.kiln.test:9000';
const ORG = 'org-guid';
const SPACE = 'space-guid';
const APP = 'app-guid';
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');
const b64 = (s: string) => Buffer.from(s).toString('base64');

function fakeCf(opts: FakeOptions = {}) {
  const requests: Recorded[] = [];
  let appExists = false;
  // apply_manifest maps the default route; without it, push has to.
  let routeMapped = false;
  const count: Record<string, number> = {};
  const bump = (k: string) => (count[k] = (count[k] ?? 0) + 1);
  const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
  const list = (resources: unknown[]) => json({ pagination: { total_results: resources.length, next: null }, resources });
  const cfError = (status: number, title: string, detail: string) => json({ errors: [{ code: 10000, title, detail }] }, status);

  const fetch = async (input: string, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input);
    const method = init.method ?? 'GET';
    const req = new Request(input, init);
    const rec: Recorded = { method, path: url.pathname, query: url.searchParams, headers: req.headers, body: '' };
    if ((req.headers.get('content-type') ?? '').startsWith('multipart/form-data')) rec.form = await req.formData();
    else rec.body = await req.text();
    requests.push(rec);
    const p = url.pathname;
    const key = `${method} ${p}`;

    if (key === 'GET /') {
      return json({ links: { login: { href: API }, uaa: { href: API }, log_cache: { href: API }, cloud_controller_v3: { href: `${API}/v3`, meta: { version: '3.195.0' } } } });
    }
    if (key === 'POST /oauth/token') {
      const form = new URLSearchParams(rec.body);
      if (form.get('password') !== 'secret') return json({ error: 'unauthorized', error_description: 'Bad credentials' }, 401);
      return json({ access_token: 'tok-from-login', token_type: 'bearer', refresh_token: 'r' });
    }
    if (!(req.headers.get('authorization') ?? '').startsWith('bearer ')) return cfError(401, 'CF-NotAuthenticated', 'Authentication error');
    if (key === 'GET /v3/organizations') {
      const names = url.searchParams.get('names');
      const orgs = (opts.orgs ?? ['org']).map((name, i) => ({ guid: i === 0 ? ORG : `org-${i}`, name }));
      return list(orgs.filter((o) => !names || o.name === names));
    }
    if (key === 'GET /v3/spaces') {
      const names = url.searchParams.get('names');
      const spaces = (opts.spaces ?? ['dev']).map((name, i) => ({ guid: i === 0 ? SPACE : `space-${i}`, name, relationships: { organization: { data: { guid: ORG } } } }));
      return list(spaces.filter((s) => !names || s.name === names));
    }
    if (key === `POST /v3/spaces/${SPACE}/actions/apply_manifest`) {
      if (opts.noApplyManifest) return cfError(404, 'CF-NotFound', 'Unknown request');
      appExists = true;
      routeMapped = true;
      return new Response(null, { status: 202, headers: { location: `${API}/v3/jobs/job-1`, 'x-cf-warnings': opts.warning ?? '' } });
    }
    if (key === 'GET /v3/jobs/job-1') {
      return json({ guid: 'job-1', state: bump('job') < 2 ? 'PROCESSING' : 'COMPLETE', errors: [], warnings: [] });
    }
    if (key === 'GET /v3/apps') return list(appExists ? [{ guid: APP, name: url.searchParams.get('names'), state: 'STOPPED' }] : []);
    if (key === 'POST /v3/apps') {
      appExists = true;
      return json({ guid: APP, name: JSON.parse(rec.body).name, state: 'STOPPED' }, 201);
    }
    if (key === `GET /v3/organizations/${ORG}/domains/default`) return json({ guid: 'domain-guid', name: 'apps.localhost' });
    if (key === 'GET /v3/routes') return list([]);
    if (key === 'POST /v3/routes') return json({ guid: 'route-guid' }, 201);
    if (key === 'POST /v3/routes/route-guid/destinations') {
      routeMapped = true;
      return json({ destinations: [] });
    }
    if (key === `POST /v3/apps/${APP}/processes/web/actions/scale`) return json({ guid: 'proc-guid', type: 'web', instances: 2 }, 202);
    if (key === 'POST /v3/resource_matches') {
      const asked = JSON.parse(rec.body).resources as Array<{ checksum: { value: string } }>;
      return json({ resources: asked.filter((r) => (opts.matchedSha1s ?? []).includes(r.checksum.value)) }, 201);
    }
    if (key === 'POST /v3/packages') return json({ guid: 'pkg-guid', state: 'AWAITING_UPLOAD', type: 'bits' }, 201);
    if (key === 'POST /v3/packages/pkg-guid/upload') return json({ guid: 'pkg-guid', state: 'PROCESSING_UPLOAD', type: 'bits' });
    if (key === 'GET /v3/packages/pkg-guid') return json({ guid: 'pkg-guid', state: 'READY', type: 'bits' });
    if (key === 'POST /v3/builds') return json({ guid: 'build-guid', state: 'STAGING', droplet: null }, 201);
    if (key === 'GET /v3/builds/build-guid') {
      if (bump('build') < 3) return json({ guid: 'build-guid', state: 'STAGING', droplet: null });
      return opts.buildFails
        ? json({ guid: 'build-guid', state: 'FAILED', error: 'BuildpackCompileFailed - App staging failed in the buildpack compile phase', droplet: null })
        : json({ guid: 'build-guid', state: 'STAGED', droplet: { guid: 'droplet-guid' } });
    }
    if (key === `GET /api/v1/read/${APP}`) {
      if (url.searchParams.get('descending') === 'true') {
        return json({ envelopes: { batch: [
          { timestamp: '3000', source_id: APP, instance_id: '0', tags: { source_type: 'APP/PROC/WEB' }, log: { payload: b64('Error: boom\n'), type: 'ERR' } },
          { timestamp: '2000', source_id: APP, instance_id: '0', tags: { source_type: 'APP/PROC/WEB' }, log: { payload: b64('starting\n'), type: 'OUT' } },
        ] } });
      }
      const start = BigInt(url.searchParams.get('start_time') ?? '0');
      const lines = [
        { timestamp: (start + 1n).toString(), tags: { source_type: 'STG' }, log: { payload: b64('-----> Nodejs Buildpack\n'), type: 'OUT' } },
        { timestamp: (start + 2n).toString(), tags: { source_type: 'API' }, log: { payload: b64('not a staging line\n'), type: 'OUT' } },
      ];
      // The first read returns the lines; later reads start after them and get nothing new.
      return json({ envelopes: { batch: bump('logs') === 1 ? lines : [] } });
    }
    if (key === `PATCH /v3/apps/${APP}/relationships/current_droplet`) return json({ data: { guid: 'droplet-guid' } });
    if (key === `POST /v3/apps/${APP}/actions/restart`) return json({ guid: APP, state: 'STARTED' });
    if (key === `GET /v3/apps/${APP}/processes`) return list([{ guid: 'proc-guid', type: 'web', instances: 1 }]);
    if (key === 'GET /v3/processes/proc-guid/stats') {
      const n = bump('stats');
      const state = opts.crash ? 'CRASHED' : n < 2 ? 'STARTING' : 'RUNNING';
      return json({ resources: [{ type: 'web', index: 0, state, details: opts.crash ? 'exited with status 1' : null, uptime: 0 }] });
    }
    if (key === `GET /v3/apps/${APP}/routes`) {
      if (!routeMapped) return list([]);
      return list([{ guid: 'route-guid', protocol: 'http', host: 'node-hello', path: '', url: 'node-hello.apps.localhost' }]);
    }
    return cfError(404, 'CF-NotFound', 'Unknown request');
  };
  return { fetch, requests, count };
}

let dir: string;
let output: string;
let errors: string;

function io(fetch: PushIO['fetch']): PushIO {
  return {
    out: { write: (s: string) => (output += s) },
    err: { write: (s: string) => (errors += s) },
    ...(fetch ? { fetch } : {}),
    sleep: () => new Promise((resolve) => setImmediate(resolve)),
    timing: { pollMs: 1, logPollMs: 1, stagingTimeoutMs: 10_000, startupTimeoutMs: 10_000 },
  };
}

function options(extra: Partial<PushOptions> = {}): PushOptions {
  return {
    dir,
    name: undefined,
    instances: undefined,
    memory: undefined,
    manifest: undefined,
    noManifest: false,
    api: API,
    username: undefined,
    password: undefined,
    token: 'tok',
    org: undefined,
    space: undefined,
    ...extra,
  };
}

const calls = (requests: Recorded[]) => requests.map((r) => `${r.method} ${r.path}`);

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-push-'));
  fs.writeFileSync(path.join(dir, 'server.js'), 'require("http").createServer().listen(process.env.PORT)\n');
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"node-hello","scripts":{"start":"node server.js"}}\n');
  fs.mkdirSync(path.join(dir, 'lib'));
  fs.writeFileSync(path.join(dir, 'lib', 'util.js'), 'module.exports = 1;\n');
  fs.writeFileSync(path.join(dir, 'manifest.yml'), 'applications:\n- name: node-hello\n  memory: 128M\n');
  output = '';
  errors = '';
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('kiln push against a Cloud Controller', () => {
  it('runs the cf push request flow and prints staging logs and the route URL with the API port', async () => {
    const cf = fakeCf({ matchedSha1s: [sha1('module.exports = 1;\n')], warning: 'memory+is+low%2C+really' });
    const result = await push(options({ instances: 2 }), io(cf.fetch));
    expect(result).toEqual({ appGuid: APP, urls: ['http://node-hello.apps.localhost:9000'] });

    const seq = calls(cf.requests).filter((c) => !c.startsWith('GET /api/v1/read'));
    expect(seq).toEqual([
      'GET /',
      'GET /v3/organizations',
      'GET /v3/spaces',
      'GET /v3/apps',
      `POST /v3/spaces/${SPACE}/actions/apply_manifest`,
      'GET /v3/jobs/job-1',
      'GET /v3/jobs/job-1',
      'GET /v3/apps',
      'POST /v3/resource_matches',
      'POST /v3/packages',
      'POST /v3/packages/pkg-guid/upload',
      'GET /v3/packages/pkg-guid',
      'POST /v3/builds',
      'GET /v3/builds/build-guid',
      'GET /v3/builds/build-guid',
      'GET /v3/builds/build-guid',
      `PATCH /v3/apps/${APP}/relationships/current_droplet`,
      `POST /v3/apps/${APP}/actions/restart`,
      `GET /v3/apps/${APP}/processes`,
      'GET /v3/processes/proc-guid/stats',
      'GET /v3/processes/proc-guid/stats',
      `GET /v3/apps/${APP}/routes`,
    ]);

    const manifest = cf.requests.find((r) => r.path.endsWith('/apply_manifest'))!;
    expect(manifest.headers.get('content-type')).toBe('application/x-yaml');
    expect(parse(manifest.body)).toEqual({ applications: [{ name: 'node-hello', memory: '128M', instances: 2, 'default-route': true }] });
    expect(manifest.headers.get('authorization')).toBe('bearer tok');

    const matches = JSON.parse(cf.requests.find((r) => r.path === '/v3/resource_matches')!.body);
    expect(matches.resources.map((r: { path: string }) => r.path)).toEqual(['lib/util.js', 'package.json', 'server.js']);
    expect(matches.resources[0]).toEqual({ path: 'lib/util.js', mode: '644', checksum: { value: sha1('module.exports = 1;\n') }, size_in_bytes: 20 });

    expect(JSON.parse(cf.requests.find((r) => r.path === '/v3/packages')!.body)).toEqual({
      type: 'bits',
      relationships: { app: { data: { guid: APP } } },
    });

    // The upload: matched files under `resources`, everything else (and directories, not the manifest) zipped.
    const upload = cf.requests.find((r) => r.path.endsWith('/upload'))!;
    expect(JSON.parse(upload.form!.get('resources') as string)).toEqual([matches.resources[0]]);
    const bits = upload.form!.get('bits') as File;
    expect(bits.name).toBe('package.zip');
    const zipFile = path.join(dir, '..', `${path.basename(dir)}.zip`);
    fs.writeFileSync(zipFile, Buffer.from(await bits.arrayBuffer()));
    try {
      expect((await listZip(zipFile)).map((e) => e.name)).toEqual(['lib/', 'package.json', 'server.js']);
    } finally {
      fs.rmSync(zipFile);
    }

    expect(JSON.parse(cf.requests.find((r) => r.path === '/v3/builds')!.body)).toEqual({ package: { guid: 'pkg-guid' } });
    expect(JSON.parse(cf.requests.find((r) => r.method === 'PATCH')!.body)).toEqual({ data: { guid: 'droplet-guid' } });
    const logRead = cf.requests.find((r) => r.path.startsWith('/api/v1/read'))!;
    expect(logRead.query.get('envelope_types')).toBe('LOG');
    expect(logRead.query.get('start_time')).toMatch(/^\d{19}$/);

    expect(output).toContain('   -----> Nodejs Buildpack\n');
    expect(output).not.toContain('not a staging line');
    expect(output).toContain('warning: memory is low, really');
    expect(output).toMatch(/\[ok\] Uploading app files: 3 entries uploaded \([\d.]+ \w?B\), 1 files already on the server \(\d+ms\)/);
    expect(output).toMatch(/\[ok\] Staging: droplet droplet-guid/);
    expect(output).toMatch(/\[ok\] Starting: 1 of 1 instances running/);
    expect(output).toContain('  http://node-hello.apps.localhost:9000\n');
    expect(output).not.toContain('\x1b[');
  });

  it('logs in with the password grant of the cf client and uses that token', async () => {
    const cf = fakeCf();
    await push(options({ token: undefined, username: 'admin', password: 'secret' }), io(cf.fetch));
    const token = cf.requests.find((r) => r.path === '/oauth/token')!;
    expect(token.headers.get('authorization')).toBe(`Basic ${Buffer.from('cf:').toString('base64')}`);
    expect(Object.fromEntries(new URLSearchParams(token.body))).toEqual({ grant_type: 'password', username: 'admin', password: 'secret' });
    expect(cf.requests.find((r) => r.path === '/v3/organizations')!.headers.get('authorization')).toBe('bearer tok-from-login');

    await expect(push(options({ token: undefined, username: 'admin', password: 'wrong' }), io(fakeCf().fetch))).rejects.toThrow(/Credentials were rejected/);
    await expect(push(options({ token: undefined }), io(fakeCf().fetch))).rejects.toThrow(/Not logged in/);
  });

  it('says what to do when the org or space is ambiguous or missing', async () => {
    await expect(push(options(), io(fakeCf({ orgs: ['a', 'b'] }).fetch))).rejects.toThrow(
      "You can see 2 organizations (a, b): choose one with 'kiln target -o NAME', --org NAME or KILN_ORG=NAME.",
    );
    await expect(push(options(), io(fakeCf({ spaces: ['dev', 'prod'] }).fetch))).rejects.toThrow(
      "You can see 2 spaces in organization 'org' (dev, prod): choose one with 'kiln target -s NAME', --space NAME or KILN_SPACE=NAME.",
    );
    await expect(push(options(), io(fakeCf({ orgs: [] }).fetch))).rejects.toThrow(/cannot see any organization.*create-org/);
    await expect(push(options({ org: 'nope' }), io(fakeCf().fetch))).rejects.toThrow("Organization 'nope' not found");
    // With several orgs, a space name that exists once is enough.
    const cf = fakeCf({ orgs: ['org', 'other'], spaces: ['dev', 'prod'] });
    await push(options({ space: 'prod' }), io(cf.fetch));
    expect(cf.requests.find((r) => r.path === `/v3/spaces/${SPACE}/actions/apply_manifest`)).toBeUndefined();
    expect(cf.requests.some((r) => r.path === '/v3/spaces/space-1/actions/apply_manifest')).toBe(true);
  });

  it('fails with the build error when staging fails', async () => {
    const cf = fakeCf({ buildFails: true });
    await expect(push(options(), io(cf.fetch))).rejects.toThrow('Staging failed: BuildpackCompileFailed - App staging failed in the buildpack compile phase');
    expect(output).toContain('[FAILED] Staging');
    expect(calls(cf.requests)).not.toContain(`POST /v3/apps/${APP}/actions/restart`);
  });

  it('prints recent logs and fails when every instance crashes', async () => {
    const cf = fakeCf({ crash: true });
    await expect(push(options(), io(cf.fetch))).rejects.toThrow(/Every instance of the web process crashed \(exited with status 1\)/);
    expect(output).toContain('Recent logs:\n   [APP/PROC/WEB/0] starting\n   [APP/PROC/WEB/0] Error: boom\n');
  });

  it('creates the app, its env and its default route itself when the server has no apply_manifest', async () => {
    fs.writeFileSync(path.join(dir, 'manifest.yml'), 'applications:\n- name: node-hello\n  instances: 2\n  env:\n    A: b\n');
    const cf = fakeCf({ noApplyManifest: true });
    await push(options(), io(cf.fetch));
    const create = cf.requests.find((r) => r.method === 'POST' && r.path === '/v3/apps')!;
    expect(JSON.parse(create.body)).toEqual({ name: 'node-hello', relationships: { space: { data: { guid: SPACE } } }, environment_variables: { A: 'b' } });
    const routeQuery = cf.requests.find((r) => r.method === 'GET' && r.path === '/v3/routes')!.query;
    expect(Object.fromEntries(routeQuery)).toMatchObject({ domain_guids: 'domain-guid', hosts: 'node-hello', paths: '' });
    expect(JSON.parse(cf.requests.find((r) => r.path === '/v3/routes' && r.method === 'POST')!.body)).toEqual({
      host: 'node-hello',
      relationships: { space: { data: { guid: SPACE } }, domain: { data: { guid: 'domain-guid' } } },
    });
    expect(JSON.parse(cf.requests.find((r) => r.path.endsWith('/destinations'))!.body)).toEqual({ destinations: [{ app: { guid: APP } }] });
    expect(JSON.parse(cf.requests.find((r) => r.path.endsWith('/actions/scale'))!.body)).toEqual({ instances: 2 });
    expect(output).toContain('warning: this server has no apply_manifest endpoint');
  });

  it('maps a random route shaped like the server\'s (<app>-<adjective>-<noun>-<two letters>) when the server has no apply_manifest', async () => {
    fs.writeFileSync(path.join(dir, 'manifest.yml'), 'applications:\n- name: node-hello\n  random-route: true\n');
    const cf = fakeCf({ noApplyManifest: true });
    await push(options(), io(cf.fetch));
    const host = JSON.parse(cf.requests.find((r) => r.path === '/v3/routes' && r.method === 'POST')!.body).host as string;
    expect(host).toMatch(/^node-hello-[a-z]+-[a-z]+-[a-z]{2}$/);
  });

  it('refuses an empty app directory before sending anything', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-push-empty-'));
    try {
      fs.writeFileSync(path.join(empty, 'manifest.yml'), 'applications:\n- name: a\n');
      const cf = fakeCf();
      await expect(push(options({ dir: empty }), io(cf.fetch))).rejects.toThrow(/No app files found/);
      expect(cf.requests).toEqual([]);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it('reports an unreachable API as a failed push with exit code 1', async () => {
    const refused = async () => {
      throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
    };
    const saved = { ...process.env };
    try {
      process.env.KILN_TOKEN = 'tok';
      const code = await runPush([dir, '--api', API], io(refused));
      expect(code).toBe(1);
      expect(errors).toMatch(/kiln push failed: GET http:\/\/api\.kiln\.test:9000\/: fetch failed \(ECONNREFUSED\)/);
    } finally {
      process.env = saved;
    }
  });
});

describe('parsePushArgs', () => {
  it('fills in from the environment and defaults the API to the local Kiln', () => {
    expect(parsePushArgs(['app', '-i', '3', '-m', '256M', '--name', 'x'], { PORT: '9100', KILN_TOKEN: 't', KILN_ORG: 'o', KILN_SPACE: 's' })).toEqual({
      dir: 'app',
      name: 'x',
      instances: 3,
      memory: '256M',
      manifest: undefined,
      noManifest: false,
      api: 'http://localhost:9100',
      username: undefined,
      password: undefined,
      token: 't',
      org: 'o',
      space: 's',
    });
    const opts = parsePushArgs(['--api', 'https://api.example.com', '--username', 'u', '--password', 'p', '--org', 'a', '--space', 'b'], { KILN_API: 'http://x' });
    expect(opts).toMatchObject({ dir: null, api: 'https://api.example.com', username: 'u', password: 'p', org: 'a', space: 'b' });
    expect(parsePushArgs([], { KILN_API: 'http://x', KILN_USERNAME: 'u', KILN_PASSWORD: 'p' })).toMatchObject({ api: 'http://x', username: 'u', password: 'p' });
    expect(parsePushArgs(['--help'], {})).toBe('help');
  });

  it('rejects bad arguments with a usage error', () => {
    for (const bad of [['-i', 'many'], ['-m', '12'], ['a', 'b'], ['--bogus'], ['--username', 'u'], ['-f', 'm.yml', '--no-manifest']]) {
      expect(() => parsePushArgs(bad, {}), bad.join(' ')).toThrow(PushUsageError);
    }
  });

  it('prints usage with exit code 2 for a bad flag and 0 for --help', async () => {
    expect(await runPush(['--bogus'], io(undefined))).toBe(2);
    expect(errors).toContain('Usage: kiln push');
    expect(await runPush(['--help'], io(undefined))).toBe(0);
    expect(output).toContain('Usage: kiln push');
  });
});
