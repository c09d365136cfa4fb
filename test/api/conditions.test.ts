import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';
import { eventually } from '../helpers/reconciler-harness.ts';

/**
 * Kiln's conditions endpoint (`GET /kiln/v1/conditions`, not part of the CF API) and the controllers' metrics,
 * against a Kiln running all its controllers.
 */
let t: TestKiln;
let app: string;
let web: string;
let developer: Client;
let outsider: Client;
beforeAll(async () => {
  t = await createTestKiln();
  const org = await t.org('conditions-org');
  const space = await t.space('conditions-space', org.guid);
  app = (await t.admin.post('/v3/apps', { name: 'why-not-running', relationships: { space: { data: { guid: space.guid } } } })).body.guid;
  web = (await t.admin.get(`/v3/apps/${app}/processes`)).body.resources[0].guid;
  // A droplet row without bits: the app can be started, but nothing can be launched from it.
  const droplet = await t.droplet(app);
  expect((await t.admin.patch(`/v3/apps/${app}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
  expect((await t.admin.post(`/v3/apps/${app}/actions/start`)).status).toBe(200);
  developer = await t.spaceMember('space_developer', space);
  outsider = await t.user();
});
afterAll(() => t.close());

const conditionsUrl = (kind: string, guid: string) => `/kiln/v1/conditions?kind=${kind}&guid=${guid}`;

describe('GET /kiln/v1/conditions', () => {
  it("tells a space developer why the app's process is not running", async () => {
    const ready = await eventually(async () => {
      const res = await developer.get(conditionsUrl('process', web));
      return res.body.conditions?.find((c: { type: string; reason: string }) => c.type === 'Ready' && c.reason === 'DropletNotStaged');
    }, 'the DropletNotStaged condition');
    expect(ready).toMatchObject({ status: 'False', message: expect.stringContaining('is not staged'), observed_generation: expect.any(Number) });
    expect(Date.parse(ready.last_transition_time)).not.toBeNaN();
    const res = await developer.get(conditionsUrl('app', app));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ kind: 'app', guid: app });
    expect(res.body.conditions.find((c: { type: string }) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'DropletNotStaged' });
  });

  it('answers 404 for a resource the caller cannot see, as for one that does not exist', async () => {
    const hidden = await outsider.get(conditionsUrl('process', web));
    expect(hidden.status).toBe(404);
    expect(hidden.body.errors[0]).toMatchObject({ title: 'CF-ResourceNotFound', detail: 'Process not found', code: 10010 });
    const missing = await t.admin.get(conditionsUrl('build', '00000000-0000-4000-8000-000000000000'));
    expect(missing.status).toBe(404);
    expect(missing.body.errors[0].detail).toBe('Build not found');
  });

  it('rejects an unknown kind or query parameter with CF-BadQueryParameter, and a missing token with 401', async () => {
    const kind = await t.admin.get(conditionsUrl('space', app));
    expect(kind.status).toBe(400);
    expect(kind.body.errors[0].title).toBe('CF-BadQueryParameter');
    const extra = await t.admin.get(`${conditionsUrl('app', app)}&page=2`);
    expect(extra.status).toBe(400);
    expect((await t.anonymous.get(conditionsUrl('app', app))).status).toBe(401);
  });
});

describe('GET /metrics', () => {
  it('shows reconcile counts per controller and result, durations, queue depth and change-feed lag', async () => {
    const text = (await t.anonymous.get('/metrics')).text;
    expect(text).toMatch(/kiln_reconcile_total\{controller="processes",result="not_ready"\} [1-9]/);
    expect(text).toMatch(/kiln_reconcile_total\{controller="routing",result="success"\} [1-9]/);
    expect(text).toMatch(/kiln_reconcile_duration_seconds_bucket\{le="0.1",controller="processes"\} \d+/);
    expect(text).toMatch(/kiln_workqueue_depth\{controller="tasks"\} \d+/);
    expect(text).toMatch(/kiln_change_feed_lag_seconds \d/);
    // The HTTP metrics are still there.
    expect(text).toContain('kiln_http_requests_total');
  });
});
