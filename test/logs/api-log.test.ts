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
