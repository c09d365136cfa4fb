import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLAN_IDS, startFixtureBroker, type FixtureBroker } from '../fixtures/broker/broker.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/**
 * Tsuru's service flows replayed as tsuru-client sends them (services.go: form `name, plan, owner, description,
 * tag`; bind/unbind at `/services/{s}/instances/{i}/{app}` and, for newer CLIs, `/1.13/…/apps/{app}` with
 * `noRestart`), onto CF service instances and credential bindings against the fixture broker.
 */

let t: TestKiln;
let broker: FixtureBroker;
let token: string;
let team: any;

const CLI = { 'User-Agent': 'tsuru-client/1.22.0', 'X-Tsuru-Verbosity': '0' };

async function tsuru(method: string, path: string, form?: Record<string, string | string[]>) {
  const headers: Record<string, string> = { ...CLI, Authorization: `bearer ${token}` };
  let body: string | undefined;
  if (form) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(form)) for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
    body = params.toString();
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
  }
  const res = await t.kiln.app.request(`http://kiln.test/tsuru${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, json: () => JSON.parse(text), lines: () => text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l)) };
}

beforeAll(async () => {
  t = await createTestKiln({ KILN_TSURU_ORG: 'tsuru-org', KILN_BROKER_POLL_INTERVAL_SECONDS: '0.05' });
  token = t.admin.token!;
  broker = await startFixtureBroker();
  const reg = await t.admin.post('/v3/service_brokers', {
    name: 'fixture',
    url: broker.url,
    authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
  });
  expect((await t.awaitJob(reg.headers.get('location'))).state).toBe('COMPLETE');
  const all = await t.admin.get('/v3/service_plans?per_page=100');
  for (const p of all.body.resources) {
    if (p.broker_catalog.id !== PLAN_IDS.reject) await t.admin.patch(`/v3/service_plans/${p.guid}/visibility`, { type: 'public' });
  }
  const org = await t.org('tsuru-org');
  team = await t.space('team-a', org.guid);
  expect((await tsuru('POST', '/1.0/apps', { name: 'web', teamOwner: 'team-a' })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await t?.close();
  await broker?.close();
});

describe('tsuru services', () => {
  it('lists the offerings with their plans and no instances yet', async () => {
    const res = await tsuru('GET', '/1.0/services/instances');
    expect(res.status).toBe(200);
    const db = res.json().find((s: any) => s.service === 'fixture-db');
    expect(db).toMatchObject({ service: 'fixture-db', instances: [], service_instances: [] });
    expect(db.plans).toContain('small');
  });

  it('creates an instance from the CLI form: a managed CF instance in the team space, provisioned at the broker', async () => {
    const res = await tsuru('POST', '/1.0/services/fixture-db/instances', { name: 'db', plan: 'small', owner: 'team-a', description: 'the db', tag: ['x', 'y'] });
    expect(res.status, res.text).toBe(201);
    const cf = (await t.admin.get(`/v3/service_instances?names=db&space_guids=${team.guid}`)).body.resources[0];
    expect(cf).toMatchObject({ type: 'managed', tags: ['x', 'y'], last_operation: { type: 'create', state: 'succeeded' } });
    const list = (await tsuru('GET', '/1.0/services/instances')).json().find((s: any) => s.service === 'fixture-db');
    expect(list.instances).toEqual(['db']);
    expect(list.service_instances[0]).toMatchObject({ Name: 'db', ServiceName: 'fixture-db', PlanName: 'small', TeamOwner: 'team-a', Description: 'the db', Tags: ['x', 'y'], Apps: [] });
  });

  it("answers the broker's refusal as 400 and unknown services and plans as 404 and 400", async () => {
    const failed = await tsuru('POST', '/1.0/services/fixture-db/instances', { name: 'bad', plan: 'fail', owner: 'team-a' });
    expect(failed.status).toBe(400);
    expect(failed.text).toContain('broker');
    expect((await tsuru('POST', '/1.0/services/nope/instances', { name: 'x', plan: 'small' })).status).toBe(404);
    expect((await tsuru('POST', '/1.0/services/fixture-db/instances', { name: 'x', plan: 'huge' })).status).toBe(400);
  });

  it('binds an app (older CLI path at 1.0) with noRestart, and the app sees VCAP_SERVICES', async () => {
    const res = await tsuru('PUT', '/1.0/services/fixture-db/instances/db/web', { noRestart: 'true' });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-json-stream');
    const lines = res.lines();
    expect(lines.filter((l) => l.Error)).toEqual([]);
    expect(lines.map((l) => l.Message).join('')).toContain('- VCAP_SERVICES');
    const app = (await t.admin.get('/v3/apps?names=web')).body.resources[0];
    const env = await t.admin.get(`/v3/apps/${app.guid}/env`);
    expect(env.body.system_env_json.VCAP_SERVICES['fixture-db'][0]).toMatchObject({ name: 'db', instance_name: 'db' });
    const list = (await tsuru('GET', '/1.0/services/instances')).json().find((s: any) => s.service === 'fixture-db');
    expect(list.service_instances.find((i: any) => i.Name === 'db').Apps).toEqual(['web']);
    expect((await tsuru('GET', '/1.0/apps/web')).json().serviceInstanceBinds).toEqual([{ service: 'fixture-db', instance: 'db', plan: 'small' }]);
  });

  it('unbinds with the newer CLI path (1.13, /apps/) and restarts by default (nothing to restart before a deploy)', async () => {
    const res = await tsuru('DELETE', '/1.13/services/fixture-db/instances/db/apps/web?noRestart=false');
    expect(res.status, res.text).toBe(200);
    const messages = res.lines().map((l) => l.Message).join('');
    expect(messages).toContain('not bound');
    expect(messages).toContain('nothing to restart');
    const app = (await t.admin.get('/v3/apps?names=web')).body.resources[0];
    expect((await t.admin.get(`/v3/service_credential_bindings?app_guids=${app.guid}`)).body.resources).toEqual([]);
    expect((await tsuru('DELETE', '/1.13/services/fixture-db/instances/db/apps/web')).status).toBe(400);
  });

  it('answers 404 for an instance or service that is not there', async () => {
    expect((await tsuru('PUT', '/1.13/services/fixture-db/instances/nope/apps/web', {})).status).toBe(404);
    expect((await tsuru('PUT', '/1.13/services/other/instances/db/apps/web', {})).status).toBe(404);
  });

  it('shows instance info as service-instance-info reads it', async () => {
    const res = await tsuru('GET', '/1.0/services/fixture-db/instances/db');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ ServiceName: 'fixture-db', InstanceName: 'db', PlanName: 'small', PlanDescription: 'Synchronous', TeamOwner: 'team-a', Teams: ['team-a'], Apps: [], Tags: ['x', 'y'], Description: 'the db', CustomInfo: {} });
  });

  it('removes an instance: refused while bound unless unbindall, then deprovisioned with a JSON stream', async () => {
    expect((await tsuru('PUT', '/1.13/services/fixture-db/instances/db/apps/web', { noRestart: 'true' })).status).toBe(200);
    const refused = await tsuru('DELETE', '/1.0/services/fixture-db/instances/db');
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('bound to at least one app');
    const res = await tsuru('DELETE', '/1.0/services/fixture-db/instances/db?unbindall=true');
    expect(res.status).toBe(200);
    const lines = res.lines();
    expect(lines.filter((l) => l.Error), res.text).toEqual([]);
    expect(lines.at(-1).Message).toContain('removed');
    expect((await t.admin.get(`/v3/service_instances?names=db&space_guids=${team.guid}`)).body.resources).toEqual([]);
    expect((await tsuru('GET', '/1.0/services/fixture-db/instances/db')).status).toBe(404);
  });

  it('still answers the rest of the services area with 501 naming CF V3', async () => {
    const res = await tsuru('GET', '/1.0/services/fixture-db');
    expect(res.status).toBe(501);
    expect(res.text).toContain('/v3/service_offerings');
  });
});
