import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { taskController } from '../../src/controllers/task-controller.ts';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';
import { appFixture, postMultipart, zipOf } from './bits-helpers.ts';
import type { FixtureEntry } from '../staging/zip-fixtures.ts';
import { hostPidsByCommand } from '../helpers/host-pid.ts';

/**
 * Two Kilns: `api` has no task controller, so tasks stay where the API put them (states, filters, permissions
 * are checked deterministically); `run` has every controller and the real local runtime, with an app staged by
 * the binary buildpack, so tasks really run.
 */
let api: TestKiln;
let run: TestKiln;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-tasks-test-'));

const procfileApp: FixtureEntry[] = [
  { type: 'file', name: 'Procfile', content: 'web: ./run.sh\n' },
  { type: 'file', name: 'run.sh', content: '#!/bin/sh\necho "template says hi"\n', mode: 0o755 },
];

beforeAll(async () => {
  api = await createTestKiln({}, { disabledControllers: ['tasks'] });
  run = await createTestKiln();
});
afterAll(async () => {
  await api?.close();
  await run?.close();
  fs.rmSync(scratch, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` returns a value, settling the controllers between tries; fails after the deadline. */
async function until<T>(t: TestKiln, what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await t.kiln.controllers.settle();
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const taskIn = (t: TestKiln, guid: string, states: string[]) =>
  until(t, `task ${guid} in ${states.join('/')}`, async () => {
    const res = await t.admin.get(`/v3/tasks/${guid}`);
    return states.includes(res.body.state) ? res.body : undefined;
  });

/** An app with a droplet really staged (package upload → build → droplet) and set as current. */
async function stagedApp(t: TestKiln, name: string) {
  const fixture = await appFixture(t, name);
  const appGuid = fixture.app.guid;
  const pkg = (await t.admin.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: appGuid } } } })).body;
  const upload = await postMultipart(t, t.admin, `/v3/packages/${pkg.guid}/upload`, { resources: [], bits: await zipOf(procfileApp) });
  expect(upload.body.state, upload.text).toBe('READY');
  const build = (await t.admin.post('/v3/builds', { package: { guid: pkg.guid } })).body;
  const staged = await until(t, 'staging', async () => {
    const res = await t.admin.get(`/v3/builds/${build.guid}`);
    if (res.body.state === 'FAILED') throw new Error(`staging failed: ${res.body.error}`);
    return res.body.state === 'STAGED' ? res.body : undefined;
  });
  const dropletGuid = staged.droplet.guid as string;
  const assign = await t.admin.patch(`/v3/apps/${appGuid}/relationships/current_droplet`, { data: { guid: dropletGuid } });
  expect(assign.status, assign.text).toBe(200);
  return { ...fixture, dropletGuid };
}

async function userWith(t: TestKiln, role: string, space: any): Promise<Client> {
  const u = await t.user();
  await t.grant(u, 'organization_user', { org: space.relationships.organization.data.guid });
  if (role.startsWith('space_')) await t.grant(u, role, { space: space.guid });
  else await t.grant(u, role, { org: space.relationships.organization.data.guid });
  return u;
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the Tasks API', () => {
  let org: any;
  let space: any;
  let app: any;
  let droplet: string;
  let dev: Client;
  let auditor: Client;
  let supporter: Client;
  let orgManager: Client;
  let outsider: Client;

  beforeAll(async () => {
    ({ org, space, app } = await appFixture(api, 'task-api'));
    // Tasks stay RUNNING here (no task controller) and count against quotas; the bootstrap quota (10 GB) would
    // refuse the later ones.
    const unlimited = await api.admin.post('/v3/organization_quotas', { name: 'task-api-unlimited', relationships: { organizations: { data: [{ guid: org.guid }] } } });
    expect(unlimited.status, unlimited.text).toBe(201);
    droplet = await api.droplet(app.guid, { web: './run.sh web', worker: './run.sh work' });
    expect((await api.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
    dev = await userWith(api, 'space_developer', space);
    auditor = await userWith(api, 'space_auditor', space);
    supporter = await userWith(api, 'space_supporter', space);
    orgManager = await userWith(api, 'organization_manager', space);
    outsider = await api.user();
  });

  it('creates tasks RUNNING (as upstream answers once the scheduler accepted them) with defaults, a random hex name and per-app sequence ids', async () => {
    const res = await dev.post(`/v3/apps/${app.guid}/tasks`, { command: 'echo hi', metadata: { labels: { kind: 'first' } } });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({
      sequence_id: 1,
      command: 'echo hi',
      user: 'vcap',
      state: 'RUNNING',
      memory_in_mb: 1024,
      disk_in_mb: 1024,
      log_rate_limit_in_bytes_per_second: -1,
      result: { failure_reason: null },
      droplet_guid: droplet,
      relationships: { app: { data: { guid: app.guid } } },
      metadata: { labels: { kind: 'first' }, annotations: {} },
      links: {
        self: { href: `http://kiln.test/v3/tasks/${res.body.guid}` },
        app: { href: `http://kiln.test/v3/apps/${app.guid}` },
        cancel: { href: `http://kiln.test/v3/tasks/${res.body.guid}/actions/cancel`, method: 'POST' },
        droplet: { href: `http://kiln.test/v3/droplets/${droplet}` },
      },
    });
    expect(res.body.name).toMatch(/^[0-9a-f]{8}$/);
    expect(res.body.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);

    const second = await api.admin.post(`/v3/apps/${app.guid}/tasks`, {
      command: 'echo two',
      name: 'migrate',
      memory_in_mb: 256,
      disk_in_mb: 512,
      log_rate_limit_in_bytes_per_second: 1024,
    });
    expect(second.status, second.text).toBe(202);
    expect(second.body).toMatchObject({ sequence_id: 2, name: 'migrate', memory_in_mb: 256, disk_in_mb: 512, log_rate_limit_in_bytes_per_second: 1024 });

    // Another app counts from 1 again.
    const other = (await api.admin.post('/v3/apps', { name: 'task-api-other', relationships: { space: { data: { guid: space.guid } } } })).body;
    const otherDroplet = await api.droplet(other.guid, { web: 'x' });
    await api.admin.patch(`/v3/apps/${other.guid}/relationships/current_droplet`, { data: { guid: otherDroplet } });
    const first = await api.admin.post(`/v3/apps/${other.guid}/tasks`, { command: 'true', name: 'other' });
    expect(first.body.sequence_id).toBe(1);

    // Concurrent creates never share a sequence id.
    const burst = await Promise.all([1, 2, 3, 4].map((i) => dev.post(`/v3/apps/${app.guid}/tasks`, { command: `echo ${i}`, name: `burst-${i}` })));
    expect(burst.map((r) => r.status)).toEqual([202, 202, 202, 202]);
    expect(burst.map((r) => r.body.sequence_id).sort()).toEqual([3, 4, 5, 6]);
  });

  it('templates a task from a process (command, memory, disk, log rate), letting the request override', async () => {
    const web = (await api.admin.get(`/v3/apps/${app.guid}/processes/web`)).body;
    await api.admin.post(`/v3/processes/${web.guid}/actions/scale`, { memory_in_mb: 300, disk_in_mb: 400 });
    const res = await dev.post(`/v3/apps/${app.guid}/tasks`, { template: { process: { guid: web.guid } } });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ command: './run.sh web', memory_in_mb: 300, disk_in_mb: 400 });
    const override = await dev.post(`/v3/apps/${app.guid}/tasks`, { template: { process: { guid: web.guid } }, command: 'rake db:migrate', memory_in_mb: 64 });
    expect(override.body).toMatchObject({ command: 'rake db:migrate', memory_in_mb: 64, disk_in_mb: 400 });
    const explicit = await dev.post(`/v3/apps/${app.guid}/tasks`, { command: 'true', droplet_guid: droplet });
    expect(explicit.body.droplet_guid).toBe(droplet);
  });

  it('refuses invalid requests with CF errors', async () => {
    const url = `/v3/apps/${app.guid}/tasks`;
    const expectError = async (body: unknown, status: number, title: string, detail?: string) => {
      const res = await dev.post(url, body);
      expect(res.status, res.text).toBe(status);
      expect(res.body.errors[0].title).toBe(title);
      if (detail !== undefined) expect(res.body.errors[0].detail).toBe(detail);
    };
    await expectError({}, 422, 'CF-UnprocessableEntity', 'Command No command or template provided');
    await expectError({ command: 'x', memory_in_mb: 0 }, 422, 'CF-UnprocessableEntity', 'Memory in mb must be greater than 0');
    await expectError({ command: 'x', disk_in_mb: 1.5 }, 422, 'CF-UnprocessableEntity', 'Disk in mb must be an integer');
    await expectError({ command: 'x', log_rate_limit_in_bytes_per_second: -2 }, 422, 'CF-UnprocessableEntity');
    await expectError({ command: 'x', bogus: 1 }, 422, 'CF-UnprocessableEntity', "Unknown field(s): 'bogus'");
    await expectError({ command: 42 }, 422, 'CF-UnprocessableEntity', 'Command must be a string');
    await expectError({ template: { process: {} } }, 422, 'CF-UnprocessableEntity', 'Template process guid must be a string');
    await expectError({ command: 'x', name: 'bad\nname' }, 422, 'CF-UnprocessableEntity', 'name is invalid');
    await expectError({ command: 'x'.repeat(4097) }, 422, 'CF-UnprocessableEntity', 'command must be shorter than 4097 characters');
    await expectError({ command: 'x', user: 'root' }, 422, 'CF-UnprocessableEntity', "user invalid (requested user 'root' not allowed, permitted users are: 'vcap')");
    await expectError({ template: { process: { guid: randomUUID() } } }, 404, 'CF-ProcessNotFound');
    await expectError({ command: 'x', droplet_guid: randomUUID() }, 404, 'CF-ResourceNotFound', 'Droplet not found');
    const bad = await dev.request('POST', url, undefined, { raw: '{nope' });
    expect(bad.status).toBe(400);

    const bare = (await api.admin.post('/v3/apps', { name: 'task-no-droplet', relationships: { space: { data: { guid: space.guid } } } })).body;
    const noDroplet = await dev.post(`/v3/apps/${bare.guid}/tasks`, { command: 'x' });
    expect(noDroplet.status).toBe(422);
    expect(noDroplet.body.errors[0].detail).toBe('Task must have a droplet. Specify droplet or assign current droplet to app.');
    // A droplet of another app is not this app's.
    const foreign = await dev.post(url, { command: 'x', droplet_guid: (await api.droplet(bare.guid, {})) });
    expect(foreign.status).toBe(404);
    const missingApp = await dev.post(`/v3/apps/${randomUUID()}/tasks`, { command: 'x' });
    expect(missingApp.status).toBe(404);
    expect(missingApp.body.errors[0].detail).toBe('App not found');
  });

  it('lets only space developers create, behind the task_creation flag that admins bypass', async () => {
    const url = `/v3/apps/${app.guid}/tasks`;
    for (const c of [auditor, supporter, orgManager]) expect((await c.post(url, { command: 'x' })).status).toBe(403);
    expect((await outsider.post(url, { command: 'x' })).status).toBe(404);

    expect((await api.admin.patch('/v3/feature_flags/task_creation', { enabled: false })).status).toBe(200);
    try {
      const off = await dev.post(url, { command: 'x' });
      expect(off.status).toBe(403);
      expect(off.body.errors[0]).toMatchObject({ title: 'CF-FeatureDisabled', detail: 'Feature Disabled: task_creation' });
      expect((await api.admin.post(url, { command: 'x', name: 'admin-bypass' })).status).toBe(202);
    } finally {
      await api.admin.patch('/v3/feature_flags/task_creation', { enabled: true });
    }
  });

  it('shows the command only to secret readers, and hides tasks from non-members', async () => {
    const task = (await dev.post(`/v3/apps/${app.guid}/tasks`, { command: 'secret-cmd', name: 'visible' })).body;
    const mine = await dev.get(`/v3/tasks/${task.guid}`);
    expect(mine.body.command).toBe('secret-cmd');
    expect((await api.admin.get(`/v3/tasks/${task.guid}`)).body.command).toBe('secret-cmd');
    for (const c of [auditor, supporter, orgManager]) {
      const res = await c.get(`/v3/tasks/${task.guid}`);
      expect(res.status).toBe(200);
      expect('command' in res.body).toBe(false);
      const list = await c.get(`/v3/apps/${app.guid}/tasks?names=visible`);
      expect(list.body.resources).toHaveLength(1);
      expect('command' in list.body.resources[0]).toBe(false);
    }
    const devList = await dev.get(`/v3/apps/${app.guid}/tasks?names=visible`);
    expect(devList.body.resources[0].command).toBe('secret-cmd');
    // Upstream never renders commands in the global list.
    const global = await api.admin.get(`/v3/tasks?names=visible`);
    expect(global.body.resources).toHaveLength(1);
    expect('command' in global.body.resources[0]).toBe(false);

    expect((await outsider.get(`/v3/tasks/${task.guid}`)).status).toBe(404);
    expect((await outsider.get(`/v3/tasks/${task.guid}`)).body.errors[0].detail).toBe('Task not found');
    expect((await outsider.get(`/v3/apps/${app.guid}/tasks`)).status).toBe(404);
    const none = await outsider.get('/v3/tasks');
    expect(none.status).toBe(200);
    expect(none.body.pagination.total_results).toBe(0);
    expect((await api.admin.get(`/v3/tasks/${randomUUID()}`)).status).toBe(404);
  });

  it('lists with filters, label selectors, ordering and pagination', async () => {
    const all = await dev.get(`/v3/apps/${app.guid}/tasks?per_page=5000`);
    expect(all.status).toBe(200);
    const total = all.body.pagination.total_results;
    expect(total).toBeGreaterThanOrEqual(6);

    const bySeq = await dev.get(`/v3/apps/${app.guid}/tasks?sequence_ids=1,2`);
    expect(bySeq.body.resources.map((r: any) => r.sequence_id).sort()).toEqual([1, 2]);
    expect((await dev.get(`/v3/apps/${app.guid}/tasks?sequence_ids=abc`)).body.resources).toEqual([]);
    const byName = await dev.get(`/v3/apps/${app.guid}/tasks?names=migrate`);
    expect(byName.body.resources.map((r: any) => r.sequence_id)).toEqual([2]);
    const running = await dev.get(`/v3/apps/${app.guid}/tasks?states=RUNNING&per_page=5000`);
    expect(running.body.resources.length).toBeGreaterThan(0);
    expect(running.body.resources.every((r: any) => r.state === 'RUNNING')).toBe(true);
    expect((await dev.get(`/v3/apps/${app.guid}/tasks?states=PENDING`)).body.resources).toEqual([]);
    expect((await dev.get(`/v3/apps/${app.guid}/tasks?states=SUCCEEDED`)).body.resources).toEqual([]);
    const labelled = await dev.get(`/v3/apps/${app.guid}/tasks?label_selector=kind=first`);
    expect(labelled.body.resources.map((r: any) => r.sequence_id)).toEqual([1]);
    const guids = await dev.get(`/v3/tasks?guids=${labelled.body.resources[0].guid}`);
    expect(guids.body.resources).toHaveLength(1);

    const page = await dev.get(`/v3/apps/${app.guid}/tasks?per_page=2&page=2&order_by=-created_at`);
    expect(page.body.resources).toHaveLength(2);
    expect(page.body.pagination.total_results).toBe(total);
    expect(page.body.pagination.previous.href).toContain('order_by=-created_at');

    expect((await dev.get(`/v3/tasks?app_guids=${app.guid}&per_page=5000`)).body.pagination.total_results).toBe(total);
    expect((await dev.get(`/v3/tasks?space_guids=${space.guid}`)).body.pagination.total_results).toBeGreaterThan(total);
    expect((await dev.get(`/v3/tasks?organization_guids=${org.guid}`)).body.pagination.total_results).toBeGreaterThan(total);
    expect((await dev.get(`/v3/tasks?organization_guids=${randomUUID()}`)).body.resources).toEqual([]);

    const bad = async (url: string) => {
      const res = await dev.get(url);
      expect(res.status, url).toBe(400);
      expect(res.body.errors[0].title).toBe('CF-BadQueryParameter');
    };
    await bad('/v3/tasks?sequence_ids=1');
    await bad(`/v3/apps/${app.guid}/tasks?app_guids=${app.guid}`);
    await bad(`/v3/apps/${app.guid}/tasks?space_guids=${space.guid}`);
    await bad('/v3/tasks?order_by=name');
    await bad('/v3/tasks?per_page=0');
    await bad(`/v3/tasks/${labelled.body.resources[0].guid}?foo=bar`);
  });

  it('updates metadata (space developers only)', async () => {
    const task = (await dev.post(`/v3/apps/${app.guid}/tasks`, { command: 'x', name: 'meta' })).body;
    const res = await dev.patch(`/v3/tasks/${task.guid}`, { metadata: { labels: { env: 'prod' }, annotations: { note: 'n' } } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.metadata).toEqual({ labels: { env: 'prod' }, annotations: { note: 'n' } });
    expect(res.body.command).toBe('x');
    const removed = await dev.patch(`/v3/tasks/${task.guid}`, { metadata: { labels: { env: null } } });
    expect(removed.body.metadata.labels).toEqual({});
    expect((await dev.patch(`/v3/tasks/${task.guid}`, { name: 'nope' })).status).toBe(422);
    expect((await dev.patch(`/v3/tasks/${task.guid}`, { metadata: { labels: { 'bad key!': 'v' } } })).status).toBe(422);
    expect((await auditor.patch(`/v3/tasks/${task.guid}`, { metadata: { labels: { a: 'b' } } })).status).toBe(403);
    expect((await supporter.patch(`/v3/tasks/${task.guid}`, { metadata: { labels: { a: 'b' } } })).status).toBe(403);
    expect((await outsider.patch(`/v3/tasks/${task.guid}`, { metadata: { labels: { a: 'b' } } })).status).toBe(404);
  });

  it('cancels RUNNING tasks into CANCELING (POST and the deprecated PUT), for developers and supporters', async () => {
    const a = (await dev.post(`/v3/apps/${app.guid}/tasks`, { command: 'x', name: 'cancel-a' })).body;
    const b = (await dev.post(`/v3/apps/${app.guid}/tasks`, { command: 'x', name: 'cancel-b' })).body;
    const byDev = await dev.post(`/v3/tasks/${a.guid}/actions/cancel`);
    expect(byDev.status, byDev.text).toBe(202);
    expect(byDev.body).toMatchObject({ guid: a.guid, state: 'CANCELING', command: 'x' });
    // Cancelling again while CANCELING is accepted, as upstream.
    expect((await dev.put(`/v3/tasks/${a.guid}/cancel`)).status).toBe(202);

    expect((await auditor.post(`/v3/tasks/${b.guid}/actions/cancel`)).status).toBe(403);
    expect((await orgManager.put(`/v3/tasks/${b.guid}/cancel`)).status).toBe(403);
    expect((await outsider.post(`/v3/tasks/${b.guid}/actions/cancel`)).status).toBe(404);
    const bySupporter = await supporter.put(`/v3/tasks/${b.guid}/cancel`);
    expect(bySupporter.status, bySupporter.text).toBe(202);
    expect(bySupporter.body.state).toBe('CANCELING');
    expect('command' in bySupporter.body).toBe(false);
    expect((await dev.post(`/v3/tasks/${randomUUID()}/actions/cancel`)).status).toBe(404);

    // Terminal tasks cannot be cancelled.
    await api.kiln.store.db.updateTable('tasks').set({ state: 'SUCCEEDED' }).where('guid', '=', b.guid).execute();
    const refused = await dev.post(`/v3/tasks/${b.guid}/actions/cancel`);
    expect(refused.status).toBe(422);
    expect(refused.body.errors[0].detail).toBe('Task state is SUCCEEDED and therefore cannot be canceled');
  });

  it('records audit events for create and cancel without the command', async () => {
    const task = (await dev.post(`/v3/apps/${app.guid}/tasks`, { command: 'top-secret', name: 'audited', memory_in_mb: 128 })).body;
    await dev.post(`/v3/tasks/${task.guid}/actions/cancel`);
    const events = await api.kiln.store.db
      .selectFrom('audit_events')
      .selectAll()
      .where('target_guid', '=', app.guid)
      .where('type', 'in', ['audit.app.task.create', 'audit.app.task.cancel'])
      .orderBy('id')
      .execute();
    const mine = events.filter((e) => JSON.parse(e.data).task_guid === task.guid);
    expect(mine.map((e) => e.type)).toEqual(['audit.app.task.create', 'audit.app.task.cancel']);
    for (const e of mine) {
      expect(JSON.parse(e.data)).toEqual({ task_guid: task.guid, request: { name: 'audited', memory_in_mb: 128, command: '[PRIVATE DATA HIDDEN]' } });
      expect(e).toMatchObject({ target_type: 'app', target_name: 'task-api', actor_guid: dev.userGuid, space_guid: space.guid });
    }
    const viaApi = await dev.get(`/v3/audit_events?types=audit.app.task.create&target_guids=${app.guid}`);
    expect(viaApi.status).toBe(200);
    expect(viaApi.body.resources.length).toBeGreaterThan(0);
  });
});

describe('tasks against quotas (task_model.rb)', () => {
  /** An app with a current droplet in a fresh org with `orgMemory` MB, whose space has `spaceMemory` MB. */
  async function quotaApp(name: string, orgMemory: number, spaceMemory: number | null) {
    const org = await api.org(`${name}-org`);
    const space = await api.space(`${name}-space`, org.guid);
    const oq = await api.admin.post('/v3/organization_quotas', {
      name: `${name}-oq`,
      apps: { total_memory_in_mb: orgMemory },
      relationships: { organizations: { data: [{ guid: org.guid }] } },
    });
    expect(oq.status, oq.text).toBe(201);
    if (spaceMemory !== null) {
      const sq = await api.admin.post('/v3/space_quotas', {
        name: `${name}-sq`,
        apps: { total_memory_in_mb: spaceMemory },
        relationships: { organization: { data: { guid: org.guid } }, spaces: { data: [{ guid: space.guid }] } },
      });
      expect(sq.status, sq.text).toBe(201);
    }
    const app = (await api.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } } })).body;
    const droplet = await api.droplet(app.guid);
    expect((await api.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
    return app;
  }

  it('refuses a task over the organization memory quota, counting the tasks already running', async () => {
    const app = await quotaApp('task-org-quota', 1000, null);
    const first = await api.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'x', memory_in_mb: 600 });
    expect(first.status, first.text).toBe(202);
    const second = await api.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'x', memory_in_mb: 600 });
    expect(second.status).toBe(422);
    expect(second.body.errors).toEqual([{ code: 10008, title: 'CF-UnprocessableEntity', detail: 'memory_in_mb exceeds organization memory quota' }]);
    expect((await api.admin.get(`/v3/apps/${app.guid}/tasks`)).body.resources).toHaveLength(1);
    // A finished task holds nothing any more.
    await api.kiln.store.db.updateTable('tasks').set({ state: 'SUCCEEDED' }).where('guid', '=', first.body.guid).execute();
    expect((await api.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'x', memory_in_mb: 600 })).status).toBe(202);
  });

  it('refuses a task over the space memory quota', async () => {
    const app = await quotaApp('task-space-quota', 10_000, 256);
    const res = await api.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'x', memory_in_mb: 512 });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toBe('memory_in_mb exceeds space memory quota');
    expect((await api.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'x', memory_in_mb: 256 })).status).toBe(202);
  });
});

describe('running tasks in the local runtime', () => {
  let app: any;
  let dropletGuid: string;
  beforeAll(async () => {
    ({ app, dropletGuid } = await stagedApp(run, 'task-run'));
  }, 60_000);

  it('runs a task to SUCCEEDED with the app environment, logging as APP/TASK/<name>', async () => {
    await run.admin.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { GREETING: 'hello-from-env' } });
    const res = await run.admin.post(`/v3/apps/${app.guid}/tasks`, {
      command: 'echo "$GREETING"; echo "$VCAP_APPLICATION"; echo "mem=$MEMORY_LIMIT"',
      name: 'hello',
      memory_in_mb: 64,
    });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ state: 'RUNNING', sequence_id: 1, droplet_guid: dropletGuid });
    const done = await taskIn(run, res.body.guid, ['SUCCEEDED', 'FAILED']);
    expect(done.state, done.result.failure_reason).toBe('SUCCEEDED');
    expect(done.result.failure_reason).toBeNull();

    const lines = run.kiln.logs.read(app.guid, { limit: 1000, descending: false }).filter((l) => l.sourceType === 'APP/TASK/hello');
    const payloads = lines.map((l) => l.payload);
    expect(payloads).toContain('hello-from-env');
    expect(payloads).toContain('mem=64m');
    const vcap = JSON.parse(payloads.find((p) => p.startsWith('{'))!);
    expect(vcap).toMatchObject({ application_id: app.guid, application_name: 'task-run', limits: { mem: 64 } });
    expect(lines.every((l) => l.instanceId === '0')).toBe(true);
  });

  it('runs a template process command from the droplet', async () => {
    const web = (await run.admin.get(`/v3/apps/${app.guid}/processes/web`)).body;
    const res = await run.admin.post(`/v3/apps/${app.guid}/tasks`, { template: { process: { guid: web.guid } }, name: 'templated' });
    expect(res.body.command).toBe('./run.sh');
    const done = await taskIn(run, res.body.guid, ['SUCCEEDED', 'FAILED']);
    expect(done.state, done.result.failure_reason).toBe('SUCCEEDED');
    const payloads = run.kiln.logs.read(app.guid, { limit: 1000, descending: false }).filter((l) => l.sourceType === 'APP/TASK/templated').map((l) => l.payload);
    expect(payloads).toContain('template says hi');
  });

  it('fails a task that exits non-zero with the exit status as reason, and refuses to cancel it', async () => {
    const res = await run.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'echo failing; exit 3', name: 'three' });
    const done = await taskIn(run, res.body.guid, ['SUCCEEDED', 'FAILED']);
    expect(done.state).toBe('FAILED');
    expect(done.result.failure_reason).toContain('Exited with status 3');
    const refused = await run.admin.post(`/v3/tasks/${res.body.guid}/actions/cancel`);
    expect(refused.status).toBe(422);
    expect(refused.body.errors[0].detail).toBe('Task state is FAILED and therefore cannot be canceled');
    const failed = await run.admin.get(`/v3/apps/${app.guid}/tasks?states=FAILED`);
    expect(failed.body.resources.map((r: any) => r.guid)).toContain(res.body.guid);
  });

  it('cancels a long-running task: CANCELING → FAILED, and its process is gone', async () => {
    // The task runs sandboxed (it cannot write a pid file here): found by its command and its app's environment.
    const res = await run.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'exec sleep 31', name: 'sleeper' });
    await taskIn(run, res.body.guid, ['RUNNING']);
    const pid = await until(run, 'the task process', async () => hostPidsByCommand(['sleep', '31'], [app.guid])[0]);
    expect(isAlive(pid)).toBe(true);

    // `cf terminate-task` sends the deprecated PUT form.
    const cancel = await run.admin.put(`/v3/tasks/${res.body.guid}/cancel`);
    expect(cancel.status, cancel.text).toBe(202);
    expect(['CANCELING', 'FAILED']).toContain(cancel.body.state);
    const done = await taskIn(run, res.body.guid, ['FAILED', 'SUCCEEDED']);
    expect(done.state).toBe('FAILED');
    expect(done.result.failure_reason).toBe('task was cancelled');
    await until(run, 'the task process to exit', async () => (isAlive(pid) ? undefined : true), 15_000);
    expect(run.kiln.runtime.taskStatus(res.body.guid)?.state).toBe('FAILED');
  });

  it('marks a RUNNING task the runtime does not know FAILED (what a Kiln restart leaves behind)', async () => {
    const task = (await run.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'sleep 30', name: 'orphan' })).body;
    await taskIn(run, task.guid, ['RUNNING']);
    // A second controller over a fresh runtime view stands in for the restarted Kiln's.
    const fresh = taskController({
      store: run.kiln.store,
      runtime: Object.create(run.kiln.runtime, { taskStatus: { value: () => undefined } }) as typeof run.kiln.runtime,
      droplets: undefined as never,
      log: run.kiln.log,
      cfApi: () => 'http://kiln.test',
    });
    expect(await fresh.listKeys()).toContain(task.guid);
    await fresh.reconcile(task.guid);
    const after = (await run.admin.get(`/v3/tasks/${task.guid}`)).body;
    expect(after).toMatchObject({ state: 'FAILED', result: { failure_reason: 'task was interrupted by a Kiln restart' } });
    expect(await fresh.listKeys()).not.toContain(task.guid);
    // The real controller then stops the process of the now-terminal task.
    await run.kiln.runtime.cancelTask(task.guid);
  });

  it('cancels and removes the tasks of a deleted app', async () => {
    const task = (await run.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'exec sleep 32', name: 'doomed' })).body;
    await taskIn(run, task.guid, ['RUNNING']);
    const pid = await until(run, 'the task process', async () => hostPidsByCommand(['sleep', '32'], [app.guid])[0]);
    const del = await run.admin.delete(`/v3/apps/${app.guid}`);
    expect(del.status).toBe(202);
    await run.awaitJob(del.headers.get('location'));
    await until(run, 'the task rows to go', async () => {
      const rows = await run.kiln.store.db.selectFrom('tasks').select('guid').where('app_guid', '=', app.guid).execute();
      return rows.length === 0 ? true : undefined;
    });
    await until(run, 'the task process to exit', async () => (isAlive(pid) ? undefined : true), 15_000);
    expect((await run.admin.get(`/v3/tasks/${task.guid}`)).status).toBe(404);
  });
});

describe('crash safety across a restart', () => {
  it('fails a task left RUNNING by a Kiln that died, and reaps its process', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-tasks-restart-'));
    const env = { KILN_DATA_DIR: dataDir, DATABASE_URL: `sqlite:${path.join(dataDir, 'kiln.sqlite')}`, KILN_ADMIN_PASSWORD: 'restart-admin-pw' };
    const first = await createTestKiln(env);
    let second: TestKiln | undefined;
    try {
      const { app } = await stagedApp(first, 'task-restart');
      const task = (await first.admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'exec sleep 33', name: 'victim' })).body;
      await taskIn(first, task.guid, ['RUNNING']);
      const pid = await until(first, 'the task process', async () => hostPidsByCommand(['sleep', '33'], [app.guid])[0]);
      // "SIGKILL": the first Kiln's controllers stop without the runtime shutting its children down.
      await first.kiln.controllers.stop();
      expect(isAlive(pid)).toBe(true);

      second = await createTestKiln(env);
      // The new runtime reaped the old run's process group; the start-up resync failed the task.
      await until(second, 'the old process to be reaped', async () => (isAlive(pid) ? undefined : true), 15_000);
      const after = await taskIn(second, task.guid, ['FAILED', 'SUCCEEDED']);
      expect(after).toMatchObject({ state: 'FAILED', result: { failure_reason: 'task was interrupted by a Kiln restart' } });
    } finally {
      await second?.close();
      await first.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
