import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';
import { PLAN_IDS, startFixtureBroker, type FixtureBroker } from '../fixtures/broker/broker.ts';

/**
 * What the cross-tenant suite (abuse-cross-tenant.test.ts) found in the service endpoints, replayed with the
 * smallest fixtures: a user with roles in one org names another org's resources and gets exactly what a guid that
 * exists nowhere gets.
 */
let t: TestKiln;
let broker: FixtureBroker;
let dev: Client;
let own: { space: string };
let other: { space: string; route: string; plan: string };
const rel = (guid: string) => ({ data: { guid } });
const GHOST = '6c1c2b3e-0000-4000-8000-000000000001';
/** A plan of a platform broker, public. */
let sharedPlan: string;

beforeAll(async () => {
  t = await createTestKiln();
  const orgA = await t.org('svc-regress-a');
  const spaceA = await t.space('svc-regress-a-space', orgA.guid);
  const domainA = (await t.admin.post('/v3/domains', { name: 'svc-regress-a.example.org', relationships: { organization: rel(orgA.guid) } })).body;
  const routeA = (await t.admin.post('/v3/routes', { host: 'secret', relationships: { domain: rel(domainA.guid), space: rel(spaceA.guid) } })).body;
  // A broker scoped to org A's space: its plans are seen in that space only.
  broker = await startFixtureBroker();
  const reg = await t.admin.post('/v3/service_brokers', {
    name: 'svc-regress-a-broker',
    url: broker.url,
    authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
    relationships: { space: rel(spaceA.guid) },
  });
  expect((await t.awaitJob(reg.headers.get('location'))).state).toBe('COMPLETE');
  const plans = (await t.admin.get('/v3/service_plans?per_page=100')).body.resources as any[];
  other = { space: spaceA.guid, route: routeA.guid, plan: plans.find((p) => p.broker_catalog.id === PLAN_IDS.small).guid };
  const global = await t.admin.post('/v3/service_brokers', {
    name: 'svc-regress-global',
    url: broker.url,
    authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
  });
  expect((await t.awaitJob(global.headers.get('location'))).state).toBe('COMPLETE');
  const brokerGuid = (await t.admin.get('/v3/service_brokers?names=svc-regress-global')).body.resources[0].guid;
  const globalPlans = (await t.admin.get(`/v3/service_plans?service_broker_guids=${brokerGuid}&per_page=100`)).body.resources as any[];
  sharedPlan = globalPlans.find((p) => p.broker_catalog.id === PLAN_IDS.small).guid;
  expect((await t.admin.patch(`/v3/service_plans/${sharedPlan}/visibility`, { type: 'public' })).status).toBe(200);
  const orgB = await t.org('svc-regress-b');
  const spaceB = await t.space('svc-regress-b-space', orgB.guid);
  own = { space: spaceB.guid };
  dev = await t.spaceMember('space_developer', spaceB);
});
afterAll(async () => {
  await t.close();
  await broker?.close();
});

describe("another org's resources in a service request body", () => {
  it("a route binding to another org's route is refused as for a route that does not exist (not 403)", async () => {
    const ups = await dev.post('/v3/service_instances', {
      type: 'user-provided',
      name: 'proxy',
      route_service_url: 'https://proxy.example.org',
      relationships: { space: rel(own.space) },
    });
    expect(ups.status, ups.text).toBe(201);
    const theirs = await dev.post('/v3/service_route_bindings', { relationships: { service_instance: rel(ups.body.guid), route: rel(other.route) } });
    const ghost = await dev.post('/v3/service_route_bindings', { relationships: { service_instance: rel(ups.body.guid), route: rel(GHOST) } });
    expect(theirs.status, theirs.text).toBe(422);
    expect(theirs.body.errors[0].detail).toBe(`The route could not be found: '${other.route}'.`);
    expect(ghost.body.errors[0].detail).toBe(`The route could not be found: '${GHOST}'.`);
    expect((await t.admin.get(`/v3/service_route_bindings?route_guids=${other.route}`)).body.resources).toEqual([]);
  });

  it("a managed instance with another space's broker's plan is refused as for a plan that does not exist, without its name", async () => {
    const body = (plan: string) => ({ type: 'managed', name: 'borrowed', relationships: { space: rel(own.space), service_plan: rel(plan) } });
    const theirs = await dev.post('/v3/service_instances', body(other.plan));
    const ghost = await dev.post('/v3/service_instances', body(GHOST));
    expect(theirs.status, theirs.text).toBe(422);
    expect(theirs.body.errors).toEqual(ghost.body.errors);
    expect(theirs.body.errors[0].detail).toBe('Invalid service plan. Ensure that the service plan exists, is available, and you have access to it.');
    // An admin, who sees the plan, is told why it cannot be used in this space (CC's wording).
    const admin = await t.admin.post('/v3/service_instances', body(other.plan));
    expect(admin.status).toBe(422);
    expect(admin.body.errors[0].detail).toContain(`offering the service plan 'small' with guid '${other.plan}' in another space`);
  });
});

describe('an instance shared into another org', () => {
  it('shows that org where else it is shared, or how it is used there, no more than an instance that does not exist', async () => {
    expect((await t.admin.patch('/v3/feature_flags/service_instance_sharing', { enabled: true })).status).toBe(200);
    // Org A's instance, shared into org A's second space and into the developer's space of org B.
    const second = await t.space('svc-regress-a-second', (await t.admin.get(`/v3/spaces/${other.space}`)).body.relationships.organization.data.guid);
    const created = await t.admin.post('/v3/service_instances', {
      type: 'managed',
      name: 'shared-db',
      relationships: { space: rel(other.space), service_plan: rel(sharedPlan) },
    });
    expect((await t.awaitJob(created.headers.get('location'))).state).toBe('COMPLETE');
    const inst = (await t.admin.get('/v3/service_instances?names=shared-db')).body.resources[0].guid;
    const share = await t.admin.post(`/v3/service_instances/${inst}/relationships/shared_spaces`, { data: [{ guid: second.guid }, { guid: own.space }] });
    expect(share.status, share.text).toBe(200);
    expect((await dev.get(`/v3/service_instances/${inst}`)).status).toBe(200);
    for (const tail of ['relationships/shared_spaces', 'relationships/shared_spaces/usage_summary']) {
      const theirs = await dev.get(`/v3/service_instances/${inst}/${tail}`);
      const ghost = await dev.get(`/v3/service_instances/${GHOST}/${tail}`);
      expect(theirs.status, theirs.text).toBe(404);
      expect(theirs.body).toEqual(ghost.body);
      expect(theirs.text).not.toContain(second.guid);
    }
    // Org A's own users still see both.
    expect((await t.admin.get(`/v3/service_instances/${inst}/relationships/shared_spaces`)).body.data).toHaveLength(2);
  });
});

describe('sharing', () => {
  it('does not carry a plan into a space where it is not enabled, even for a user with roles in both orgs', async () => {
    expect((await t.admin.patch('/v3/feature_flags/service_instance_sharing', { enabled: true })).status).toBe(200);
    const both = await t.spaceMember('space_developer', (await t.admin.get(`/v3/spaces/${other.space}`)).body);
    await t.grant(both, 'space_developer', { space: own.space });
    // An instance of org A's space-scoped broker's plan, in org A's space.
    const created = await both.post('/v3/service_instances', { type: 'managed', name: 'scoped-db', relationships: { space: rel(other.space), service_plan: rel(other.plan) } });
    expect(created.status, created.text).toBe(202);
    expect((await t.awaitJob(created.headers.get('location'))).state).toBe('COMPLETE');
    const inst = (await both.get(`/v3/service_instances?names=scoped-db&space_guids=${other.space}`)).body.resources[0].guid;
    const res = await both.post(`/v3/service_instances/${inst}/relationships/shared_spaces`, { data: [{ guid: own.space }] });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors[0].detail).toBe('Access to service fixture-db and plan small is not enabled in svc-regress-b/svc-regress-b-space.');
    expect((await both.get(`/v3/service_instances/${inst}/relationships/shared_spaces`)).body.data).toEqual([]);
  });
});

describe('deleting the space an instance is shared into', () => {
  it("takes the share and that org's bindings, and leaves the instance, its own bindings and its broker's instance alone", async () => {
    expect((await t.admin.patch('/v3/feature_flags/service_instance_sharing', { enabled: true })).status).toBe(200);
    const appA = (await t.admin.post('/v3/apps', { name: 'a-app', relationships: { space: rel(other.space) } })).body;
    const created = await t.admin.post('/v3/service_instances', { type: 'managed', name: 'survivor', relationships: { space: rel(other.space), service_plan: rel(sharedPlan) } });
    expect((await t.awaitJob(created.headers.get('location'))).state).toBe('COMPLETE');
    const inst = (await t.admin.get(`/v3/service_instances?names=survivor&space_guids=${other.space}`)).body.resources[0].guid;
    // A third org, shared into, where its manager binds an app of theirs, then deletes the space.
    const orgC = await t.org('svc-regress-c');
    const spaceC = await t.space('svc-regress-c-space', orgC.guid);
    const manager = await t.user();
    await t.grant(manager, 'organization_manager', { org: orgC.guid });
    await t.grant(manager, 'space_developer', { space: spaceC.guid });
    expect((await t.admin.post(`/v3/service_instances/${inst}/relationships/shared_spaces`, { data: [{ guid: spaceC.guid }] })).status).toBe(200);
    const appC = (await manager.post('/v3/apps', { name: 'c-app', relationships: { space: rel(spaceC.guid) } })).body;
    for (const app of [appA.guid, appC.guid]) {
      const bound = await t.admin.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(inst), app: rel(app) } });
      expect((await t.awaitJob(bound.headers.get('location'))).state).toBe('COMPLETE');
    }
    const del = await manager.delete(`/v3/spaces/${spaceC.guid}`);
    expect(del.status, del.text).toBe(202);
    expect((await t.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
    expect((await t.admin.get(`/v3/service_instances/${inst}`)).status).toBe(200);
    expect(broker.instances.has(inst)).toBe(true);
    const left = (await t.admin.get(`/v3/service_credential_bindings?service_instance_guids=${inst}`)).body.resources.map((b: any) => b.relationships.app.data.guid);
    expect(left).toEqual([appA.guid]);
    expect((await t.admin.get(`/v3/service_instances/${inst}/relationships/shared_spaces`)).body.data).toEqual([]);
  });
});
