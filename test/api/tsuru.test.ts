import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/**
 * The Tsuru API's wire rules and core endpoints, replaying the requests tsuru-client sends (research/tsuru.md
 * §3 and §6.3: version prefixes, `bearer` tokens, form bodies with `Envs.0.Name`, query-string DELETEs) and
 * asserting what the CLI parses (field names, 204s, stream lines, plain-text errors). The deploy itself is
 * covered end to end in test/e2e/tsuru-flow.test.ts.
 */

let t: TestKiln;
let adminToken: string;
let org: any;
let team: any;
let other: any;

/** What the CLI sends on every request (tsuru/http/transport.go). */
const CLI = { 'User-Agent': 'tsuru-client/1.22.0', 'X-Tsuru-Verbosity': '0' };

interface TsuruRes {
  status: number;
  text: string;
  headers: Headers;
  json: () => any;
  lines: () => any[];
}

async function tsuru(
  method: string,
  path: string,
  opts: { token?: string | null; auth?: string; form?: Record<string, string | string[]>; json?: unknown; body?: string | FormData; contentType?: string } = {},
): Promise<TsuruRes> {
  const headers: Record<string, string> = { ...CLI };
  const token = opts.token === undefined ? adminToken : opts.token;
  if (opts.auth !== undefined) headers.Authorization = opts.auth;
  else if (token !== null) headers.Authorization = `bearer ${token}`;
  let body: string | FormData | undefined = opts.body;
  if (opts.form) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.form)) for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
    body = params.toString();
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
  } else if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['Content-Type'] = 'application/json';
  }
  if (opts.contentType) headers['Content-Type'] = opts.contentType;
  const res = await t.kiln.app.request(`http://kiln.test/tsuru${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return {
    status: res.status,
    text,
    headers: res.headers,
    json: () => JSON.parse(text),
    lines: () =>
      text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l)),
  };
}

beforeAll(async () => {
  // Small limits: the deploy upload must pass the JSON body limit and stop at its own.
  t = await createTestKiln({ KILN_TSURU_ORG: 'tsuru-org', KILN_MAX_JSON_BYTES: '4096', KILN_MAX_PACKAGE_BYTES: '65536' });
  adminToken = t.admin.token!;
  org = await t.org('tsuru-org');
  team = await t.space('team-a', org.guid);
  other = await t.org('elsewhere');
  await t.space('not-a-team', other.guid);
}, 60_000);

afterAll(() => t?.close());

describe('tsuru wire rules', () => {
  it('answers a route at its bare path and behind any version prefix, with Supported-Tsuru', async () => {
    for (const p of ['/1.0/teams', '/teams', '/1.18/teams']) {
      const res = await tsuru('GET', p);
      expect(res.status, p).toBe(200);
      expect(res.headers.get('supported-tsuru')).toBe('1.0.1');
      expect(res.json()).toEqual([{ name: 'team-a', tags: [], permissions: [] }]);
    }
  });

  it('accepts the token after bearer, b, Bearer or alone', async () => {
    for (const auth of [`bearer ${adminToken}`, `b ${adminToken}`, `Bearer ${adminToken}`, adminToken]) {
      expect((await tsuru('GET', '/1.0/teams', { auth })).status, auth.slice(0, 7)).toBe(200);
    }
  });

  it('answers 401 in plain text with a WWW-Authenticate challenge without a valid token', async () => {
    for (const auth of [undefined, 'bearer not-a-token']) {
      const res = await tsuru('GET', '/1.0/apps', auth === undefined ? { token: null } : { auth });
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(res.text).toBe('You must provide a valid Authorization header\n');
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="tsuru" scope="tsuru"');
    }
  });

  it('answers what it does not translate with 501 naming the CF V3 equivalent', async () => {
    const res = await tsuru('POST', '/1.0/apps/x/run', { form: { command: 'ls' } });
    expect(res.status).toBe(501);
    expect(res.text).toContain('POST /v3/apps/:guid/tasks');
    const volumes = await tsuru('GET', '/1.4/volumes');
    expect(volumes.status).toBe(501);
  });
});

describe('tsuru login', () => {
  it('lists the native scheme without a token', async () => {
    const res = await tsuru('GET', '/1.18/auth/schemes', { token: null });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual([{ name: 'native', default: true, data: {} }]);
  });

  it('logs in with the form field password and the token works as a bearer token', async () => {
    // A user whose password the test knows, made through the identity provider.
    const created = await t.kiln.identity.createUser({ userName: 'dev@example.com', password: 'sekrit-pass' });
    expect(created.id).toBeTruthy();
    const res = await tsuru('POST', '/1.0/users/dev@example.com/tokens', { token: null, form: { password: 'sekrit-pass' } });
    expect(res.status).toBe(200);
    const { token } = res.json();
    expect(typeof token).toBe('string');
    const info = await tsuru('GET', '/1.0/users/info', { token });
    expect(info.status).toBe(200);
    expect(info.json()).toMatchObject({ email: 'dev@example.com', roles: [] });
    // No teams yet: an empty list is 204 with no body.
    const teams = await tsuru('GET', '/1.0/teams', { token });
    expect(teams.status).toBe(204);
    expect(teams.text).toBe('');
    expect((await tsuru('DELETE', '/1.0/users/tokens', { token })).status).toBe(200);
  });

  it('refuses a wrong password with 401', async () => {
    const res = await tsuru('POST', '/1.0/users/dev@example.com/tokens', { token: null, form: { password: 'wrong' } });
    expect(res.status).toBe(401);
    expect(res.text).toContain('wrong password');
  });
});

describe('tsuru apps', () => {
  it('creates an app from the CLI form with its address, in the team space, on the CF side too', async () => {
    const res = await tsuru('POST', '/1.0/apps', {
      form: { name: 'web', platform: 'nodejs_buildpack', plan: 'medium', teamOwner: 'team-a', pool: '', description: 'a web app', tag: ['a', 'b'], router: '' },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.json()).toEqual({ status: 'success', ip: 'web.apps.localhost' });
    const cf = await t.admin.get(`/v3/apps?names=web&space_guids=${team.guid}`);
    expect(cf.body.resources).toHaveLength(1);
    expect(cf.body.resources[0].lifecycle.data.buildpacks).toEqual(['nodejs_buildpack']);
    const web = await t.admin.get(`/v3/apps/${cf.body.resources[0].guid}/processes/web`);
    expect(web.body.memory_in_mb).toBe(512);
  });

  it('refuses a second app of the same name with 409 and an unknown team with 404', async () => {
    expect((await tsuru('POST', '/1.0/apps', { form: { name: 'web', teamOwner: 'team-a' } })).status).toBe(409);
    expect((await tsuru('POST', '/1.0/apps', { form: { name: 'web2', teamOwner: 'not-a-team' } })).status).toBe(404);
    expect((await tsuru('POST', '/1.0/apps', { form: { name: 'web3', teamOwner: 'team-a', plan: 'huge' } })).status).toBe(400);
  });

  it('lists apps with the summary fields app-list prints', async () => {
    const res = await tsuru('GET', '/1.0/apps?simplified=false');
    expect(res.status).toBe(200);
    const [app] = res.json();
    expect(app).toMatchObject({ name: 'web', pool: 'shared', teamowner: 'team-a', description: 'a web app', tags: ['a', 'b'], plan: { name: 'medium', memory: 512 * 1024 * 1024 }, units: [], ip: 'web.apps.localhost', cname: [] });
    expect(app.routers[0]).toMatchObject({ name: 'kiln', address: 'web.apps.localhost' });
    expect((await tsuru('GET', '/1.0/apps?name=nothing-like-it')).status).toBe(204);
    expect((await tsuru('GET', '/1.0/apps?tag=a&tag=b')).json()).toHaveLength(1);
    expect((await tsuru('GET', '/1.0/apps?tag=c')).status).toBe(204);
  });

  it('shows app info with the fields app-info prints', async () => {
    const res = await tsuru('GET', '/1.0/apps/web');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({
      name: 'web',
      platform: 'nodejs_buildpack',
      teamowner: 'team-a',
      teams: ['team-a'],
      deploys: 0,
      units: [],
      serviceInstanceBinds: [],
      processes: [{ name: 'web', plan: 'medium' }],
      quota: { inuse: 0, limit: -1 },
      owner: 'admin',
    });
  });

  it('answers 404 for an app the caller cannot see, as for one that does not exist', async () => {
    const stranger = await t.user();
    for (const path of ['/1.0/apps/web', '/1.0/apps/missing']) {
      const res = await tsuru('GET', path, { token: stranger.token! });
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    }
    expect((await tsuru('GET', '/1.0/apps', { token: stranger.token! })).status).toBe(204);
  });
});

describe('tsuru env', () => {
  it('sets variables from Envs.N.Name/Value with NoRestart, streaming JSON lines', async () => {
    const res = await tsuru('POST', '/1.0/apps/web/env', {
      form: { 'Envs.0.Name': 'GREETING', 'Envs.0.Value': 'hello', 'Envs.1.Name': 'COLOR', 'Envs.1.Value': 'blue', NoRestart: 'true', Private: 'false' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-json-stream');
    const lines = res.lines();
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(typeof l.Message).toBe('string');
      expect(l.Timestamp).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(l.Error).toBeUndefined();
    }
    expect(res.text.endsWith('\n')).toBe(true);
  });

  it('restarts by default, which on an app never deployed says there is nothing to restart', async () => {
    const res = await tsuru('POST', '/1.0/apps/web/env', { json: { Envs: [{ Name: 'MODE', Value: 'json' }], NoRestart: false } });
    expect(res.status).toBe(200);
    expect(res.lines().map((l) => l.Message).join('')).toContain('nothing to restart');
  });

  it('gets the variables as a JSON list of name/value/public', async () => {
    const res = await tsuru('GET', '/1.0/apps/web/env');
    expect(res.status).toBe(200);
    expect(res.json()).toEqual([
      { name: 'COLOR', value: 'blue', public: true, alias: '', managedBy: '' },
      { name: 'GREETING', value: 'hello', public: true, alias: '', managedBy: '' },
      { name: 'MODE', value: 'json', public: true, alias: '', managedBy: '' },
    ]);
    const one = await tsuru('GET', '/1.0/apps/web/env?env=COLOR');
    expect(one.json()).toHaveLength(1);
  });

  it('unsets variables named in the query string of a DELETE', async () => {
    const res = await tsuru('DELETE', '/1.0/apps/web/env?env=COLOR&env=MODE&noRestart=true');
    expect(res.status).toBe(200);
    expect(res.lines().every((l) => l.Error === undefined)).toBe(true);
    const cf = await t.admin.get(`/v3/apps?names=web`);
    const vars = await t.admin.get(`/v3/apps/${cf.body.resources[0].guid}/environment_variables`);
    expect(vars.body.var).toEqual({ GREETING: 'hello' });
  });

  it('answers a request without variables with 400 in plain text', async () => {
    const res = await tsuru('POST', '/1.0/apps/web/env', { form: { NoRestart: 'true' } });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  });
});

describe('tsuru units', () => {
  it('adds units as a delta of the process instance count', async () => {
    const res = await tsuru('PUT', '/1.0/apps/web/units', { form: { units: '2', process: 'web', version: '0' } });
    expect(res.status, res.text).toBe(200);
    expect(res.lines()[0].Message).toContain('adding 2 units');
    const cf = await t.admin.get(`/v3/apps?names=web`);
    const web = await t.admin.get(`/v3/apps/${cf.body.resources[0].guid}/processes/web`);
    expect(web.body.instances).toBe(3);
  });

  it('removes units named in the query string of a DELETE, and refuses to go below zero', async () => {
    const res = await tsuru('DELETE', '/1.0/apps/web/units?units=1&process=web');
    expect(res.status).toBe(200);
    const cf = await t.admin.get(`/v3/apps?names=web`);
    const web = await t.admin.get(`/v3/apps/${cf.body.resources[0].guid}/processes/web`);
    expect(web.body.instances).toBe(2);
    expect((await tsuru('DELETE', '/1.0/apps/web/units?units=5&process=web')).status).toBe(400);
    expect((await tsuru('PUT', '/1.0/apps/web/units', { form: { units: '1', process: 'worker' } })).status).toBe(400);
  });

  it('answers unit-kill of a unit the app does not have with 404', async () => {
    expect((await tsuru('DELETE', '/1.12/apps/web/units/web-web-9')).status).toBe(404);
    expect((await tsuru('DELETE', '/1.12/apps/web/units/other-web-0')).status).toBe(404);
    expect((await tsuru('DELETE', '/1.9/apps/web/units/autoscale')).status).toBe(501);
  });
});

describe('tsuru catalogues', () => {
  it('lists platforms (buildpacks), plans (memory presets) and pools (isolation segments)', async () => {
    const platforms = await tsuru('GET', '/1.0/platforms');
    expect(platforms.status).toBe(200);
    expect(platforms.json()[0]).toEqual({ name: expect.any(String), disabled: false });
    const plans = await tsuru('GET', '/1.0/plans');
    expect(plans.json().find((p: any) => p.default)).toMatchObject({ name: 'large', memory: 1024 * 1024 * 1024 });
    const pools = await tsuru('GET', '/1.0/pools');
    expect(pools.status).toBe(200);
    expect(pools.json()).toEqual([expect.objectContaining({ name: 'shared', default: true, provisioner: 'kiln', teams: ['team-a'] })]);
  });

  it('shows the admin role in users/info', async () => {
    const res = await tsuru('GET', '/1.0/users/info');
    expect(res.json().roles[0]).toEqual({ name: 'admin', contexttype: 'global', contextvalue: '' });
  });
});

describe('tsuru deploy and events without bits', () => {
  it('refuses a deploy with neither file nor image in plain text before any stream', async () => {
    const res = await tsuru('POST', '/1.0/apps/web/deploy', { form: { origin: 'app-deploy' } });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-tsuru-eventid')).toBeNull();
  });

  it('refuses a cancel without a reason (400) and of an unknown event (404)', async () => {
    expect((await tsuru('POST', '/1.1/events/00000000-0000-0000-0000-000000000000/cancel', { json: { reason: '' } })).status).toBe(400);
    expect((await tsuru('POST', '/1.1/events/00000000-0000-0000-0000-000000000000/cancel', { json: { reason: 'Canceled on client.' } })).status).toBe(404);
  });
});

describe('tsuru deploy uploads', () => {
  const upload = (bytes: number) => {
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(bytes).fill(7)], { type: 'application/octet-stream' }), 'archive.tar.gz');
    form.append('origin', 'app-deploy');
    return form;
  };

  it('takes a multipart file past the JSON body limit, and refuses a broken archive with 400 and no package', async () => {
    const before = (await t.admin.get('/v3/packages')).body.pagination.total_results;
    const res = await tsuru('POST', '/1.0/apps/web/deploy', { body: upload(10_000) });
    expect(res.status).toBe(400);
    expect(res.text).toContain('The app upload is invalid');
    expect(res.headers.get('x-tsuru-eventid')).toBeNull();
    expect((await t.admin.get('/v3/packages')).body.pagination.total_results).toBe(before);
  });

  it('stops reading an upload at KILN_MAX_PACKAGE_BYTES with 413 in plain text', async () => {
    const res = await tsuru('POST', '/1.0/apps/web/deploy', { body: upload(100_000) });
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(res.headers.get('x-tsuru-eventid')).toBeNull();
  });

  it('refuses a deploy by someone who may only read the app before reading the upload (403)', async () => {
    const auditor = await t.spaceMember('space_auditor', team);
    const res = await tsuru('POST', '/1.0/apps/web/deploy', { token: auditor.token!, body: upload(100) });
    expect(res.status).toBe(403);
  });
});

describe('tsuru image deploys', () => {
  it('answers an image deploy on a buildpack app with the CF refusal, in plain text before any stream', async () => {
    const res = await tsuru('POST', '/1.0/apps/web/deploy', { form: { image: 'nginx:latest', origin: 'image' } });
    expect(res.status, res.text).toBe(400);
    expect(res.headers.get('x-tsuru-eventid')).toBeNull();
  });
});

describe('tsuru app names', () => {
  it('answers 409 naming both teams when two teams hold an app of the same name', async () => {
    const teamB = await t.space('team-b', org.guid);
    const twin = await t.admin.post('/v3/apps', { name: 'twin', relationships: { space: { data: { guid: team.guid } } } });
    expect(twin.status).toBe(201);
    expect((await t.admin.post('/v3/apps', { name: 'twin', relationships: { space: { data: { guid: teamB.guid } } } })).status).toBe(201);
    const res = await tsuru('GET', '/1.0/apps/twin');
    expect(res.status).toBe(409);
    expect(res.text).toContain('team-a, team-b');
    expect((await tsuru('POST', '/1.0/apps', { form: { name: 'twin', teamOwner: 'team-a' } })).status).toBe(409);
  });
});

describe('tsuru app create is all or nothing', () => {
  it('removes the app again when its default route cannot be made', async () => {
    const elsewhere = (await t.admin.get(`/v3/spaces?organization_guids=${other.guid}`)).body.resources[0];
    const domain = (await t.admin.get('/v3/domains?names=apps.localhost')).body.resources[0];
    const taken = await t.admin.post('/v3/routes', { host: 'clash', relationships: { space: { data: { guid: elsewhere.guid } }, domain: { data: { guid: domain.guid } } } });
    expect(taken.status).toBe(201);
    const res = await tsuru('POST', '/1.0/apps', { form: { name: 'clash', teamOwner: 'team-a' } });
    expect(res.status).toBe(400);
    expect(res.text).toContain('Route already exists');
    const deadline = Date.now() + 10_000;
    while ((await t.admin.get('/v3/apps?names=clash')).body.resources.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect((await t.admin.get('/v3/apps?names=clash')).body.resources).toEqual([]);
  });
});

describe('tsuru app removal', () => {
  it('removes an app with a JSON stream, and the CF side no longer has it', async () => {
    expect((await tsuru('POST', '/1.0/apps', { form: { name: 'doomed', teamOwner: 'team-a' } })).status).toBe(201);
    const res = await tsuru('DELETE', '/1.0/apps/doomed');
    expect(res.status).toBe(200);
    const lines = res.lines();
    expect(lines.at(-1).Message).toContain('removed');
    expect((await t.admin.get('/v3/apps?names=doomed')).body.resources).toEqual([]);
  }, 30_000);
});

