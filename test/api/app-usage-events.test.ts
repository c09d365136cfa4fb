import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
let org: any;
let space: any;
let dev: Client;
beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('usage-org');
  space = await t.space('usage-space', org.guid);
  dev = await t.spaceMember('space_developer', space);
});
afterAll(() => t.close());

async function stagedApp(name: string): Promise<string> {
  const res = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } } });
  expect(res.status, res.text).toBe(201);
  const droplet = await t.droplet(res.body.guid, { web: 'node server.js', worker: 'node worker.js' });
  expect((await t.admin.patch(`/v3/apps/${res.body.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
  return res.body.guid;
}

const eventsOf = async (appGuid: string) =>
  (await t.admin.get('/v3/app_usage_events?per_page=5000')).body.resources.filter((e: any) => e.app.guid === appGuid);

describe('app usage events', () => {
  it('record start, scale, a new droplet, stop and delete in the writes that make them', async () => {
    const app = await stagedApp('billed');
    // Staging and assigning a droplet to a stopped app bills nothing.
    expect(await eventsOf(app)).toEqual([]);
    expect((await dev.post(`/v3/apps/${app}/actions/start`)).status).toBe(200);
    let events = await eventsOf(app);
    expect(events.map((e: any) => [e.process.type, e.state.current, e.state.previous])).toEqual([
      ['web', 'STARTED', 'STOPPED'],
      ['worker', 'STARTED', 'STOPPED'],
    ]);
    expect(events[0]).toMatchObject({
      app: { guid: app, name: 'billed' },
      process: { guid: app, type: 'web' },
      space: { guid: space.guid, name: 'usage-space' },
      organization: { guid: org.guid },
      buildpack: { name: 'nodejs_buildpack' },
      instance_count: { current: 1 },
      memory_in_mb_per_instance: { current: 1024 },
    });
    expect((await dev.post(`/v3/apps/${app}/processes/web/actions/scale`, { instances: 3, memory_in_mb: 256 })).status).toBe(202);
    events = await eventsOf(app);
    expect(events.at(-1)).toMatchObject({
      state: { current: 'STARTED', previous: 'STARTED' },
      process: { type: 'web' },
      instance_count: { current: 3, previous: 1 },
      memory_in_mb_per_instance: { current: 256, previous: 1024 },
    });
    // A write that changes nothing billed (environment variables) records nothing.
    const before = events.length;
    expect((await dev.patch(`/v3/apps/${app}/environment_variables`, { var: { A: '1' } })).status).toBe(200);
    expect(await eventsOf(app)).toHaveLength(before);
    const droplet = await t.droplet(app, { web: 'node server.js', worker: 'node worker.js' });
    expect((await dev.patch(`/v3/apps/${app}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
    events = await eventsOf(app);
    expect(events.slice(before).map((e: any) => [e.process.type, e.state.current])).toEqual([
      ['web', 'BUILDPACK_SET'],
      ['worker', 'BUILDPACK_SET'],
    ]);
    expect((await dev.post(`/v3/apps/${app}/actions/stop`)).status).toBe(200);
    events = await eventsOf(app);
    expect(events.slice(-2).map((e: any) => [e.process.type, e.state.current, e.state.previous])).toEqual([
      ['web', 'STOPPED', 'STARTED'],
      ['worker', 'STOPPED', 'STARTED'],
    ]);
    // Scaling a stopped app bills nothing.
    const stopped = events.length;
    expect((await dev.post(`/v3/apps/${app}/processes/web/actions/scale`, { instances: 2 })).status).toBe(202);
    expect(await eventsOf(app)).toHaveLength(stopped);
  });

  it('record a STOPPED event for each started process when a started app is deleted', async () => {
    const app = await stagedApp('doomed');
    expect((await dev.post(`/v3/apps/${app}/actions/start`)).status).toBe(200);
    const del = await dev.delete(`/v3/apps/${app}`);
    expect(del.status).toBe(202);
    await t.awaitJob(del.headers.get('location'));
    const events = await eventsOf(app);
    expect(events.map((e: any) => e.state.current)).toEqual(['STARTED', 'STARTED', 'STOPPED', 'STOPPED']);
    expect(events.at(-1).app.name).toBe('doomed');
  });

  it("record a task's run as TASK_STARTED and TASK_STOPPED, naming the task", async () => {
    const app = await stagedApp('tasker');
    const task = await dev.post(`/v3/apps/${app}/tasks`, { command: 'echo hi', name: 'migrate', memory_in_mb: 128 });
    expect(task.status, task.text).toBe(202);
    // The droplet has no bits here: the task controller fails the task, which ends its billing.
    const deadline = Date.now() + 20_000;
    let events: any[] = [];
    while (!events.some((e) => e.state.current === 'TASK_STOPPED')) {
      if (Date.now() > deadline) throw new Error(`no TASK_STOPPED: ${JSON.stringify(events)}`);
      await new Promise((r) => setTimeout(r, 50));
      events = (await eventsOf(app)).filter((e: any) => e.task.guid === task.body.guid);
    }
    expect(events.map((e: any) => [e.state.current, e.state.previous])).toEqual([
      ['TASK_STARTED', null],
      ['TASK_STOPPED', 'TASK_STARTED'],
    ]);
    expect(events[0]).toMatchObject({
      app: { guid: app, name: 'tasker' },
      process: { guid: null, type: null },
      task: { guid: task.body.guid, name: 'migrate' },
      memory_in_mb_per_instance: { current: 128 },
      instance_count: { current: 1 },
    });
  });

  it('are read by admins, admin read-only and global auditors, and listed empty for everyone else', async () => {
    const all = (await t.admin.get('/v3/app_usage_events?per_page=5000')).body.resources;
    expect(all.length).toBeGreaterThan(0);
    const one = all[0];
    for (const scope of ['cloud_controller.admin_read_only', 'cloud_controller.global_auditor']) {
      const reader = await t.user(undefined, [scope]);
      expect((await reader.get('/v3/app_usage_events?per_page=5000')).body.resources).toHaveLength(all.length);
      const got = await reader.get(`/v3/app_usage_events/${one.guid}`);
      expect(got.status).toBe(200);
      expect(got.body).toEqual(one);
      expect((await reader.post('/v3/app_usage_events/actions/destructively_purge_all_and_reseed')).status).toBe(403);
    }
    const mine = await dev.get('/v3/app_usage_events');
    expect(mine.status).toBe(200);
    expect(mine.body.resources).toEqual([]);
    expect((await dev.get(`/v3/app_usage_events/${one.guid}`)).status).toBe(404);
    expect((await dev.post('/v3/app_usage_events/actions/destructively_purge_all_and_reseed')).status).toBe(403);
  });

  it('list after a guid, by guids and by created_at, and reject updated_ats and other orders', async () => {
    const all = (await t.admin.get('/v3/app_usage_events?per_page=5000')).body.resources;
    const after = await t.admin.get(`/v3/app_usage_events?after_guid=${all[1].guid}&per_page=5000`);
    expect(after.body.resources.map((e: any) => e.guid)).toEqual(all.slice(2).map((e: any) => e.guid));
    const some = await t.admin.get(`/v3/app_usage_events?guids=${all[0].guid},${all[2].guid}`);
    expect(some.body.resources.map((e: any) => e.guid)).toEqual([all[0].guid, all[2].guid]);
    expect((await t.admin.get(`/v3/app_usage_events?created_ats[gte]=${all[0].created_at}`)).body.pagination.total_results).toBe(all.length);
    expect((await t.admin.get('/v3/app_usage_events?updated_ats[gte]=2020-01-01T00:00:00Z')).status).toBe(400);
    expect((await t.admin.get('/v3/app_usage_events?order_by=state')).status).toBe(400);
    expect((await t.admin.get('/v3/app_usage_events?after_guid=nope')).status).toBe(404);
  });

  it('purge-and-reseed leaves one STARTED event per process of a started app', async () => {
    const running = await stagedApp('running');
    await stagedApp('idle');
    expect((await dev.post(`/v3/apps/${running}/actions/start`)).status).toBe(200);
    const res = await t.admin.post('/v3/app_usage_events/actions/destructively_purge_all_and_reseed');
    expect(res.status).toBe(200);
    const events = (await t.admin.get('/v3/app_usage_events?per_page=5000')).body.resources;
    expect(events.filter((e: any) => !e.task.guid).map((e: any) => [e.app.name, e.process.type, e.state.current])).toEqual([
      ['running', 'web', 'STARTED'],
      ['running', 'worker', 'STARTED'],
    ]);
    // The reseeded events are what the next change compares with: a stop records STOPPED once.
    expect((await dev.post(`/v3/apps/${running}/actions/stop`)).status).toBe(200);
    expect((await eventsOf(running)).map((e: any) => e.state.current)).toEqual(['STARTED', 'STARTED', 'STOPPED', 'STOPPED']);
  });
});
