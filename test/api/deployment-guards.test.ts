import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createTestKiln, type TestKiln } from '../helpers/harness.ts';
import type { DeploymentState } from '../../src/domain/deployments.ts';

/**
 * What an active deployment locks (CONVENTIONS.md §17.1, §18): scaling and updating the web process and assigning
 * a current droplet are refused with CF's 422s until the deployment is finalized. Also: deleting an app removes its
 * deployments, revisions and tasks with their metadata. The deployment and task controllers are off, so rows stay
 * exactly where the API (or the test, writing as a controller would) leaves them.
 */

let t: TestKiln;
let org: any;
let space: any;
let dev: Client;
let auditor: Client;
let outsider: Client;

beforeAll(async () => {
  t = await createTestKiln({}, { disabledControllers: ['deployments', 'tasks'] });
  org = await t.org('guard-org');
  // Each rollout runs a second web process beside the first, as upstream's do; the bootstrap quota (10 GB) would
  // refuse the later starts.
  const unlimited = await t.admin.post('/v3/organization_quotas', { name: 'guard-unlimited', relationships: { organizations: { data: [{ guid: org.guid }] } } });
  expect(unlimited.status).toBe(201);
  space = await t.space('guard-space', org.guid);
  dev = await userWith('space_developer');
  auditor = await userWith('space_auditor');
  outsider = await t.user();
});
afterAll(() => t.close());

const userWith = (role: string): Promise<Client> => t.spaceMember(role, space);

/** A started app with web and worker processes, and a second droplet ready to deploy. */
async function startedApp(name: string) {
  const res = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } } });
  expect(res.status, res.text).toBe(201);
  const app = res.body;
  const types = { web: 'node server.js', worker: 'node worker.js' };
  const first = await t.droplet(app.guid, types);
  const second = await t.droplet(app.guid, types);
  expect((await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: first } })).status).toBe(200);
  expect((await t.admin.post(`/v3/apps/${app.guid}/actions/start`)).status).toBe(200);
  const web = (await t.admin.get(`/v3/apps/${app.guid}/processes/web`)).body;
  const worker = (await t.admin.get(`/v3/apps/${app.guid}/processes/worker`)).body;
  return { app, first, second, web, worker };
}

async function deploy(appGuid: string, extra: Record<string, unknown> = {}) {
  const res = await dev.post('/v3/deployments', { relationships: { app: { data: { guid: appGuid } } }, ...extra });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

/** Moves a deployment row as the controller would. */
async function setState(guid: string, state: DeploymentState, value: string, reason: string) {
  await t.kiln.store.write(async (tx) => {
    const row = await tx.db.selectFrom('deployments').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
    await tx.update('deployments', guid, { state, status_value: value, status_reason: reason }, { expectedGeneration: row.generation });
  });
}

function expectError(res: { status: number; body: any; text: string }, code: number, title: string, detail: string) {
  expect(res.status, res.text).toBe(422);
  expect(res.body.errors).toEqual([{ code, title, detail }]);
}

// Upstream's ProcessScale/ProcessUpdate raise InvalidProcess, rendered as CF-UnprocessableEntity (not the V2 codes).
const SCALE = [10008, 'CF-UnprocessableEntity', 'Cannot scale this process while a deployment is in flight.'] as const;
const UPDATE = [10008, 'CF-UnprocessableEntity', 'Cannot update this process while a deployment is in flight.'] as const;
const DROPLET = [
  10008,
  'CF-UnprocessableEntity',
  'Unable to assign current droplet while the app has a deployment in progress. Wait for the deployment to complete or cancel it.',
] as const;

describe('while a deployment is active', () => {
  let s: Awaited<ReturnType<typeof startedApp>>;
  let deployment: any;

  beforeAll(async () => {
    s = await startedApp('guarded');
    deployment = await deploy(s.app.guid, { droplet: { guid: s.second }, strategy: 'rolling' });
    expect(deployment.status).toMatchObject({ value: 'ACTIVE', reason: 'DEPLOYING' });
  });

  it('refuses to scale the web process, by either path, and leaves it as it was', async () => {
    const before = (await t.admin.get(`/v3/processes/${s.web.guid}`)).body;
    expectError(await dev.post(`/v3/processes/${s.web.guid}/actions/scale`, { instances: 5 }), ...SCALE);
    expectError(await t.admin.post(`/v3/apps/${s.app.guid}/processes/web/actions/scale`, { memory_in_mb: 512 }), ...SCALE);
    const after = (await t.admin.get(`/v3/processes/${s.web.guid}`)).body;
    expect(after.instances).toBe(before.instances);
    expect(after.memory_in_mb).toBe(before.memory_in_mb);
    const events = await t.admin.get(`/v3/audit_events?target_guids=${s.app.guid}&types=audit.app.process.scale`);
    expect(events.body.resources).toHaveLength(0);
  });

  it('still scales other process types', async () => {
    const res = await dev.post(`/v3/processes/${s.worker.guid}/actions/scale`, { instances: 2 });
    expect(res.status, res.text).toBe(202);
    expect(res.body.instances).toBe(2);
  });

  it('refuses to update the web command or health checks, but not its metadata or other processes', async () => {
    expectError(await dev.patch(`/v3/processes/${s.web.guid}`, { command: 'node other.js' }), ...UPDATE);
    expectError(await dev.patch(`/v3/apps/${s.app.guid}/processes/web`, { health_check: { type: 'process' } }), ...UPDATE);
    expectError(await dev.patch(`/v3/processes/${s.web.guid}`, { readiness_health_check: { type: 'process' } }), ...UPDATE);
    const web = (await t.admin.get(`/v3/processes/${s.web.guid}`)).body;
    expect(web.command).toBe(s.web.command);
    expect(web.health_check.type).toBe(s.web.health_check.type);

    const labelled = await dev.patch(`/v3/processes/${s.web.guid}`, { metadata: { labels: { tier: 'front' } } });
    expect(labelled.status, labelled.text).toBe(200);
    expect(labelled.body.metadata.labels).toEqual({ tier: 'front' });
    const worker = await dev.patch(`/v3/processes/${s.worker.guid}`, { command: 'node worker2.js' });
    expect(worker.status, worker.text).toBe(200);
  });

  it('fails a manifest that scales or updates web, and leaves the web processes as they were', async () => {
    const apply = async (yaml: string) => {
      const res = await dev.post(`/v3/spaces/${space.guid}/actions/apply_manifest`, undefined, { raw: yaml, headers: { 'content-type': 'application/x-yaml' } });
      expect(res.status, res.text).toBe(202);
      return t.awaitJob(res.headers.get('location'));
    };
    const scaled = await apply(`applications:\n- name: guarded\n  instances: 7\n`);
    expect(scaled.state).toBe('FAILED');
    expect(scaled.errors).toEqual([
      { code: 10008, title: 'CF-UnprocessableEntity', detail: "For application 'guarded': Cannot scale this process while a deployment is in flight." },
    ]);
    const updated = await apply(`applications:\n- name: guarded\n  command: node other.js\n`);
    expect(updated.errors[0].detail).toBe("For application 'guarded': Cannot update this process while a deployment is in flight.");
    const webs = (await t.admin.get(`/v3/apps/${s.app.guid}/processes?types=web`)).body.resources;
    expect(webs.map((p: any) => p.instances)).toEqual([s.web.instances, 1]);
  });

  it('refuses to assign a current droplet, before looking at the droplet', async () => {
    expectError(await dev.patch(`/v3/apps/${s.app.guid}/relationships/current_droplet`, { data: { guid: s.first } }), ...DROPLET);
    expectError(await dev.patch(`/v3/apps/${s.app.guid}/relationships/current_droplet`, { data: { guid: 'no-such-droplet' } }), ...DROPLET);
    expect((await t.admin.get(`/v3/apps/${s.app.guid}/droplets/current`)).body.guid).toBe(s.second);
  });

  it('answers 403/404 before the guard for callers who may not act', async () => {
    expect((await auditor.post(`/v3/processes/${s.web.guid}/actions/scale`, { instances: 3 })).status).toBe(403);
    expect((await auditor.patch(`/v3/processes/${s.web.guid}`, { command: 'x' })).status).toBe(403);
    expect((await auditor.patch(`/v3/apps/${s.app.guid}/relationships/current_droplet`, { data: { guid: s.first } })).status).toBe(403);
    expect((await outsider.post(`/v3/processes/${s.web.guid}/actions/scale`, { instances: 3 })).status).toBe(404);
    expect((await outsider.patch(`/v3/processes/${s.web.guid}`, { command: 'x' })).status).toBe(404);
    expect((await outsider.patch(`/v3/apps/${s.app.guid}/relationships/current_droplet`, { data: { guid: s.first } })).status).toBe(404);
  });

  it('keeps refusing while PAUSED and CANCELING', async () => {
    for (const [state, reason] of [['PAUSED', 'PAUSED'], ['CANCELING', 'CANCELING']] as const) {
      await setState(deployment.guid, state, 'ACTIVE', reason);
      expectError(await dev.post(`/v3/processes/${s.web.guid}/actions/scale`, { instances: 5 }), ...SCALE);
      expectError(await dev.patch(`/v3/processes/${s.web.guid}`, { command: 'node other.js' }), ...UPDATE);
      expectError(await dev.patch(`/v3/apps/${s.app.guid}/relationships/current_droplet`, { data: { guid: s.first } }), ...DROPLET);
    }
  });

  it('allows all of it again once the deployment is finalized', async () => {
    await setState(deployment.guid, 'DEPLOYED', 'FINALIZED', 'DEPLOYED');
    const scaled = await dev.post(`/v3/processes/${s.web.guid}/actions/scale`, { instances: 3 });
    expect(scaled.status, scaled.text).toBe(202);
    expect(scaled.body.instances).toBe(3);
    const updated = await dev.patch(`/v3/processes/${s.web.guid}`, { command: 'node other.js' });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.body.command).toBe('node other.js');
    const assigned = await dev.patch(`/v3/apps/${s.app.guid}/relationships/current_droplet`, { data: { guid: s.first } });
    expect(assigned.status, assigned.text).toBe(200);
    expect(assigned.body.data.guid).toBe(s.first);
  });

  it('does not lock other apps', async () => {
    const other = await startedApp('unguarded');
    expect((await dev.post(`/v3/processes/${other.web.guid}/actions/scale`, { instances: 2 })).status).toBe(202);
  });
});

describe('deleting an app', () => {
  it('removes its deployments, revisions and tasks with their labels and annotations', async () => {
    const s = await startedApp('doomed');
    expect((await dev.patch(`/v3/apps/${s.app.guid}/features/revisions`, { enabled: true })).status).toBe(200);
    const meta = { labels: { doomed: 'yes' }, annotations: { note: 'goes with the app' } };
    const d = await deploy(s.app.guid, { droplet: { guid: s.second }, metadata: meta });
    expect(d.revision).not.toBeNull();
    expect((await dev.patch(`/v3/revisions/${d.revision.guid}`, { metadata: meta })).status).toBe(200);
    const task = await dev.post(`/v3/apps/${s.app.guid}/tasks`, { command: 'echo hi', metadata: meta });
    expect(task.status, task.text).toBe(202);
    const owned = { deployments: [d.guid], revisions: [d.revision.guid], tasks: [task.body.guid] };

    // Another app's rows must survive.
    const keep = await startedApp('kept');
    const kept = await deploy(keep.app.guid, { droplet: { guid: keep.second }, metadata: meta });

    const db = t.kiln.store.db;
    for (const [table, guids] of Object.entries(owned)) {
      const labels = await db.selectFrom('labels').select('resource_guid').where('resource_guid', 'in', guids).execute();
      expect(labels, table).toHaveLength(1);
    }

    const del = await t.admin.delete(`/v3/apps/${s.app.guid}`);
    expect(del.status).toBe(202);
    const job = await t.awaitJob(del.headers.get('location'));
    expect(job.state).toBe('COMPLETE');

    expect(await db.selectFrom('deployments').select('guid').where('app_guid', '=', s.app.guid).execute()).toEqual([]);
    expect(await db.selectFrom('revisions').select('guid').where('app_guid', '=', s.app.guid).execute()).toEqual([]);
    expect(await db.selectFrom('tasks').select('guid').where('app_guid', '=', s.app.guid).execute()).toEqual([]);
    const all = Object.values(owned).flat();
    expect(await db.selectFrom('labels').select('resource_guid').where('resource_guid', 'in', all).execute()).toEqual([]);
    expect(await db.selectFrom('annotations').select('resource_guid').where('resource_guid', 'in', all).execute()).toEqual([]);
    expect((await t.admin.get(`/v3/deployments/${d.guid}`)).status).toBe(404);
    expect((await t.admin.get(`/v3/revisions/${d.revision.guid}`)).status).toBe(404);
    expect((await t.admin.get(`/v3/tasks/${task.body.guid}`)).status).toBe(404);

    const survivor = await t.admin.get(`/v3/deployments/${kept.guid}`);
    expect(survivor.status).toBe(200);
    expect(survivor.body.metadata).toEqual(meta);
  });
});
