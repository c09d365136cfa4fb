import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
let appsDomain: any;
beforeAll(async () => {
  t = await createTestKiln();
  const seeded = await t.admin.get('/v3/domains?names=apps.localhost');
  appsDomain = seeded.body.resources[0];
});
afterAll(() => t.close());

/** A global auditor (the `cf` client grants the global reader scopes, as UAA's does). */
async function globalReader(name: string): Promise<Client> {
  return t.user(name, ['cloud_controller.global_auditor']);
}

const privateBody = (name: string, orgGuid: string, shared: string[] = []) => ({
  name,
  relationships: {
    organization: { data: { guid: orgGuid } },
    ...(shared.length > 0 ? { shared_organizations: { data: shared.map((guid) => ({ guid })) } } : {}),
  },
});

async function createDomain(client: Client, body: unknown): Promise<any> {
  const res = await client.post('/v3/domains', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function count(table: 'domains' | 'audit_events' | 'domain_shared_organizations'): Promise<number> {
  const row = await t.kiln.store.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

const unprocessable = (detail: string) => ({ detail, title: 'CF-UnprocessableEntity', code: 10008 });
const NOT_AUTHORIZED = { detail: 'You are not authorized to perform the requested action', title: 'CF-NotAuthorized', code: 10003 };
const DOMAIN_NOT_FOUND = { detail: 'Domain not found', title: 'CF-ResourceNotFound', code: 10010 };

describe('shared domains', () => {
  it('seeds the apps domain as a shared HTTP domain', () => {
    expect(appsDomain).toMatchObject({
      name: 'apps.localhost',
      internal: false,
      router_group: null,
      supported_protocols: ['http'],
      relationships: { organization: { data: null }, shared_organizations: { data: [] } },
      metadata: { labels: {}, annotations: {} },
    });
    expect(appsDomain.links).toEqual({
      self: { href: `http://kiln.test/v3/domains/${appsDomain.guid}` },
      route_reservations: { href: `http://kiln.test/v3/domains/${appsDomain.guid}/route_reservations` },
    });
  });

  it('lets admins create shared and internal domains, with metadata and an audit event', async () => {
    const d = await createDomain(t.admin, { name: 'shared-a.test', metadata: { labels: { env: 'prod' }, annotations: { note: 'hi' } } });
    expect(d).toMatchObject({
      name: 'shared-a.test',
      internal: false,
      relationships: { organization: { data: null }, shared_organizations: { data: [] } },
      metadata: { labels: { env: 'prod' }, annotations: { note: 'hi' } },
    });
    expect(d.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const got = await t.admin.get(`/v3/domains/${d.guid}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(d);
    const audit = await t.kiln.store.db.selectFrom('audit_events').selectAll().where('target_guid', '=', d.guid).orderBy('id').execute();
    expect(audit.map((a) => a.type)).toEqual(['audit.domain.create']);
    expect(audit[0]).toMatchObject({ target_type: 'domain', target_name: 'shared-a.test', organization_guid: null });

    const internal = await createDomain(t.admin, { name: 'internal-a.test', internal: true });
    expect(internal.internal).toBe(true);
  });

  it('refuses shared domains to non-admins and to unauthenticated callers', async () => {
    const o = await t.org('shared-refuse-org');
    const manager = await t.user('shared-refuse-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const res = await manager.post('/v3/domains', { name: 'not-mine.test' });
    expect(res.status).toBe(403);
    expect(res.body.errors[0]).toEqual(NOT_AUTHORIZED);
    const auditor = await globalReader('shared-refuse-ga');
    expect((await auditor.post('/v3/domains', { name: 'not-mine.test' })).status).toBe(403);
    expect((await auditor.get('/v3/domains?names=apps.localhost')).body.resources).toHaveLength(1);
    expect((await t.anonymous.post('/v3/domains', { name: 'not-mine.test' })).status).toBe(401);
    expect((await t.admin.get('/v3/domains?names=not-mine.test')).body.resources).toEqual([]);
  });

  it('rejects bad bodies with upstream wording and writes nothing', async () => {
    const domainsBefore = await count('domains');
    const auditBefore = await count('audit_events');
    const cases: Array<[unknown, string]> = [
      [{}, "Name can't be blank, Name must be a string"],
      [{ name: 42 }, 'Name must be a string'],
      [{ name: 'a' }, 'Name is too short (minimum is 3 characters), Name does not comply with RFC 1035 standards, Name must contain at least one "."'],
      [{ name: 'nodot' }, 'Name does not comply with RFC 1035 standards, Name must contain at least one "."'],
      [{ name: 'under_score.test' }, 'Name does not comply with RFC 1035 standards, Name must consist of alphanumeric characters and hyphens'],
      [{ name: `${'a'.repeat(64)}.test` }, 'Name does not comply with RFC 1035 standards, Name subdomains must each be at most 63 characters'],
      [{ name: `${'abcdefgh.'.repeat(28)}test` }, 'Name is too long (maximum is 253 characters)'],
      [{ name: 'x.test', internal: 'yes' }, 'Internal must be a boolean'],
      [{ name: 'x.test', color: 'red' }, "Unknown field(s): 'color'"],
      [{ name: 'x.test', router_group: 'rg' }, 'Router group must be an object'],
      [{ name: 'x.test', router_group: { guid: 1, x: 2 } }, "Router group Unknown field(s): 'x', Router group guid must be a string"],
      [{ name: 'x.test', relationships: 'o' }, "Relationships 'relationships' is not an object"],
      [{ name: 'x.test', relationships: {} }, "Relationships 'relationships' must include one or more valid relationships"],
      [
        { name: 'x.test', relationships: { organization: { guid: 'o' } } },
        'Relationships Organization must be structured like this: "organization: {"data": {"guid": "valid-guid"}}"',
      ],
      [{ name: 'x.test', relationships: { organization: { data: { guid: 5 } } } }, 'Relationships Organization guid must be a string'],
      [
        { name: 'x.test', relationships: { shared_organizations: { data: [] } } },
        'Relationships cannot contain shared_organizations without an owning organization.',
      ],
      [
        { name: 'x.test', relationships: { organization: { data: { guid: 'o' } }, shared_organizations: [] } },
        'Relationships Shared organizations must be structured like this: "shared_organizations: {"data": [{"guid": "valid-guid"},{"guid": "valid-guid"}]}"',
      ],
      [{ name: 'x.test', internal: true, relationships: { organization: { data: { guid: 'o' } } } }, 'Cannot associate an internal domain with an organization'],
      [{ name: 'x.test', internal: true, router_group: { guid: 'g' } }, 'Internal domains cannot be associated to a router group.'],
      [
        { name: 'x.test', router_group: { guid: 'g' }, relationships: { organization: { data: { guid: 'o' } } } },
        'Domains scoped to an organization cannot be associated to a router group.',
      ],
      [{ name: 'x.test', metadata: { labels: { 'bad key!': 'v' } } }, 'Metadata label key error'],
    ];
    for (const [payload, detail] of cases) {
      const res = await t.admin.post('/v3/domains', payload);
      expect(res.status, JSON.stringify(payload)).toBe(422);
      expect(res.body.errors[0].title).toBe('CF-UnprocessableEntity');
      expect(res.body.errors[0].detail, JSON.stringify(payload)).toContain(detail);
    }
    const notJson = await t.admin.post('/v3/domains', undefined, { raw: '{"name":' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errors[0].title).toBe('CF-MessageParseError');
    expect(await count('domains')).toBe(domainsBefore);
    expect(await count('audit_events')).toBe(auditBefore);
  });

  it('answers a router group with a clear 503: Kiln has no routing API for TCP domains', async () => {
    const res = await t.admin.post('/v3/domains', { name: 'tcp.test', router_group: { guid: randomUUID() } });
    expect(res.status).toBe(503);
    expect(res.body.errors[0]).toEqual({ detail: 'The Routing API is disabled.', title: 'CF-ServiceUnavailable', code: 10015 });
    expect((await t.admin.get('/v3/domains?names=tcp.test')).body.resources).toEqual([]);
  });

  it('rejects duplicate names, case-insensitively', async () => {
    await createDomain(t.admin, { name: 'dup.test' });
    for (const name of ['dup.test', 'DUP.test']) {
      const res = await t.admin.post('/v3/domains', { name });
      expect(res.status).toBe(422);
      expect(res.body.errors[0]).toEqual(unprocessable(`The domain name "${name}" is already in use`));
    }
  });
});

describe('private domains', () => {
  let o: any;
  let other: any;
  let manager: Client;
  beforeAll(async () => {
    o = await t.org('priv-org');
    other = await t.org('priv-other-org');
    manager = await t.user('priv-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    await t.grant(manager, 'organization_manager', { org: other.guid });
  });

  it('lets an org manager create one in their org, shared with another org they manage', async () => {
    const d = await createDomain(manager, privateBody('mine.priv.test', o.guid, [other.guid]));
    expect(d).toMatchObject({
      name: 'mine.priv.test',
      internal: false,
      relationships: { organization: { data: { guid: o.guid } }, shared_organizations: { data: [{ guid: other.guid }] } },
    });
    expect(d.links).toEqual({
      self: { href: `http://kiln.test/v3/domains/${d.guid}` },
      route_reservations: { href: `http://kiln.test/v3/domains/${d.guid}/route_reservations` },
      organization: { href: `http://kiln.test/v3/organizations/${o.guid}` },
      shared_organizations: { href: `http://kiln.test/v3/domains/${d.guid}/relationships/shared_organizations` },
    });
    const audit = await t.kiln.store.db.selectFrom('audit_events').selectAll().where('target_guid', '=', d.guid).orderBy('id').execute();
    expect(audit[0]).toMatchObject({ type: 'audit.domain.create', organization_guid: o.guid, actor_guid: manager.userGuid });
  });

  it('checks the owning org: missing or invisible → 422, visible but not managed → 403', async () => {
    const missingGuid = randomUUID();
    const missing = await t.admin.post('/v3/domains', privateBody('x.missing.test', missingGuid));
    expect(missing.status).toBe(422);
    expect(missing.body.errors[0]).toEqual(unprocessable(`Organization with guid '${missingGuid}' does not exist or you do not have access to it.`));
    const nullOrg = await t.admin.post('/v3/domains', { name: 'x.null.test', relationships: { organization: { data: null } } });
    expect(nullOrg.body.errors[0]).toEqual(unprocessable(`Organization with guid '' does not exist or you do not have access to it.`));

    const stranger = await t.user('priv-stranger');
    const hidden = await stranger.post('/v3/domains', privateBody('x.hidden.test', o.guid));
    expect(hidden.status).toBe(422);
    expect(hidden.body.errors[0].detail).toBe(`Organization with guid '${o.guid}' does not exist or you do not have access to it.`);

    const orgUser = await t.user('priv-org-user');
    await t.grant(orgUser, 'organization_user', { org: o.guid });
    const forbidden = await orgUser.post('/v3/domains', privateBody('x.forbidden.test', o.guid));
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.errors[0]).toEqual(NOT_AUTHORIZED);
  });

  it('verifies every org it is shared with', async () => {
    const notManaged = await t.org('priv-not-managed');
    const missingGuid = randomUUID();
    const cases: Array<[string[], string]> = [
      [[missingGuid], `Organization with guid '${missingGuid}' does not exist, or you do not have access to it.`],
      [[notManaged.guid], `Organization with guid '${notManaged.guid}' either does not exist, or you do not have access to it.`],
      [[o.guid], 'Domain cannot be shared with owning organization.'],
    ];
    for (const [shared, detail] of cases) {
      const res = await manager.post('/v3/domains', privateBody('x.share-check.test', o.guid, shared));
      expect(res.status).toBe(422);
      expect(res.body.errors[0]).toEqual(unprocessable(detail));
    }
    const auditorThere = await t.user('priv-share-auditor');
    await t.grant(auditorThere, 'organization_manager', { org: o.guid });
    await t.grant(auditorThere, 'organization_auditor', { org: notManaged.guid });
    const res = await auditorThere.post('/v3/domains', privateBody('x.share-check.test', o.guid, [notManaged.guid]));
    expect(res.body.errors[0]).toEqual(unprocessable("You do not have sufficient permissions for organization 'priv-not-managed' to share domain."));
  });

  it('honours the private_domain_creation feature flag for non-admins only', async () => {
    expect((await t.admin.patch('/v3/feature_flags/private_domain_creation', { enabled: false })).status).toBe(200);
    try {
      const res = await manager.post('/v3/domains', privateBody('flagged.priv.test', o.guid));
      expect(res.status).toBe(403);
      expect(res.body.errors[0]).toMatchObject({ title: 'CF-FeatureDisabled', code: 330002 });
      await createDomain(t.admin, privateBody('flagged-admin.priv.test', o.guid));
    } finally {
      await t.admin.patch('/v3/feature_flags/private_domain_creation', { enabled: true });
    }
  });

  it('refuses creation in suspended orgs (admins bypass) and orgs being deleted', async () => {
    const s = await t.org('priv-suspended');
    const m = await t.user('priv-suspended-manager');
    await t.grant(m, 'organization_manager', { org: s.guid });
    await t.admin.patch(`/v3/organizations/${s.guid}`, { suspended: true });
    const res = await m.post('/v3/domains', privateBody('x.suspended.test', s.guid));
    expect(res.status).toBe(403);
    expect(res.body.errors[0]).toMatchObject({ title: 'CF-OrgSuspended', code: 10017 });
    await createDomain(t.admin, privateBody('admin.suspended.test', s.guid));

    const doomed = await t.org('priv-deleting');
    await t.kiln.store.db.updateTable('organizations').set({ status: 'deleting' }).where('guid', '=', doomed.guid).execute();
    const deleting = await t.admin.post('/v3/domains', privateBody('x.deleting.test', doomed.guid));
    expect(deleting.status).toBe(422);
    expect(deleting.body.errors[0]).toMatchObject({ title: 'CF-ResourceBeingDeleted' });
  });

  it("keeps names below another org's private domain (and above others' domains) reserved", async () => {
    await createDomain(manager, privateBody('corp.test', o.guid));
    const third = await t.org('priv-third');
    const reserved = (name: string, by: string) =>
      unprocessable(`The domain name "${name}" cannot be created because "${by}" is already reserved by another domain`);

    const shared = await t.admin.post('/v3/domains', { name: 'app.corp.test' });
    expect(shared.status).toBe(422);
    expect(shared.body.errors[0]).toEqual(reserved('app.corp.test', 'corp.test'));
    const elsewhere = await t.admin.post('/v3/domains', privateBody('x.app.corp.test', third.guid));
    expect(elsewhere.body.errors[0]).toEqual(reserved('x.app.corp.test', 'corp.test'));
    // The owning org may create subdomains of its own domain.
    await createDomain(manager, privateBody('app.corp.test', o.guid));

    await createDomain(t.admin, { name: 'www.shared-parent.test' });
    const above = await t.admin.post('/v3/domains', privateBody('shared-parent.test', third.guid));
    expect(above.status).toBe(422);
    expect(above.body.errors[0]).toEqual(reserved('shared-parent.test', 'www.shared-parent.test'));
  });

  it("enforces the org quota's total_domains", async () => {
    const limited = await t.org('priv-quota-org');
    const quotaGuid = randomUUID();
    await t.kiln.store.write(async (tx) => {
      await tx.insert('organization_quotas', {
        guid: quotaGuid,
        name: 'one-domain',
        total_memory_in_mb: null,
        per_process_memory_in_mb: null,
        total_instances: null,
        per_app_tasks: null,
        log_rate_limit_in_bytes_per_second: null,
        paid_services_allowed: 1,
        total_service_instances: null,
        total_service_keys: null,
        total_routes: null,
        total_reserved_ports: null,
        total_domains: 1,
      });
      await tx.update('organizations', limited.guid, { quota_guid: quotaGuid });
    });
    await createDomain(t.admin, privateBody('one.quota.test', limited.guid));
    const res = await t.admin.post('/v3/domains', privateBody('two.quota.test', limited.guid));
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toEqual(unprocessable('The number of private domains exceeds the quota for organization "priv-quota-org"'));
  });
});

describe('reading domains', () => {
  let o: any;
  let receiver: any;
  let owned: any;
  let sharedIn: any;
  let foreign: any;
  let s: any;
  beforeAll(async () => {
    o = await t.org('read-org');
    receiver = await t.org('read-receiver');
    const outsider = await t.org('read-outsider');
    s = await t.space('read-space', o.guid);
    owned = await createDomain(t.admin, { ...privateBody('owned.read.test', o.guid), metadata: { labels: { tier: 'gold' } } });
    sharedIn = await createDomain(t.admin, privateBody('sharedin.read.test', outsider.guid, [o.guid, receiver.guid]));
    foreign = await createDomain(t.admin, privateBody('foreign.read.test', outsider.guid));
  });

  const visibleNames = async (client: Client, query = '') => {
    const res = await client.get(`/v3/domains?per_page=5000${query}`);
    expect(res.status).toBe(200);
    return res.body.resources.map((d: any) => d.name) as string[];
  };

  it('shows private domains to org managers, auditors and space members; org users and billing managers see shared ones only', async () => {
    const readers: Array<[string, { org?: string; space?: string }]> = [
      ['organization_manager', { org: o.guid }],
      ['organization_auditor', { org: o.guid }],
      ['space_developer', { space: s.guid }],
      ['space_auditor', { space: s.guid }],
    ];
    for (const [role, target] of readers) {
      const u = await t.user(`read-${role}`);
      await t.grant(u, 'organization_user', { org: o.guid });
      await t.grant(u, role, target);
      const names = await visibleNames(u);
      expect(names, role).toEqual(expect.arrayContaining(['apps.localhost', 'owned.read.test', 'sharedin.read.test']));
      expect(names, role).not.toContain('foreign.read.test');
      expect((await u.get(`/v3/domains/${owned.guid}`)).status).toBe(200);
      expect((await u.get(`/v3/domains/${foreign.guid}`)).status).toBe(404);
    }
    for (const role of ['organization_user', 'organization_billing_manager']) {
      const u = await t.user(`read-only-${role}`);
      await t.grant(u, role, { org: o.guid });
      const names = await visibleNames(u);
      expect(names).toContain('apps.localhost');
      expect(names.filter((n) => n.endsWith('.read.test'))).toEqual([]);
      const hidden = await u.get(`/v3/domains/${owned.guid}`);
      expect(hidden.status).toBe(404);
      expect(hidden.body.errors[0]).toEqual(DOMAIN_NOT_FOUND);
    }
    const globalAuditor = await globalReader('read-ga');
    expect(await visibleNames(globalAuditor)).toEqual(expect.arrayContaining(['owned.read.test', 'sharedin.read.test', 'foreign.read.test']));
    expect((await t.anonymous.get('/v3/domains')).status).toBe(401);
  });

  it('lists only the shared organizations the caller can read', async () => {
    const all = await t.admin.get(`/v3/domains/${sharedIn.guid}`);
    expect(all.body.relationships.shared_organizations.data).toEqual([{ guid: o.guid }, { guid: receiver.guid }]);
    const u = await t.user('read-partial');
    await t.grant(u, 'organization_auditor', { org: o.guid });
    const partial = await u.get(`/v3/domains/${sharedIn.guid}`);
    expect(partial.body.relationships.shared_organizations.data).toEqual([{ guid: o.guid }]);
    expect(partial.body.relationships.organization.data).toEqual({ guid: sharedIn.relationships.organization.data.guid });
  });

  it('filters, orders and paginates with absolute links', async () => {
    const byName = await t.admin.get('/v3/domains?names=owned.read.test,foreign.read.test');
    expect(byName.body.resources.map((d: any) => d.name)).toEqual(['owned.read.test', 'foreign.read.test']);
    const byOrg = await t.admin.get(`/v3/domains?organization_guids=${o.guid}`);
    expect(byOrg.body.resources.map((d: any) => d.name)).toEqual(['owned.read.test']);
    const byGuid = await t.admin.get(`/v3/domains?guids=${foreign.guid}`);
    expect(byGuid.body.resources.map((d: any) => d.name)).toEqual(['foreign.read.test']);
    const byLabel = await t.admin.get('/v3/domains?label_selector=tier%3Dgold');
    expect(byLabel.body.resources.map((d: any) => d.name)).toEqual(['owned.read.test']);

    const names = 'owned.read.test,sharedin.read.test,foreign.read.test';
    const page = await t.admin.get(`/v3/domains?names=${names}&per_page=2`);
    expect(page.body.pagination).toMatchObject({ total_results: 3, total_pages: 2, previous: null });
    expect(page.body.resources.map((d: any) => d.name)).toEqual(['owned.read.test', 'sharedin.read.test']);
    expect(page.body.pagination.next.href).toBe(
      'http://kiln.test/v3/domains?names=owned.read.test%2Csharedin.read.test%2Cforeign.read.test&page=2&per_page=2',
    );
    const asc = await t.admin.get(`/v3/domains?names=${names}&order_by=created_at`);
    const desc = await t.admin.get(`/v3/domains?names=${names}&order_by=-created_at`);
    expect(desc.body.resources.map((d: any) => d.guid)).toEqual(asc.body.resources.map((d: any) => d.guid).reverse());
    expect(desc.body.pagination.first.href).toContain('order_by=-created_at');
    const beyond = await t.admin.get(`/v3/domains?names=${names}&page=9`);
    expect(beyond.body.resources).toEqual([]);

    const badOrder = await t.admin.get('/v3/domains?order_by=name');
    expect(badOrder.status).toBe(400);
    expect(badOrder.body.errors[0].detail).toBe("The query parameter is invalid: Order by can only be: 'created_at', 'updated_at'");
    const unknown = await t.admin.get('/v3/domains?hosts=x');
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors[0].title).toBe('CF-BadQueryParameter');
    expect((await t.admin.get(`/v3/domains/${owned.guid}?x=1`)).status).toBe(400);
  });

  it("lists an org's domains: shared ones, plus its own and those shared with it for callers who may see them", async () => {
    const res = await t.admin.get(`/v3/organizations/${o.guid}/domains?per_page=5000`);
    expect(res.status).toBe(200);
    const names = res.body.resources.map((d: any) => d.name);
    expect(names).toEqual(expect.arrayContaining(['apps.localhost', 'owned.read.test', 'sharedin.read.test']));
    expect(names).not.toContain('foreign.read.test');
    expect(res.body.pagination.first.href).toBe(`http://kiln.test/v3/organizations/${o.guid}/domains?page=1&per_page=5000`);
    const onlyOwned = await t.admin.get(`/v3/organizations/${o.guid}/domains?names=owned.read.test`);
    expect(onlyOwned.body.resources.map((d: any) => d.name)).toEqual(['owned.read.test']);

    const orgUser = await t.user('org-domains-user');
    await t.grant(orgUser, 'organization_user', { org: o.guid });
    const limited = await orgUser.get(`/v3/organizations/${o.guid}/domains?per_page=5000`);
    expect(limited.status).toBe(200);
    expect(limited.body.resources.every((d: any) => d.relationships.organization.data === null)).toBe(true);

    const stranger = await t.user('org-domains-stranger');
    const hidden = await stranger.get(`/v3/organizations/${o.guid}/domains`);
    expect(hidden.status).toBe(404);
    expect(hidden.body.errors[0].detail).toBe('Organization not found');
  });
});

describe('updating domains', () => {
  it('merges metadata for the owning org manager; others get 403 or 404', async () => {
    const o = await t.org('upd-org');
    const d = await createDomain(t.admin, { ...privateBody('upd.test', o.guid), metadata: { labels: { a: '1', b: '2' } } });
    const manager = await t.user('upd-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const res = await manager.patch(`/v3/domains/${d.guid}`, { metadata: { labels: { a: null, c: '3' }, annotations: { n: 'x' } } });
    expect(res.status).toBe(200);
    expect(res.body.metadata).toEqual({ labels: { b: '2', c: '3' }, annotations: { n: 'x' } });
    expect(res.body.name).toBe('upd.test');
    const audit = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', d.guid).orderBy('id').execute();
    expect(audit.map((a) => a.type)).toEqual(['audit.domain.create', 'audit.domain.update']);

    const auditor = await t.user('upd-auditor');
    await t.grant(auditor, 'organization_auditor', { org: o.guid });
    const forbidden = await auditor.patch(`/v3/domains/${d.guid}`, { metadata: { labels: { z: '1' } } });
    expect(forbidden.status).toBe(403);
    const stranger = await t.user('upd-stranger');
    const hidden = await stranger.patch(`/v3/domains/${d.guid}`, { metadata: { labels: { z: '1' } } });
    expect(hidden.status).toBe(404);
    expect(hidden.body.errors[0]).toEqual(DOMAIN_NOT_FOUND);

    const bad = await manager.patch(`/v3/domains/${d.guid}`, { name: 'renamed.test' });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].detail).toBe("Unknown field(s): 'name'");

    await t.admin.patch(`/v3/organizations/${o.guid}`, { suspended: true });
    const suspended = await manager.patch(`/v3/domains/${d.guid}`, { metadata: { labels: { z: '1' } } });
    expect(suspended.status).toBe(403);
    expect(suspended.body.errors[0].title).toBe('CF-OrgSuspended');
    expect((await t.admin.patch(`/v3/domains/${d.guid}`, { metadata: { labels: { z: '1' } } })).status).toBe(200);
  });

  it('lets only admins update shared domains', async () => {
    const d = await createDomain(t.admin, { name: 'upd-shared.test' });
    const u = await t.user('upd-shared-user');
    const res = await u.patch(`/v3/domains/${d.guid}`, { metadata: { labels: { x: 'y' } } });
    expect(res.status).toBe(403);
    const ok = await t.admin.patch(`/v3/domains/${d.guid}`, { metadata: { labels: { x: 'y' } } });
    expect(ok.status).toBe(200);
    expect(ok.body.metadata.labels).toEqual({ x: 'y' });
    expect((await t.admin.patch(`/v3/domains/${randomUUID()}`, {})).status).toBe(404);
  });
});

describe('sharing domains', () => {
  let owner: any;
  let a: any;
  let b: any;
  let manager: Client;
  let d: any;
  beforeAll(async () => {
    owner = await t.org('share-owner');
    a = await t.org('share-a');
    b = await t.org('share-b');
    manager = await t.user('share-manager');
    for (const x of [owner, a, b]) await t.grant(manager, 'organization_manager', { org: x.guid });
    d = await createDomain(manager, privateBody('share.test', owner.guid));
  });

  it('adds orgs idempotently and answers with the shared orgs', async () => {
    const url = `/v3/domains/${d.guid}/relationships/shared_organizations`;
    const res = await manager.post(url, { data: [{ guid: a.guid }] });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [{ guid: a.guid }] });
    const again = await manager.post(url, { data: [{ guid: a.guid }, { guid: b.guid }] });
    expect(again.body).toEqual({ data: [{ guid: a.guid }, { guid: b.guid }] });
    const got = await manager.get(`/v3/domains/${d.guid}`);
    expect(got.body.relationships.shared_organizations.data).toEqual([{ guid: a.guid }, { guid: b.guid }]);
    const audit = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', d.guid).orderBy('id').execute();
    expect(audit.map((x) => x.type)).toEqual(['audit.domain.create', 'audit.domain.share', 'audit.domain.share']);
  });

  it('rejects bad bodies, shared domains, foreign orgs and non-managers', async () => {
    const url = `/v3/domains/${d.guid}/relationships/shared_organizations`;
    const shape = 'Data must have the structure "data": [{"guid": shared_org_guid_1}, {"guid": shared_org_guid_2}]';
    for (const body of [{}, { data: 'x' }, { data: [{ id: 'x' }] }]) {
      const res = await manager.post(url, body);
      expect(res.status).toBe(422);
      expect(res.body.errors[0]).toEqual(unprocessable(shape));
    }
    const sharedDomain = await t.admin.post(`/v3/domains/${appsDomain.guid}/relationships/shared_organizations`, { data: [{ guid: a.guid }] });
    expect(sharedDomain.status).toBe(422);
    expect(sharedDomain.body.errors[0]).toEqual(
      unprocessable('Domains cannot be shared with other organizations unless they are scoped to an organization.'),
    );
    const withOwner = await manager.post(url, { data: [{ guid: owner.guid }] });
    expect(withOwner.body.errors[0]).toEqual(unprocessable('Domain cannot be shared with owning organization.'));

    const auditor = await t.user('share-auditor');
    await t.grant(auditor, 'organization_auditor', { org: owner.guid });
    expect((await auditor.post(url, { data: [{ guid: a.guid }] })).status).toBe(403);
    expect((await (await t.user('share-stranger')).post(url, { data: [{ guid: a.guid }] })).status).toBe(404);
    expect((await manager.post(`/v3/domains/${randomUUID()}/relationships/shared_organizations`, { data: [] })).status).toBe(404);
  });

  it('unshares for either side’s manager and refuses what is not shared', async () => {
    const receiverManager = await t.user('share-receiver-manager');
    await t.grant(receiverManager, 'organization_manager', { org: b.guid });
    // The receiving org's manager can see the domain (it is shared with their org) and give it back.
    const giveBack = await receiverManager.delete(`/v3/domains/${d.guid}/relationships/shared_organizations/${b.guid}`);
    expect(giveBack.status).toBe(204);
    expect(giveBack.text).toBe('');
    const byOwner = await manager.delete(`/v3/domains/${d.guid}/relationships/shared_organizations/${a.guid}`);
    expect(byOwner.status).toBe(204);
    expect((await manager.get(`/v3/domains/${d.guid}`)).body.relationships.shared_organizations.data).toEqual([]);

    const notShared = await manager.delete(`/v3/domains/${d.guid}/relationships/shared_organizations/${a.guid}`);
    expect(notShared.status).toBe(422);
    expect(notShared.body.errors[0]).toEqual(
      unprocessable("Unable to unshare domain from organization with name 'share-a'. Ensure the domain is shared to this organization."),
    );
    const missingGuid = randomUUID();
    const missing = await manager.delete(`/v3/domains/${d.guid}/relationships/shared_organizations/${missingGuid}`);
    expect(missing.body.errors[0]).toEqual(unprocessable(`Organization with guid '${missingGuid}' does not exist or you do not have access to it.`));

    await manager.post(`/v3/domains/${d.guid}/relationships/shared_organizations`, { data: [{ guid: a.guid }] });
    const auditor = await t.user('unshare-auditor');
    await t.grant(auditor, 'organization_auditor', { org: owner.guid });
    const forbidden = await auditor.delete(`/v3/domains/${d.guid}/relationships/shared_organizations/${a.guid}`);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.errors[0]).toEqual(NOT_AUTHORIZED);
  });
});

describe('deleting domains', () => {
  it('refuses while shared, then deletes through a domain.delete job', async () => {
    const o = await t.org('del-org');
    const r = await t.org('del-receiver');
    const d = await createDomain(t.admin, { ...privateBody('del.test', o.guid, [r.guid]), metadata: { labels: { x: 'y' } } });
    const shared = await t.admin.delete(`/v3/domains/${d.guid}`);
    expect(shared.status).toBe(422);
    expect(shared.body.errors[0]).toEqual(unprocessable('This domain is shared with other organizations. Unshare before deleting.'));

    expect((await t.admin.delete(`/v3/domains/${d.guid}/relationships/shared_organizations/${r.guid}`)).status).toBe(204);
    const manager = await t.user('del-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const res = await manager.delete(`/v3/domains/${d.guid}`);
    expect(res.status).toBe(202);
    expect(res.text).toBe('');
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ operation: 'domain.delete', state: 'COMPLETE', errors: [] });
    expect(job.links.domain).toBeUndefined();
    expect((await t.admin.get(`/v3/domains/${d.guid}`)).status).toBe(404);
    const labels = await t.kiln.store.db.selectFrom('labels').select('id').where('resource_guid', '=', d.guid).execute();
    expect(labels).toEqual([]);
    const audit = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', d.guid).orderBy('id').execute();
    expect(audit.map((a) => a.type)).toContain('audit.domain.delete-request');
  });

  it('forbids readers (403), hides from outsiders (404) and lets only admins delete shared domains', async () => {
    const o = await t.org('del-perm-org');
    const d = await createDomain(t.admin, privateBody('del-perm.test', o.guid));
    const auditor = await t.user('del-auditor');
    await t.grant(auditor, 'organization_auditor', { org: o.guid });
    expect((await auditor.delete(`/v3/domains/${d.guid}`)).status).toBe(403);
    const stranger = await t.user('del-stranger');
    expect((await stranger.delete(`/v3/domains/${d.guid}`)).status).toBe(404);
    const shared = await createDomain(t.admin, { name: 'del-shared.test' });
    expect((await auditor.delete(`/v3/domains/${shared.guid}`)).status).toBe(403);
    const res = await t.admin.delete(`/v3/domains/${shared.guid}`);
    expect(res.status).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    expect(await t.kiln.store.db.selectFrom('domains').select('guid').where('guid', 'in', [shared.guid]).execute()).toEqual([]);
    expect((await t.admin.get(`/v3/domains/${d.guid}`)).status).toBe(200);
  });
});

describe('route reservations', () => {
  it('answers matching_route false (no routes exist yet) after validating the query', async () => {
    const base = `/v3/domains/${appsDomain.guid}/route_reservations`;
    for (const q of ['', '?host=www', '?host=www&path=/foo', '?port=1024', '?host=a,b']) {
      const res = await t.admin.get(`${base}${q}`);
      expect(res.status, q).toBe(200);
      expect(res.body).toEqual({ matching_route: false });
    }
    const badPort = await t.admin.get(`${base}?port=http`);
    expect(badPort.status).toBe(400);
    expect(badPort.body.errors[0].detail).toBe('The query parameter is invalid: Port must be an integer between 0 and 65535');
    const unknown = await t.admin.get(`${base}?hosts=x`);
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors[0].title).toBe('CF-BadQueryParameter');

    const o = await t.org('resv-org');
    const d = await createDomain(t.admin, privateBody('resv.test', o.guid));
    const stranger = await t.user('resv-stranger');
    expect((await stranger.get(`/v3/domains/${d.guid}/route_reservations?host=x`)).status).toBe(404);
    expect((await stranger.get(`${base}?host=x`)).status).toBe(200);
  });
});

describe('default domain of an org', () => {
  it('is the oldest shared HTTP domain, else the org’s oldest private domain when the caller may see it', async () => {
    const o = await t.org('default-org');
    const res = await t.admin.get(`/v3/organizations/${o.guid}/domains/default`);
    expect(res.status).toBe(200);
    expect(res.body.guid).toBe(appsDomain.guid);
    const stranger = await t.user('default-stranger');
    const hidden = await stranger.get(`/v3/organizations/${o.guid}/domains/default`);
    expect(hidden.status).toBe(404);
    expect(hidden.body.errors[0].detail).toBe('Organization not found');

    const priv = await createDomain(t.admin, privateBody('default-priv.test', o.guid));
    const empty = await t.org('default-empty-org');
    const orgUser = await t.user('default-org-user');
    await t.grant(orgUser, 'organization_user', { org: o.guid });
    // Take every shared domain out of the running by making it internal, then restore them.
    const sharedGuids = (
      await t.kiln.store.db.selectFrom('domains').select('guid').where('owning_organization_guid', 'is', null).where('internal', '=', 0).execute()
    ).map((d) => d.guid);
    await t.kiln.store.db.updateTable('domains').set({ internal: 1 }).where('guid', 'in', sharedGuids).execute();
    try {
      const fallback = await t.admin.get(`/v3/organizations/${o.guid}/domains/default`);
      expect(fallback.status).toBe(200);
      expect(fallback.body.guid).toBe(priv.guid);
      const notForOrgUsers = await orgUser.get(`/v3/organizations/${o.guid}/domains/default`);
      expect(notForOrgUsers.status).toBe(404);
      expect(notForOrgUsers.body.errors[0]).toEqual(DOMAIN_NOT_FOUND);
      const none = await t.admin.get(`/v3/organizations/${empty.guid}/domains/default`);
      expect(none.status).toBe(404);
      expect(none.body.errors[0]).toEqual(DOMAIN_NOT_FOUND);
    } finally {
      await t.kiln.store.db.updateTable('domains').set({ internal: 0 }).where('guid', 'in', sharedGuids).execute();
    }
  });
});
