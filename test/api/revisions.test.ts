import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finalizeDeployed } from '../../src/lifecycle/deployments.ts';
import { Client, createTestKiln, type TestKiln } from '../helpers/harness.ts';

/**
 * Revisions through the API (upstream's RevisionResolver): new apps have them enabled; they are recorded by the
 * requests that deploy, start or restart an app.
 */

let t: TestKiln;
let org: any;
let space: any;
let dev: Client;
let auditor: Client;
let outsider: Client;

beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('rev-org');
  space = await t.space('rev-space', org.guid);
  dev = await userWith('space_developer');
  auditor = await userWith('space_auditor');
  outsider = await t.user();
});
afterAll(() => t.close());

const userWith = (role: string): Promise<Client> => t.spaceMember(role, space);

async function revisionsApp(name: string) {
  const res = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } }, environment_variables: { COLOR: 'red' } });
  expect(res.status, res.text).toBe(201);
  expect((await dev.patch(`/v3/apps/${res.body.guid}/features/revisions`, { enabled: true })).status).toBe(200);
  return res.body;
}

/**
 * Finalizes the app's active deployment as the deployment controller does when a rollout completes; the controller
 * itself may write the row meanwhile (it scales superseded processes down), so a lost race is retried.
 */
async function finishRollouts(appGuid: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      await t.kiln.store.write(async (tx) => {
        const active = await tx.db.selectFrom('deployments').selectAll().where('app_guid', '=', appGuid).where('status_value', '=', 'ACTIVE').execute();
        for (const d of active) await finalizeDeployed(tx, d);
      });
      return;
    } catch (err) {
      if (attempt >= 5) throw err;
      await t.kiln.controllers.settle();
    }
  }
}

const deploy = (appGuid: string, extra: Record<string, unknown> = {}) =>
  dev.post('/v3/deployments', { relationships: { app: { data: { guid: appGuid } } }, ...extra });

describe('revisions recorded by deployments', () => {
  let app: any;
  let d1: string;
  let d2: string;
  let rev1: any;
  let rev2: any;

  beforeAll(async () => {
    app = await revisionsApp('rev-app');
    d1 = await t.droplet(app.guid);
    d2 = await t.droplet(app.guid);
  });

  it('records the initial revision with the deployment that starts the app', async () => {
    const res = await deploy(app.guid, { droplet: { guid: d1 } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.revision).toEqual({ guid: expect.any(String), version: 1 });
    const got = await auditor.get(`/v3/revisions/${res.body.revision.guid}`);
    expect(got.status).toBe(200);
    rev1 = got.body;
    expect(rev1).toMatchObject({
      version: 1,
      droplet: { guid: d1 },
      processes: { web: { command: null } },
      sidecars: [],
      description: 'Initial revision.',
      deployable: true,
      relationships: { app: { data: { guid: app.guid } } },
      metadata: { labels: {}, annotations: {} },
    });
    expect(rev1.links.environment_variables.href).toMatch(new RegExp(`/v3/revisions/${rev1.guid}/environment_variables$`));
  });

  it('records what changed, in upstream wording, and nothing when nothing changed', async () => {
    expect((await dev.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { COLOR: 'blue' } })).status).toBe(200);
    const res = await deploy(app.guid, { droplet: { guid: d2 } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.revision.version).toBe(2);
    rev2 = (await dev.get(`/v3/revisions/${res.body.revision.guid}`)).body;
    expect(rev2.description).toBe('New droplet deployed. New environment variables deployed.');
    const same = await deploy(app.guid);
    expect(same.body.revision).toEqual({ guid: rev2.guid, version: 2 });
    const web = (await dev.get(`/v3/apps/${app.guid}/processes/web`)).body;
    // The web process is locked while a rollout is active (CONVENTIONS.md §18); finish it as the controller would.
    await finishRollouts(app.guid);
    expect((await dev.patch(`/v3/processes/${web.guid}`, { command: 'node other.js' })).status).toBe(200);
    const cmd = await deploy(app.guid);
    await finishRollouts(app.guid);
    const rev3 = (await dev.get(`/v3/revisions/${cmd.body.revision.guid}`)).body;
    expect(rev3.version).toBe(3);
    expect(rev3.description).toBe("Custom start command added for 'web' process.");
    expect(rev3.processes.web.command).toBe('node other.js');
  });

  it('keeps an environment snapshot per revision', async () => {
    const env1 = await dev.get(`/v3/revisions/${rev1.guid}/environment_variables`);
    expect(env1.status).toBe(200);
    expect(env1.body.var).toEqual({ COLOR: 'red' });
    expect(env1.body.links.revision.href).toMatch(new RegExp(`/v3/revisions/${rev1.guid}$`));
    expect((await dev.get(`/v3/revisions/${rev2.guid}/environment_variables`)).body.var).toEqual({ COLOR: 'blue' });
    expect((await auditor.get(`/v3/revisions/${rev1.guid}/environment_variables`)).status).toBe(403);
    expect((await outsider.get(`/v3/revisions/${rev1.guid}/environment_variables`)).status).toBe(404);
  });

  it('rolls back to a revision: its droplet, variables and commands, as a new revision', async () => {
    const res = await deploy(app.guid, { revision: { guid: rev1.guid } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.droplet.guid).toBe(d1);
    const rollback = (await dev.get(`/v3/revisions/${res.body.revision.guid}`)).body;
    expect(rollback.version).toBe(4);
    // Every difference from the latest revision, sorted as upstream does, then the rollback itself.
    expect(rollback.description).toBe(
      "Custom start command removed for 'web' process. New droplet deployed. New environment variables deployed. Rolled back to revision 1.",
    );
    expect(rollback.processes.web.command).toBeNull();
    expect((await dev.get(`/v3/apps/${app.guid}/environment_variables`)).body.var).toEqual({ COLOR: 'red' });
    expect((await dev.get(`/v3/apps/${app.guid}/droplets/current`)).body.guid).toBe(d1);
  });

  it('lists revisions with filters, and the deployed ones', async () => {
    const all = await auditor.get(`/v3/apps/${app.guid}/revisions`);
    expect(all.status).toBe(200);
    expect(all.body.resources.map((r: any) => r.version)).toEqual([1, 2, 3, 4]);
    const some = await dev.get(`/v3/apps/${app.guid}/revisions?versions=2,4&order_by=-created_at`);
    expect(some.body.resources.map((r: any) => r.version).sort()).toEqual([2, 4]);
    const deployed = await dev.get(`/v3/apps/${app.guid}/revisions/deployed`);
    expect(deployed.status).toBe(200);
    // The rollback is rolling (the app is started): its revision and the one it rolls away from are both deployed.
    expect(deployed.body.resources.map((r: any) => r.version).sort()).toEqual([3, 4]);
    expect((await outsider.get(`/v3/apps/${app.guid}/revisions`)).status).toBe(404);
    expect((await dev.get(`/v3/apps/${app.guid}/revisions?bogus=1`)).status).toBe(400);
  });

  it('updates metadata for developers only', async () => {
    const res = await dev.patch(`/v3/revisions/${rev1.guid}`, { metadata: { labels: { release: 'one' }, annotations: { by: 'me' } } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.metadata).toEqual({ labels: { release: 'one' }, annotations: { by: 'me' } });
    expect((await dev.get(`/v3/apps/${app.guid}/revisions?label_selector=release=one`)).body.resources.map((r: any) => r.guid)).toEqual([rev1.guid]);
    expect((await auditor.patch(`/v3/revisions/${rev1.guid}`, { metadata: { labels: { a: 'b' } } })).status).toBe(403);
    expect((await outsider.patch(`/v3/revisions/${rev1.guid}`, { metadata: { labels: { a: 'b' } } })).status).toBe(404);
    expect((await dev.patch(`/v3/revisions/${rev1.guid}`, { description: 'x' })).status).toBe(422);
    expect((await dev.get(`/v3/revisions/${randomUUID()}`)).status).toBe(404);
  });

  it('marks revisions whose droplet is gone as not deployable and refuses to deploy them', async () => {
    await t.kiln.store.db.updateTable('droplets').set({ state: 'EXPIRED' }).where('guid', '=', d2).execute();
    expect((await dev.get(`/v3/revisions/${rev2.guid}`)).body.deployable).toBe(false);
    const res = await deploy(app.guid, { revision: { guid: rev2.guid } });
    expect(res.status).toBe(422);
  });
});

describe('apps without revisions', () => {
  it('records none and refuses revision deployments', async () => {
    const res = await t.admin.post('/v3/apps', { name: 'plain', relationships: { space: { data: { guid: space.guid } } } });
    expect((await dev.patch(`/v3/apps/${res.body.guid}/features/revisions`, { enabled: false })).status).toBe(200);
    const droplet = await t.droplet(res.body.guid);
    const d = await deploy(res.body.guid, { droplet: { guid: droplet } });
    expect(d.status).toBe(201);
    expect(d.body.revision).toBeNull();
    expect((await dev.get(`/v3/apps/${res.body.guid}/revisions`)).body.resources).toEqual([]);
    expect((await dev.get(`/v3/apps/${res.body.guid}/revisions/deployed`)).body.resources).toEqual([]);
    const other = await revisionsApp('other-rev');
    await deploy(other.guid, { droplet: { guid: await t.droplet(other.guid) } });
    const foreign = (await dev.get(`/v3/apps/${other.guid}/revisions`)).body.resources[0];
    const refused = await deploy(res.body.guid, { revision: { guid: foreign.guid } });
    expect(refused.status).toBe(422);
    expect(refused.body.errors[0].detail).toBe('The revision does not exist');
  });
});

describe('revisions as upstream records them', () => {
  it('are enabled for a new app', async () => {
    const res = await t.admin.post('/v3/apps', { name: 'fresh-rev', relationships: { space: { data: { guid: space.guid } } } });
    expect(res.status, res.text).toBe(201);
    const feature = await dev.get(`/v3/apps/${res.body.guid}/features/revisions`);
    expect(feature.body).toMatchObject({ name: 'revisions', enabled: true });
    const features = await dev.get(`/v3/apps/${res.body.guid}/features`);
    expect(features.body.resources.find((f: any) => f.name === 'revisions').enabled).toBe(true);
  });

  it('refuses to roll back to the code and configuration already deployed', async () => {
    const app = await revisionsApp('same-rev');
    const droplet = await t.droplet(app.guid);
    const first = await deploy(app.guid, { droplet: { guid: droplet } });
    expect(first.status, first.text).toBe(201);
    const res = await deploy(app.guid, { revision: { guid: first.body.revision.guid } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([
      {
        code: 10008,
        title: 'CF-UnprocessableEntity',
        detail: 'Unable to rollback. The code and configuration you are rolling back to is the same as the deployed revision.',
      },
    ]);
    expect((await dev.get(`/v3/apps/${app.guid}/revisions`)).body.resources).toHaveLength(1);
    expect((await dev.get(`/v3/deployments?app_guids=${app.guid}`)).body.resources).toHaveLength(1);
  });

  it('records the revision for new environment variables in the restart request', async () => {
    const app = await revisionsApp('restart-rev');
    const droplet = await t.droplet(app.guid);
    expect((await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
    expect((await dev.post(`/v3/apps/${app.guid}/actions/start`)).status).toBe(200);
    const started = (await dev.get(`/v3/apps/${app.guid}/revisions`)).body.resources;
    expect(started.map((r: any) => [r.version, r.description])).toEqual([[1, 'Initial revision.']]);

    expect((await dev.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { COLOR: 'green' } })).status).toBe(200);
    expect((await dev.get(`/v3/apps/${app.guid}/revisions`)).body.resources).toHaveLength(1);
    expect((await dev.post(`/v3/apps/${app.guid}/actions/restart`)).status).toBe(200);
    // No controller has run yet: the restart's answer already has it.
    const after = (await dev.get(`/v3/apps/${app.guid}/revisions`)).body.resources;
    expect(after.map((r: any) => [r.version, r.description])).toEqual([
      [1, 'Initial revision.'],
      [2, 'New environment variables deployed.'],
    ]);
    const deployed = await dev.get(`/v3/apps/${app.guid}/revisions/deployed`);
    expect(deployed.body.resources.map((r: any) => r.version)).toEqual([2]);
  });
});
