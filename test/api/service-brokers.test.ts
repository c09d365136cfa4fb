import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { PLAN_IDS, startFixtureBroker, type FixtureBroker } from '../fixtures/broker/broker.ts';

let t: TestKiln;
let broker: FixtureBroker;
beforeAll(async () => {
  t = await createTestKiln();
  broker = await startFixtureBroker();
});
afterAll(async () => {
  await t.close();
  await broker.close();
});

const detail = (res: { body: any }) => res.body.errors[0].detail;
const brokerBody = (name: string, url: string, password = 'broker-pass') => ({
  name,
  url,
  authentication: { type: 'basic', credentials: { username: 'broker-user', password } },
});

async function register(name: string, url = broker.url, password?: string) {
  const res = await t.admin.post('/v3/service_brokers', brokerBody(name, url, password));
  expect(res.status, res.text).toBe(202);
  return { res, job: await t.awaitJob(res.headers.get('location')) };
}

describe('registering a broker', () => {
  it('fetches the catalog with basic auth and the OSBAPI headers, and creates offerings and plans', async () => {
    const { job } = await register('main-broker');
    expect(job.state).toBe('COMPLETE');
    expect(job.operation).toBe('service_broker.catalog.synchronize');
    const catalogReq = broker.requests.find((r) => r.path === '/v2/catalog')!;
    expect(catalogReq.headers['x-broker-api-version']).toBe('2.15');
    expect(catalogReq.headers['x-broker-api-request-identity']).toMatch(/^[0-9a-f-]{36}$/);
    const identity = String(catalogReq.headers['x-broker-api-originating-identity']);
    expect(identity).toMatch(/^cloudfoundry /);
    expect(JSON.parse(Buffer.from(identity.split(' ')[1]!, 'base64').toString())).toEqual({ user_id: t.admin.userGuid });

    const offerings = await t.admin.get('/v3/service_offerings?names=fixture-db');
    expect(offerings.body.resources).toHaveLength(1);
    expect(offerings.body.resources[0]).toMatchObject({ name: 'fixture-db', shareable: true, tags: ['sql', 'fixture'], broker_catalog: { id: 'svc-db' } });
    const plans = await t.admin.get(`/v3/service_plans?service_offering_guids=${offerings.body.resources[0].guid}`);
    expect(plans.body.resources.map((p: any) => p.name).sort()).toEqual(['async', 'async-fail', 'async-short', 'fail', 'reject', 'slow', 'small']);
    expect(plans.body.resources.every((p: any) => p.visibility_type === 'admin')).toBe(true);
  });

  it("renders a plan's features from its offering when the catalog leaves them out", async () => {
    const res = await t.admin.get('/v3/service_plans?service_offering_names=fixture-nobind');
    expect(res.body.resources[0].broker_catalog.features).toEqual({ bindable: false, plan_updateable: false });
    const one = await t.admin.get(`/v3/service_plans/${res.body.resources[0].guid}`);
    expect(one.body.broker_catalog.features.bindable).toBe(false);
  });

  it('never returns the credentials', async () => {
    const list = await t.admin.get('/v3/service_brokers?names=main-broker');
    expect(list.body.resources[0]).toMatchObject({ name: 'main-broker', url: broker.url, relationships: {} });
    expect(list.text).not.toContain('broker-pass');
    const row = await t.kiln.store.db.selectFrom('service_brokers').select('auth_enc').where('name', '=', 'main-broker').executeTakeFirstOrThrow();
    expect(row.auth_enc).not.toContain('broker-pass');
    const events = await t.kiln.store.db.selectFrom('audit_events').select('data').where('type', '=', 'audit.service_broker.create').execute();
    expect(events.map((e) => e.data).join('')).not.toContain('broker-pass');
  });

  it('refuses a name that is taken', async () => {
    const res = await t.admin.post('/v3/service_brokers', brokerBody('main-broker', broker.url));
    expect(res.status).toBe(422);
    expect(detail(res)).toBe('Name must be unique');
  });

  it('fails the job with CC errors for an invalid catalog, a rejecting broker and wrong credentials, keeping the broker', async () => {
    const empty = await startFixtureBroker({ catalog: {} });
    const teapot = await startFixtureBroker({ catalogStatus: 418 });
    try {
      const a = await register('empty-broker', empty.url);
      expect(a.job.state).toBe('FAILED');
      expect(a.job.errors[0]).toEqual({
        title: 'CF-ServiceBrokerCatalogInvalid',
        code: 270012,
        detail: 'Service broker catalog is invalid: \nService broker must provide at least one service\n',
      });
      const b = await register('teapot-broker', teapot.url);
      expect(b.job.errors[0]).toMatchObject({
        code: 270020,
        detail: "The service broker rejected the request. Status Code: 418 I'm a Teapot. Please check that the URL points to a valid service broker.",
      });
      const c = await register('wrong-pass', broker.url, 'nope');
      expect(c.job.errors[0]).toMatchObject({ title: 'CF-ServiceBrokerApiAuthenticationFailed', code: 10001 });
      const listed = await t.admin.get('/v3/service_brokers?names=empty-broker,teapot-broker,wrong-pass');
      expect(listed.body.resources).toHaveLength(3);
    } finally {
      await empty.close();
      await teapot.close();
    }
  });

  it('reports an unreachable broker', async () => {
    const { job } = await register('gone-broker', 'http://127.0.0.1:1');
    expect(job.errors[0]).toMatchObject({ title: 'CF-ServiceBrokerApiUnreachable', detail: 'The service broker could not be reached' });
  });

  it('describes a catalog with bad plans service by service', async () => {
    const bad = await startFixtureBroker({ catalog: { services: [{ id: 's', name: 'svc', description: 'd', bindable: true, plans: [{ id: 'p', description: 'x' }] }] } });
    try {
      const { job } = await register('bad-plan-broker', bad.url);
      expect(job.errors[0].detail).toBe('Service broker catalog is invalid: \nService svc\n  Plan \n    Plan name must be a string, but has value nil\n');
    } finally {
      await bad.close();
    }
  });
});

describe('plan visibility', () => {
  it('hides admin-only plans from non-admins until enabled for their org', async () => {
    const org = await t.org('vis-org');
    const space = await t.space('vis-space', org.guid);
    const dev = await t.spaceMember('space_developer', space);
    const market = () => dev.get(`/v3/service_plans?available=true&fields[service_offering.service_broker]=name,guid&include=service_offering&per_page=5000&space_guids=${space.guid}`);
    expect((await market()).body.resources).toHaveLength(0);

    const small = (await t.admin.get('/v3/service_plans?names=small&service_offering_names=fixture-db')).body.resources[0];
    const post = await t.admin.post(`/v3/service_plans/${small.guid}/visibility`, { type: 'organization', organizations: [{ guid: org.guid }] });
    expect(post.status).toBe(200);
    expect(post.body).toEqual({ type: 'organization' });
    const seen = await market();
    expect(seen.body.resources.map((p: any) => p.name)).toEqual(['small']);
    expect(seen.body.included.service_offerings.map((o: any) => o.name)).toEqual(['fixture-db']);
    expect(seen.body.included.service_brokers).toEqual([{ name: 'main-broker', guid: small && seen.body.included.service_offerings[0].relationships.service_broker.data.guid }]);

    const vis = await t.admin.get(`/v3/service_plans/${small.guid}/visibility`);
    expect(vis.body).toEqual({ type: 'organization', organizations: [{ guid: org.guid, name: 'vis-org' }] });
    expect((await t.admin.delete(`/v3/service_plans/${small.guid}/visibility/${org.guid}`)).status).toBe(204);
    expect((await market()).body.resources).toHaveLength(0);

    const pub = await t.admin.patch(`/v3/service_plans/${small.guid}/visibility`, { type: 'public' });
    expect(pub.body).toEqual({ type: 'public' });
    expect((await market()).body.resources).toHaveLength(1);
  });

  it('answers 400 for an invalid visibility body', async () => {
    const plan = (await t.admin.get('/v3/service_plans?names=async')).body.resources[0];
    const res = await t.admin.post(`/v3/service_plans/${plan.guid}/visibility`, { type: 'organization' });
    expect(res.status).toBe(400);
    expect(res.body.errors[0]).toMatchObject({ title: 'CF-BadRequest', detail: "Bad request: Organizations can't be blank" });
  });
});

describe('updating and deleting a broker', () => {
  it('re-synchronises on update and deletes the offerings with the broker', async () => {
    const second = await startFixtureBroker({ catalog: { services: [{ id: 'x1', name: 'xsvc', description: 'd', bindable: true, plans: [{ id: 'xp', name: 'xp', description: 'd' }] }] } });
    try {
      await register('temp-broker', second.url);
      const b = (await t.admin.get('/v3/service_brokers?names=temp-broker')).body.resources[0];
      second.options.catalog = { services: [{ id: 'x1', name: 'xsvc-renamed', description: 'd', bindable: true, plans: [{ id: 'xp', name: 'xp', description: 'd' }] }] };
      const upd = await t.admin.patch(`/v3/service_brokers/${b.guid}`, { url: second.url });
      expect(upd.status).toBe(202);
      expect((await t.awaitJob(upd.headers.get('location'))).state).toBe('COMPLETE');
      expect((await t.admin.get('/v3/service_offerings?names=xsvc-renamed')).body.resources).toHaveLength(1);

      const meta = await t.admin.patch(`/v3/service_brokers/${b.guid}`, { metadata: { labels: { a: 'b' } } });
      expect(meta.status).toBe(200);
      expect(meta.body.metadata.labels).toEqual({ a: 'b' });

      const del = await t.admin.delete(`/v3/service_brokers/${b.guid}`);
      expect(del.status).toBe(202);
      expect((await t.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
      expect((await t.admin.get('/v3/service_offerings?names=xsvc-renamed')).body.resources).toHaveLength(0);
      expect((await t.admin.get(`/v3/service_brokers/${b.guid}`)).status).toBe(404);
    } finally {
      await second.close();
    }
  });

  it('the fixture ids stay stable', () => {
    expect(PLAN_IDS.small).toBe('plan-small');
  });
});

describe('the marketplace without a token', () => {
  it('shows public plans only, unless hide_marketplace_from_unauthenticated_users is on', async () => {
    const plans = await t.anonymous.get('/v3/service_plans');
    expect(plans.status).toBe(200);
    expect(plans.body.resources.map((p: any) => p.visibility_type)).toEqual(plans.body.resources.map(() => 'public'));
    expect(plans.body.resources.length).toBeGreaterThan(0);
    const offerings = await t.anonymous.get('/v3/service_offerings');
    expect(offerings.body.resources.map((o: any) => o.name)).toEqual(['fixture-db']);
    expect((await t.anonymous.get('/v3/service_brokers')).status).toBe(401);
    await t.admin.patch('/v3/feature_flags/hide_marketplace_from_unauthenticated_users', { enabled: true });
    expect((await t.anonymous.get('/v3/service_plans')).status).toBe(401);
    await t.admin.patch('/v3/feature_flags/hide_marketplace_from_unauthenticated_users', { enabled: false });
  });
});

describe('space-scoped brokers', () => {
  it('are registered by a space developer, and their plans are seen in that space only', async () => {
    const org = await t.org('scoped-org');
    const mine = await t.space('scoped-mine', org.guid);
    const other = await t.space('scoped-other', org.guid);
    const dev = await t.spaceMember('space_developer', mine);
    const stranger = await t.spaceMember('space_developer', other);
    const own = await startFixtureBroker({ catalog: { services: [{ id: 'sp', name: 'scoped-svc', description: 'd', bindable: true, plans: [{ id: 'sp1', name: 'only', description: 'd' }] }] } });
    try {
      const res = await dev.post('/v3/service_brokers', { ...brokerBody('scoped', own.url), relationships: { space: { data: { guid: mine.guid } } } });
      expect(res.status, res.text).toBe(202);
      expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
      const b = (await dev.get('/v3/service_brokers?names=scoped')).body.resources[0];
      expect(b.relationships).toEqual({ space: { data: { guid: mine.guid } } });
      const plans = await dev.get(`/v3/service_plans?available=true&space_guids=${mine.guid}&service_broker_names=scoped`);
      expect(plans.body.resources.map((p: any) => [p.name, p.visibility_type])).toEqual([['only', 'space']]);
      expect((await stranger.get('/v3/service_plans?service_broker_names=scoped')).body.resources).toHaveLength(0);
      expect((await stranger.get('/v3/service_brokers?names=scoped')).body.resources).toHaveLength(0);
      const vis = await t.admin.get(`/v3/service_plans/${plans.body.resources[0].guid}/visibility`);
      expect(vis.body).toEqual({ type: 'space', space: { guid: mine.guid, name: 'scoped-mine' } });
      const wrong = await stranger.post('/v3/service_instances', { type: 'managed', name: 'x', relationships: { space: { data: { guid: other.guid } }, service_plan: { data: { guid: plans.body.resources[0].guid } } } });
      expect(wrong.status).toBe(422);
    } finally {
      await own.close();
    }
  });
});
