import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';
import { PLAN_IDS, startFixtureBroker, type FixtureBroker } from '../fixtures/broker/broker.ts';

let t: TestKiln;
let broker: FixtureBroker;
let org: any;
let space: any;
let otherSpace: any;
let dev: Client;
const plans: Record<string, string> = {};

const detail = (res: { body: any }) => res.body.errors[0].detail;

beforeAll(async () => {
  t = await createTestKiln({ KILN_BROKER_POLL_INTERVAL_SECONDS: '0.05' });
  broker = await startFixtureBroker();
  const reg = await t.admin.post('/v3/service_brokers', {
    name: 'fixture',
    url: broker.url,
    authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
  });
  expect((await t.awaitJob(reg.headers.get('location'))).state).toBe('COMPLETE');
  const all = await t.admin.get('/v3/service_plans?per_page=100');
  for (const p of all.body.resources) {
    plans[p.broker_catalog.id] = p.guid;
    if (p.broker_catalog.id !== PLAN_IDS.reject) await t.admin.patch(`/v3/service_plans/${p.guid}/visibility`, { type: 'public' });
  }
  org = await t.org('si-org');
  space = await t.space('si-space', org.guid);
  otherSpace = await t.space('si-other', org.guid);
  dev = await t.spaceMember('space_developer', space);
  await t.grant(dev, 'space_developer', { space: otherSpace.guid });
});
afterAll(async () => {
  await t.close();
  await broker.close();
});

const rel = (guid: string) => ({ data: { guid } });

async function managed(name: string, planId: string, extra: Record<string, unknown> = {}, as: Client = dev) {
  const res = await as.post('/v3/service_instances', {
    type: 'managed',
    name,
    relationships: { space: rel(space.guid), service_plan: rel(plans[planId]!) },
    ...extra,
  });
  expect(res.status, res.text).toBe(202);
  const job = await t.awaitJob(res.headers.get('location'));
  const inst = (await t.admin.get(`/v3/service_instances?names=${name}&space_guids=${space.guid}`)).body.resources[0];
  return { job, inst };
}

async function app(name: string, spaceGuid = space.guid) {
  const res = await dev.post('/v3/apps', { name, relationships: { space: rel(spaceGuid) } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

async function env(appGuid: string) {
  return (await dev.get(`/v3/apps/${appGuid}/env`)).body.system_env_json.VCAP_SERVICES;
}

describe('user-provided service instances', () => {
  it('are created at once with their credentials kept encrypted', async () => {
    const res = await dev.post('/v3/service_instances', {
      type: 'user-provided',
      name: 'my-ups',
      relationships: { space: rel(space.guid) },
      credentials: { password: 'hunter2' },
      syslog_drain_url: 'syslog://logs.example.org',
      tags: ['db'],
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ type: 'user-provided', name: 'my-ups', tags: ['db'], syslog_drain_url: 'syslog://logs.example.org', last_operation: { type: 'create', state: 'succeeded', description: 'Operation succeeded' } });
    expect(res.text).not.toContain('hunter2');
    const creds = await dev.get(`/v3/service_instances/${res.body.guid}/credentials`);
    expect(creds.body).toEqual({ password: 'hunter2' });
    const row = await t.kiln.store.db.selectFrom('service_instances').select('credentials_enc').where('guid', '=', res.body.guid).executeTakeFirstOrThrow();
    expect(row.credentials_enc).not.toContain('hunter2');
  });

  it('refuses a taken name and an http route service url', async () => {
    const taken = await dev.post('/v3/service_instances', { type: 'user-provided', name: 'my-ups', relationships: { space: rel(space.guid) } });
    expect(taken.status).toBe(422);
    expect(detail(taken)).toBe('The service instance name is taken: my-ups.');
    const http = await dev.post('/v3/service_instances', { type: 'user-provided', name: 'rs', relationships: { space: rel(space.guid) }, route_service_url: 'http://rs.example.org' });
    expect(http.status).toBe(422);
    expect(detail(http)).toBe('Route service url must be https');
  });
});

describe('managed service instances', () => {
  it('provision synchronously through the broker with accepts_incomplete and the CF context', async () => {
    const { job, inst } = await managed('sync-db', PLAN_IDS.small, { parameters: { size: 3 }, tags: ['mine'] });
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'service_instance.create' });
    expect(inst).toMatchObject({ type: 'managed', last_operation: { type: 'create', state: 'succeeded' }, dashboard_url: `https://dash.example.org/${inst.guid}`, upgrade_available: false });
    const put = broker.requests.find((r) => r.method === 'PUT' && r.path === `/v2/service_instances/${inst.guid}`)!;
    expect(put.query).toEqual({ accepts_incomplete: 'true' });
    expect(put.body).toMatchObject({
      service_id: 'svc-db',
      plan_id: PLAN_IDS.small,
      organization_guid: org.guid,
      space_guid: space.guid,
      parameters: { size: 3 },
      context: { platform: 'cloudfoundry', organization_name: 'si-org', space_name: 'si-space', instance_name: 'sync-db' },
    });
    const params = await dev.get(`/v3/service_instances/${inst.guid}/parameters`);
    expect(params.body).toEqual({ size: 3 });
  });

  it('provision asynchronously: the job polls last_operation until the broker says succeeded', async () => {
    const { job, inst } = await managed('async-db', PLAN_IDS.async);
    expect(job.state).toBe('COMPLETE');
    expect(inst.last_operation).toMatchObject({ type: 'create', state: 'succeeded' });
    const polls = broker.requests.filter((r) => r.path === `/v2/service_instances/${inst.guid}/last_operation`);
    expect(polls.length).toBeGreaterThanOrEqual(2);
    expect(polls[0]!.query).toMatchObject({ operation: `provision-${inst.guid}`, plan_id: PLAN_IDS.async, service_id: 'svc-db' });
  });

  it('fail with the broker text when the async operation fails, and give the name up to the next create', async () => {
    const { job, inst } = await managed('doomed', PLAN_IDS.asyncFail);
    expect(job.state).toBe('FAILED');
    expect(job.errors[0]).toEqual({ title: 'CF-UnableToPerform', code: 10009, detail: 'create managed could not be completed: the async plan failed' });
    expect(inst.last_operation).toMatchObject({ type: 'create', state: 'failed', description: 'the async plan failed' });
    const again = await managed('doomed', PLAN_IDS.small);
    expect(again.job.state).toBe('COMPLETE');
    expect(again.inst.guid).not.toBe(inst.guid);
  });

  it('deprovision an orphan after a 5xx, but never after a 4xx', async () => {
    const five = await managed('five', PLAN_IDS.fail);
    expect(five.job.errors[0]).toEqual({ title: 'CF-UnableToPerform', code: 10009, detail: 'provision could not be completed: Service broker error: the fail plan always fails' });
    expect(broker.requests.some((r) => r.method === 'DELETE' && r.path === `/v2/service_instances/${five.inst.guid}`)).toBe(true);

    await t.admin.patch(`/v3/service_plans/${plans[PLAN_IDS.reject]}/visibility`, { type: 'public' });
    const four = await managed('four', PLAN_IDS.reject);
    expect(four.job.state).toBe('FAILED');
    expect(four.job.errors[0].detail).toBe('provision could not be completed: Service broker error: the reject plan rejects everything');
    expect(broker.requests.some((r) => r.method === 'DELETE' && r.path === `/v2/service_instances/${four.inst.guid}`)).toBe(false);
  });

  it("poll no sooner than the broker's Retry-After asks, and show POLLING meanwhile", async () => {
    broker.options.retryAfter = 2;
    broker.options.asyncPolls = 1_000_000;
    try {
      const res = await dev.post('/v3/service_instances', { type: 'managed', name: 'patient', relationships: { space: rel(space.guid), service_plan: rel(plans[PLAN_IDS.async]!) } });
      const location = new URL(res.headers.get('location')!).pathname;
      const deadline = Date.now() + 10_000;
      let job: any;
      do {
        await t.kiln.controllers.settle();
        job = (await dev.get(location)).body;
      } while (job.state !== 'POLLING' && Date.now() < deadline);
      expect(job.state).toBe('POLLING');
      const row = await t.kiln.store.db.selectFrom('service_instances').selectAll().where('name', '=', 'patient').executeTakeFirstOrThrow();
      expect(row.last_operation_state).toBe('in progress');
      expect(row.poll_next_at! - Date.parse(row.last_operation_updated_at)).toBeGreaterThanOrEqual(1900);
      broker.options.asyncPolls = 0;
      broker.options.retryAfter = undefined;
      const done = await t.awaitJob(res.headers.get('location'));
      expect(done.state).toBe('COMPLETE');
    } finally {
      broker.options.asyncPolls = 1;
      broker.options.retryAfter = undefined;
    }
  });

  it("give up after the plan's maximum polling duration: JobTimeout, and the orphan is deprovisioned", async () => {
    broker.options.asyncPolls = 1_000_000;
    try {
      const { job, inst } = await managed('short', PLAN_IDS.asyncShort);
      expect(job.state).toBe('FAILED');
      expect(job.errors[0]).toMatchObject({ title: 'CF-JobTimeout', code: 290006 });
      expect(inst.last_operation).toMatchObject({ type: 'create', state: 'failed', description: 'Service Broker failed to provision within the required time.' });
      expect(broker.requests.some((r) => r.method === 'DELETE' && r.path === `/v2/service_instances/${inst.guid}`)).toBe(true);
    } finally {
      broker.options.asyncPolls = 1;
    }
  });

  it('refuse a plan the user cannot see', async () => {
    const hidden = await t.admin.patch(`/v3/service_plans/${plans[PLAN_IDS.nobind]}/visibility`, { type: 'admin' });
    expect(hidden.status).toBe(200);
    const res = await dev.post('/v3/service_instances', { type: 'managed', name: 'nope', relationships: { space: rel(space.guid), service_plan: rel(plans[PLAN_IDS.nobind]!) } });
    expect(res.status).toBe(422);
    expect(detail(res)).toBe('Invalid service plan. Ensure that the service plan exists, is available, and you have access to it.');
    expect((await t.admin.get('/v3/service_instances?names=nope')).body.resources).toHaveLength(0);
  });

  it('render the fields the cf CLI asks for in `services`', async () => {
    const res = await dev.get(
      `/v3/service_instances?fields[service_plan.service_offering.service_broker]=guid,name&fields[service_plan.service_offering]=guid,name,relationships.service_broker&fields[service_plan]=guid,name,relationships.service_offering&order_by=name&per_page=5000&space_guids=${space.guid}`,
    );
    expect(res.status).toBe(200);
    expect(res.body.included.service_brokers).toEqual([{ guid: expect.any(String), name: 'fixture' }]);
    expect(res.body.included.service_offerings[0]).toEqual({ guid: expect.any(String), name: 'fixture-db', relationships: { service_broker: { data: { guid: res.body.included.service_brokers[0].guid } } } });
    expect(res.body.included.service_plans.map((p: any) => Object.keys(p).sort())).toContainEqual(['guid', 'name', 'relationships']);
  });

  it('update parameters through the broker and rename without it', async () => {
    const { inst } = await managed('upd-db', PLAN_IDS.small);
    const rename = await dev.patch(`/v3/service_instances/${inst.guid}`, { name: 'upd-db-2', tags: ['x'] });
    expect(rename.status).toBe(200);
    expect(rename.body).toMatchObject({ name: 'upd-db-2', tags: ['x'] });
    const upd = await dev.patch(`/v3/service_instances/${inst.guid}`, { parameters: { size: 9 } });
    expect(upd.status).toBe(202);
    const job = await t.awaitJob(upd.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'service_instance.update' });
    const patch = broker.requests.find((r) => r.method === 'PATCH' && r.path === `/v2/service_instances/${inst.guid}`)!;
    expect(patch.body).toMatchObject({ parameters: { size: 9 }, previous_values: { plan_id: PLAN_IDS.small } });
    expect(broker.instances.get(inst.guid)!.parameters).toEqual({ size: 9 });
  });
});

describe('changing plans (cf update-service -p)', () => {
  it('asks the broker with the new plan and previous values, and the instance moves to it', async () => {
    const { inst } = await managed('replan', PLAN_IDS.small);
    const res = await dev.patch(`/v3/service_instances/${inst.guid}`, { relationships: { service_plan: rel(plans[PLAN_IDS.async]!) } });
    expect(res.status, res.text).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    const patch = broker.requests.filter((r) => r.method === 'PATCH' && r.path === `/v2/service_instances/${inst.guid}`).at(-1)!;
    expect(patch.body).toMatchObject({ plan_id: PLAN_IDS.async, previous_values: { plan_id: PLAN_IDS.small, service_id: 'svc-db' } });
    const after = (await dev.get(`/v3/service_instances/${inst.guid}`)).body;
    expect(after.relationships.service_plan.data.guid).toBe(plans[PLAN_IDS.async]);
    expect(after.last_operation).toMatchObject({ type: 'update', state: 'succeeded' });
    const other = await dev.patch(`/v3/service_instances/${inst.guid}`, { relationships: { service_plan: rel(plans[PLAN_IDS.nobind]!) } });
    expect(other.status).toBe(422);
  });
});

describe('credential bindings and VCAP_SERVICES', () => {
  it('binds an app to a user-provided instance at once', async () => {
    const a = await app('ups-app');
    expect(await env(a.guid)).toEqual({});
    const ups = (await dev.get(`/v3/service_instances?names=my-ups`)).body.resources[0];
    const res = await dev.post('/v3/service_credential_bindings', { type: 'app', name: 'ups-binding', relationships: { service_instance: rel(ups.guid), app: rel(a.guid) } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ type: 'app', name: 'ups-binding', last_operation: { state: 'succeeded' } });
    expect(await env(a.guid)).toEqual({
      'user-provided': [
        {
          label: 'user-provided',
          name: 'ups-binding',
          tags: ['db'],
          instance_guid: ups.guid,
          instance_name: 'my-ups',
          binding_guid: res.body.guid,
          binding_name: 'ups-binding',
          credentials: { password: 'hunter2' },
          syslog_drain_url: 'syslog://logs.example.org',
          volume_mounts: [],
        },
      ],
    });
    const again = await dev.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(ups.guid), app: rel(a.guid) } });
    expect(again.status).toBe(422);
    expect(detail(again)).toBe('The app is already bound to the service instance');
    const params = await dev.post('/v3/service_credential_bindings', { type: 'app', parameters: { a: 1 }, relationships: { service_instance: rel(ups.guid), app: rel((await app('ups-app-2')).guid) } });
    expect(detail(params)).toBe('Binding parameters are not supported for user-provided service instances');
  });

  it('binds an app to a managed instance through the broker and shows the credentials in CC shape', async () => {
    const a = await app('db-app');
    const inst = (await dev.get(`/v3/service_instances?names=sync-db`)).body.resources[0];
    const res = await dev.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(inst.guid), app: rel(a.guid) } });
    expect(res.status, res.text).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'service_bindings.create' });
    const put = broker.requests.filter((r) => r.method === 'PUT' && r.path.includes('/service_bindings/')).at(-1)!;
    expect(put.body).toMatchObject({ service_id: 'svc-db', plan_id: PLAN_IDS.small, app_guid: a.guid, bind_resource: { app_guid: a.guid, space_guid: space.guid } });
    const vcap = await env(a.guid);
    expect(Object.keys(vcap)).toEqual(['fixture-db']);
    expect(vcap['fixture-db'][0]).toMatchObject({
      label: 'fixture-db',
      provider: null,
      plan: 'small',
      name: 'sync-db',
      tags: ['sql', 'fixture', 'mine'],
      instance_name: 'sync-db',
      binding_name: null,
      credentials: { uri: expect.stringContaining('fixture://'), password: 'secret-pw' },
      syslog_drain_url: null,
      volume_mounts: [],
    });
  });

  it('binds asynchronously and fetches the credentials once the broker is done', async () => {
    const a = await app('async-app');
    const inst = (await dev.get(`/v3/service_instances?names=async-db`)).body.resources[0];
    const res = await dev.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(inst.guid), app: rel(a.guid) } });
    expect(res.status).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    expect((await env(a.guid))['fixture-db'][0].credentials.password).toBe('secret-pw');
  });

  it('creates service keys with unique names and shows their details', async () => {
    const inst = (await dev.get(`/v3/service_instances?names=sync-db`)).body.resources[0];
    const res = await dev.post('/v3/service_credential_bindings', { type: 'key', name: 'k1', relationships: { service_instance: rel(inst.guid) } });
    expect(res.status).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).operation).toBe('service_keys.create');
    const key = (await dev.get(`/v3/service_credential_bindings?service_instance_guids=${inst.guid}&type=key&names=k1&per_page=1&page=1`)).body.resources[0];
    const details = await dev.get(`/v3/service_credential_bindings/${key.guid}/details`);
    expect(details.body.credentials).toMatchObject({ password: 'secret-pw' });
    const withInstance = await dev.get(`/v3/service_credential_bindings/${key.guid}?include=service_instance`);
    expect(withInstance.body.included.service_instances.map((i: any) => i.name)).toEqual(['sync-db']);
    expect((await dev.get(`/v3/service_credential_bindings/${key.guid}?include=nope`)).status).toBe(400);
    const dup = await dev.post('/v3/service_credential_bindings', { type: 'key', name: 'k1', relationships: { service_instance: rel(inst.guid) } });
    expect(detail(dup)).toBe("The binding name is invalid. Key binding names must be unique. The service instance already has a key binding with name 'k1'.");
    const ups = (await dev.get(`/v3/service_instances?names=my-ups`)).body.resources[0];
    const upsKey = await dev.post('/v3/service_credential_bindings', { type: 'key', name: 'k', relationships: { service_instance: rel(ups.guid) } });
    expect(detail(upsKey)).toBe("Service credential bindings of type 'key' are not supported for user-provided service instances.");
  });

  it('fails a binding whose answer carries a syslog drain the offering did not declare, and unbinds it again', async () => {
    const a = await app('drain-app');
    const inst = (await dev.get(`/v3/service_instances?names=sync-db`)).body.resources[0];
    const res = await dev.post('/v3/service_credential_bindings', { type: 'app', parameters: { syslog: true }, relationships: { service_instance: rel(inst.guid), app: rel(a.guid) } });
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job.state).toBe('FAILED');
    expect(job.errors[0]).toMatchObject({
      title: 'CF-UnableToPerform',
      detail: 'bind could not be completed: The service is attempting to stream logs from your application, but is not registered as a logging service. Please contact the service provider.',
    });
    const binding = (await dev.get(`/v3/service_credential_bindings?app_guids=${a.guid}`)).body.resources[0];
    expect(binding.last_operation).toMatchObject({ type: 'create', state: 'failed' });
    expect(broker.requests.some((r) => r.method === 'DELETE' && r.path === `/v2/service_instances/${inst.guid}/service_bindings/${binding.guid}`)).toBe(true);
    expect(await env(a.guid)).toEqual({});
    // The failed binding gives way to a new attempt.
    const again = await dev.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(inst.guid), app: rel(a.guid) } });
    expect(again.status).toBe(202);
    expect((await t.awaitJob(again.headers.get('location'))).state).toBe('COMPLETE');
    expect((await env(a.guid))['fixture-db']).toHaveLength(1);
  });

  it('refuses a binding across spaces and to a plan that is not bindable', async () => {
    const far = await app('far-app', otherSpace.guid);
    const inst = (await dev.get(`/v3/service_instances?names=sync-db`)).body.resources[0];
    const res = await dev.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(inst.guid), app: rel(far.guid) } });
    expect(res.status).toBe(422);
    expect(detail(res)).toBe('The service instance and the app are in different spaces');
    await t.admin.patch(`/v3/service_plans/${plans[PLAN_IDS.nobind]}/visibility`, { type: 'public' });
    const nb = await managed('nobind', PLAN_IDS.nobind);
    const a = await app('nb-app');
    const r2 = await dev.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(nb.inst.guid), app: rel(a.guid) } });
    expect(detail(r2)).toBe('Service plan does not allow bindings');
  });
});

describe('route bindings', () => {
  it('bind a route to a route service through the broker, and the router sends the route there', async () => {
    const domain = (await t.admin.get('/v3/domains?names=apps.localhost')).body.resources[0];
    const route = await dev.post('/v3/routes', { host: 'guarded', relationships: { space: rel(space.guid), domain: rel(domain.guid) } });
    expect(route.status, route.text).toBe(201);
    const { inst } = await managed('proxy', PLAN_IDS.route);
    const res = await dev.post('/v3/service_route_bindings', { relationships: { service_instance: rel(inst.guid), route: rel(route.body.guid) } });
    expect(res.status, res.text).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).operation).toBe('service_route_bindings.create');
    const put = broker.requests.filter((r) => r.method === 'PUT' && r.path.startsWith(`/v2/service_instances/${inst.guid}/service_bindings/`)).at(-1)!;
    expect(put.body.bind_resource).toEqual({ route: 'guarded.apps.localhost' });
    const list = await dev.get(`/v3/service_route_bindings?route_guids=${route.body.guid}`);
    expect(list.body.resources[0]).toMatchObject({ route_service_url: broker.routeServiceUrl, last_operation: { state: 'succeeded' } });
    await t.kiln.controllers.settle();
    expect(t.kiln.router.table.get('guarded.apps.localhost')?.routeServiceUrl).toBe(broker.routeServiceUrl);

    const again = await dev.post('/v3/service_route_bindings', { relationships: { service_instance: rel(inst.guid), route: rel(route.body.guid) } });
    expect(detail(again)).toBe('The route and service instance are already bound.');
    const del = await dev.delete(`/v3/service_route_bindings/${list.body.resources[0].guid}`);
    expect(del.status).toBe(202);
    expect((await t.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
    await t.kiln.controllers.settle();
    expect(t.kiln.router.table.get('guarded.apps.localhost')?.routeServiceUrl).toBeUndefined();
  });

  it('refuse an instance that is no route service', async () => {
    const domain = (await t.admin.get('/v3/domains?names=apps.localhost')).body.resources[0];
    const route = await dev.post('/v3/routes', { host: 'plain', relationships: { space: rel(space.guid), domain: rel(domain.guid) } });
    const inst = (await dev.get('/v3/service_instances?names=sync-db')).body.resources[0];
    const res = await dev.post('/v3/service_route_bindings', { relationships: { service_instance: rel(inst.guid), route: rel(route.body.guid) } });
    expect(res.status).toBe(422);
    expect(detail(res)).toBe('This service instance does not support route binding.');
  });
});

describe('sharing', () => {
  it('needs the feature flag, then lists the instance in the target space; unsharing removes its bindings there', async () => {
    const inst = (await dev.get(`/v3/service_instances?names=sync-db`)).body.resources[0];
    const off = await dev.post(`/v3/service_instances/${inst.guid}/relationships/shared_spaces`, { data: [{ guid: otherSpace.guid }] });
    expect(off.status).toBe(403);
    expect(off.body.errors[0]).toMatchObject({ title: 'CF-FeatureDisabled', detail: 'Feature Disabled: service_instance_sharing' });
    await t.admin.patch('/v3/feature_flags/service_instance_sharing', { enabled: true });
    const own = await dev.post(`/v3/service_instances/${inst.guid}/relationships/shared_spaces`, { data: [{ guid: space.guid }] });
    expect(detail(own)).toBe("Unable to share service instance 'sync-db' with space 'si-space'. Service instances cannot be shared into the space where they were created.");
    const ok = await dev.post(`/v3/service_instances/${inst.guid}/relationships/shared_spaces`, { data: [{ guid: otherSpace.guid }] });
    expect(ok.status).toBe(200);
    expect(ok.body.data).toEqual([{ guid: otherSpace.guid }]);
    expect((await dev.get(`/v3/service_instances?space_guids=${otherSpace.guid}&names=sync-db`)).body.resources).toHaveLength(1);

    const far = (await dev.get(`/v3/apps?names=far-app`)).body.resources[0];
    const bound = await dev.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(inst.guid), app: rel(far.guid) } });
    expect(bound.status).toBe(202);
    await t.awaitJob(bound.headers.get('location'));
    const usage = await dev.get(`/v3/service_instances/${inst.guid}/relationships/shared_spaces/usage_summary`);
    expect(usage.body.usage_summary).toEqual([{ space: { guid: otherSpace.guid }, bound_app_count: 1 }]);

    expect((await dev.delete(`/v3/service_instances/${inst.guid}/relationships/shared_spaces/${otherSpace.guid}`)).status).toBe(204);
    await t.kiln.controllers.settle();
    const left = await dev.get(`/v3/service_credential_bindings?app_guids=${far.guid}`);
    for (const b of left.body.resources) expect(b.last_operation.type).toBe('delete');
  });
});

describe('deleting', () => {
  it('refuses to delete a broker that has instances', async () => {
    const b = (await t.admin.get('/v3/service_brokers?names=fixture')).body.resources[0];
    const res = await t.admin.delete(`/v3/service_brokers/${b.guid}`);
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toEqual({ title: 'CF-ServiceBrokerNotRemovable', code: 270010, detail: 'Can not remove brokers that have associated service instances: fixture' });
  });

  it('a managed instance with bindings and keys: unbinds, then deprovisions, in one job', async () => {
    const { inst } = await managed('to-delete', PLAN_IDS.small);
    const a = await app('del-app');
    const b = await dev.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(inst.guid), app: rel(a.guid) } });
    await t.awaitJob(b.headers.get('location'));
    const k = await dev.post('/v3/service_credential_bindings', { type: 'key', name: 'kk', relationships: { service_instance: rel(inst.guid) } });
    await t.awaitJob(k.headers.get('location'));
    const del = await dev.delete(`/v3/service_instances/${inst.guid}`);
    expect(del.status).toBe(202);
    const job = await t.awaitJob(del.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'service_instance.delete' });
    expect((await dev.get(`/v3/service_instances/${inst.guid}`)).status).toBe(404);
    expect((await dev.get(`/v3/service_credential_bindings?service_instance_guids=${inst.guid}`)).body.resources).toHaveLength(0);
    const unbinds = broker.requests.filter((r) => r.method === 'DELETE' && r.path.startsWith(`/v2/service_instances/${inst.guid}/service_bindings/`));
    expect(unbinds).toHaveLength(2);
    const deprov = broker.requests.find((r) => r.method === 'DELETE' && r.path === `/v2/service_instances/${inst.guid}`)!;
    expect(deprov.query).toEqual({ accepts_incomplete: 'true', plan_id: PLAN_IDS.small, service_id: 'svc-db' });
    expect(await env(a.guid)).toEqual({});
  });

  it('a user-provided instance at once', async () => {
    const ups = (await dev.get(`/v3/service_instances?names=my-ups`)).body.resources[0];
    expect((await dev.delete(`/v3/service_instances/${ups.guid}`)).status).toBe(204);
    expect((await dev.get(`/v3/service_instances/${ups.guid}`)).status).toBe(404);
  });
});

describe('audit events', () => {
  it('are recorded with CC event types and no credentials', async () => {
    const rows = await t.kiln.store.db.selectFrom('audit_events').select(['type', 'data']).where('type', 'like', 'audit.%service%').execute();
    const types = new Set(rows.map((r) => r.type));
    for (const type of [
      'audit.service_broker.create',
      'audit.service_instance.start_create',
      'audit.user_provided_service_instance.create',
      'audit.service_binding.start_create',
      'audit.service_binding.create',
      'audit.service_key.start_create',
      'audit.service_instance.start_update',
      'audit.service_instance.share',
      'audit.service_instance.start_delete',
      'audit.user_provided_service_instance.delete',
    ]) {
      expect(types, type).toContain(type);
    }
    const all = rows.map((r) => r.data).join('\n');
    expect(all).not.toContain('hunter2');
    expect(all).not.toContain('broker-pass');
  });
});

describe('a broker that does not answer in time', () => {
  it('fails the provision with the timeout error and deprovisions the orphan', async () => {
    const slow = await createTestKiln({ KILN_BROKER_TIMEOUT_SECONDS: '0.3', KILN_BROKER_POLL_INTERVAL_SECONDS: '0.05' });
    const b = await startFixtureBroker({ slowMs: 1000 });
    try {
      const reg = await slow.admin.post('/v3/service_brokers', { name: 'slow', url: b.url, authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } } });
      expect((await slow.awaitJob(reg.headers.get('location'))).state).toBe('COMPLETE');
      const plan = (await slow.admin.get('/v3/service_plans?names=slow')).body.resources[0];
      await slow.admin.patch(`/v3/service_plans/${plan.guid}/visibility`, { type: 'public' });
      const o = await slow.org('slow-org');
      const s = await slow.space('slow-space', o.guid);
      const res = await slow.admin.post('/v3/service_instances', { type: 'managed', name: 'late', relationships: { space: rel(s.guid), service_plan: rel(plan.guid) } });
      const job = await slow.awaitJob(res.headers.get('location'));
      expect(job.state).toBe('FAILED');
      expect(job.errors[0]).toEqual({ title: 'CF-UnableToPerform', code: 10009, detail: 'provision could not be completed: The request to the service broker timed out' });
      const inst = (await slow.admin.get('/v3/service_instances?names=late')).body.resources[0];
      expect(inst.last_operation).toMatchObject({ type: 'create', state: 'failed' });
      expect(b.requests.some((r) => r.method === 'DELETE' && r.path === `/v2/service_instances/${inst.guid}`)).toBe(true);
    } finally {
      await slow.close();
      await b.close();
    }
  });
});

describe('deleting what services hang off', () => {
  it('an app: its bindings are unbound at the broker first', async () => {
    const { inst } = await managed('app-del-db', PLAN_IDS.small);
    const a = await app('app-del');
    const b = await dev.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(inst.guid), app: rel(a.guid) } });
    await t.awaitJob(b.headers.get('location'));
    const bindingGuid = (await dev.get(`/v3/service_credential_bindings?app_guids=${a.guid}`)).body.resources[0].guid;
    const del = await dev.delete(`/v3/apps/${a.guid}`);
    expect((await t.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
    expect(broker.requests.some((r) => r.method === 'DELETE' && r.path === `/v2/service_instances/${inst.guid}/service_bindings/${bindingGuid}`)).toBe(true);
    expect((await t.admin.get(`/v3/service_credential_bindings/${bindingGuid}`)).status).toBe(404);
  });

  it('a space: its managed instances are deprovisioned at the broker first', async () => {
    const doomed = await t.space('doomed-space', org.guid);
    const plan = plans[PLAN_IDS.small]!;
    const res = await t.admin.post('/v3/service_instances', { type: 'managed', name: 'in-doomed', relationships: { space: rel(doomed.guid), service_plan: rel(plan) } });
    await t.awaitJob(res.headers.get('location'));
    const inst = (await t.admin.get(`/v3/service_instances?names=in-doomed`)).body.resources[0];
    const del = await t.admin.delete(`/v3/spaces/${doomed.guid}`);
    expect((await t.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
    expect(broker.requests.some((r) => r.method === 'DELETE' && r.path === `/v2/service_instances/${inst.guid}`)).toBe(true);
    expect((await t.admin.get(`/v3/service_instances/${inst.guid}`)).status).toBe(404);
  });
});

describe('service usage events', () => {
  it('record creates, updates and deletes in the same writes, for admins to read', async () => {
    const res = await t.admin.get('/v3/service_usage_events?per_page=5000');
    expect(res.status).toBe(200);
    const byName = (name: string) => res.body.resources.filter((e: any) => e.service_instance.name === name).map((e: any) => e.state);
    expect(byName('sync-db')).toEqual(['CREATED']);
    expect(byName('to-delete')).toEqual(['CREATED', 'DELETED']);
    expect(byName('upd-db-2')).toEqual(expect.arrayContaining(['UPDATED']));
    expect(byName('my-ups')).toEqual(['CREATED', 'DELETED']);
    // A create that failed was never billed.
    expect(byName('five')).toEqual([]);
    const one = res.body.resources.find((e: any) => e.service_instance.name === 'sync-db');
    expect(one).toMatchObject({
      state: 'CREATED',
      space: { guid: space.guid, name: 'si-space' },
      organization: { guid: org.guid },
      service_instance: { type: 'managed_service_instance' },
      service_plan: { name: 'small' },
      service_offering: { name: 'fixture-db' },
      service_broker: { name: 'fixture' },
    });
    expect((await t.admin.get(`/v3/service_usage_events/${one.guid}`)).body.guid).toBe(one.guid);
    const after = await t.admin.get(`/v3/service_usage_events?after_guid=${one.guid}&per_page=5000`);
    expect(after.body.resources.some((e: any) => e.guid === one.guid)).toBe(false);
    const theirs = await dev.get('/v3/service_usage_events');
    expect(theirs.status).toBe(200);
    expect(theirs.body.resources).toEqual([]);
  });

  it('purge-and-reseed leaves one CREATED event per existing instance', async () => {
    const res = await t.admin.post('/v3/service_usage_events/actions/destructively_purge_all_and_reseed');
    expect(res.status).toBe(200);
    const events = (await t.admin.get('/v3/service_usage_events?per_page=5000')).body.resources;
    const count = await t.kiln.store.db.selectFrom('service_instances').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(events).toHaveLength(Number(count.n));
    expect(new Set(events.map((e: any) => e.state))).toEqual(new Set(['CREATED']));
  });
});

describe('quotas', () => {
  it('limit the managed instances and keys of an org, and paid plans', async () => {
    const qorg = await t.org('quota-org');
    const qspace = await t.space('quota-space', qorg.guid);
    const quota = await t.admin.post('/v3/organization_quotas', {
      name: 'tiny-services',
      services: { total_service_instances: 1, paid_services_allowed: false, total_service_keys: 1 },
      relationships: { organizations: { data: [{ guid: qorg.guid }] } },
    });
    expect(quota.status, quota.text).toBe(201);
    const create = (name: string, planId: string) =>
      t.admin.post('/v3/service_instances', { type: 'managed', name, relationships: { space: rel(qspace.guid), service_plan: rel(plans[planId]!) } });
    const paid = await create('paid', PLAN_IDS.slow);
    expect(paid.status).toBe(422);
    expect(detail(paid)).toBe('The service instance cannot be created because paid service plans are not allowed.');
    const first = await create('q1', PLAN_IDS.small);
    expect(first.status).toBe(202);
    await t.awaitJob(first.headers.get('location'));
    const second = await create('q2', PLAN_IDS.small);
    expect(second.status).toBe(422);
    expect(detail(second)).toBe("You have exceeded your organization's services limit.");
    // User-provided instances do not count.
    expect((await t.admin.post('/v3/service_instances', { type: 'user-provided', name: 'free-ups', relationships: { space: rel(qspace.guid) } })).status).toBe(201);

    const inst = (await t.admin.get('/v3/service_instances?names=q1')).body.resources[0];
    const k1 = await t.admin.post('/v3/service_credential_bindings', { type: 'key', name: 'a', relationships: { service_instance: rel(inst.guid) } });
    await t.awaitJob(k1.headers.get('location'));
    const k2 = await t.admin.post('/v3/service_credential_bindings', { type: 'key', name: 'b', relationships: { service_instance: rel(inst.guid) } });
    expect(k2.status).toBe(422);
    expect(detail(k2)).toBe("You have exceeded your organization's limit for service binding of type key.");
  });
});

describe('cf purge-service-offering', () => {
  it('refuses while instances exist, and with purge removes them without asking the broker', async () => {
    const offering = (await t.admin.get('/v3/service_offerings?names=fixture-route')).body.resources[0];
    const inst = (await t.admin.get('/v3/service_instances?names=proxy')).body.resources[0];
    const refused = await t.admin.delete(`/v3/service_offerings/${offering.guid}`);
    expect(refused.status).toBe(422);
    expect(detail(refused)).toBe('Please delete the service_instances associations for your service_offerings.');
    const before = broker.requests.length;
    expect((await t.admin.delete(`/v3/service_offerings/${offering.guid}?purge=true`)).status).toBe(204);
    expect((await t.admin.get(`/v3/service_instances/${inst.guid}`)).status).toBe(404);
    expect((await t.admin.get(`/v3/service_offerings/${offering.guid}`)).status).toBe(404);
    expect(broker.requests.slice(before).filter((r) => r.method === 'DELETE')).toEqual([]);
  });
});
