import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteAppsOfSpaces } from '../../src/services/apps.ts';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
let org: any;
let space: any;
beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('apps-org');
  space = await t.space('apps-space', org.guid);
});
afterAll(() => t.close());

const body = (name: string, spaceGuid: string, extra: Record<string, unknown> = {}) => ({
  name,
  relationships: { space: { data: { guid: spaceGuid } } },
  ...extra,
});

async function createApp(name: string, spaceGuid = space.guid, extra: Record<string, unknown> = {}, as: Client = t.admin) {
  const res = await as.post('/v3/apps', body(name, spaceGuid, extra));
  expect(res.status, res.text).toBe(201);
  return res.body;
}

async function count(table: 'apps' | 'processes' | 'audit_events' | 'droplets' | 'route_destinations', where?: [string, string]) {
  let q = t.kiln.store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n'));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a test-only dynamic column filter
  if (where) q = q.where(where[0] as any, '=', where[1]);
  return Number((await q.executeTakeFirstOrThrow()).n);
}

/** A user with one space role in `space` (plus org_user in its org). */
const userWith = (role: string, s = space): Promise<Client> => t.spaceMember(role, s);

describe('creating apps', () => {
  it('creates a STOPPED buildpack app with its web process (guid = app guid) and an audit event', async () => {
    const res = await t.admin.post('/v3/apps', body('first', space.guid, { metadata: { labels: { tier: 'web' } } }));
    expect(res.status).toBe(201);
    const a = res.body;
    expect(a).toMatchObject({
      name: 'first',
      state: 'STOPPED',
      lifecycle: { type: 'buildpack', data: { buildpacks: [], stack: 'cflinuxfs4' } },
      relationships: { space: { data: { guid: space.guid } }, current_droplet: { data: { guid: null } } },
      metadata: { labels: { tier: 'web' }, annotations: {} },
    });
    expect(Object.keys(a.links)).toEqual([
      'self', 'environment_variables', 'space', 'processes', 'packages', 'current_droplet', 'droplets', 'tasks',
      'start', 'stop', 'clear_buildpack_cache', 'revisions', 'deployed_revisions', 'features',
    ]);
    expect(a.links.start).toEqual({ href: `http://kiln.test/v3/apps/${a.guid}/actions/start`, method: 'POST' });
    const procs = await t.admin.get(`/v3/apps/${a.guid}/processes`);
    expect(procs.body.resources).toHaveLength(1);
    expect(procs.body.resources[0]).toMatchObject({
      guid: a.guid,
      type: 'web',
      instances: 1,
      memory_in_mb: 1024,
      disk_in_mb: 1024,
      health_check: { type: 'port', data: { timeout: null, invocation_timeout: null, interval: null } },
      readiness_health_check: { type: 'process' },
    });
    const audit = await t.kiln.store.db.selectFrom('audit_events').select(['type', 'space_guid', 'organization_guid']).where('target_guid', '=', a.guid).orderBy('id').execute();
    expect(audit).toEqual([{ type: 'audit.app.create', space_guid: space.guid, organization_guid: org.guid }]);
  });

  it('accepts lifecycle and environment variables', async () => {
    const a = await createApp('with-lifecycle', space.guid, {
      lifecycle: { type: 'buildpack', data: { buildpacks: ['nodejs_buildpack', 'https://user:pw@example.com/bp.zip'], stack: 'cflinuxfs4' } },
      environment_variables: { GREETING: 'hi' },
    });
    expect(a.lifecycle.data.buildpacks).toEqual(['nodejs_buildpack', 'https://***:***@example.com/bp.zip']);
    const env = await t.admin.get(`/v3/apps/${a.guid}/environment_variables`);
    expect(env.body.var).toEqual({ GREETING: 'hi' });
  });

  it('gates docker apps behind diego_docker for non-admins', async () => {
    const dev = await userWith('space_developer');
    const res = await dev.post('/v3/apps', body('docker-app', space.guid, { lifecycle: { type: 'docker', data: {} } }));
    expect(res.status).toBe(403);
    expect(res.body.errors[0]).toMatchObject({ title: 'CF-FeatureDisabled', detail: 'Feature Disabled: diego_docker' });
    const admin = await t.admin.post('/v3/apps', body('docker-app', space.guid, { lifecycle: { type: 'docker', data: {} } }));
    expect(admin.status).toBe(201);
    expect(admin.body.lifecycle).toEqual({ type: 'docker', data: {} });
  });

  it('refuses a duplicate name in the space, case-insensitively', async () => {
    await createApp('dup');
    const res = await t.admin.post('/v3/apps', body('DUP', space.guid));
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toEqual({ title: 'CF-UniquenessError', code: 10016, detail: "App with the name 'DUP' already exists." });
    const other = await t.space('apps-other', org.guid);
    expect((await t.admin.post('/v3/apps', body('dup', other.guid))).status).toBe(201);
  });

  it('rejects bad bodies with CF 422s and writes nothing', async () => {
    const before = [await count('apps'), await count('processes'), await count('audit_events')];
    const cases: Array<[unknown, string]> = [
      [{ ...body('x', space.guid), color: 'red' }, "Unknown field(s): 'color'"],
      [{ relationships: body('x', space.guid).relationships }, "Name can't be blank"],
      [body('', space.guid), "Name can't be blank"],
      [{ ...body('x', space.guid), name: 3 }, 'Name must be a string'],
      [{ name: 'x' }, "Relationships 'relationships' is not an object"],
      [{ name: 'x', relationships: { space: { guid: 'g' } } }, 'Relationships Space must be structured like this: "space: {"data": {"guid": "valid-guid"}}"'],
      [body('x', space.guid, { environment_variables: { VCAP_X: 'y' } }), 'Environment variables cannot start with VCAP_'],
      [body('x', space.guid, { environment_variables: { PORT: '1' } }), 'Environment variables cannot set PORT'],
      [body('x', space.guid, { environment_variables: { N: 1 } }), "Non-string value in environment variable for key 'N', value '1'"],
      [body('x', space.guid, { environment_variables: 'nope' }), 'Environment variables must be an object'],
      [body('x', space.guid, { lifecycle: { type: 'lisp', data: {} } }), 'Lifecycle type is not included in the list: buildpack, docker, cnb'],
      [body('x', space.guid, { lifecycle: { type: 'buildpack', data: { buildpacks: [1] } } }), 'Buildpacks can only contain strings'],
      [body('x', space.guid, { lifecycle: { type: 'buildpack', data: { stack: 'nope' } } }), 'Stack must be an existing stack'],
      [body('x', randomUUID()), 'Invalid space. Ensure that the space exists and you have access to it.'],
    ];
    for (const [b, detail] of cases) {
      const res = await t.admin.post('/v3/apps', b);
      expect(res.status, JSON.stringify(b)).toBe(422);
      expect(res.body.errors[0].detail).toContain(detail);
    }
    expect([await count('apps'), await count('processes'), await count('audit_events')]).toEqual(before);
  });

  it('lets only space developers create (auditor 403, stranger 422 invalid space)', async () => {
    const auditor = await userWith('space_auditor');
    expect((await auditor.post('/v3/apps', body('nope', space.guid))).status).toBe(403);
    const stranger = await t.user();
    const res = await stranger.post('/v3/apps', body('nope', space.guid));
    expect(res.status).toBe(422);
    const dev = await userWith('space_developer');
    expect((await dev.post('/v3/apps', body('dev-made', space.guid))).status).toBe(201);
  });
});

describe('listing and reading apps', () => {
  let listOrg: any;
  let s1: any;
  let s2: any;
  beforeAll(async () => {
    listOrg = await t.org('list-org');
    s1 = await t.space('s1', listOrg.guid);
    s2 = await t.space('s2', listOrg.guid);
    await createApp('bravo', s1.guid, { metadata: { labels: { env: 'prod' } } });
    await createApp('alpha', s1.guid);
    await createApp('charlie', s2.guid, { lifecycle: { type: 'docker', data: {} } });
  });

  it('filters by names, space_guids, organization_guids, stacks, lifecycle_type and labels; orders by name', async () => {
    const byOrg = await t.admin.get(`/v3/apps?organization_guids=${listOrg.guid}&order_by=name`);
    expect(byOrg.body.resources.map((a: any) => a.name)).toEqual(['alpha', 'bravo', 'charlie']);
    expect(byOrg.body.pagination.total_results).toBe(3);
    const desc = await t.admin.get(`/v3/apps?organization_guids=${listOrg.guid}&order_by=-name`);
    expect(desc.body.resources.map((a: any) => a.name)).toEqual(['charlie', 'bravo', 'alpha']);
    const bySpace = await t.admin.get(`/v3/apps?space_guids=${s2.guid}`);
    expect(bySpace.body.resources.map((a: any) => a.name)).toEqual(['charlie']);
    const byName = await t.admin.get(`/v3/apps?names=alpha,charlie&space_guids=${s1.guid},${s2.guid}`);
    expect(byName.body.resources.map((a: any) => a.name).sort()).toEqual(['alpha', 'charlie']);
    const docker = await t.admin.get(`/v3/apps?organization_guids=${listOrg.guid}&lifecycle_type=docker`);
    expect(docker.body.resources.map((a: any) => a.name)).toEqual(['charlie']);
    const stacks = await t.admin.get(`/v3/apps?organization_guids=${listOrg.guid}&stacks=cflinuxfs4&order_by=name`);
    expect(stacks.body.resources.map((a: any) => a.name)).toEqual(['alpha', 'bravo']);
    const labels = await t.admin.get(`/v3/apps?label_selector=env=prod`);
    expect(labels.body.resources.map((a: any) => a.name)).toEqual(['bravo']);
    const bad = await t.admin.get('/v3/apps?lifecycle_type=lisp');
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].detail).toContain("Invalid lifecycle_type: 'lisp'");
    expect((await t.admin.get('/v3/apps?order_by=color')).status).toBe(400);
  });

  it('includes spaces and organizations', async () => {
    const res = await t.admin.get(`/v3/apps?space_guids=${s1.guid}&include=space.organization`);
    expect(res.body.included.spaces.map((s: any) => s.guid)).toEqual([s1.guid]);
    expect(res.body.included.organizations.map((o: any) => o.guid)).toEqual([listOrg.guid]);
    const one = res.body.resources[0];
    const single = await t.admin.get(`/v3/apps/${one.guid}?include=space`);
    expect(single.body.included).toEqual({ spaces: [expect.objectContaining({ guid: s1.guid })] });
    expect((await t.admin.get(`/v3/apps/${one.guid}?include=nope`)).status).toBe(400);
  });

  it("pages a non-admin's list as an admin's list of the same spaces: totals, order and labels", async () => {
    const member = await userWith('space_developer', s1);
    await t.grant(member, 'space_auditor', { space: s2.guid });
    for (const query of ['', '&order_by=-name', '&order_by=-created_at', '&label_selector=env%3Dprod']) {
      const expected = (await t.admin.get(`/v3/apps?space_guids=${s1.guid},${s2.guid}&per_page=50${query}`)).body.resources.map((a: any) => a.guid);
      const seen: string[] = [];
      for (let page = 1; page <= expected.length + 1; page++) {
        const res = await member.get(`/v3/apps?per_page=1&page=${page}${query}`);
        expect(res.status, res.text).toBe(200);
        expect(res.body.pagination.total_results, query).toBe(expected.length);
        seen.push(...res.body.resources.map((a: any) => a.guid));
      }
      expect(seen, query).toEqual(expected);
    }
  });

  it('shows apps only to people with a role in their space (404 otherwise)', async () => {
    const auditor = await userWith('space_auditor', s1);
    const list = await auditor.get('/v3/apps?order_by=name');
    expect(list.body.resources.map((a: any) => a.name)).toEqual(['alpha', 'bravo']);
    const stranger = await t.user();
    expect((await stranger.get('/v3/apps')).body.resources).toEqual([]);
    const charlie = (await t.admin.get(`/v3/apps?names=charlie&space_guids=${s2.guid}`)).body.resources[0];
    const hidden = await auditor.get(`/v3/apps/${charlie.guid}`);
    expect(hidden.status).toBe(404);
    expect(hidden.body.errors[0]).toEqual({ title: 'CF-ResourceNotFound', code: 10010, detail: 'App not found' });
    const alpha = list.body.resources[0];
    expect((await auditor.get(`/v3/apps/${alpha.guid}`)).status).toBe(200);
    // Auditors read but do not write.
    expect((await auditor.patch(`/v3/apps/${alpha.guid}`, { name: 'x' })).status).toBe(403);
    expect((await auditor.post(`/v3/apps/${alpha.guid}/actions/stop`)).status).toBe(403);
    expect((await auditor.delete(`/v3/apps/${alpha.guid}`)).status).toBe(403);
    // Org managers see apps of their org's spaces.
    const manager = await t.user();
    await t.grant(manager, 'organization_manager', { org: listOrg.guid });
    expect((await manager.get(`/v3/apps/${charlie.guid}`)).status).toBe(200);
  });
});

describe('updating apps', () => {
  it('renames, changes buildpacks and metadata, and refuses a lifecycle type change', async () => {
    const a = await createApp('to-update');
    const res = await t.admin.patch(`/v3/apps/${a.guid}`, {
      name: 'updated',
      lifecycle: { type: 'buildpack', data: { buildpacks: ['staticfile_buildpack'] } },
      metadata: { annotations: { note: 'x' } },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'updated', lifecycle: { data: { buildpacks: ['staticfile_buildpack'], stack: 'cflinuxfs4' } }, metadata: { annotations: { note: 'x' } } });
    const change = await t.admin.patch(`/v3/apps/${a.guid}`, { lifecycle: { type: 'docker', data: {} } });
    expect(change.status).toBe(422);
    expect(change.body.errors[0].detail).toBe('Lifecycle type cannot be changed from buildpack to docker');
    await createApp('taken-name');
    const dup = await t.admin.patch(`/v3/apps/${a.guid}`, { name: 'Taken-Name' });
    expect(dup.status).toBe(422);
    expect(dup.body.errors[0].title).toBe('CF-UniquenessError');
    expect((await t.admin.patch(`/v3/apps/${a.guid}`, { state: 'STARTED' })).status).toBe(422);
    expect((await t.admin.patch(`/v3/apps/${randomUUID()}`, { name: 'x' })).status).toBe(404);
  });
});

describe('droplets, start, stop and restart', () => {
  it('needs a droplet to start', async () => {
    const a = await createApp('no-droplet');
    const res = await t.admin.post(`/v3/apps/${a.guid}/actions/start`);
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toBe('Assign a droplet before starting this app.');
    const current = await t.admin.get(`/v3/apps/${a.guid}/droplets/current`);
    expect(current.status).toBe(404);
    expect(current.body.errors[0].detail).toBe('Droplet not found');
    expect((await t.admin.get(`/v3/apps/${a.guid}/relationships/current_droplet`)).status).toBe(404);
  });

  it('assigns a droplet, creates its process types, then starts, restarts and stops', async () => {
    const dev = await userWith('space_developer');
    const a = await createApp('runs', space.guid, {}, dev);
    const droplet = await t.droplet(a.guid, { web: 'node server.js', worker: 'node worker.js' });
    const set = await dev.patch(`/v3/apps/${a.guid}/relationships/current_droplet`, { data: { guid: droplet } });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({
      data: { guid: droplet },
      links: {
        self: { href: `http://kiln.test/v3/apps/${a.guid}/relationships/current_droplet` },
        related: { href: `http://kiln.test/v3/apps/${a.guid}/droplets/current` },
      },
    });
    expect((await dev.get(`/v3/apps/${a.guid}/relationships/current_droplet`)).body.data).toEqual({ guid: droplet });
    const current = await dev.get(`/v3/apps/${a.guid}/droplets/current`);
    expect(current.body).toMatchObject({
      guid: droplet,
      state: 'STAGED',
      process_types: { web: 'node server.js', worker: 'node worker.js' },
      checksum: { type: 'sha256', value: 'a'.repeat(64) },
      relationships: { app: { data: { guid: a.guid } } },
    });
    const procs = (await dev.get(`/v3/apps/${a.guid}/processes`)).body.resources;
    expect(procs.map((p: any) => [p.type, p.instances, p.health_check.type])).toEqual([
      ['web', 1, 'port'],
      ['worker', 0, 'process'],
    ]);
    const web = await dev.get(`/v3/processes/${a.guid}`);
    expect(web.body.command).toBe('node server.js');
    const versionBefore = web.body.version;

    const started = await dev.post(`/v3/apps/${a.guid}/actions/start`);
    expect(started.status).toBe(200);
    expect(started.body.state).toBe('STARTED');
    expect(started.body.relationships.current_droplet.data.guid).toBe(droplet);
    expect((await dev.get(`/v3/processes/${a.guid}`)).body.version).toBe(versionBefore);
    const restarted = await dev.post(`/v3/apps/${a.guid}/actions/restart`);
    expect(restarted.body.state).toBe('STARTED');
    expect((await dev.get(`/v3/processes/${a.guid}`)).body.version).not.toBe(versionBefore);
    const stopped = await dev.post(`/v3/apps/${a.guid}/actions/stop`);
    expect(stopped.body.state).toBe('STOPPED');
    const types = (await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', a.guid).orderBy('id').execute()).map((e) => e.type);
    expect(types).toEqual([
      'audit.app.create', 'audit.app.process.create', 'audit.app.droplet.mapped', 'audit.app.start', 'audit.app.restart', 'audit.app.stop',
    ]);
  });

  it('refuses to clear the droplet or use a foreign or unstaged one', async () => {
    const a = await createApp('droplet-errors');
    const b = await createApp('droplet-owner');
    const foreign = await t.droplet(b.guid, { web: 'x' });
    const staging = await t.droplet(a.guid, { web: 'x' }, 'AWAITING_UPLOAD');
    for (const [payload, detail] of [
      [{ data: null }, 'Current droplet cannot be removed. Replace it with a preferred droplet.'],
      [{ data: { guid: foreign } }, 'Unable to assign current droplet. Ensure the droplet exists and belongs to this app.'],
      [{ data: { guid: staging } }, 'Unable to assign current droplet. Ensure the droplet exists and belongs to this app.'],
      [{ data: { guid: randomUUID() } }, 'Unable to assign current droplet. Ensure the droplet exists and belongs to this app.'],
    ] as const) {
      const res = await t.admin.patch(`/v3/apps/${a.guid}/relationships/current_droplet`, payload);
      expect(res.status).toBe(422);
      expect(res.body.errors[0].detail).toBe(detail);
    }
    const supporter = await userWith('space_supporter');
    const own = await t.droplet(a.guid, { web: 'x' });
    expect((await supporter.patch(`/v3/apps/${a.guid}/relationships/current_droplet`, { data: { guid: own } })).status).toBe(200);
    const auditor = await userWith('space_auditor');
    expect((await auditor.patch(`/v3/apps/${a.guid}/relationships/current_droplet`, { data: { guid: own } })).status).toBe(403);
    // Auditors see the droplet, without its secrets.
    const seen = await auditor.get(`/v3/apps/${a.guid}/droplets/current`);
    expect(seen.body.process_types).toEqual({ redacted_message: '[PRIVATE DATA HIDDEN]' });
  });
});

describe('environment', () => {
  it('merges environment variables (null deletes) and validates keys', async () => {
    const a = await createApp('env-app', space.guid, { environment_variables: { A: '1', B: '2' } });
    const res = await t.admin.patch(`/v3/apps/${a.guid}/environment_variables`, { var: { B: null, C: '3' } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      var: { A: '1', C: '3' },
      links: { self: { href: `http://kiln.test/v3/apps/${a.guid}/environment_variables` }, app: { href: `http://kiln.test/v3/apps/${a.guid}` } },
    });
    const bad = await t.admin.patch(`/v3/apps/${a.guid}/environment_variables`, { var: { VCAP_SERVICES: 'x' } });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].detail).toBe('Var cannot start with VCAP_');
    const auditor = await userWith('space_auditor');
    expect((await auditor.get(`/v3/apps/${a.guid}/environment_variables`)).status).toBe(403);
    const supporter = await userWith('space_supporter');
    expect((await supporter.get(`/v3/apps/${a.guid}/environment_variables`)).body.var).toEqual({ A: '1', C: '3' });
  });

  it('renders /env with groups, VCAP_APPLICATION and role-dependent redaction', async () => {
    await t.admin.patch('/v3/environment_variable_groups/running', { var: { RUNNING: 'yes' } });
    const a = await createApp('env-show', space.guid, { environment_variables: { MINE: 'x' } });
    const res = await t.admin.get(`/v3/apps/${a.guid}/env`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      environment_variables: { MINE: 'x' },
      running_env_json: { RUNNING: 'yes' },
      system_env_json: { VCAP_SERVICES: {} },
      application_env_json: {
        VCAP_APPLICATION: {
          cf_api: 'http://kiln.test',
          application_name: 'env-show',
          name: 'env-show',
          application_id: a.guid,
          space_name: 'apps-space',
          space_id: space.guid,
          organization_name: 'apps-org',
          organization_id: org.guid,
          application_uris: [],
          uris: [],
          users: null,
          limits: { fds: 16384 },
        },
      },
    });
    const supporter = await userWith('space_supporter');
    expect((await supporter.get(`/v3/apps/${a.guid}/env`)).body.system_env_json).toEqual({ redacted_message: '[PRIVATE DATA HIDDEN]' });
    const auditor = await userWith('space_auditor');
    expect((await auditor.get(`/v3/apps/${a.guid}/env`)).status).toBe(403);
    expect((await (await t.user()).get(`/v3/apps/${a.guid}/env`)).status).toBe(404);
    const dev = await userWith('space_developer');
    expect((await dev.get(`/v3/apps/${a.guid}/env`)).status).toBe(200);
    await t.admin.patch('/v3/feature_flags/space_developer_env_var_visibility', { enabled: false });
    const off = await dev.get(`/v3/apps/${a.guid}/env`);
    expect(off.status).toBe(403);
    expect(off.body.errors[0].title).toBe('CF-FeatureDisabled');
    await t.admin.patch('/v3/feature_flags/space_developer_env_var_visibility', { enabled: true });
    const shows = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', a.guid).where('type', '=', 'audit.app.environment.show').orderBy('id').execute();
    expect(shows.length).toBeGreaterThanOrEqual(3);
  });
});

describe('features, permissions and ssh', () => {
  it('lists, reads and toggles ssh and revisions', async () => {
    const a = await createApp('features');
    const list = await t.admin.get(`/v3/apps/${a.guid}/features`);
    expect(list.body.resources).toEqual([
      { name: 'ssh', description: 'Enable SSHing into the app.', enabled: true },
      // Upstream enables revisions for new apps.
      { name: 'revisions', description: 'Enable versioning of an application', enabled: true },
      { name: 'service-binding-k8s', description: 'Enable k8s service bindings for the app', enabled: false },
      { name: 'file-based-vcap-services', description: 'Enable file-based VCAP service bindings for the app', enabled: false },
    ]);
    expect(list.body.pagination.total_results).toBe(4);
    expect((await t.admin.get(`/v3/apps/${a.guid}/features/nope`)).status).toBe(404);
    const off = await t.admin.patch(`/v3/apps/${a.guid}/features/ssh`, { enabled: false });
    expect(off.body).toEqual({ name: 'ssh', description: 'Enable SSHing into the app.', enabled: false });
    expect((await t.admin.get(`/v3/apps/${a.guid}/ssh_enabled`)).body).toEqual({ enabled: false, reason: 'Disabled for app features' });
    expect((await t.admin.patch(`/v3/apps/${a.guid}/features/ssh`, { enabled: 'yes' })).status).toBe(422);
    const supporter = await userWith('space_supporter');
    expect((await supporter.patch(`/v3/apps/${a.guid}/features/ssh`, { enabled: true })).status).toBe(403);
    expect((await supporter.patch(`/v3/apps/${a.guid}/features/revisions`, { enabled: false })).body.enabled).toBe(false);
  });

  it('turns on one file-based binding feature at a time, which replaces VCAP_SERVICES in the env', async () => {
    const a = await createApp('binding-files');
    const k8s = await t.admin.patch(`/v3/apps/${a.guid}/features/service-binding-k8s`, { enabled: true });
    expect(k8s.body).toEqual({ name: 'service-binding-k8s', description: 'Enable k8s service bindings for the app', enabled: true });
    expect((await t.admin.get(`/v3/apps/${a.guid}/env`)).body.system_env_json).toEqual({ SERVICE_BINDING_ROOT: '/etc/cf-service-bindings' });
    const both = await t.admin.patch(`/v3/apps/${a.guid}/features/file-based-vcap-services`, { enabled: true });
    expect(both.status).toBe(422);
    expect(both.body.errors[0]).toMatchObject({
      title: 'CF-UnprocessableEntity',
      detail: "'file-based-vcap-services' and 'service-binding-k8s' features cannot be enabled at the same time.",
    });
    expect((await t.admin.patch(`/v3/apps/${a.guid}/features/service-binding-k8s`, { enabled: false })).body.enabled).toBe(false);
    expect((await t.admin.patch(`/v3/apps/${a.guid}/features/file-based-vcap-services`, { enabled: true })).body.enabled).toBe(true);
    expect((await t.admin.get(`/v3/apps/${a.guid}/env`)).body.system_env_json).toEqual({ VCAP_SERVICES_FILE_PATH: '/etc/cf-service-bindings/vcap_services' });
    expect((await t.admin.get(`/v3/apps/${a.guid}/features/file-based-vcap-services`)).body.enabled).toBe(true);
  });

  it('reports ssh disabled by the space, and permissions by role', async () => {
    const s = await t.space('no-ssh', org.guid);
    const a = await createApp('ssh-app', s.guid);
    expect((await t.admin.get(`/v3/apps/${a.guid}/ssh_enabled`)).body).toEqual({ enabled: true, reason: '' });
    await t.admin.patch(`/v3/spaces/${s.guid}/features/ssh`, { enabled: false });
    expect((await t.admin.get(`/v3/apps/${a.guid}/ssh_enabled`)).body).toEqual({ enabled: false, reason: 'Disabled for space no-ssh' });
    const dev = await userWith('space_developer', s);
    const auditor = await userWith('space_auditor', s);
    expect((await dev.get(`/v3/apps/${a.guid}/permissions`)).body).toEqual({ read_basic_data: true, read_sensitive_data: true });
    expect((await auditor.get(`/v3/apps/${a.guid}/permissions`)).body).toEqual({ read_basic_data: true, read_sensitive_data: false });
    expect((await (await t.user()).get(`/v3/apps/${a.guid}/permissions`)).status).toBe(404);
  });
});

describe('deleting apps and clearing caches', () => {
  it('clears the buildpack cache through a job', async () => {
    const a = await createApp('cache');
    const res = await t.admin.post(`/v3/apps/${a.guid}/actions/clear_buildpack_cache`);
    expect(res.status).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    const auditor = await userWith('space_auditor');
    expect((await auditor.post(`/v3/apps/${a.guid}/actions/clear_buildpack_cache`)).status).toBe(403);
  });

  it('deletes an app with its processes, droplets and route mappings through a job', async () => {
    const a = await createApp('doomed');
    const droplet = await t.droplet(a.guid, { web: 'x', worker: 'y' });
    await t.admin.patch(`/v3/apps/${a.guid}/relationships/current_droplet`, { data: { guid: droplet } });
    await t.kiln.store.write((tx) => tx.insert('route_destinations', { route_guid: randomUUID(), app_guid: a.guid, weight: null }));
    const res = await t.admin.delete(`/v3/apps/${a.guid}`);
    expect(res.status).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    expect((await t.admin.get(`/v3/apps/${a.guid}`)).status).toBe(404);
    expect(await count('processes', ['app_guid', a.guid])).toBe(0);
    expect(await count('droplets', ['app_guid', a.guid])).toBe(0);
    expect(await count('route_destinations', ['app_guid', a.guid])).toBe(0);
    expect((await t.admin.delete(`/v3/apps/${a.guid}`)).status).toBe(404);
  });

  it('deleteAppsOfSpaces removes every app of the given spaces', async () => {
    const s = await t.space('cascade', org.guid);
    const a = await createApp('in-cascade', s.guid);
    const keep = await createApp('kept');
    await t.kiln.store.write((tx) => deleteAppsOfSpaces(tx, [s.guid]));
    expect(await count('apps', ['guid', a.guid])).toBe(0);
    expect(await count('processes', ['app_guid', a.guid])).toBe(0);
    expect(await count('apps', ['guid', keep.guid])).toBe(1);
  });
});
