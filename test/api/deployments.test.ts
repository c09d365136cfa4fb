import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createTestKiln, type TestKiln } from '../helpers/harness.ts';
import type { DeploymentState } from '../../src/domain/deployments.ts';

/**
 * Deployments through the API. Droplets here have no bits, so the runtime runs nothing and rollouts stay where
 * the API leaves them (progress under a real runtime is covered by test/e2e/rolling-deploy.test.ts); controller
 * moves (PAUSED) are simulated by writing the row as the controller would.
 */

let t: TestKiln;
let org: any;
let space: any;
let dev: Client;
let auditor: Client;
let supporter: Client;
let outsider: Client;

beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('dep-org');
  // Many apps run here at the default 1 GB; the bootstrap org quota (10 GB) would refuse the later starts.
  const unlimited = await t.admin.post('/v3/organization_quotas', { name: 'dep-unlimited', relationships: { organizations: { data: [{ guid: org.guid }] } } });
  expect(unlimited.status).toBe(201);
  space = await t.space('dep-space', org.guid);
  dev = await userWith('space_developer');
  auditor = await userWith('space_auditor');
  supporter = await userWith('space_supporter');
  outsider = await t.user();
});
afterAll(() => t.close());

const userWith = (role: string): Promise<Client> => t.spaceMember(role, space);

async function createApp(name: string) {
  const res = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

/** A started app with a current droplet and `instances` web instances. */
async function startedApp(name: string, instances = 2) {
  const app = await createApp(name);
  const droplet = await t.droplet(app.guid);
  expect((await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
  expect((await t.admin.post(`/v3/apps/${app.guid}/processes/web/actions/scale`, { instances })).status).toBe(202);
  expect((await t.admin.post(`/v3/apps/${app.guid}/actions/start`)).status).toBe(200);
  return { app, droplet };
}

const deploy = (client: Client, appGuid: string, extra: Record<string, unknown> = {}) =>
  client.post('/v3/deployments', { relationships: { app: { data: { guid: appGuid } } }, ...extra });

/** Moves a deployment row as the controller would. */
async function setState(guid: string, state: DeploymentState, value: string, reason: string) {
  await t.kiln.store.write(async (tx) => {
    const row = await tx.db.selectFrom('deployments').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
    await tx.update('deployments', guid, { state, status_value: value, status_reason: reason }, { expectedGeneration: row.generation });
  });
}

describe('creating deployments', () => {
  it('rolls a started app to a new droplet (the cf push --strategy rolling request)', async () => {
    const { app, droplet: first } = await startedApp('rolling', 2);
    const second = await t.droplet(app.guid);
    const res = await deploy(dev, app.guid, {
      droplet: { guid: second },
      strategy: 'rolling',
      options: { max_in_flight: 2, web_instances: null, memory_in_mb: null, disk_in_mb: null, log_rate_limit_in_bytes_per_second: null },
    });
    expect(res.status, res.text).toBe(201);
    const d = res.body;
    expect(d.status.value).toBe('ACTIVE');
    expect(d.status.reason).toBe('DEPLOYING');
    expect(d.status.details.last_successful_healthcheck).toMatch(/Z$/);
    expect(d.status.details.last_status_change).toMatch(/Z$/);
    expect(d.strategy).toBe('rolling');
    expect(d.options).toEqual({ max_in_flight: 2 });
    expect(d.droplet).toEqual({ guid: second });
    expect(d.previous_droplet).toEqual({ guid: first });
    // Upstream's DeploymentCreate: a new web process, not the app's existing one.
    expect(d.new_processes).toEqual([{ guid: expect.any(String), type: 'web' }]);
    expect(d.new_processes[0].guid).not.toBe(app.guid);
    // Revisions are on for new apps: the new droplet is revision 2 (the start recorded the first).
    expect(d.revision).toEqual({ guid: expect.any(String), version: 2 });
    expect(d.relationships.app.data.guid).toBe(app.guid);
    expect(d.links.self.href).toMatch(new RegExp(`/v3/deployments/${d.guid}$`));
    expect(d.links.cancel).toEqual({ href: expect.stringMatching(/\/actions\/cancel$/), method: 'POST' });
    expect(d.links.continue).toBeUndefined();
    // The droplet is the app's current one at once; the old web process keeps its count beside the new one,
    // which starts at max_in_flight instances.
    expect((await t.admin.get(`/v3/apps/${app.guid}/droplets/current`)).body.guid).toBe(second);
    const procs = (await dev.get(`/v3/apps/${app.guid}/processes`)).body.resources;
    expect(procs.map((p: any) => [p.guid, p.type, p.instances])).toEqual([
      [app.guid, 'web', 2],
      [d.new_processes[0].guid, 'web', 2],
    ]);
    // By type, the app's web process is the newest one.
    expect((await t.admin.get(`/v3/apps/${app.guid}/processes/web`)).body.guid).toBe(d.new_processes[0].guid);
    expect((await dev.get(`/v3/processes?app_guids=${app.guid}&types=web`)).body.resources).toHaveLength(2);

    const got = await auditor.get(`/v3/deployments/${d.guid}`);
    expect(got.status).toBe(200);
    expect(got.body.guid).toBe(d.guid);
    // The summary query of every cf push.
    const active = await dev.get(`/v3/deployments?app_guids=${app.guid}&order_by=-created_at&page=1&per_page=1&status_values=ACTIVE`);
    expect(active.status).toBe(200);
    expect(active.body.resources.map((r: any) => r.guid)).toEqual([d.guid]);
    const events = await t.admin.get(`/v3/audit_events?target_guids=${app.guid}&types=audit.app.deployment.create`);
    expect(events.body.resources).toHaveLength(1);
  });

  it("deploys the app's current droplet when none is named (cf restart --strategy rolling)", async () => {
    const { app, droplet } = await startedApp('restart-rolling', 1);
    const res = await deploy(dev, app.guid, { strategy: 'rolling' });
    expect(res.status, res.text).toBe(201);
    expect(res.body.droplet.guid).toBe(droplet);
    expect(res.body.previous_droplet.guid).toBe(droplet);
    expect(res.body.options).toEqual({ max_in_flight: 1 });
  });

  it('starts a stopped app in place, is born DEPLOYED and creates no process', async () => {
    const app = await createApp('stopped');
    const droplet = await t.droplet(app.guid);
    const res = await deploy(supporter, app.guid, { droplet: { guid: droplet } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.status).toMatchObject({ value: 'FINALIZED', reason: 'DEPLOYED' });
    expect(res.body.new_processes).toEqual([]);
    expect((await dev.get(`/v3/apps/${app.guid}/processes`)).body.resources.map((p: any) => p.guid)).toEqual([app.guid]);
    expect(res.body.links.cancel).toBeUndefined();
    const after = await t.admin.get(`/v3/apps/${app.guid}`);
    expect(after.body.state).toBe('STARTED');
    expect((await t.admin.get(`/v3/apps/${app.guid}/droplets/current`)).body.guid).toBe(droplet);
  });

  it('applies web_instances and memory options to the new process and echoes them', async () => {
    const { app } = await startedApp('options', 1);
    const res = await deploy(dev, app.guid, { options: { web_instances: 3, memory_in_mb: 256, disk_in_mb: 512, log_rate_limit_in_bytes_per_second: -1 } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.options).toEqual({ max_in_flight: 1, web_instances: 3, memory_in_mb: 256, disk_in_mb: 512, log_rate_limit_in_bytes_per_second: -1 });
    // The new process starts at min(max_in_flight, web_instances) and grows to web_instances as it rolls.
    const web = (await t.admin.get(`/v3/processes/${res.body.new_processes[0].guid}`)).body;
    expect(web.instances).toBe(1);
    expect(web.memory_in_mb).toBe(256);
    expect(web.disk_in_mb).toBe(512);
    const old = (await t.admin.get(`/v3/processes/${app.guid}`)).body;
    expect([old.instances, old.memory_in_mb]).toEqual([1, 1024]);
  });

  it('supersedes an active deployment of the same app', async () => {
    const { app } = await startedApp('supersede', 2);
    const first = await deploy(dev, app.guid);
    const second = await deploy(dev, app.guid, { droplet: { guid: await t.droplet(app.guid) } });
    expect(second.status).toBe(201);
    const old = await dev.get(`/v3/deployments/${first.body.guid}`);
    expect(old.body.status).toMatchObject({ value: 'FINALIZED', reason: 'SUPERSEDED' });
    expect(old.body.links.cancel).toBeUndefined();
    const list = await dev.get(`/v3/deployments?app_guids=${app.guid}&status_reasons=SUPERSEDED`);
    expect(list.body.resources.map((r: any) => r.guid)).toEqual([first.body.guid]);
    const states = await dev.get(`/v3/deployments?app_guids=${app.guid}&states=DEPLOYING`);
    expect(states.body.resources.map((r: any) => r.guid)).toEqual([second.body.guid]);
  });

  it('refuses bad requests with 422', async () => {
    const { app } = await startedApp('bad-requests', 1);
    const other = await createApp('other-app');
    const foreign = await t.droplet(other.guid);
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ droplet: { guid: foreign } }, /Unable to assign current droplet/],
      [{ droplet: { guid: randomUUID() } }, /Unable to assign current droplet/],
      [{ droplet: { guid: foreign }, revision: { guid: randomUUID() } }, /Cannot set both fields 'droplet' and 'revision'/],
      [{ revision: { guid: randomUUID() } }, /The revision does not exist/],
      [{ options: { max_in_flight: 0 } }, /Max in flight must be an integer greater than 0/],
      [{ options: { max_in_flight: 1.5 } }, /Max in flight must be an integer/],
      [{ options: { bogus: 1 } }, /bogus/],
    ];
    for (const [body, detail] of cases) {
      const res = await deploy(dev, app.guid, body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.errors[0].detail).toMatch(detail);
    }
    const noDroplet = await createApp('no-droplet');
    const res = await deploy(dev, noDroplet.guid);
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toBe('Invalid droplet. Please specify a droplet in the request or set a current droplet for the app.');
    const missing = await deploy(dev, randomUUID());
    expect(missing.status).toBe(422);
    expect(missing.body.errors[0].detail).toBe('Unable to use app. Ensure that the app exists and you have access to it.');
    const garbage = await dev.post('/v3/deployments', undefined, { raw: '{nope' });
    expect(garbage.status).toBe(400);
  });
});

describe('quotas', () => {
  it('refuses a rollout whose new process does not fit the org quota beside the old one, and changes nothing', async () => {
    const tight = await t.org('dep-tight-org');
    const quota = await t.admin.post('/v3/organization_quotas', {
      name: 'dep-tight',
      apps: { total_memory_in_mb: 1500 },
      relationships: { organizations: { data: [{ guid: tight.guid }] } },
    });
    expect(quota.status, quota.text).toBe(201);
    const tightSpace = await t.space('dep-tight-space', tight.guid);
    const app = (await t.admin.post('/v3/apps', { name: 'tight', relationships: { space: { data: { guid: tightSpace.guid } } } })).body;
    const first = await t.droplet(app.guid);
    expect((await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: first } })).status).toBe(200);
    expect((await t.admin.post(`/v3/apps/${app.guid}/actions/start`)).status).toBe(200);
    const second = await t.droplet(app.guid);

    const res = await deploy(t.admin, app.guid, { droplet: { guid: second } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([
      {
        code: 10008,
        title: 'CF-UnprocessableEntity',
        detail:
          "memory quota_exceeded for organization dep-tight-org. This organization's quota may not be large enough to support rolling deployments or your configured max-in-flight.",
      },
    ]);
    expect((await t.admin.get(`/v3/deployments?app_guids=${app.guid}`)).body.resources).toEqual([]);
    expect((await t.admin.get(`/v3/apps/${app.guid}/processes`)).body.resources.map((p: any) => p.guid)).toEqual([app.guid]);
    expect((await t.admin.get(`/v3/apps/${app.guid}/droplets/current`)).body.guid).toBe(first);
    // A smaller new process fits.
    const small = await deploy(t.admin, app.guid, { droplet: { guid: second }, options: { memory_in_mb: 256 } });
    expect(small.status, small.text).toBe(201);
  });
});

describe('request validation in upstream wording (deployment_create_message.rb)', () => {
  it('answers each invalid body with the message upstream gives', async () => {
    const { app } = await startedApp('wording', 1);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ strategy: 'potato' }, "Strategy 'potato' is not a supported deployment strategy"],
      [{ options: { max_in_flight: 0 } }, 'Max in flight must be an integer greater than 0'],
      [{ options: { max_in_flight: -1 } }, 'Max in flight must be an integer greater than 0'],
      [{ options: { max_in_flight: 'two' } }, 'Max in flight must be an integer greater than 0'],
      [{ options: { surge: 2 } }, 'Options has unsupported key(s): surge'],
      [{ options: 'fast' }, 'Options must be an object'],
      [{ options: { web_instances: -1 } }, 'Web instances must be greater than or equal to 0'],
      [{ options: { memory_in_mb: 0 } }, 'Memory in mb must be greater than 0'],
      [{ strategy: 'rolling', options: { canary: { steps: [{ instance_weight: 20 }] } } }, 'Options canary are only valid for Canary deployments'],
      [{ strategy: 'canary', options: { canary: 'yes' } }, 'Options canary must be an object'],
      [{ strategy: 'canary', options: { canary: { steps: 5 } } }, 'Options canary steps must be an array of objects'],
      [{ strategy: 'canary', options: { canary: { steps: [{ instance_weight: 10, color: 'red' }] } } }, 'Options canary steps has unsupported key(s): color'],
      [{ strategy: 'canary', options: { canary: { steps: [{}] } } }, 'Options canary steps missing key: "instance_weight", Options canary steps instance weight must be an Integer between 1-100 (inclusive)'],
      [{ strategy: 'canary', options: { canary: { steps: [{ instance_weight: 101 }] } } }, 'Options canary steps instance weight must be an Integer between 1-100 (inclusive)'],
      [{ strategy: 'canary', options: { canary: { steps: [{ instance_weight: 5.5 }] } } }, 'Options canary steps instance weight must be an Integer between 1-100 (inclusive)'],
      [
        { strategy: 'canary', options: { canary: { steps: [{ instance_weight: 50 }, { instance_weight: 20 }] } } },
        'Options canary steps instance weight must be sorted in ascending order',
      ],
    ];
    for (const [body, detail] of cases) {
      const res = await deploy(dev, app.guid, body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.errors, JSON.stringify(body)).toEqual([{ code: 10008, title: 'CF-UnprocessableEntity', detail }]);
    }
    expect((await dev.get(`/v3/deployments?app_guids=${app.guid}`)).body.resources).toEqual([]);
  });
});

describe('visibility and roles', () => {
  it('hides deployments from outsiders, and lets only developers and supporters act', async () => {
    const { app } = await startedApp('roles', 1);
    const d = (await deploy(dev, app.guid)).body;
    expect((await outsider.get(`/v3/deployments/${d.guid}`)).status).toBe(404);
    expect((await outsider.get('/v3/deployments')).body.resources.map((r: any) => r.guid)).not.toContain(d.guid);
    expect((await deploy(outsider, app.guid)).status).toBe(422);
    expect((await deploy(auditor, app.guid)).status).toBe(403);
    expect((await auditor.post(`/v3/deployments/${d.guid}/actions/cancel`)).status).toBe(403);
    expect((await auditor.post(`/v3/deployments/${d.guid}/actions/continue`)).status).toBe(403);
    expect((await outsider.post(`/v3/deployments/${d.guid}/actions/cancel`)).status).toBe(404);
    expect((await supporter.patch(`/v3/deployments/${d.guid}`, { metadata: { labels: { a: 'b' } } })).status).toBe(403);
    const patched = await dev.patch(`/v3/deployments/${d.guid}`, { metadata: { labels: { env: 'prod' }, annotations: { note: 'x' } } });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body.metadata).toEqual({ labels: { env: 'prod' }, annotations: { note: 'x' } });
    const selected = await dev.get(`/v3/deployments?label_selector=env=prod`);
    expect(selected.body.resources.map((r: any) => r.guid)).toEqual([d.guid]);
    expect((await dev.patch(`/v3/deployments/${d.guid}`, { status: 'x' })).status).toBe(422);
    expect((await dev.get(`/v3/deployments/${randomUUID()}`)).status).toBe(404);
  });
});

describe('cancel and continue', () => {
  it('cancels: the droplet goes back at once and the deployment is CANCELING until the old side serves', async () => {
    const { app, droplet: first } = await startedApp('cancel', 1);
    const d = (await deploy(dev, app.guid, { droplet: { guid: await t.droplet(app.guid) } })).body;
    const res = await supporter.post(`/v3/deployments/${d.guid}/actions/cancel`);
    expect(res.status).toBe(200);
    expect(res.text).toBe('');
    expect((await t.admin.get(`/v3/apps/${app.guid}/droplets/current`)).body.guid).toBe(first);
    const after = (await dev.get(`/v3/deployments/${d.guid}`)).body;
    expect(after.status.value).toBe('ACTIVE');
    // Nothing runs in this test, so the old side never becomes routable: still CANCELING (or CANCELED).
    expect(['CANCELING', 'CANCELED']).toContain(after.status.reason);
    const again = await dev.post(`/v3/deployments/${d.guid}/actions/continue`);
    expect(again.status).toBe(422);
    expect(again.body.errors[0].detail).toMatch(/^Cannot continue a deployment with status: (ACTIVE and reason: CANCELING|FINALIZED and reason: CANCELED)$/);
  });

  it('refuses to cancel a finalized deployment and to continue one that is not paused', async () => {
    const app = await createApp('finalized');
    const d = (await deploy(dev, app.guid, { droplet: { guid: await t.droplet(app.guid) } })).body;
    const cancel = await dev.post(`/v3/deployments/${d.guid}/actions/cancel`);
    expect(cancel.status).toBe(422);
    expect(cancel.body.errors[0].detail).toBe('Cannot cancel a deployment with status: FINALIZED and reason: DEPLOYED');
    const { app: running } = await startedApp('not-paused', 1);
    const rolling = (await deploy(dev, running.guid)).body;
    const cont = await dev.post(`/v3/deployments/${rolling.guid}/actions/continue`);
    expect(cont.status).toBe(422);
    expect(cont.body.errors[0].detail).toBe('Cannot continue a deployment with status: ACTIVE and reason: DEPLOYING');
  });

  it('walks a canary through its steps with continue', async () => {
    const { app } = await startedApp('canary', 4);
    const res = await deploy(dev, app.guid, { strategy: 'canary', options: { canary: { steps: [{ instance_weight: 25 }, { instance_weight: 50 }] } } });
    expect(res.status, res.text).toBe(201);
    const d = res.body;
    expect(d.strategy).toBe('canary');
    expect(d.status).toMatchObject({ value: 'ACTIVE', reason: 'DEPLOYING', canary: { steps: { current: 1, total: 2 } } });
    expect(d.options.canary).toEqual({ steps: [{ instance_weight: 25 }, { instance_weight: 50 }] });
    // canary_step_plan: 25% of 4 is one canary; the original side keeps 4 − 1 + 1 = 4.
    const procs = (await dev.get(`/v3/apps/${app.guid}/processes?types=web`)).body.resources;
    expect(procs.map((p: any) => p.instances)).toEqual([4, 1]);

    await setState(d.guid, 'PAUSED', 'ACTIVE', 'PAUSED');
    const paused = (await dev.get(`/v3/deployments/${d.guid}`)).body;
    expect(paused.links.continue).toEqual({ href: expect.stringMatching(/\/actions\/continue$/), method: 'POST' });
    expect((await supporter.post(`/v3/deployments/${d.guid}/actions/continue`)).status).toBe(200);
    const step2 = (await dev.get(`/v3/deployments/${d.guid}`)).body;
    expect(step2.status).toMatchObject({ value: 'ACTIVE', reason: 'DEPLOYING', canary: { steps: { current: 2, total: 2 } } });
    expect(step2.links.continue).toBeUndefined();

    await setState(d.guid, 'PAUSED', 'ACTIVE', 'PAUSED');
    expect((await dev.post(`/v3/deployments/${d.guid}/actions/continue`)).status).toBe(200);
    const row = await t.kiln.store.db.selectFrom('deployments').selectAll().where('guid', '=', d.guid).executeTakeFirstOrThrow();
    expect(row.state).toBe('DEPLOYING');
    const events = await t.admin.get(`/v3/audit_events?target_guids=${app.guid}&types=audit.app.deployment.continue`);
    expect(events.body.resources).toHaveLength(2);
  });

  it('shows a default canary of one step: one canary beside every old instance', async () => {
    const { app } = await startedApp('canary-default', 2);
    const res = await deploy(dev, app.guid, { strategy: 'canary' });
    expect(res.status, res.text).toBe(201);
    expect(res.body.status.canary).toEqual({ steps: { current: 1, total: 1 } });
    const procs = (await dev.get(`/v3/apps/${app.guid}/processes?types=web`)).body.resources;
    expect(procs.map((p: any) => [p.guid, p.instances])).toEqual([
      [app.guid, 2],
      [res.body.new_processes[0].guid, 1],
    ]);
  });
});
