import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
let org: any;
let space: any;
let other: any;
let dev: Client;
let auditor: Client;
let stranger: Client;

const YAML = { 'content-type': 'application/x-yaml' };
const unprocessable = (...details: string[]) => ({ errors: details.map((detail) => ({ detail, title: 'CF-UnprocessableEntity', code: 10008 })) });

const apply = (client: Client, spaceGuid: string, yaml: string, headers: Record<string, string> = YAML) =>
  client.post(`/v3/spaces/${spaceGuid}/actions/apply_manifest`, undefined, { raw: yaml, headers });
const diff = (client: Client, spaceGuid: string, yaml: string) => client.post(`/v3/spaces/${spaceGuid}/manifest_diff`, undefined, { raw: yaml, headers: YAML });

/** Applies a manifest and waits for its job; returns the finished job. */
async function applied(client: Client, spaceGuid: string, yaml: string): Promise<any> {
  const res = await apply(client, spaceGuid, yaml);
  expect(res.status, res.text).toBe(202);
  return t.awaitJob(res.headers.get('location'));
}

async function appNamed(name: string, spaceGuid = space.guid): Promise<any> {
  const res = await t.admin.get(`/v3/apps?names=${name}&space_guids=${spaceGuid}`);
  return res.body.resources[0];
}

async function routesOf(appGuid: string): Promise<any[]> {
  const res = await t.admin.get(`/v3/apps/${appGuid}/routes`);
  expect(res.status).toBe(200);
  return res.body.resources;
}

async function process(appGuid: string, type: string): Promise<any> {
  const res = await t.admin.get(`/v3/apps/${appGuid}/processes/${type}`);
  expect(res.status, res.text).toBe(200);
  return res.body;
}

const countApps = async () => (await t.kiln.store.db.selectFrom('apps').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n;

beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('manifest-org');
  space = await t.space('dev', org.guid);
  other = await t.space('other', org.guid);
  dev = await t.user('mdev');
  auditor = await t.user('mauditor');
  stranger = await t.user('mstranger');
  await t.grant(dev, 'organization_user', { org: org.guid });
  await t.grant(dev, 'space_developer', { space: space.guid });
  await t.grant(auditor, 'organization_user', { org: org.guid });
  await t.grant(auditor, 'space_auditor', { space: space.guid });
  const d = await t.admin.post('/v3/domains', { name: 'private.test', relationships: { organization: { data: { guid: org.guid } } } });
  expect(d.status, d.text).toBe(201);
});

afterAll(async () => {
  await t?.close();
});

describe('apply_manifest', () => {
  it('creates the app before answering, then processes and the default route in the job', async () => {
    const res = await apply(dev, space.guid, 'applications:\n- name: web1\n  default-route: true\n  instances: 2\n  memory: 256M\n');
    expect(res.status, res.text).toBe(202);
    expect(res.headers.get('location')).toMatch(/^http:\/\/kiln\.test\/v3\/jobs\/[0-9a-f-]+$/);
    // The cf CLI looks the app up right after the 202, before polling the job.
    const app = await appNamed('web1');
    expect(app).toMatchObject({ name: 'web1', state: 'STOPPED', lifecycle: { type: 'buildpack' } });
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ operation: 'space.apply_manifest', state: 'COMPLETE', errors: [] });
    const web = await process(app.guid, 'web');
    expect(web).toMatchObject({ instances: 2, memory_in_mb: 256, disk_in_mb: 1024, health_check: { type: 'port' } });
    const routes = await routesOf(app.guid);
    expect(routes.map((r) => r.url)).toEqual(['web1.apps.localhost']);
    expect(routes[0].destinations).toMatchObject([{ app: { guid: app.guid, process: { type: 'web' } }, port: 8080, protocol: 'http1' }]);
    const events = await t.admin.get(`/v3/audit_events?target_guids=${app.guid}`);
    expect(events.body.resources.map((e: any) => e.type)).toEqual(
      expect.arrayContaining(['audit.app.create', 'audit.app.apply_manifest', 'audit.app.process.scale', 'audit.app.map-route']),
    );
  });

  it('re-applying the same manifest changes nothing; a changed one updates in place', async () => {
    const yaml = 'applications:\n- name: web1\n  default-route: true\n  instances: 2\n  memory: 256M\n';
    const before = await appNamed('web1');
    const processBefore = await process(before.guid, 'web');
    expect((await applied(dev, space.guid, yaml)).state).toBe('COMPLETE');
    const after = await appNamed('web1');
    expect(after.guid).toBe(before.guid);
    expect((await process(after.guid, 'web')).updated_at).toBe(processBefore.updated_at);
    expect((await routesOf(after.guid)).map((r) => [r.url, r.destinations.length])).toEqual([['web1.apps.localhost', 1]]);

    const job = await applied(
      dev,
      space.guid,
      [
        'applications:',
        '- name: web1',
        '  instances: 3',
        '  disk_quota: 2G',
        '  command: node server.js',
        '  health-check-type: http',
        '  health-check-http-endpoint: /health',
        '  timeout: 30',
        '  stack: cflinuxfs4',
        '  buildpacks: [nodejs_buildpack]',
        '  env: {GREETING: hello, PORT_X: 8080}',
        '  features: {ssh: false}',
        '  metadata: {labels: {team: blue}, annotations: {owner: me}}',
        '  processes:',
        '  - type: worker',
        '    instances: 1',
        '    command: node worker.js',
        '    memory: 128M',
        '    health-check-type: process',
      ].join('\n'),
    );
    expect(job.state, JSON.stringify(job.errors)).toBe('COMPLETE');
    const app = await t.admin.get(`/v3/apps/${after.guid}`);
    expect(app.body).toMatchObject({ lifecycle: { data: { buildpacks: ['nodejs_buildpack'], stack: 'cflinuxfs4' } }, metadata: { labels: { team: 'blue' }, annotations: { owner: 'me' } } });
    const web = await process(after.guid, 'web');
    expect(web).toMatchObject({ instances: 3, memory_in_mb: 256, disk_in_mb: 2048, command: 'node server.js', health_check: { type: 'http', data: { endpoint: '/health', timeout: 30 } } });
    expect(await process(after.guid, 'worker')).toMatchObject({ instances: 1, memory_in_mb: 128, command: 'node worker.js', health_check: { type: 'process' } });
    const env = await t.admin.get(`/v3/apps/${after.guid}/environment_variables`);
    expect(env.body.var).toEqual({ GREETING: 'hello', PORT_X: '8080' });
    expect((await t.admin.get(`/v3/apps/${after.guid}/features/ssh`)).body.enabled).toBe(false);
    // Routes are additive: the default route stays although this manifest named none.
    expect((await routesOf(after.guid)).map((r) => r.url)).toEqual(['web1.apps.localhost']);

    // Env vars merge; nothing is removed.
    await applied(dev, space.guid, 'applications:\n- name: web1\n  env: {OTHER: x}\n');
    expect((await t.admin.get(`/v3/apps/${after.guid}/environment_variables`)).body.var).toEqual({ GREETING: 'hello', PORT_X: '8080', OTHER: 'x' });
  });

  it('maps listed routes on domains by name, with paths and protocols, and reuses existing routes', async () => {
    const job = await applied(
      dev,
      space.guid,
      'applications:\n- name: routed\n  default-route: true\n  routes:\n  - route: routed.apps.localhost/api\n    protocol: http2\n  - route: private.test\n  - route: www.private.test\n',
    );
    expect(job.state, JSON.stringify(job.errors)).toBe('COMPLETE');
    const app = await appNamed('routed');
    const routes = await routesOf(app.guid);
    expect(routes.map((r) => r.url).sort()).toEqual(['private.test', 'routed.apps.localhost/api', 'www.private.test']);
    expect(routes.find((r) => r.url === 'routed.apps.localhost/api').destinations[0].protocol).toBe('http2');
    // Mapping a second app to an existing route reuses it.
    await applied(dev, space.guid, 'applications:\n- name: routed2\n  routes:\n  - route: www.private.test\n');
    const shared = (await t.admin.get('/v3/routes?hosts=www')).body.resources;
    expect(shared).toHaveLength(1);
    expect(shared[0].destinations).toHaveLength(2);
  });

  it('random-route maps a random host on the default domain once', async () => {
    await applied(dev, space.guid, 'applications:\n- name: rnd\n  random-route: true\n');
    const app = await appNamed('rnd');
    const routes = await routesOf(app.guid);
    expect(routes).toHaveLength(1);
    // random_route_generator.rb: <app>-<adjective>-<noun>-<two letters>.
    expect(routes[0].url).toMatch(/^rnd-[a-z]+-[a-z]+-[a-z]{2}\.apps\.localhost$/);
    await applied(dev, space.guid, 'applications:\n- name: rnd\n  random-route: true\n');
    expect((await routesOf(app.guid)).map((r) => r.url)).toEqual([routes[0].url]);
  });

  it('no-route unmaps every route of the app (the routes stay)', async () => {
    await applied(dev, space.guid, 'applications:\n- name: nr\n  default-route: true\n');
    const app = await appNamed('nr');
    expect(await routesOf(app.guid)).toHaveLength(1);
    await applied(dev, space.guid, 'applications:\n- name: nr\n  no-route: true\n  default-route: true\n');
    expect(await routesOf(app.guid)).toEqual([]);
    expect((await t.admin.get('/v3/routes?hosts=nr')).body.resources).toHaveLength(1);
    // An app created with no-route gets none.
    await applied(dev, space.guid, 'applications:\n- name: nr2\n  no-route: true\n');
    expect(await routesOf((await appNamed('nr2')).guid)).toEqual([]);
  });

  it('fails the job with a CF error and writes nothing of that app when a route cannot be mapped', async () => {
    await applied(t.admin, other.guid, 'applications:\n- name: elsewhere\n  routes: [{route: taken.private.test}]\n');
    const job = await applied(dev, space.guid, 'applications:\n- name: clash\n  instances: 4\n  routes:\n  - route: taken.private.test\n');
    expect(job.state).toBe('FAILED');
    expect(job.errors).toEqual([{ code: 10008, title: 'CF-UnprocessableEntity', detail: "For application 'clash': Routes cannot be mapped to destinations in different spaces" }]);
    const app = await appNamed('clash');
    expect((await process(app.guid, 'web')).instances).toBe(1);
    const unknown = await applied(dev, space.guid, 'applications:\n- name: clash\n  routes:\n  - route: app.nowhere.example\n');
    expect(unknown.errors[0].detail).toBe("For application 'clash': No domains exist for route app.nowhere.example");
    const stack = await applied(dev, space.guid, 'applications:\n- name: clash\n  stack: no-such-stack\n');
    expect(stack.errors[0].detail).toBe("For application 'clash': Stack must be an existing stack");
    const badName = await applied(dev, space.guid, 'applications:\n- name: "bad name"\n  default-route: true\n');
    expect(badName.errors[0].detail).toBe(
      'For application \'bad name\': Failed to create default route from app name: Host must be either "*" or contain only alphanumeric characters, "_", or "-"',
    );
  });

  it('refuses bad manifests with every problem in one 422 and writes nothing', async () => {
    const before = await countApps();
    const res = await apply(
      dev,
      space.guid,
      'applications:\n- name: bad1\n  instances: -1\n  memory: 12\n  routes: [{route: "x@y.com"}]\n- memory: 1G\n  processes: [{instances: 2}]\n',
    );
    expect(res.status).toBe(422);
    expect(res.body).toEqual(
      unprocessable(
        "For application 'bad1': Instances must be greater than or equal to 0",
        "For application 'bad1': Memory must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB",
        "For application 'bad1': The route 'x@y.com' is not a properly formed URL",
        'For application at index 1: Name must not be empty',
        'For application at index 1: All Processes must specify a type',
      ),
    );
    expect((await apply(dev, space.guid, 'applications: []\n')).body).toEqual(unprocessable("Cannot parse manifest with no 'applications' field."));
    expect((await apply(dev, space.guid, 'version: 2\napplications: [{name: a}]\n')).body).toEqual(
      unprocessable('Unsupported manifest schema version. Currently supported versions: [1].'),
    );
    expect((await apply(dev, space.guid, 'applications:\n- name: s\n  services: [db]\n')).body).toEqual(unprocessable("For application 's': Service instance 'db' not found"));
    expect(await countApps()).toBe(before);
  });

  it('answers 400 for non-YAML bodies, aliases, non-mappings and oversized manifests', async () => {
    const json = await apply(dev, space.guid, '{"applications":[{"name":"j"}]}', { 'content-type': 'application/json' });
    expect(json.status).toBe(400);
    expect(json.body.errors[0]).toEqual({ code: 1004, title: 'CF-BadRequest', detail: 'Bad request: Content-Type must be yaml' });
    const alias = await apply(dev, space.guid, 'base: &b {instances: 1}\napplications:\n- name: a\n  <<: *b\n');
    expect(alias.body.errors[0]).toMatchObject({ title: 'CF-BadRequest', detail: 'Bad request: Manifest does not support Anchors and Aliases' });
    const list = await apply(dev, space.guid, '- a\n');
    expect(list.body.errors[0]).toMatchObject({ code: 1001, title: 'CF-MessageParseError' });
    const broken = await apply(dev, space.guid, 'applications: [\n');
    expect(broken.body.errors[0].title).toBe('CF-MessageParseError');
    const big = await apply(dev, space.guid, `applications: [{name: big}]\n#${'x'.repeat(1024 * 1024)}\n`);
    expect(big.body.errors[0].detail).toBe('Bad request: Manifest size is too large. The maximum supported size is 1MB.');
  });

  it('needs a space developer: auditors get 403, strangers 404', async () => {
    const yaml = 'applications:\n- name: nope\n';
    expect((await apply(auditor, space.guid, yaml)).status).toBe(403);
    expect((await apply(stranger, space.guid, yaml)).body.errors[0]).toMatchObject({ code: 10010, detail: 'Space not found' });
    expect((await apply(dev, '5b8a2c4e-0000-4000-8000-000000000000', yaml)).status).toBe(404);
    expect((await diff(auditor, space.guid, yaml)).status).toBe(403);
    expect((await diff(stranger, space.guid, yaml)).status).toBe(404);
    expect(await appNamed('nope')).toBeUndefined();
  });

  it('refuses docker apps for non-admins while diego_docker is off', async () => {
    const res = await apply(dev, space.guid, 'applications:\n- name: dock\n  docker: {image: nginx}\n');
    expect(res.status).toBe(403);
    expect(res.body.errors[0].title).toBe('CF-FeatureDisabled');
    expect(await appNamed('dock')).toBeUndefined();
    const job = await applied(t.admin, space.guid, 'applications:\n- name: dock\n  docker: {image: nginx}\n  no-route: true\n');
    expect(job.state).toBe('COMPLETE');
    expect((await appNamed('dock')).lifecycle.type).toBe('docker');
    const change = await applied(t.admin, space.guid, 'applications:\n- name: dock\n  buildpacks: [go_buildpack]\n');
    expect(change.errors[0].detail).toBe("For application 'dock': Lifecycle type cannot be changed from docker to buildpack");
  });
});

describe('manifest_diff', () => {
  it('reports what would change, in the JSON-patch-like format', async () => {
    await applied(dev, space.guid, 'applications:\n- name: differ\n  default-route: true\n');
    const res = await diff(
      dev,
      space.guid,
      'applications:\n- name: differ\n  instances: 3\n  memory: 1G\n  env: {A: b}\n  default-route: true\n  routes:\n  - route: differ.apps.localhost\n  - route: more.apps.localhost\n- name: brand-new\n  instances: 2\n',
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      diff: [
        { op: 'replace', path: '/applications/0/instances', was: 1, value: 3 },
        { op: 'add', path: '/applications/0/env', value: { A: 'b' } },
        { op: 'add', path: '/applications/0/routes/1', value: { route: 'more.apps.localhost' } },
        { op: 'add', path: '/applications/1/name', value: 'brand-new' },
        { op: 'add', path: '/applications/1/instances', value: 2 },
      ],
    });
    // The diff writes nothing.
    expect(await appNamed('brand-new')).toBeUndefined();
    const bad = await diff(dev, space.guid, 'applications:\n- name: differ\n  instances: x\n');
    expect(bad.body).toEqual(unprocessable("For application 'differ': Instances is not a number"));
  });
});

describe('manifest_diff leaves sizes out at app level', () => {
  it('reports no app-level memory or disk-quota change, as space_diff_manifest.rb does, but diffs them per process', async () => {
    await applied(dev, space.guid, 'applications:\n- name: sizes\n  default-route: true\n');
    const res = await diff(
      dev,
      space.guid,
      'applications:\n- name: sizes\n  memory: 256M\n  disk_quota: 512M\n  processes:\n  - type: web\n    memory: 128M\n- name: sizes-new\n  memory: 64M\n  disk-quota: 64M\n',
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body.diff).toEqual([
      { op: 'replace', path: '/applications/0/processes/0/memory', was: '1024M', value: '128M' },
      { op: 'add', path: '/applications/1/name', value: 'sizes-new' },
    ]);
  });
});

describe('GET /v3/apps/:guid/manifest', () => {
  it('describes the app as YAML that round-trips through apply and diffs as unchanged', async () => {
    const app = await appNamed('web1');
    const res = await dev.get(`/v3/apps/${app.guid}/manifest`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/x-yaml/);
    const manifest = parse(res.text);
    expect(manifest.applications[0]).toMatchObject({
      name: 'web1',
      stack: 'cflinuxfs4',
      buildpacks: ['nodejs_buildpack'],
      features: { ssh: false, revisions: true },
      env: { GREETING: 'hello', PORT_X: '8080', OTHER: 'x' },
      routes: [{ route: 'web1.apps.localhost', protocol: 'http1' }],
      metadata: { labels: { team: 'blue' }, annotations: { owner: 'me' } },
      processes: [
        { type: 'web', instances: 3, memory: '256M', 'disk-quota': '2048M', command: 'node server.js', 'health-check-type': 'http', 'health-check-http-endpoint': '/health', timeout: 30 },
        { type: 'worker', instances: 1, memory: '128M', command: 'node worker.js', 'health-check-type': 'process' },
      ],
    });
    expect((await diff(dev, space.guid, res.text)).body).toEqual({ diff: [] });

    // Applying it to another space recreates the same app there.
    const job = await applied(t.admin, other.guid, res.text.replace('web1.apps.localhost', 'web1-copy.apps.localhost'));
    expect(job.state, JSON.stringify(job.errors)).toBe('COMPLETE');
    const copy = await appNamed('web1', other.guid);
    const copied = parse((await t.admin.get(`/v3/apps/${copy.guid}/manifest`)).text);
    expect(copied.applications[0]).toEqual({ ...manifest.applications[0], routes: [{ route: 'web1-copy.apps.localhost', protocol: 'http1' }] });
  });

  it('is for admins and space developers; auditors get 403, strangers 404', async () => {
    const app = await appNamed('web1');
    expect((await auditor.get(`/v3/apps/${app.guid}/manifest`)).status).toBe(403);
    expect((await stranger.get(`/v3/apps/${app.guid}/manifest`)).body.errors[0]).toMatchObject({ code: 10010, detail: 'App not found' });
    expect((await t.admin.get('/v3/apps/5b8a2c4e-0000-4000-8000-000000000000/manifest')).status).toBe(404);
    const noRoutes = parse((await t.admin.get(`/v3/apps/${(await appNamed('nr2')).guid}/manifest`)).text);
    expect(noRoutes.applications[0]['no-route']).toBe(true);
  });
});
