import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

// Response bodies are untyped JSON; the harness already checks them against openapi.json.
type Json = any;

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

const err = (res: { body: Json }) => res.body.errors[0];
const unprocessable = (detail: string) => ({ errors: [{ detail, title: 'CF-UnprocessableEntity', code: 10008 }] });

interface Limits {
  total_memory_in_mb?: number | null;
  per_process_memory_in_mb?: number | null;
  total_instances?: number | null;
  log_rate_limit_in_bytes_per_second?: number | null;
}

interface World {
  org: Json;
  space: Json;
}

/** A fresh org and space (so tests do not share usage), with the given app quotas applied. */
async function world(quotas: { org?: Limits; space?: Limits } = {}): Promise<World> {
  const org = await t.org(`pq-org-${randomUUID().slice(0, 8)}`);
  const space = await t.space('pq-space', org.guid);
  if (quotas.org) {
    const res = await t.admin.post('/v3/organization_quotas', {
      name: `pq-oq-${randomUUID()}`,
      apps: quotas.org,
      relationships: { organizations: { data: [{ guid: org.guid }] } },
    });
    expect(res.status, res.text).toBe(201);
  }
  if (quotas.space) {
    const res = await t.admin.post('/v3/space_quotas', {
      name: `pq-sq-${randomUUID()}`,
      apps: quotas.space,
      relationships: { organization: { data: { guid: org.guid } }, spaces: { data: [{ guid: space.guid }] } },
    });
    expect(res.status, res.text).toBe(201);
  }
  return { org, space };
}

/** An app with a current droplet (web, and a worker with no instances), its web process sized as asked; stopped unless `start`. */
async function app(w: World, opts: { instances?: number; memory?: number; logRate?: number; start?: boolean } = {}): Promise<Json> {
  const created = await t.admin.post('/v3/apps', { name: `pq-app-${randomUUID().slice(0, 8)}`, relationships: { space: { data: { guid: w.space.guid } } } });
  expect(created.status, created.text).toBe(201);
  const droplet = await t.droplet(created.body.guid, { web: 'node server.js', worker: 'node worker.js' });
  const set = await t.admin.patch(`/v3/apps/${created.body.guid}/relationships/current_droplet`, { data: { guid: droplet } });
  expect(set.status, set.text).toBe(200);
  const scale = await t.admin.post(`/v3/processes/${created.body.guid}/actions/scale`, {
    instances: opts.instances ?? 1,
    memory_in_mb: opts.memory ?? 256,
    log_rate_limit_in_bytes_per_second: opts.logRate ?? 1024,
  });
  expect(scale.status, scale.text).toBe(202);
  // Upstream checks every process of a started app, idle ones included, so the worker is kept small and limited.
  const worker = await t.admin.post(`/v3/apps/${created.body.guid}/processes/worker/actions/scale`, { memory_in_mb: 64, log_rate_limit_in_bytes_per_second: 16 });
  expect(worker.status, worker.text).toBe(202);
  if (opts.start) {
    const started = await t.admin.post(`/v3/apps/${created.body.guid}/actions/start`);
    expect(started.status, started.text).toBe(200);
  }
  return created.body;
}

async function web(appGuid: string): Promise<Json> {
  const res = await t.admin.get(`/v3/processes/${appGuid}`);
  expect(res.status).toBe(200);
  return res.body;
}

const scale = (client: Client, appGuid: string, body: Record<string, unknown>) => client.post(`/v3/processes/${appGuid}/actions/scale`, body);

describe('scaling a started app', () => {
  it('refuses to exceed the org memory quota, changing nothing', async () => {
    const w = await world({ org: { total_memory_in_mb: 1024 } });
    await app(w, { instances: 2, memory: 256, start: true }); // 512 in use elsewhere
    const a = await app(w, { instances: 1, memory: 256, start: true });
    const res = await scale(t.admin, a.guid, { instances: 3 });
    expect(res.status).toBe(422);
    expect(res.body).toEqual(unprocessable('memory quota_exceeded'));
    const app2 = await scale(t.admin, a.guid, { memory_in_mb: 1024 });
    expect(err(app2).detail).toBe('memory quota_exceeded');
    expect(await web(a.guid)).toMatchObject({ instances: 1, memory_in_mb: 256 });
    const audit = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', a.guid).where('type', '=', 'audit.app.process.scale').execute();
    expect(audit).toHaveLength(2); // only the set-up scales of web and worker
  });

  it('lets a process grow into exactly what is left, its own current usage not counted twice', async () => {
    const w = await world({ org: { total_memory_in_mb: 1024 } });
    await app(w, { instances: 2, memory: 256, start: true });
    const a = await app(w, { instances: 1, memory: 256, start: true });
    const res = await scale(t.admin, a.guid, { instances: 2 });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ instances: 2, memory_in_mb: 256 });
    // Through the app-scoped route too: 1024 is now used, so one more instance is refused.
    const more = await t.admin.post(`/v3/apps/${a.guid}/processes/web/actions/scale`, { instances: 3 });
    expect(more.status).toBe(422);
    expect(err(more).detail).toBe('memory quota_exceeded');
  });

  it('refuses to exceed the space instance limit; reports every broken rule', async () => {
    const w = await world({ space: { total_instances: 3, total_memory_in_mb: 512 } });
    const a = await app(w, { instances: 1, memory: 128, start: true });
    const res = await t.admin.post(`/v3/apps/${a.guid}/processes/web/actions/scale`, { instances: 4 });
    expect(res.status).toBe(422);
    expect(err(res).detail).toBe('app_instance_limit space_app_instance_limit_exceeded');
    const both = await scale(t.admin, a.guid, { instances: 5, memory_in_mb: 256 });
    expect(err(both).detail).toBe('memory space_quota_exceeded, app_instance_limit space_app_instance_limit_exceeded');
    expect(await web(a.guid)).toMatchObject({ instances: 1, memory_in_mb: 128 });
    expect((await scale(t.admin, a.guid, { instances: 3 })).status).toBe(202);
  });

  it('enforces the per-process memory and log rate limits', async () => {
    const w = await world({ org: { per_process_memory_in_mb: 512, log_rate_limit_in_bytes_per_second: 4096 } });
    const a = await app(w, { instances: 1, memory: 256, logRate: 1024, start: true });
    expect(err(await scale(t.admin, a.guid, { memory_in_mb: 1024 })).detail).toBe('memory instance_memory_limit_exceeded');
    expect(err(await scale(t.admin, a.guid, { instances: 5 })).detail).toBe('log_rate_limit exceeds organization log rate quota');
    expect(err(await scale(t.admin, a.guid, { log_rate_limit_in_bytes_per_second: -1 })).detail).toBe(
      `log_rate_limit cannot be unlimited in organization '${w.org.name}'.`,
    );
    expect((await scale(t.admin, a.guid, { instances: 4 })).status).toBe(202);
  });

  it('always allows scaling down, even when over a since-lowered quota', async () => {
    const w = await world();
    const a = await app(w, { instances: 4, memory: 256, start: true });
    const q = await t.admin.post('/v3/organization_quotas', {
      name: `pq-low-${randomUUID()}`,
      apps: { total_memory_in_mb: 256 },
      relationships: { organizations: { data: [{ guid: w.org.guid }] } },
    });
    expect(q.status, q.text).toBe(201);
    const down = await scale(t.admin, a.guid, { instances: 2 });
    expect(down.status, down.text).toBe(202);
    expect((await scale(t.admin, a.guid, { disk_in_mb: 512 })).status).toBe(202);
    expect(err(await scale(t.admin, a.guid, { instances: 3 })).detail).toBe('memory quota_exceeded');
  });
});

describe('stopped apps', () => {
  it('consume nothing and can be scaled freely', async () => {
    const w = await world({ org: { total_memory_in_mb: 512, total_instances: 2 } });
    const stopped = await app(w, { instances: 1, memory: 256 });
    const res = await scale(t.admin, stopped.guid, { instances: 100, memory_in_mb: 4096 });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ instances: 100, memory_in_mb: 4096 });
    // The huge stopped app does not count against a started one.
    const running = await app(w, { instances: 2, memory: 256, start: true });
    expect((await web(running.guid)).instances).toBe(2);
    // Stopping is always allowed.
    expect((await t.admin.post(`/v3/apps/${running.guid}/actions/stop`)).status).toBe(200);
  });
});

describe('starting an app', () => {
  it('refuses when its processes would exceed the quota, leaving it STOPPED', async () => {
    const w = await world({ org: { total_memory_in_mb: 1024 } });
    await app(w, { instances: 2, memory: 256, start: true });
    const a = await app(w, { instances: 3, memory: 256 });
    const res = await t.admin.post(`/v3/apps/${a.guid}/actions/start`);
    expect(res.status).toBe(422);
    expect(res.body).toEqual(unprocessable('memory quota_exceeded'));
    expect((await t.admin.get(`/v3/apps/${a.guid}`)).body.state).toBe('STOPPED');
    expect((await scale(t.admin, a.guid, { instances: 2 })).status).toBe(202);
    const ok = await t.admin.post(`/v3/apps/${a.guid}/actions/start`);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.state).toBe('STARTED');
  });

  it('counts all of its processes together', async () => {
    const w = await world({ space: { total_instances: 3 } });
    const a = await app(w, { instances: 2 });
    const worker = await t.admin.post(`/v3/apps/${a.guid}/processes/worker/actions/scale`, { instances: 2, memory_in_mb: 64 });
    expect(worker.status, worker.text).toBe(202);
    const res = await t.admin.post(`/v3/apps/${a.guid}/actions/start`);
    expect(err(res).detail).toBe('app_instance_limit space_app_instance_limit_exceeded');
    expect((await t.admin.get(`/v3/apps/${a.guid}`)).body.state).toBe('STOPPED');
  });

  it('restarts a started app within its quota (its own usage is replaced, not added)', async () => {
    const w = await world({ org: { total_memory_in_mb: 512 } });
    const a = await app(w, { instances: 2, memory: 256, start: true });
    const res = await t.admin.post(`/v3/apps/${a.guid}/actions/restart`);
    expect(res.status, res.text).toBe(200);
    const b = await app(w, { instances: 1, memory: 64 });
    expect(err(await t.admin.post(`/v3/apps/${b.guid}/actions/restart`)).detail).toBe('memory quota_exceeded');
    expect((await t.admin.get(`/v3/apps/${b.guid}`)).body.state).toBe('STOPPED');
  });

  it('passes with unlimited quotas', async () => {
    const w = await world({
      org: { total_memory_in_mb: null, total_instances: null, log_rate_limit_in_bytes_per_second: null },
      space: { total_memory_in_mb: null, total_instances: null, per_process_memory_in_mb: null },
    });
    const a = await app(w, { instances: 50, memory: 8192, logRate: -1, start: true });
    expect((await scale(t.admin, a.guid, { instances: 200 })).status).toBe(202);
  });
});

describe('applying a manifest to a started app', () => {
  it('refuses a scale beyond the quota and leaves the process as it was', async () => {
    const w = await world({ org: { total_memory_in_mb: 512 } });
    const a = await app(w, { instances: 1, memory: 256, start: true });
    const name = (await t.admin.get(`/v3/apps/${a.guid}`)).body.name;
    const yaml = `applications:\n- name: ${name}\n  instances: 3\n`;
    const res = await t.admin.post(`/v3/spaces/${w.space.guid}/actions/apply_manifest`, undefined, { raw: yaml, headers: { 'content-type': 'application/x-yaml' } });
    expect(res.status, res.text).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job.state).toBe('FAILED');
    expect(job.errors).toEqual([{ code: 10008, title: 'CF-UnprocessableEntity', detail: `For application '${name}': memory quota_exceeded` }]);
    expect((await web(a.guid)).instances).toBe(1);
    const fits = await t.admin.post(`/v3/spaces/${w.space.guid}/actions/apply_manifest`, undefined, {
      raw: `applications:\n- name: ${name}\n  instances: 2\n`,
      headers: { 'content-type': 'application/x-yaml' },
    });
    expect((await t.awaitJob(fits.headers.get('location'))).state).toBe('COMPLETE');
    expect((await web(a.guid)).instances).toBe(2);
  });
});
