import { expect } from 'vitest';
import type { ApiResponse, Client, TestKiln } from '../../helpers/harness.ts';
import { postMultipart, zipOf } from '../../api/bits-helpers.ts';
import { PLAN_IDS, startFixtureBroker } from '../../fixtures/broker/broker.ts';

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
  /** Platform-wide resources (not any tenant's), for the operations that take one. */
  globals: { buildpack: string };
  /** Every guid of org A: none of them may appear in anything mallory reads. */
  secretsOfA: string[];
}

/** Controllers that would act on the fixtures behind the test's back (jobs stay, so deletes can complete). */
export const QUIET_CONTROLLERS = ['builds', 'blob-collector', 'buildpack-cache-collector', 'processes', 'deployments', 'tasks', 'droplet-cache', 'routing'];

function ok(res: ApiResponse, what: string, status = [200, 201, 202]): any {
  expect(status, `${what}: ${res.status} ${res.text.slice(0, 300)}`).toContain(res.status);
  return res.body;
}

/** One tenant: an org with a space and one of every resource kind in it, owned by it or bound to it only. */
async function tenant(t: TestKiln, name: string): Promise<Tenant> {
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
  await services(t, name, g);
  return { guids: g };
}

/**
 * The tenant's services: a broker scoped to its space (so its offerings and plans are the tenant's too), a managed
 * instance, an app binding, a route service bound to its route, and a usage event of the instance.
 */
async function services(t: TestKiln, name: string, g: Record<string, string>): Promise<void> {
  const admin = t.admin;
  const broker = await startFixtureBroker({ unref: true });
  const reg = await admin.post('/v3/service_brokers', {
    name: `${name}-broker`,
    url: broker.url,
    authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
    relationships: { space: { data: { guid: g.space } } },
  });
  ok(reg, 'service broker');
  expect((await t.awaitJob(reg.headers.get('location'))).state).toBe('COMPLETE');
  g.service_broker = ok(await admin.get(`/v3/service_brokers?names=${name}-broker`), 'broker').resources[0].guid;
  const plans = ok(await admin.get(`/v3/service_plans?service_broker_guids=${g.service_broker}&per_page=100`), 'plans').resources;
  const plan = (catalogId: string) => plans.find((p: { broker_catalog: { id: string } }) => p.broker_catalog.id === catalogId);
  g.service_plan = plan(PLAN_IDS.small).guid as string;
  g.service_offering = plan(PLAN_IDS.small).relationships.service_offering.data.guid;
  const instance = async (instanceName: string, planGuid: string) => {
    const res = await admin.post('/v3/service_instances', {
      type: 'managed',
      name: instanceName,
      relationships: { space: { data: { guid: g.space } }, service_plan: { data: { guid: planGuid } } },
    });
    ok(res, instanceName);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    return ok(await admin.get(`/v3/service_instances?names=${instanceName}&space_guids=${g.space}`), instanceName).resources[0].guid as string;
  };
  g.service_instance = await instance(`${name}-db`, g.service_plan);
  const bind = await admin.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: { data: { guid: g.service_instance } }, app: { data: { guid: g.app } } } });
  ok(bind, 'binding');
  expect((await t.awaitJob(bind.headers.get('location'))).state).toBe('COMPLETE');
  g.service_credential_binding = ok(await admin.get(`/v3/service_credential_bindings?app_guids=${g.app}`), 'binding').resources[0].guid;
  const proxy = await instance(`${name}-proxy`, plan(PLAN_IDS.route).guid);
  const rb = await admin.post('/v3/service_route_bindings', { relationships: { service_instance: { data: { guid: proxy } }, route: { data: { guid: g.route } } } });
  ok(rb, 'route binding');
  if (rb.status === 202) expect((await t.awaitJob(rb.headers.get('location'))).state).toBe('COMPLETE');
  g.service_route_binding = ok(await admin.get(`/v3/service_route_bindings?route_guids=${g.route}`), 'route binding').resources[0].guid;
  const events = ok(await admin.get('/v3/service_usage_events?per_page=5000'), 'usage events').resources;
  g.service_usage_event = events.find((e: { service_instance: { guid: string } }) => e.service_instance.guid === g.service_instance).guid;
}

export async function buildWorld(t: TestKiln): Promise<World> {
  // Route sharing is off by default and its flag is checked before anything is looked up; on, the sharing
  // operations reach their visibility checks.
  ok(await t.admin.patch('/v3/feature_flags/route_sharing', { enabled: true }), 'route_sharing on');
  const a = await tenant(t, 'tenant-a');
  const b = await tenant(t, 'tenant-b');
  const mallory = await t.user('mallory');
  for (const type of ['organization_user', 'organization_manager', 'organization_auditor', 'organization_billing_manager']) {
    await t.grant(mallory, type, { org: b.guids.org! });
  }
  for (const type of ['space_developer', 'space_manager', 'space_auditor', 'space_supporter']) await t.grant(mallory, type, { space: b.guids.space! });
  // Global things both tenants use (the stack) are not secrets of A.
  // Org quotas are platform-wide definitions and jobs are readable by guid by anyone (CONVENTIONS.md §10).
  const shared = new Set([a.guids.stack, a.guids.org_quota, a.guids.job]);
  const secretsOfA = Object.values(a.guids).filter((v): v is string => typeof v === 'string' && !shared.has(v));
  const buildpack = ok(await t.admin.post('/v3/buildpacks', { name: 'abuse_buildpack' }), 'buildpack').guid;
  return { a, b, mallory, globals: { buildpack }, secretsOfA };
}
