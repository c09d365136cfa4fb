import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi } from '../../src/api/app.ts';
import { JobHandlers } from '../../src/lifecycle/jobs.ts';
import type { ObservedInstance, ObservedInstances } from '../../src/lifecycle/instances.ts';
import { Client, createTestKiln, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
let org: any;
let space: any;
let app: any;
let dev: Client;
beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('proc-org');
  space = await t.space('proc-space', org.guid);
  dev = await userWith('space_developer');
  app = await createApp('proc-app');
  const droplet = await t.droplet(app.guid, { web: 'node server.js', worker: 'node worker.js' });
  const res = await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } });
  expect(res.status).toBe(200);
});
afterAll(() => t.close());

async function createApp(name: string, spaceGuid = space.guid) {
  const res = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: spaceGuid } } } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

const userWith = (role: string, s = space): Promise<Client> => t.spaceMember(role, s);

describe('listing and reading processes', () => {
  it('lists with filters, always redacting the command, and embeds process_instances', async () => {
    const other = await createApp('proc-other');
    const all = await dev.get(`/v3/processes?space_guids=${space.guid}`);
    expect(all.status).toBe(200);
    expect(all.body.resources.map((p: any) => p.type).sort()).toEqual(['web', 'web', 'worker']);
    for (const p of all.body.resources) expect(p.command).toBe('[PRIVATE DATA HIDDEN IN LISTS]');
    const workers = await dev.get(`/v3/processes?types=worker&app_guids=${app.guid}`);
    expect(workers.body.resources.map((p: any) => p.relationships.app.data.guid)).toEqual([app.guid]);
    const byOrg = await t.admin.get(`/v3/processes?organization_guids=${org.guid}&guids=${other.guid}`);
    expect(byOrg.body.resources.map((p: any) => p.guid)).toEqual([other.guid]);
    const embedded = await dev.get(`/v3/processes?app_guids=${app.guid}&embed=process_instances`);
    const web = embedded.body.resources.find((p: any) => p.type === 'web');
    expect(web.process_instances).toEqual([{ index: 0, state: 'DOWN', since: 0 }]);
    expect((await dev.get('/v3/processes?embed=nope')).status).toBe(400);
    expect((await dev.get('/v3/processes?order_by=type')).status).toBe(400);
    const stranger = await t.user();
    expect((await stranger.get('/v3/processes')).body.resources).toEqual([]);
  });

  it('shows the detected command to developers and redacts it for auditors', async () => {
    const res = await dev.get(`/v3/processes/${app.guid}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      guid: app.guid,
      type: 'web',
      command: 'node server.js',
      user: 'vcap',
      relationships: { app: { data: { guid: app.guid } } },
    });
    expect(res.body.links).toEqual({
      self: { href: `http://kiln.test/v3/processes/${app.guid}` },
      scale: { href: `http://kiln.test/v3/processes/${app.guid}/actions/scale`, method: 'POST' },
      app: { href: `http://kiln.test/v3/apps/${app.guid}` },
      space: { href: `http://kiln.test/v3/spaces/${space.guid}` },
      stats: { href: `http://kiln.test/v3/processes/${app.guid}/stats` },
    });
    const auditor = await userWith('space_auditor');
    expect((await auditor.get(`/v3/processes/${app.guid}`)).body.command).toBe('[PRIVATE DATA HIDDEN]');
    const missing = await dev.get(`/v3/processes/${randomUUID()}`);
    expect(missing.status).toBe(404);
    expect(missing.body.errors[0].detail).toBe('Process not found');
    expect((await (await t.user()).get(`/v3/processes/${app.guid}`)).status).toBe(404);
  });

  it('serves the app-scoped variants', async () => {
    const list = await dev.get(`/v3/apps/${app.guid}/processes?types=worker`);
    expect(list.body.resources.map((p: any) => p.type)).toEqual(['worker']);
    const worker = await dev.get(`/v3/apps/${app.guid}/processes/worker`);
    expect(worker.body).toMatchObject({ type: 'worker', command: 'node worker.js', instances: 0 });
    const none = await dev.get(`/v3/apps/${app.guid}/processes/clock`);
    expect(none.status).toBe(404);
    expect(none.body.errors[0].detail).toBe('Process not found');
    expect((await dev.get(`/v3/apps/${randomUUID()}/processes`)).status).toBe(404);
    expect((await dev.get(`/v3/apps/${randomUUID()}/processes/web`)).body.errors[0].detail).toBe('App not found');
  });

  it('answers empty sidecar lists (the cf CLI reads them for every process)', async () => {
    const res = await dev.get(`/v3/processes/${app.guid}/sidecars`);
    expect(res.status).toBe(200);
    expect(res.body.resources).toEqual([]);
    expect((await dev.get(`/v3/apps/${app.guid}/sidecars`)).body.pagination.total_results).toBe(0);
    expect((await dev.get(`/v3/processes/${randomUUID()}/sidecars`)).status).toBe(404);
  });
});

describe('updating and scaling processes', () => {
  it('updates the command and health checks, and reverts to the detected command with null', async () => {
    const res = await dev.patch(`/v3/processes/${app.guid}`, {
      command: 'node other.js',
      health_check: { type: 'http', data: { endpoint: '/health', invocation_timeout: 2, timeout: 60, interval: 5 } },
      readiness_health_check: { type: 'port', data: { interval: 3 } },
      metadata: { labels: { role: 'front' } },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      command: 'node other.js',
      health_check: { type: 'http', data: { timeout: 60, invocation_timeout: 2, interval: 5, endpoint: '/health' } },
      readiness_health_check: { type: 'port', data: { invocation_timeout: null, interval: 3 } },
      metadata: { labels: { role: 'front' } },
    });
    const back = await dev.patch(`/v3/apps/${app.guid}/processes/web`, { command: null, health_check: { type: 'port' } });
    expect(back.body.command).toBe('node server.js');
    expect(back.body.health_check).toEqual({ type: 'port', data: { timeout: 60, invocation_timeout: 2, interval: 5 } });
    const audit = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', app.guid).where('type', '=', 'audit.app.process.update').orderBy('id').execute();
    expect(audit).toHaveLength(2);
  });

  it('rejects invalid updates and non-developers', async () => {
    const cases: Array<[unknown, string]> = [
      [{ command: '' }, 'Command must be between 1 and 4096 characters'],
      [{ health_check: { type: 'tcp' } }, 'Health check type must be "port", "process", or "http"'],
      [{ health_check: { type: 'port', data: { endpoint: '/x' } } }, 'Health check type must be "http" to set a health check HTTP endpoint'],
      [{ health_check: { type: 'http', data: { timeout: 0 } } }, 'Health check timeout must be greater than or equal to 1'],
      [{ readiness_health_check: { type: 'port', data: { timeout: 5 } } }, "Unknown field(s): 'timeout'"],
      [{ instances: 3 }, "Unknown field(s): 'instances'"],
    ];
    for (const [b, detail] of cases) {
      const res = await dev.patch(`/v3/processes/${app.guid}`, b);
      expect(res.status, JSON.stringify(b)).toBe(422);
      expect(res.body.errors[0].detail).toContain(detail);
    }
    const auditor = await userWith('space_auditor');
    expect((await auditor.patch(`/v3/processes/${app.guid}`, { command: 'x' })).status).toBe(403);
  });

  it('scales (202 with the process), validates, and honours app_scaling', async () => {
    const res = await dev.post(`/v3/apps/${app.guid}/processes/worker/actions/scale`, { instances: 2, memory_in_mb: 256 });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ type: 'worker', instances: 2, memory_in_mb: 256, disk_in_mb: 1024 });
    const direct = await dev.post(`/v3/processes/${app.guid}/actions/scale`, { disk_in_mb: 512, log_rate_limit_in_bytes_per_second: 1024 });
    expect(direct.status).toBe(202);
    expect(direct.body).toMatchObject({ instances: 1, disk_in_mb: 512, log_rate_limit_in_bytes_per_second: 1024 });
    for (const [b, detail] of [
      [{ instances: -1 }, 'Instances must be greater than or equal to 0'],
      [{ memory_in_mb: 0 }, 'Memory in mb must be greater than 0'],
      [{ instances: '2' }, 'Instances is not a number'],
      [{ log_rate_limit_in_bytes_per_second: -2 }, 'Log rate limit in bytes per second must be greater than or equal to -1'],
      [{ cpu: 1 }, "Unknown field(s): 'cpu'"],
    ] as const) {
      const bad = await dev.post(`/v3/processes/${app.guid}/actions/scale`, b);
      expect(bad.status, JSON.stringify(b)).toBe(422);
      expect(bad.body.errors[0].detail).toContain(detail);
    }
    await t.admin.patch('/v3/feature_flags/app_scaling', { enabled: false });
    const off = await dev.post(`/v3/processes/${app.guid}/actions/scale`, { instances: 1 });
    expect(off.status).toBe(403);
    expect(off.body.errors[0].title).toBe('CF-FeatureDisabled');
    expect((await t.admin.post(`/v3/processes/${app.guid}/actions/scale`, { instances: 1 })).status).toBe(202);
    await t.admin.patch('/v3/feature_flags/app_scaling', { enabled: true });
    const supporter = await userWith('space_supporter');
    expect((await supporter.post(`/v3/processes/${app.guid}/actions/scale`, { instances: 1 })).status).toBe(202);
    const auditor = await userWith('space_auditor');
    expect((await auditor.post(`/v3/processes/${app.guid}/actions/scale`, { instances: 1 })).status).toBe(403);
  });
});

describe('stats and instances', () => {
  it('reports every desired instance DOWN when no runtime is wired', async () => {
    const a = await createApp('stats-app');
    await t.admin.post(`/v3/processes/${a.guid}/actions/scale`, { instances: 2 });
    const res = await dev.get(`/v3/processes/${a.guid}/stats`);
    expect(res.status).toBe(200);
    expect(res.body.resources).toEqual([
      { type: 'web', index: 0, state: 'DOWN', routable: null, uptime: 0, isolation_segment: null, details: null },
      { type: 'web', index: 1, state: 'DOWN', routable: null, uptime: 0, isolation_segment: null, details: null },
    ]);
    expect((await dev.get(`/v3/apps/${a.guid}/processes/web/stats`)).body.resources).toHaveLength(2);
    const pi = await dev.get(`/v3/processes/${a.guid}/process_instances`);
    expect(pi.body).toEqual({
      resources: [
        { index: 0, state: 'DOWN', since: 0 },
        { index: 1, state: 'DOWN', since: 0 },
      ],
      links: {
        self: { href: `http://kiln.test/v3/processes/${a.guid}/process_instances` },
        process: { href: `http://kiln.test/v3/processes/${a.guid}` },
      },
    });
  });

  it('terminates valid indexes (204) and 404s others', async () => {
    const a = await createApp('term-app');
    expect((await dev.delete(`/v3/processes/${a.guid}/instances/0`)).status).toBe(204);
    const out = await dev.delete(`/v3/apps/${a.guid}/processes/web/instances/5`);
    expect(out.status).toBe(404);
    expect(out.body.errors[0].detail).toBe('Instance not found');
    expect((await dev.delete(`/v3/processes/${a.guid}/instances/x`)).status).toBe(404);
    const auditor = await userWith('space_auditor');
    expect((await auditor.delete(`/v3/processes/${a.guid}/instances/0`)).status).toBe(403);
  });

  it('uses the wired runtime for stats, embeds and termination', async () => {
    const a = await createApp('observed-app');
    await t.admin.post(`/v3/processes/${a.guid}/actions/scale`, { instances: 2, memory_in_mb: 128 });
    const terminated: Array<[string, number]> = [];
    const running: ObservedInstance = {
      index: 0,
      state: 'RUNNING',
      instanceGuid: 'i-0',
      host: '127.0.0.1',
      uptime: 12.7,
      since: 1_700_000_000,
      ports: [{ external: 61001, internal: 8080 }],
      usage: { time: '2024-01-01T00:00:00Z', cpu: 0.01, mem: 1000, disk: 2000, log_rate: 0 },
    };
    const observed: ObservedInstances = {
      statsFor: async (guid) => (guid === a.guid ? [running, { index: 3, state: 'STOPPING', uptime: 1 }] : []),
      terminate: async (guid, index) => {
        terminated.push([guid, index]);
        return true;
      },
    };
    const k = t.kiln;
    const api = createApi({ config: k.config, store: k.store, log: k.log, tokens: k.identity, jobs: new JobHandlers(), observed });
    const client = new Client({ ...k, app: api }, dev.token, dev.userGuid, dev.username);
    const stats = await client.get(`/v3/processes/${a.guid}/stats`);
    expect(stats.body.resources.map((r: any) => [r.index, r.state])).toEqual([
      [0, 'RUNNING'],
      [1, 'DOWN'],
      [3, 'STOPPING'],
    ]);
    expect(stats.body.resources[0]).toMatchObject({
      instance_guid: 'i-0',
      routable: true,
      host: '127.0.0.1',
      uptime: 12,
      mem_quota: 128 * 1024 * 1024,
      fds_quota: 16384,
      instance_ports: [{ external: 61001, internal: 8080, external_tls_proxy_port: null, internal_tls_proxy_port: null }],
      usage: { cpu: 0.01, mem: 1000, disk: 2000, log_rate: 0 },
    });
    const embedded = await client.get(`/v3/processes/${a.guid}?embed=process_instances`);
    expect(embedded.body.process_instances[0]).toEqual({ index: 0, state: 'RUNNING', since: 1_700_000_000 });
    expect((await client.delete(`/v3/processes/${a.guid}/instances/1`)).status).toBe(204);
    expect(terminated).toEqual([[a.guid, 1]]);
  });

  it('embeds and summarises process_instances from instance states without measuring usage', async () => {
    const a = await createApp('states-app');
    const measured: string[] = [];
    const observed: ObservedInstances = {
      statsFor: async (guid) => {
        measured.push(guid);
        return [{ index: 0, state: 'RUNNING', since: 1, uptime: 5 }];
      },
      statesFor: async (guid) => (guid === a.guid ? [{ index: 0, state: 'RUNNING', since: 1_700_000_000 }] : []),
      terminate: async () => false,
    };
    const k = t.kiln;
    const api = createApi({ config: k.config, store: k.store, log: k.log, tokens: k.identity, jobs: new JobHandlers(), observed });
    const client = new Client({ ...k, app: api }, dev.token, dev.userGuid, dev.username);
    const want = [{ index: 0, state: 'RUNNING', since: 1_700_000_000 }];
    const list = await client.get(`/v3/processes?embed=process_instances&app_guids=${a.guid}`);
    expect(list.body.resources[0].process_instances).toEqual(want);
    expect((await client.get(`/v3/processes/${a.guid}?embed=process_instances`)).body.process_instances).toEqual(want);
    expect((await client.get(`/v3/processes/${a.guid}/process_instances`)).body.resources).toEqual(want);
    expect(measured).toEqual([]);
    // Stats report usage, so they still measure.
    expect((await client.get(`/v3/processes/${a.guid}/stats`)).body.resources[0]).toMatchObject({ state: 'RUNNING', uptime: 5 });
    expect(measured).toEqual([a.guid]);
  });
});
