import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { routePolicyClient, routePolicyProblems } from '../helpers/route-policy-schema.ts';

/**
 * Route policies (issue 12 item 17), written from CC's spec/request/route_policies_spec.rb and
 * route_policies_controller.rb: the five operations, their validations, and who may do what.
 */

let t: TestKiln;
let org: any;
let space: any;
let mtlsDomain: any;
let mtlsRoute: any;
let otherMtlsRoute: any;
let regularRoute: any;
let internalRoute: any;
const users: Record<string, Client> = {};
const uuid = 'abcdef12-2222-3333-4444-55555555beef';
const detail = (res: { body: any }) => res.body.errors?.[0]?.detail as string;

const ROLES_SPACE = ['space_developer', 'space_manager', 'space_auditor', 'space_supporter'];

async function route(domainGuid: string, host: string) {
  const res = await t.admin.post('/v3/routes', { host, relationships: { domain: { data: { guid: domainGuid } }, space: { data: { guid: space.guid } } } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

async function domain(body: Record<string, unknown>) {
  const res = await t.admin.post('/v3/domains', body);
  expect(res.status, res.text).toBe(201);
  return res.body;
}

const rp = (client: Client) => routePolicyClient(client);
const policyBody = (source: string, routeGuid = mtlsRoute.guid) => ({ source, relationships: { route: { data: { guid: routeGuid } } } });

beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('rp-org');
  space = await t.space('rp-space', org.guid);
  mtlsDomain = await domain({ name: 'mtls.example.com', enforce_route_policies: true, relationships: { organization: { data: { guid: org.guid } } } });
  const regular = await domain({ name: 'plain.example.com', relationships: { organization: { data: { guid: org.guid } } } });
  const internal = await domain({ name: 'apps.internal.example', internal: true });
  mtlsRoute = await route(mtlsDomain.guid, 'backend');
  otherMtlsRoute = await route(mtlsDomain.guid, 'other');
  regularRoute = await route(regular.guid, 'plain');
  internalRoute = await route(internal.guid, 'inside');
  for (const role of ROLES_SPACE) users[role] = await t.spaceMember(role, space);
  for (const role of ['organization_manager', 'organization_auditor', 'organization_billing_manager']) {
    users[role] = await t.user();
    await t.grant(users[role], role, { org: org.guid });
  }
  users.no_role = await t.user();
  users.admin_read_only = await t.user(undefined, ['cloud_controller.admin_read_only']);
  users.global_auditor = await t.user(undefined, ['cloud_controller.global_auditor']);
});
afterAll(() => t.close());

describe('domains with enforce_route_policies', () => {
  it('shows enforce_route_policies on a domain that enforces them and false by default', async () => {
    expect(mtlsDomain.enforce_route_policies).toBe(true);
    const plain = await t.admin.get(`/v3/domains/${regularRoute.relationships.domain.data.guid}`);
    expect(plain.body.enforce_route_policies).toBe(false);
  });

  it('rejects a non-boolean enforce_route_policies', async () => {
    const res = await t.admin.post('/v3/domains', { name: 'bad.example.com', enforce_route_policies: 'yes' });
    expect(res.status).toBe(422);
    expect(detail(res)).toContain('Enforce route policies must be a boolean');
  });

  it("keeps CC's route_policies_scope and rejects values other than any, org and space", async () => {
    const scoped = await t.admin.post('/v3/domains', { name: 'scoped.example.com', enforce_route_policies: true, route_policies_scope: 'space' });
    expect(scoped.status, scoped.text).toBe(201);
    expect(scoped.body.route_policies_scope).toBe('space');
    expect(mtlsDomain.route_policies_scope).toBeNull();
    const bad = await t.admin.post('/v3/domains', { name: 'badscope.example.com', route_policies_scope: 'galaxy' });
    expect(bad.status).toBe(422);
    expect(detail(bad)).toContain("Route policies scope must be one of 'any', 'org', 'space'");
  });

  it('rejects route policy enforcement on an internal domain', async () => {
    const res = await t.admin.post('/v3/domains', { name: 'int2.example.com', internal: true, enforce_route_policies: true });
    expect(res.status).toBe(422);
    expect(detail(res)).toContain('Internal domains cannot have route policy enforcement');
  });
});

describe('creating a route policy', () => {
  it('creates a policy for an app source and renders it as CC does', async () => {
    const res = await rp(t.admin).create(policyBody(`cf:app:${uuid}`));
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      source: `cf:app:${uuid}`,
      metadata: { labels: {}, annotations: {} },
      relationships: {
        route: { data: { guid: mtlsRoute.guid } },
        app: { data: { guid: uuid } },
        space: { data: null },
        organization: { data: null },
      },
      links: {
        self: { href: `http://kiln.test/v3/route_policies/${res.body.guid}` },
        route: { href: `http://kiln.test/v3/routes/${mtlsRoute.guid}` },
        app: { href: `http://kiln.test/v3/apps/${uuid}` },
      },
    });
    const events = await t.admin.get(`/v3/audit_events?types=audit.route_policy.create&target_guids=${res.body.guid}`);
    expect(events.body.resources).toHaveLength(1);
    expect(events.body.resources[0].target.type).toBe('route_policy');
    await rp(t.admin).remove(res.body.guid);
  });

  it('fills the space or organization relationship from the source kind', async () => {
    const s = await rp(t.admin).create(policyBody(`cf:space:${uuid}`, otherMtlsRoute.guid));
    expect(s.body.relationships).toMatchObject({ app: { data: null }, space: { data: { guid: uuid } }, organization: { data: null } });
    expect(s.body.links.space.href).toBe(`http://kiln.test/v3/spaces/${uuid}`);
    const o = await rp(t.admin).create(policyBody(`cf:org:${uuid}`, otherMtlsRoute.guid));
    expect(o.body.relationships).toMatchObject({ app: { data: null }, space: { data: null }, organization: { data: { guid: uuid } } });
    await rp(t.admin).remove(s.body.guid);
    await rp(t.admin).remove(o.body.guid);
  });

  it('lets admins and space developers create, forbids other readers (403) and hides the route from the rest (404)', async () => {
    const expected: Record<string, number> = {
      space_developer: 201,
      space_manager: 403,
      space_auditor: 403,
      space_supporter: 403,
      organization_manager: 403,
      admin_read_only: 403,
      global_auditor: 403,
      organization_auditor: 404,
      organization_billing_manager: 404,
      no_role: 404,
    };
    for (const [role, status] of Object.entries(expected)) {
      const res = await rp(users[role]!).create(policyBody(`cf:app:${randomUUID()}`));
      expect(res.status, `${role}: ${res.text}`).toBe(status);
      if (status === 403) expect(res.body.errors[0].title).toBe('CF-NotAuthorized');
      if (status === 201) await rp(t.admin).remove(res.body.guid);
    }
  });

  it('answers 401 without a token', async () => {
    const res = await rp(t.anonymous).create(policyBody(`cf:app:${uuid}`));
    expect(res.status).toBe(401);
  });

  it('refuses a space developer of a suspended org but not an admin', async () => {
    expect((await t.admin.patch(`/v3/organizations/${org.guid}`, { suspended: true })).status).toBe(200);
    try {
      const dev = await rp(users.space_developer!).create(policyBody(`cf:app:${randomUUID()}`));
      expect(dev.status).toBe(403);
      expect(dev.body.errors[0].title).toBe('CF-OrgSuspended');
      const admin = await rp(t.admin).create(policyBody(`cf:app:${randomUUID()}`));
      expect(admin.status).toBe(201);
      await rp(t.admin).remove(admin.body.guid);
    } finally {
      await t.admin.patch(`/v3/organizations/${org.guid}`, { suspended: false });
    }
  });

  it("refuses a route whose domain does not enforce route policies, naming enforce_route_policies", async () => {
    const res = await rp(t.admin).create(policyBody(`cf:app:${uuid}`, regularRoute.guid));
    expect(res.status).toBe(422);
    expect(detail(res)).toBe(`Cannot create route policies for route '${regularRoute.guid}': the route's domain does not have enforce_route_policies enabled.`);
  });

  it('refuses a route on an internal domain', async () => {
    const res = await rp(t.admin).create(policyBody(`cf:app:${uuid}`, internalRoute.guid));
    expect(res.status).toBe(422);
    expect(detail(res)).toContain('internal domains');
    expect(detail(res)).toContain('container-to-container networking');
  });

  it('answers 404 for a route that does not exist', async () => {
    const res = await rp(t.admin).create(policyBody(`cf:app:${uuid}`, 'nonexistent-guid'));
    expect(res.status).toBe(404);
    expect(detail(res)).toBe('Route not found');
  });

  it('rejects a malformed source (uppercase guids too), naming Source', async () => {
    for (const source of ['not-valid', `cf:app:${uuid.toUpperCase()}`, 'cf:user:' + uuid, 'cf:any:x']) {
      const res = await rp(t.admin).create(policyBody(source));
      expect(res.status, source).toBe(422);
      expect(detail(res)).toContain('Source');
    }
    const blank = await rp(t.admin).create({ relationships: { route: { data: { guid: mtlsRoute.guid } } } });
    expect(blank.status).toBe(422);
    expect(detail(blank)).toContain("Source can't be blank");
  });

  it('rejects unknown fields and a missing route relationship', async () => {
    expect((await rp(t.admin).create({ ...policyBody('cf:any'), extra: 1 })).status).toBe(422);
    const res = await rp(t.admin).create({ source: 'cf:any' });
    expect(res.status).toBe(422);
    expect(detail(res)).toContain('Relationships');
  });

  it('accepts a source guid of another org or of nothing at all (sources are not resolved)', async () => {
    const elsewhere = await t.org('rp-elsewhere');
    const res = await rp(t.admin).create(policyBody(`cf:org:${elsewhere.guid}`));
    expect(res.status).toBe(201);
    await rp(t.admin).remove(res.body.guid);
  });

  it('refuses a second policy with the same source on a route', async () => {
    const first = await rp(t.admin).create(policyBody(`cf:app:${uuid}`));
    const again = await rp(t.admin).create(policyBody(`cf:app:${uuid}`));
    expect(again.status).toBe(422);
    expect(detail(again)).toBe(`A route policy with source 'cf:app:${uuid}' already exists for this route.`);
    await rp(t.admin).remove(first.body.guid);
  });

  it('never combines cf:any with other sources, in either order', async () => {
    const specific = await rp(t.admin).create(policyBody(`cf:app:${uuid}`));
    const any = await rp(t.admin).create(policyBody('cf:any'));
    expect(any.status).toBe(422);
    expect(detail(any)).toBe("Cannot add 'cf:any' source when other route policies already exist for this route.");
    await rp(t.admin).remove(specific.body.guid);

    const onlyAny = await rp(t.admin).create(policyBody('cf:any'));
    expect(onlyAny.status).toBe(201);
    const more = await rp(t.admin).create(policyBody(`cf:space:${uuid}`));
    expect(more.status).toBe(422);
    expect(detail(more)).toBe(`Cannot add source 'cf:space:${uuid}': route already has a 'cf:any' policy.`);
    await rp(t.admin).remove(onlyAny.body.guid);
  });
});

describe('reading route policies', () => {
  let appPolicy: any;
  let anyPolicy: any;
  let sourceApp: any;

  beforeAll(async () => {
    const created = await t.admin.post('/v3/apps', { name: 'frontend-app', relationships: { space: { data: { guid: space.guid } } } });
    sourceApp = created.body;
    appPolicy = (await rp(t.admin).create({ ...policyBody(`cf:app:${sourceApp.guid}`), metadata: { labels: { env: 'prod' } } })).body;
    anyPolicy = (await rp(t.admin).create(policyBody('cf:any', otherMtlsRoute.guid))).body;
  });

  it('shows a policy to every reader of the route space and 404s for the rest', async () => {
    const visible = [...ROLES_SPACE, 'organization_manager', 'organization_auditor', 'admin_read_only', 'global_auditor'];
    for (const role of visible) expect((await rp(users[role]!).get(appPolicy.guid)).status, role).toBe(200);
    for (const role of ['organization_billing_manager', 'no_role']) {
      const res = await rp(users[role]!).get(appPolicy.guid);
      expect(res.status, role).toBe(404);
      expect(detail(res)).toBe('Route policy not found');
    }
    expect((await rp(t.admin).get('nonexistent-guid')).status).toBe(404);
  });

  it('lists what the caller can see: everything for readers of the space, nothing for others', async () => {
    const all = await rp(users.organization_auditor!).list();
    expect(all.body.resources.map((r: any) => r.guid).sort()).toEqual([appPolicy.guid, anyPolicy.guid].sort());
    for (const role of ['organization_billing_manager', 'no_role']) {
      const none = await rp(users[role]!).list();
      expect(none.status).toBe(200);
      expect(none.body.resources).toEqual([]);
    }
  });

  it('filters by route_guids, space_guids, sources and source_guids', async () => {
    const guids = async (q: string) => (await rp(t.admin).list(q)).body.resources.map((r: any) => r.guid);
    expect(await guids(`?route_guids=${mtlsRoute.guid}`)).toEqual([appPolicy.guid]);
    expect((await guids(`?space_guids=${space.guid}`)).sort()).toEqual([appPolicy.guid, anyPolicy.guid].sort());
    expect(await guids(`?space_guids=${randomUUID()}`)).toEqual([]);
    expect(await guids('?sources=cf:any')).toEqual([anyPolicy.guid]);
    expect(await guids(`?sources=cf:app:${sourceApp.guid}`)).toEqual([appPolicy.guid]);
    expect(await guids(`?source_guids=${sourceApp.guid}`)).toEqual([appPolicy.guid]);
    expect(await guids(`?source_guids=${randomUUID()}`)).toEqual([]);
    expect(await guids(`?route_guids=${mtlsRoute.guid}&space_guids=${space.guid}&sources=cf:app:${sourceApp.guid}`)).toEqual([appPolicy.guid]);
  });

  it('filters by label_selector and guids, orders by created_at and rejects unknown filters', async () => {
    const labelled = await rp(t.admin).list('?label_selector=env=prod');
    expect(labelled.body.resources.map((r: any) => r.guid)).toEqual([appPolicy.guid]);
    expect((await rp(t.admin).list(`?guids=${anyPolicy.guid}`)).body.resources).toHaveLength(1);
    const desc = await rp(t.admin).list('?order_by=-created_at&per_page=1');
    expect(desc.body.pagination.total_results).toBe(2);
    expect(desc.body.resources[0].guid).toBe(anyPolicy.guid);
    expect((await rp(t.admin).list('?names=x')).status).toBe(400);
  });

  it('includes the source app and the route, once each, and nothing for cf:any or unknown guids', async () => {
    const dangling = (await rp(t.admin).create(policyBody(`cf:app:${randomUUID()}`))).body;
    const res = await rp(t.admin).list('?include=source,route');
    expect(res.body.included.apps.map((a: any) => a.name)).toEqual(['frontend-app']);
    expect(res.body.included.routes.map((r: any) => r.guid).sort()).toEqual([mtlsRoute.guid, otherMtlsRoute.guid].sort());
    const one = await rp(t.admin).get(appPolicy.guid, '?include=source');
    expect(one.body.included.apps[0].guid).toBe(sourceApp.guid);
    expect((await rp(t.admin).get(appPolicy.guid, '?include=invalid_value')).status).toBe(422);
    await rp(t.admin).remove(dangling.guid);
  });

  it("appears in a route's include=route_policies", async () => {
    // openapi.json's Route `included` lists no route_policies (they are missing from the document altogether);
    // the included policies are checked against the route policy schema instead.
    const res = await t.admin.get(`/v3/routes/${mtlsRoute.guid}?include=route_policies`, { skipSpec: true });
    expect(res.status).toBe(200);
    expect(res.body.included.route_policies.map((p: any) => p.guid)).toEqual([appPolicy.guid]);
    for (const p of res.body.included.route_policies) expect(routePolicyProblems('GET', `/v3/route_policies/${p.guid}`, 200, p)).toEqual([]);
  });
});

describe('updating and deleting route policies', () => {
  it('updates metadata only, for admins and space developers (403 for other readers, 404 for the rest)', async () => {
    const policy = (await rp(t.admin).create(policyBody(`cf:app:${randomUUID()}`))).body;
    const res = await rp(users.space_developer!).update(policy.guid, { metadata: { labels: { env: 'production' } } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.metadata).toEqual({ labels: { env: 'production' }, annotations: {} });
    expect(res.body.source).toBe(policy.source);
    expect((await rp(users.organization_auditor!).update(policy.guid, { metadata: {} })).status).toBe(403);
    expect((await rp(users.organization_billing_manager!).update(policy.guid, { metadata: {} })).status).toBe(404);
    expect((await rp(t.admin).update(policy.guid, { source: 'cf:any' })).status).toBe(422);
    const events = await t.admin.get(`/v3/audit_events?types=audit.route_policy.update&target_guids=${policy.guid}`);
    expect(events.body.resources).toHaveLength(1);
    await rp(t.admin).remove(policy.guid);
  });

  it('deletes for admins and space developers with an audit event; others get 403 or 404', async () => {
    const policy = (await rp(t.admin).create(policyBody(`cf:app:${randomUUID()}`))).body;
    expect((await rp(users.space_manager!).remove(policy.guid)).status).toBe(403);
    expect((await rp(users.no_role!).remove(policy.guid)).status).toBe(404);
    expect((await rp(t.anonymous).remove(policy.guid)).status).toBe(401);
    expect((await rp(users.space_developer!).remove(policy.guid)).status).toBe(204);
    expect((await rp(t.admin).get(policy.guid)).status).toBe(404);
    expect((await rp(t.admin).remove(policy.guid)).status).toBe(404);
    const events = await t.admin.get(`/v3/audit_events?types=audit.route_policy.delete&target_guids=${policy.guid}`);
    expect(events.body.resources).toHaveLength(1);
  });

  it('goes away with its route', async () => {
    const doomed = await route(mtlsDomain.guid, 'doomed');
    const policy = (await rp(t.admin).create(policyBody('cf:any', doomed.guid))).body;
    const del = await t.admin.delete(`/v3/routes/${doomed.guid}`);
    expect(del.status).toBe(202);
    await t.awaitJob(del.headers.get('location'));
    expect((await rp(t.admin).get(policy.guid)).status).toBe(404);
  });
});
