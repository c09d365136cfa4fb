import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

it('writes API lines to an app’s log buffer once its changes commit, and none for rejected requests', async () => {
  const org = await t.org('api-log-org');
  const space = await t.space('api-log-space', org.guid);
  const app = (await t.admin.post('/v3/apps', { name: 'logged', relationships: { space: { data: { guid: space.guid } } } })).body;
  await t.admin.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { A: 'b' } });
  const bad = await t.admin.post('/v3/apps', { name: 'logged', relationships: { space: { data: { guid: space.guid } } } });
  expect(bad.status).toBe(422);
  const lines = t.kiln.logs.read(app.guid, { limit: 100, descending: false });
  expect(lines.every((l) => l.sourceType === 'API')).toBe(true);
  expect(lines.map((l) => l.payload)).toEqual(expect.arrayContaining([`Created app with guid ${app.guid}`]));
  expect(lines.filter((l) => l.payload === `Created app with guid ${app.guid}`)).toHaveLength(1);
});

it('logs a restart as app_event_repository.rb does: "Restarted app with guid <g>"', async () => {
  const org = await t.org('restart-log-org');
  const space = await t.space('restart-log-space', org.guid);
  const app = (await t.admin.post('/v3/apps', { name: 'restarted', relationships: { space: { data: { guid: space.guid } } } })).body;
  const droplet = await t.droplet(app.guid);
  expect((await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
  const restarted = await t.admin.post(`/v3/apps/${app.guid}/actions/restart`);
  expect(restarted.status, restarted.text).toBe(200);
  const lines = t.kiln.logs.read(app.guid, { limit: 100, descending: false }).map((l) => l.payload);
  expect(lines).toContain(`Restarted app with guid ${app.guid}`);
  expect(lines.some((l) => l.startsWith(`Updated app with guid ${app.guid} ({"state":"STARTED"})`))).toBe(false);
});

it('answers a log-cache read without a token, or with a bad one, with 404 as cf_auth_middleware.go does', async () => {
  const org = await t.org('lc-token-org');
  const space = await t.space('lc-token-space', org.guid);
  const app = (await t.admin.post('/v3/apps', { name: 'lc-token', relationships: { space: { data: { guid: space.guid } } } })).body;
  const none = await t.kiln.app.request(`http://kiln.test/api/v1/read/${app.guid}`);
  expect(none.status).toBe(404);
  const bad = await t.kiln.app.request(`http://kiln.test/api/v1/read/${app.guid}`, { headers: { authorization: 'bearer not-a-token' } });
  expect(bad.status).toBe(404);
  const ok = await t.kiln.app.request(`http://kiln.test/api/v1/read/${app.guid}`, { headers: { authorization: `bearer ${t.admin.token}` } });
  expect(ok.status).toBe(200);
});

it('records terminate_instance with process_event_repository.rb\'s data: process guid, type and index', async () => {
  const org = await t.org('term-org');
  const space = await t.space('term-space', org.guid);
  const app = (await t.admin.post('/v3/apps', { name: 'term', relationships: { space: { data: { guid: space.guid } } } })).body;
  const web = (await t.admin.get(`/v3/apps/${app.guid}/processes`)).body.resources[0];
  expect((await t.admin.post(`/v3/processes/${web.guid}/actions/scale`, { instances: 2 })).status).toBe(202);
  expect((await t.admin.delete(`/v3/processes/${web.guid}/instances/1`)).status).toBe(204);
  const events = await t.admin.get(`/v3/audit_events?types=audit.app.process.terminate_instance&target_guids=${app.guid}`);
  expect(events.body.resources).toHaveLength(1);
  expect(events.body.resources[0].data).toEqual({ process_guid: web.guid, process_type: 'web', process_index: 1 });
});
