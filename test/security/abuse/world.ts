import { expect } from 'vitest';
import type { ApiResponse, Client, TestKiln } from '../../helpers/harness.ts';
import { postMultipart, zipOf } from '../../api/bits-helpers.ts';
import { PLAN_IDS, startFixtureBroker, type FixtureBroker } from '../../fixtures/broker/broker.ts';

/**
 * Two tenants built through the API as admin. Org A holds one of every tenant-owned resource Kiln serves; org B is
 * where the attacker (`mallory`) holds every org and space role, so any leak of A to B is a leak to someone with
 * real standing in the platform, not an anonymous caller.
 */
export interface Tenant {
  /** Resource guids (or names) by kind: `org`, `space`, `app`, … (see `kindOf` in operations.ts). */
  guids: Record<string, string>;
}

export interface World {
  a: Tenant;
  b: Tenant;
  mallory: Client;
  /**
   * Platform-wide resources (not any tenant's), for the operations that take one; `planOfA` is the platform
   * broker's plan enabled for org A alone (a plan whose visibility an admin may change, unlike a space-scoped one).
   */
  globals: { buildpack: string; planOfA: string };
  /** Every guid of org A: none of them may appear in anything mallory reads. */
  secretsOfA: string[];
  /**
   * Other resources of A's of a kind the cross-tenant suite already walks with `a.guids`, each also put in every
   * placeholder of its kind: the user-provided instance, the key and the user-provided binding, and the global
   * broker's offering and plan that only org A may see.
   */
  variantsOfA: Array<Record<string, string>>;
  /**
   * What A shares with B, which mallory may see: a platform broker whose plan is enabled for both orgs (`plan`),
   * and an instance of it in A's second space (`instance`; that space's guid is its relationship, which CC shows
   * wherever it is shared), shared into A's space and into B's space, with an app binding of A's app (`binding`).
   */
  sharedWithB: { plan: string; offering: string; instance: string; binding: string };
  /** Stops the fixture broker (after the test's Kiln). */
  close(): Promise<void>;
}

/** Controllers that would act on the fixtures behind the test's back (jobs stay, so deletes can complete). */
export const QUIET_CONTROLLERS = ['builds', 'blob-collector', 'buildpack-cache-collector', 'processes', 'deployments', 'tasks', 'droplet-cache', 'routing'];

function ok(res: ApiResponse, what: string, status = [200, 201, 202]): any {
  expect(status, `${what}: ${res.status} ${res.text.slice(0, 300)}`).toContain(res.status);
  return res.body;
}

/** One tenant: an org with a space and one of every resource kind in it, owned by it or bound to it only. */
async function tenant(t: TestKiln, name: string, broker: FixtureBroker): Promise<Tenant> {
  const admin = t.admin;
  const g: Record<string, string> = {};
  const org = await t.org(`${name}-org`);
  g.org = org.guid;
  // Tasks and deployments stay where the API put them and count against the quota; no bootstrap limit may refuse them.
  g.org_quota = ok(await admin.post('/v3/organization_quotas', { name: `org-quota-${name.slice(-1)}`, relationships: { organizations: { data: [{ guid: org.guid }] } } }), 'org quota').guid;
  const space = await t.space(`${name}-space`, org.guid);
  g.space = space.guid;
  g.space_quota = ok(
    await admin.post('/v3/space_quotas', {
      name: `${name}-space-quota`,
      relationships: { organization: { data: { guid: org.guid } }, spaces: { data: [{ guid: space.guid }] } },
    }),
    'space quota',
  ).guid;
  g.domain = ok(await admin.post('/v3/domains', { name: `${name}.example.org`, relationships: { organization: { data: { guid: org.guid } } } }), 'domain').guid;
  const app = ok(await admin.post('/v3/apps', { name: `${name}-app`, relationships: { space: { data: { guid: space.guid } } } }), 'app');
  g.app = app.guid;
  ok(await admin.patch(`/v3/apps/${app.guid}/features/revisions`, { enabled: true }), 'revisions on');
  g.process = ok(await admin.get(`/v3/apps/${app.guid}/processes/web`), 'web process').guid;
  const pkg = ok(await admin.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: app.guid } } } }), 'package');
  g.package = pkg.guid;
  const upload = await postMultipart(t, admin, `/v3/packages/${pkg.guid}/upload`, {
    resources: [],
    bits: await zipOf([{ type: 'file', name: 'Procfile', content: 'web: ./run.sh\n' }]),
  });
  expect(upload.body.state, upload.text).toBe('READY');
  g.build = ok(await admin.post('/v3/builds', { package: { guid: pkg.guid } }), 'build').guid;
  g.droplet = await t.droplet(app.guid, { web: './run.sh', worker: './run.sh work' });
  ok(await admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: g.droplet } }), 'current droplet');
  g.sidecar = ok(await admin.post(`/v3/apps/${app.guid}/sidecars`, { name: `${name}-sidecar`, command: 'sleep 1000', process_types: ['web'] }), 'sidecar').guid;
  g.task = ok(await admin.post(`/v3/apps/${app.guid}/tasks`, { command: 'echo hi' }), 'task').guid;
  const deployment = ok(await admin.post('/v3/deployments', { relationships: { app: { data: { guid: app.guid } } } }), 'deployment');
  g.deployment = deployment.guid;
  g.revision = deployment.revision?.guid;
  // The deployment started the app: its processes' STARTED events are A's app usage events.
  const appEvents = ok(await admin.get('/v3/app_usage_events?per_page=5000'), 'app usage events').resources;
  g.app_usage_event = appEvents.find((e: { app: { guid: string } }) => e.app.guid === app.guid).guid;
  const route = ok(
    await admin.post('/v3/routes', { host: `${name}-host`, relationships: { domain: { data: { guid: g.domain } }, space: { data: { guid: space.guid } } } }),
    'route',
  );
  g.route = route.guid;
  const dest = ok(await admin.post(`/v3/routes/${route.guid}/destinations`, { destinations: [{ app: { guid: app.guid } }] }), 'destination');
  g.destination = dest.destinations[0].guid;
  const member = await t.user(`${name}-member`);
  g.user = member.userGuid!;
  g.role = ok(await admin.post('/v3/roles', { type: 'organization_auditor', relationships: { user: { data: { guid: member.userGuid } }, organization: { data: { guid: org.guid } } } }), 'role').guid;
  const sg = ok(
    await admin.post('/v3/security_groups', {
      name: `${name}-sg`,
      rules: [{ protocol: 'tcp', destination: '10.0.0.0/8', ports: '443' }],
      relationships: { running_spaces: { data: [{ guid: space.guid }] }, staging_spaces: { data: [{ guid: space.guid }] } },
    }),
    'security group',
  );
  g.security_group = sg.guid;
  const iso = ok(await admin.post('/v3/isolation_segments', { name: `${name}-iso` }), 'isolation segment');
  g.isolation_segment = iso.guid;
  ok(await admin.post(`/v3/isolation_segments/${iso.guid}/relationships/organizations`, { data: [{ guid: org.guid }] }), 'entitle');
  // A job of the tenant: deleting a second package answers 202 with one.
  const spare = ok(await admin.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: app.guid } } } }), 'spare package');
  const del = await admin.delete(`/v3/packages/${spare.guid}`);
  g.job = del.headers.get('location')!.split('/').pop()!;
  await t.awaitJob(del.headers.get('location'));
  const events = ok(await admin.get(`/v3/audit_events?target_guids=${app.guid}`), 'audit events');
  g.audit_event = events.resources[0].guid;
  g.stack = ok(await admin.get('/v3/stacks'), 'stacks').resources[0].guid;
  await services(t, name, g, broker);
  return { guids: g };
}

/** Waits for the job a 202 names and asks it to have completed. */
async function completed(t: TestKiln, res: ApiResponse, what: string): Promise<void> {
  ok(res, what, [202]);
  const job = await t.awaitJob(res.headers.get('location'));
  expect(job.state, `${what}: ${JSON.stringify(job.errors)}`).toBe('COMPLETE');
}

/**
 * The tenant's services: a broker scoped to its space (its plans are seen in that space only), a managed and a
 * user-provided instance, an app binding, a key and a user-provided binding, a route service instance bound to
 * the tenant's route, a usage event of the managed instance, and a second space of the org (see `sharedWithB`).
 */
async function services(t: TestKiln, name: string, g: Record<string, string>, broker: FixtureBroker): Promise<void> {
  const admin = t.admin;
  const rel = (guid: string) => ({ data: { guid } });
  await completed(
    t,
    await admin.post('/v3/service_brokers', {
      name: `${name}-broker`,
      url: broker.url,
      authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
      relationships: { space: rel(g.space!) },
    }),
    'space-scoped broker',
  );
  g.service_broker = ok(await admin.get(`/v3/service_brokers?names=${name}-broker`), 'broker').resources[0].guid;
  const plans = ok(await admin.get(`/v3/service_plans?service_broker_guids=${g.service_broker}&per_page=100`), 'plans').resources as any[];
  const plan = (id: string) => plans.find((p) => p.broker_catalog.id === id)!;
  const small: string = plan(PLAN_IDS.small).guid;
  g.service_plan = small;
  g.service_offering = plan(PLAN_IDS.small).relationships.service_offering.data.guid;
  const managed = async (instance: string, planGuid: string) => {
    await completed(
      t,
      await admin.post('/v3/service_instances', { type: 'managed', name: instance, relationships: { space: rel(g.space!), service_plan: rel(planGuid) } }),
      `managed instance ${instance}`,
    );
    return ok(await admin.get(`/v3/service_instances?names=${instance}&space_guids=${g.space}`), instance).resources[0].guid as string;
  };
  const instance = await managed(`${name}-db`, small);
  g.service_instance = instance;
  const ups: string = ok(
    await admin.post('/v3/service_instances', { type: 'user-provided', name: `${name}-ups`, relationships: { space: rel(g.space!) }, credentials: { password: `${name}-pw` } }),
    'user-provided instance',
  ).guid;
  g.user_provided_instance = ups;
  const binding = async (body: Record<string, unknown>, what: string) => {
    const res = await admin.post('/v3/service_credential_bindings', body);
    if (res.status === 201) return res.body.guid as string;
    await completed(t, res, what);
    const rels = body.relationships as Record<string, { data: { guid: string } }>;
    const q = `service_instance_guids=${rels.service_instance!.data.guid}&type=${body.type}${rels.app ? `&app_guids=${rels.app.data.guid}` : ''}`;
    return ok(await admin.get(`/v3/service_credential_bindings?${q}`), what).resources[0].guid as string;
  };
  g.service_credential_binding = await binding({ type: 'app', relationships: { service_instance: rel(instance), app: rel(g.app!) } }, 'app binding');
  g.service_key = await binding({ type: 'key', name: `${name}-key`, relationships: { service_instance: rel(instance) } }, 'key');
  g.user_provided_binding = await binding({ type: 'app', relationships: { service_instance: rel(ups), app: rel(g.app!) } }, 'user-provided binding');
  const proxy = await managed(`${name}-proxy`, plan(PLAN_IDS.route).guid);
  g.route_service_instance = proxy;
  const routeBinding = await admin.post('/v3/service_route_bindings', { relationships: { route: rel(g.route!), service_instance: rel(proxy) } });
  await completed(t, routeBinding, 'route binding');
  g.service_route_binding = ok(await admin.get(`/v3/service_route_bindings?route_guids=${g.route}`), 'route binding').resources[0].guid;
  g.shared_space = (await t.space(`${name}-shared-space`, g.org!)).guid;
  const events = ok(await admin.get('/v3/service_usage_events?per_page=5000'), 'usage events').resources as any[];
  g.service_usage_event = events.find((e) => e.service_instance.guid === instance).guid;
}

/** See `World.sharedWithB`. */
async function sharedWithB(t: TestKiln, broker: FixtureBroker, a: Record<string, string>, b: Record<string, string>): Promise<World['sharedWithB']> {
  const admin = t.admin;
  const rel = (guid: string) => ({ data: { guid } });
  await completed(
    t,
    await admin.post('/v3/service_brokers', {
      name: 'abuse-shared-broker',
      url: broker.url,
      authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
    }),
    'shared broker',
  );
  const guid = ok(await admin.get('/v3/service_brokers?names=abuse-shared-broker'), 'shared broker').resources[0].guid as string;
  const plans = ok(await admin.get(`/v3/service_plans?service_broker_guids=${guid}&per_page=100`), 'shared plans').resources as any[];
  const small = plans.find((p) => p.broker_catalog.id === PLAN_IDS.small)!;
  const plan: string = small.guid;
  ok(await admin.post(`/v3/service_plans/${plan}/visibility`, { type: 'organization', organizations: [{ guid: a.org }, { guid: b.org }] }), 'enable for A and B');
  await completed(
    t,
    await admin.post('/v3/service_instances', { type: 'managed', name: 'abuse-shared-db', relationships: { space: rel(a.shared_space!), service_plan: rel(plan) } }),
    'shared instance',
  );
  const instance = ok(await admin.get(`/v3/service_instances?names=abuse-shared-db&space_guids=${a.shared_space}`), 'shared instance').resources[0].guid as string;
  ok(await admin.post(`/v3/service_instances/${instance}/relationships/shared_spaces`, { data: [{ guid: a.space }, { guid: b.space }] }), 'share');
  await completed(t, await admin.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(instance), app: rel(a.app!) } }), 'shared binding');
  const binding = ok(await admin.get(`/v3/service_credential_bindings?service_instance_guids=${instance}&app_guids=${a.app}`), 'shared binding').resources[0].guid as string;
  return { plan, offering: small.relationships.service_offering.data.guid, instance, binding };
}

/**
 * A broker registered for the whole platform whose `small` plan is enabled for org A alone (its other plans stay
 * admin-only, as a new broker's do): its broker, offering and plan are A's as far as anyone in B can tell.
 */
async function globalBrokerOfA(t: TestKiln, broker: FixtureBroker, orgOfA: string): Promise<Record<string, string>> {
  const admin = t.admin;
  await completed(
    t,
    await admin.post('/v3/service_brokers', {
      name: 'abuse-global-broker',
      url: broker.url,
      authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
    }),
    'global broker',
  );
  const guid = ok(await admin.get('/v3/service_brokers?names=abuse-global-broker'), 'global broker').resources[0].guid as string;
  const plans = ok(await admin.get(`/v3/service_plans?service_broker_guids=${guid}&per_page=100`), 'global plans').resources as any[];
  const small = plans.find((p) => p.broker_catalog.id === PLAN_IDS.small)!;
  ok(await admin.post(`/v3/service_plans/${small.guid}/visibility`, { type: 'organization', organizations: [{ guid: orgOfA }] }), 'enable for A');
  return { service_broker: guid, service_offering: small.relationships.service_offering.data.guid, service_plan: small.guid };
}

export async function buildWorld(t: TestKiln): Promise<World> {
  // Route sharing is off by default and its flag is checked before anything is looked up; on, the sharing
  // operations reach their visibility checks.
  ok(await t.admin.patch('/v3/feature_flags/route_sharing', { enabled: true }), 'route_sharing on');
  // Service instance sharing likewise (off by default, CC checks it first).
  ok(await t.admin.patch('/v3/feature_flags/service_instance_sharing', { enabled: true }), 'service_instance_sharing on');
  const broker = await startFixtureBroker({ unref: true });
  const a = await tenant(t, 'tenant-a', broker);
  const b = await tenant(t, 'tenant-b', broker);
  const globalOfA = await globalBrokerOfA(t, broker, a.guids.org!);
  const withB = await sharedWithB(t, broker, a.guids, b.guids);
  const mallory = await t.user('mallory');
  for (const type of ['organization_user', 'organization_manager', 'organization_auditor', 'organization_billing_manager']) {
    await t.grant(mallory, type, { org: b.guids.org! });
  }
  for (const type of ['space_developer', 'space_manager', 'space_auditor', 'space_supporter']) await t.grant(mallory, type, { space: b.guids.space! });
  // Global things both tenants use (the stack) are not secrets of A.
  // Org quotas are platform-wide definitions and jobs are readable by guid by anyone (CONVENTIONS.md §10).
  // The space A shares an instance from is that instance's relationship, which B sees (`sharedWithB`).
  const shared = new Set([a.guids.stack, a.guids.org_quota, a.guids.job, a.guids.shared_space]);
  // The shared instance and plan are B's to see; the binding of A's app to the instance is not.
  const secretsOfA = [...Object.values(a.guids), ...Object.values(globalOfA), withB.binding].filter((v): v is string => typeof v === 'string' && !shared.has(v));
  const buildpack = ok(await t.admin.post('/v3/buildpacks', { name: 'abuse_buildpack' }), 'buildpack').guid;
  const g = a.guids;
  const variantsOfA = [
    { service_instance: g.user_provided_instance!, service_credential_binding: g.service_key! },
    { service_instance: g.route_service_instance!, service_credential_binding: g.user_provided_binding! },
    globalOfA,
  ];
  return { a, b, mallory, globals: { buildpack, planOfA: globalOfA.service_plan! }, secretsOfA, variantsOfA, sharedWithB: withB, close: () => broker.close() };
}
