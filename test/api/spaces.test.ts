import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

const body = (name: string, orgGuid: string) => ({ name, relationships: { organization: { data: { guid: orgGuid } } } });

async function countRows(table: 'spaces' | 'roles' | 'audit_events' | 'labels'): Promise<number> {
  const row = await t.kiln.store.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('creating spaces', () => {
  it('creates a space as the cf CLI does, without granting the creator any role', async () => {
    const o = await t.org('create-org');
    const rolesBefore = await countRows('roles');
    const res = await t.admin.post('/v3/spaces', body('dev', o.guid));
    expect(res.status).toBe(201);
    const s = res.body;
    expect(s).toMatchObject({
      name: 'dev',
      relationships: { organization: { data: { guid: o.guid } }, quota: { data: null } },
      metadata: { labels: {}, annotations: {} },
    });
    expect(s.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(s.links).toEqual({
      self: { href: `http://kiln.test/v3/spaces/${s.guid}` },
      organization: { href: `http://kiln.test/v3/organizations/${o.guid}` },
      features: { href: `http://kiln.test/v3/spaces/${s.guid}/features` },
      apply_manifest: { href: `http://kiln.test/v3/spaces/${s.guid}/actions/apply_manifest`, method: 'POST' },
    });
    expect(await countRows('roles')).toBe(rolesBefore);
    const audit = await t.kiln.store.db.selectFrom('audit_events').selectAll().where('target_guid', '=', s.guid).orderBy('id').execute();
    expect(audit.map((a) => a.type)).toEqual(['audit.space.create']);
    expect(audit[0]).toMatchObject({ space_guid: s.guid, organization_guid: o.guid });
  });

  it('sets metadata on create', async () => {
    const o = await t.org('create-meta-org');
    const s = await t.space('labelled', o.guid, { metadata: { labels: { env: 'dev' }, annotations: { owner: 'team a' } } });
    expect(s.metadata).toEqual({ labels: { env: 'dev' }, annotations: { owner: 'team a' } });
  });

  it('answers a duplicate name with the 422 the CLI treats as "already exists"', async () => {
    const o = await t.org('dup-org');
    const other = await t.org('dup-other-org');
    await t.space('taken', o.guid);
    const res = await t.admin.post('/v3/spaces', body('TAKEN', o.guid));
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toEqual({ detail: 'Name must be unique per organization', title: 'CF-UnprocessableEntity', code: 10008 });
    // The same name in another org is fine.
    expect((await t.admin.post('/v3/spaces', body('taken', other.guid))).status).toBe(201);
  });

  it('rejects bad bodies with CF errors and writes nothing', async () => {
    const o = await t.org('bad-body-org');
    const spacesBefore = await countRows('spaces');
    const auditBefore = await countRows('audit_events');
    const cases: Array<[unknown, string]> = [
      [{ ...body('x', o.guid), color: 'red' }, "Unknown field(s): 'color'"],
      [{ relationships: body('x', o.guid).relationships }, "Name can't be blank"],
      [body('', o.guid), "Name can't be blank"],
      [{ ...body('x', o.guid), name: 42 }, 'Name must be a string'],
      [body('n'.repeat(256), o.guid), 'Name is too long (maximum is 255 characters)'],
      [body('tab\there', o.guid), 'Name must not contain escaped characters'],
      [{ name: 'x' }, "Relationships 'relationships' is not an object"],
      [{ name: 'x', relationships: {} }, "Relationships 'relationships' must include one or more valid relationships"],
      [
        { name: 'x', relationships: { organization: { guid: o.guid } } },
        'Relationships Organization must be structured like this: "organization: {"data": {"guid": "valid-guid"}}"',
      ],
      [{ name: 'x', relationships: { organization: { data: { guid: 7 } } } }, 'Relationships Organization guid must be a string'],
      [{ ...body('x', o.guid), metadata: { labels: { 'bad key!': 'v' } } }, 'Metadata label key error'],
      [{ ...body('x', o.guid), metadata: { colour: {} } }, "Unknown field(s): 'colour'"],
    ];
    for (const [payload, detail] of cases) {
      const res = await t.admin.post('/v3/spaces', payload);
      expect(res.status, JSON.stringify(payload)).toBe(422);
      expect(res.body.errors[0].title).toBe('CF-UnprocessableEntity');
      expect(res.body.errors[0].detail).toContain(detail);
    }
    const notJson = await t.admin.post('/v3/spaces', undefined, { raw: '{"name":' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errors[0].title).toBe('CF-MessageParseError');
    expect(await countRows('spaces')).toBe(spacesBefore);
    expect(await countRows('audit_events')).toBe(auditBefore);
  });

  it('checks the org: invisible or missing → 422, visible without manager role → 403, manager → 201', async () => {
    const o = await t.org('perm-org');
    const invalid = 'Invalid organization. Ensure the organization exists and you have access to it.';
    const stranger = await t.user('create-stranger');
    const hidden = await stranger.post('/v3/spaces', body('s', o.guid));
    expect(hidden.status).toBe(422);
    expect(hidden.body.errors[0]).toEqual({ detail: invalid, title: 'CF-UnprocessableEntity', code: 10008 });
    const missing = await t.admin.post('/v3/spaces', body('s', randomUUID()));
    expect(missing.status).toBe(422);
    expect(missing.body.errors[0].detail).toBe(invalid);

    const orgUser = await t.user('create-org-user');
    await t.grant(orgUser, 'organization_user', { org: o.guid });
    const forbidden = await orgUser.post('/v3/spaces', body('s', o.guid));
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.errors[0]).toEqual({ detail: 'You are not authorized to perform the requested action', title: 'CF-NotAuthorized', code: 10003 });

    const manager = await t.user('create-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const rolesBefore = await countRows('roles');
    const ok = await manager.post('/v3/spaces', body('by-manager', o.guid));
    expect(ok.status).toBe(201);
    expect(await countRows('roles')).toBe(rolesBefore);

    const readOnly = await t.user('create-global-auditor', ['cloud_controller.global_auditor']);
    expect((await readOnly.post('/v3/spaces', body('s', o.guid))).status).toBe(403);
    expect((await t.anonymous.post('/v3/spaces', body('s', o.guid))).status).toBe(401);
  });

  it('refuses spaces in suspended orgs (except for admins) and in orgs being deleted', async () => {
    const o = await t.org('suspended-org');
    const manager = await t.user('suspended-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    expect((await t.admin.patch(`/v3/organizations/${o.guid}`, { suspended: true })).status).toBe(200);
    const res = await manager.post('/v3/spaces', body('s', o.guid));
    expect(res.status).toBe(403);
    expect(res.body.errors[0]).toMatchObject({ title: 'CF-OrgSuspended', code: 10017 });
    expect((await t.admin.post('/v3/spaces', body('admin-may', o.guid))).status).toBe(201);

    const doomed = await t.org('deleting-org');
    await t.kiln.store.db.updateTable('organizations').set({ status: 'deleting' }).where('guid', '=', doomed.guid).execute();
    const deleting = await t.admin.post('/v3/spaces', body('s', doomed.guid));
    expect(deleting.status).toBe(422);
    expect(deleting.body.errors[0]).toEqual({ detail: 'The organization is being deleted', title: 'CF-ResourceBeingDeleted', code: 10020 });
  });
});

describe('reading spaces', () => {
  let o: any;
  let o2: any;
  let a: any;
  let b: any;
  let c: any;
  beforeAll(async () => {
    o = await t.org('read-org');
    o2 = await t.org('read-org-2');
    a = await t.space('alpha', o.guid, { metadata: { labels: { tier: 'gold' } } });
    b = await t.space('bravo', o.guid, { metadata: { labels: { tier: 'silver' } } });
    c = await t.space('charlie', o2.guid);
  });

  it('gets one space, with include=organization or its alias org', async () => {
    const plain = await t.admin.get(`/v3/spaces/${a.guid}`);
    expect(plain.status).toBe(200);
    expect(plain.body).toEqual(a);
    expect(plain.body.included).toBeUndefined();
    for (const include of ['organization', 'org']) {
      const res = await t.admin.get(`/v3/spaces/${a.guid}?include=${include}`);
      expect(res.status).toBe(200);
      expect(res.body.name).toBe('alpha');
      expect(res.body.included.organizations).toHaveLength(1);
      expect(res.body.included.organizations[0]).toEqual((await t.admin.get(`/v3/organizations/${o.guid}`)).body);
    }
  });

  it('rejects bad query parameters on get', async () => {
    const bad = await t.admin.get(`/v3/spaces/${a.guid}?include=space`);
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]).toEqual({
      detail: "The query parameter is invalid: Invalid included resource: 'space'. Valid included resources are: 'org', 'organization'",
      title: 'CF-BadQueryParameter',
      code: 10005,
    });
    const dup = await t.admin.get(`/v3/spaces/${a.guid}?include=org,org`);
    expect(dup.status).toBe(400);
    expect(dup.body.errors[0].detail).toContain("Duplicate included resource: 'org'");
    const unknown = await t.admin.get(`/v3/spaces/${a.guid}?colour=red`);
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors[0].detail).toContain("Unknown query parameter(s): 'colour'");
  });

  it('lists with filters, label selectors, ordering and absolute pagination links', async () => {
    const all = await t.admin.get(`/v3/spaces?organization_guids=${o.guid},${o2.guid}`);
    expect(all.status).toBe(200);
    expect(all.body.resources.map((s: any) => s.name)).toEqual(['alpha', 'bravo', 'charlie']);
    expect(all.body.included).toBeUndefined();

    const page = await t.admin.get(`/v3/spaces?organization_guids=${o.guid},${o2.guid}&order_by=-name&per_page=2`);
    expect(page.body.pagination).toMatchObject({ total_results: 3, total_pages: 2, previous: null });
    expect(page.body.resources.map((s: any) => s.name)).toEqual(['charlie', 'bravo']);
    expect(page.body.pagination.next.href).toBe(
      `http://kiln.test/v3/spaces?order_by=-name&organization_guids=${o.guid}%2C${o2.guid}&page=2&per_page=2`,
    );
    const page2 = await t.admin.get(new URL(page.body.pagination.next.href).pathname + new URL(page.body.pagination.next.href).search);
    expect(page2.body.resources.map((s: any) => s.name)).toEqual(['alpha']);
    expect(page2.body.pagination.next).toBeNull();

    const byName = await t.admin.get(`/v3/spaces?names=bravo,charlie&order_by=name`);
    expect(byName.body.resources.map((s: any) => s.guid)).toEqual([b.guid, c.guid]);
    const byGuid = await t.admin.get(`/v3/spaces?guids=${a.guid},${c.guid}`);
    expect(byGuid.body.resources.map((s: any) => s.name)).toEqual(['alpha', 'charlie']);
    const gold = await t.admin.get(`/v3/spaces?label_selector=tier%3Dgold`);
    expect(gold.body.resources.map((s: any) => s.name)).toEqual(['alpha']);
    const notGold = await t.admin.get(`/v3/spaces?organization_guids=${o.guid}&label_selector=tier!%3Dgold`);
    expect(notGold.body.resources.map((s: any) => s.name)).toEqual(['bravo']);
  });

  it('lists with include=organization: every parent org once, ordered by creation', async () => {
    const res = await t.admin.get(`/v3/spaces?organization_guids=${o2.guid},${o.guid}&include=organization&order_by=-name`);
    expect(res.status).toBe(200);
    expect(res.body.included.organizations.map((x: any) => x.guid)).toEqual([o.guid, o2.guid]);
    expect(res.body.included.organizations[0]).toMatchObject({ name: 'read-org', links: { self: { href: `http://kiln.test/v3/organizations/${o.guid}` } } });
    expect(res.body.pagination.first.href).toContain('include=organization');
    const alias = await t.admin.get(`/v3/spaces?names=charlie&include=org`);
    expect(alias.body.included.organizations.map((x: any) => x.guid)).toEqual([o2.guid]);
    const none = await t.admin.get(`/v3/spaces?names=nothing-here&include=org`);
    expect(none.body.resources).toEqual([]);
    expect(none.body.included).toEqual({ organizations: [] });
  });

  it('rejects bad list queries with 400', async () => {
    for (const q of ['per_page=0', 'page=0', 'order_by=state', 'colour=red', 'include=space', 'created_ats=yesterday', 'label_selector=']) {
      const res = await t.admin.get(`/v3/spaces?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.errors[0]).toMatchObject({ title: 'CF-BadQueryParameter', code: 10005 });
    }
  });

  it('shows spaces only to space roles, org managers of the parent org and global readers', async () => {
    const dev = await t.user('reader-dev');
    await t.grant(dev, 'organization_user', { org: o.guid });
    await t.grant(dev, 'space_developer', { space: a.guid });
    const orgManager = await t.user('reader-org-manager');
    await t.grant(orgManager, 'organization_manager', { org: o.guid });
    const orgUser = await t.user('reader-org-user');
    await t.grant(orgUser, 'organization_user', { org: o.guid });
    await t.grant(orgUser, 'organization_auditor', { org: o.guid });
    const auditor = await t.user('reader-global-auditor', ['cloud_controller.global_auditor']);
    const nobody = await t.user('reader-nobody');

    const names = async (cl: Client) => (await cl.get('/v3/spaces?order_by=name')).body.resources.map((s: any) => s.name);
    expect(await names(dev)).toEqual(['alpha']);
    expect(await names(orgManager)).toEqual(['alpha', 'bravo']);
    expect(await names(orgUser)).toEqual([]);
    expect(await names(nobody)).toEqual([]);
    expect(await names(auditor)).toEqual(expect.arrayContaining(['alpha', 'bravo', 'charlie']));

    expect((await dev.get(`/v3/spaces/${a.guid}`)).status).toBe(200);
    expect((await dev.get(`/v3/spaces/${b.guid}`)).status).toBe(404);
    expect((await orgManager.get(`/v3/spaces/${b.guid}`)).status).toBe(200);
    expect((await orgManager.get(`/v3/spaces/${c.guid}`)).status).toBe(404);
    const hidden = await orgUser.get(`/v3/spaces/${a.guid}`);
    expect(hidden.status).toBe(404);
    expect(hidden.body.errors[0]).toEqual({ detail: 'Space not found', title: 'CF-ResourceNotFound', code: 10010 });
    expect((await t.admin.get(`/v3/spaces/${randomUUID()}`)).status).toBe(404);
    expect((await auditor.get(`/v3/spaces/${c.guid}?include=org`)).body.included.organizations[0].guid).toBe(o2.guid);
  });

  it('requires authentication', async () => {
    const res = await t.anonymous.get('/v3/spaces');
    expect(res.status).toBe(401);
    expect(res.body.errors[0]).toEqual({ detail: 'Authentication error', title: 'CF-NotAuthenticated', code: 10002 });
    expect((await t.anonymous.get(`/v3/spaces/${a.guid}`)).status).toBe(401);
  });
});

describe('updating spaces', () => {
  let o: any;
  let s: any;
  let manager: Client;
  let auditor: Client;
  let developer: Client;
  let orgManager: Client;
  let outsider: Client;
  beforeAll(async () => {
    o = await t.org('update-org');
    s = await t.space('before', o.guid, { metadata: { labels: { env: 'staging', ready: 'true' }, annotations: { v: '0.1' } } });
    await t.space('neighbour', o.guid);
    manager = await t.user('update-space-manager');
    auditor = await t.user('update-space-auditor');
    developer = await t.user('update-space-developer');
    orgManager = await t.user('update-org-manager');
    outsider = await t.user('update-outsider');
    for (const [cl, type] of [
      [manager, 'space_manager'],
      [auditor, 'space_auditor'],
      [developer, 'space_developer'],
    ] as const) {
      await t.grant(cl, 'organization_user', { org: o.guid });
      await t.grant(cl, type, { space: s.guid });
    }
    await t.grant(orgManager, 'organization_manager', { org: o.guid });
  });

  it('lets a space manager rename and merge metadata', async () => {
    const res = await manager.patch(`/v3/spaces/${s.guid}`, {
      name: 'after',
      metadata: { labels: { env: 'production', ready: null }, annotations: { month: 'nov' } },
    });
    expect(res.status).toBe(200);
    expect(res.body.name).toBe('after');
    expect(res.body.metadata).toEqual({ labels: { env: 'production' }, annotations: { v: '0.1', month: 'nov' } });
    expect((await t.admin.get(`/v3/spaces/${s.guid}`)).body.name).toBe('after');
    const audit = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', s.guid).orderBy('id').execute();
    expect(audit.map((x) => x.type)).toContain('audit.space.update');
  });

  it('lets an org manager update, and an empty body changes nothing', async () => {
    const res = await orgManager.patch(`/v3/spaces/${s.guid}`, {});
    expect(res.status).toBe(200);
    expect(res.body.name).toBe('after');
  });

  it('forbids visible non-managers (403) and hides the space from others (404)', async () => {
    for (const cl of [auditor, developer]) {
      const res = await cl.patch(`/v3/spaces/${s.guid}`, { name: 'nope' });
      expect(res.status).toBe(403);
      expect(res.body.errors[0].title).toBe('CF-NotAuthorized');
    }
    const hidden = await outsider.patch(`/v3/spaces/${s.guid}`, { name: 'nope' });
    expect(hidden.status).toBe(404);
    expect(hidden.body.errors[0].detail).toBe('Space not found');
    expect((await t.admin.patch(`/v3/spaces/${randomUUID()}`, { name: 'x' })).status).toBe(404);
    expect((await t.admin.get(`/v3/spaces/${s.guid}`)).body.name).toBe('after');
  });

  it('rejects duplicates and bad bodies without writing', async () => {
    const before = (await t.admin.get(`/v3/spaces/${s.guid}`)).body;
    const dup = await manager.patch(`/v3/spaces/${s.guid}`, { name: 'NEIGHBOUR' });
    expect(dup.status).toBe(422);
    expect(dup.body.errors[0].detail).toBe("Organization 'update-org' already contains a space with name 'NEIGHBOUR'.");
    const cases: Array<[unknown, string]> = [
      [{ name: '' }, 'Name is too short (minimum is 1 character)'],
      [{ name: 5 }, 'Name must be a string'],
      [{ name: 'x', relationships: {} }, "Unknown field(s): 'relationships'"],
      [{ metadata: { labels: { 'cloudfoundry.org/x': 'y' } } }, "prefix 'cloudfoundry.org' is reserved"],
    ];
    for (const [payload, detail] of cases) {
      const res = await manager.patch(`/v3/spaces/${s.guid}`, payload);
      expect(res.status).toBe(422);
      expect(res.body.errors[0].detail).toContain(detail);
    }
    const after = (await t.admin.get(`/v3/spaces/${s.guid}`)).body;
    expect(after).toEqual(before);
  });

  it('refuses updates in suspended orgs and to spaces being deleted', async () => {
    const o2 = await t.org('update-suspended-org');
    const s2 = await t.space('s2', o2.guid);
    const m2 = await t.user('update-suspended-manager');
    await t.grant(m2, 'organization_manager', { org: o2.guid });
    await t.admin.patch(`/v3/organizations/${o2.guid}`, { suspended: true });
    const suspended = await m2.patch(`/v3/spaces/${s2.guid}`, { name: 'x' });
    expect(suspended.status).toBe(403);
    expect(suspended.body.errors[0].title).toBe('CF-OrgSuspended');
    expect((await t.admin.patch(`/v3/spaces/${s2.guid}`, { name: 'admin-renamed' })).status).toBe(200);

    await t.kiln.store.db.updateTable('spaces').set({ status: 'deleting' }).where('guid', '=', s2.guid).execute();
    const deleting = await t.admin.patch(`/v3/spaces/${s2.guid}`, { name: 'y' });
    expect(deleting.status).toBe(422);
    expect(deleting.body.errors[0]).toEqual({ detail: 'The space is being deleted', title: 'CF-ResourceBeingDeleted', code: 10020 });
  });
});

describe('space features', () => {
  let o: any;
  let s: any;
  let manager: Client;
  let auditor: Client;
  beforeAll(async () => {
    o = await t.org('feature-org');
    s = await t.space('ssh-space', o.guid);
    manager = await t.user('feature-space-manager');
    auditor = await t.user('feature-space-auditor');
    await t.grant(manager, 'space_manager', { space: s.guid });
    await t.grant(auditor, 'space_auditor', { space: s.guid });
  });

  it('lists and gets the ssh feature', async () => {
    const list = await auditor.get(`/v3/spaces/${s.guid}/features`);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ resources: [{ name: 'ssh', description: 'Enable SSHing into apps in the space.', enabled: true }] });
    const one = await auditor.get(`/v3/spaces/${s.guid}/features/ssh`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual({ name: 'ssh', description: 'Enable SSHing into apps in the space.', enabled: true });
  });

  it('toggles ssh for space managers, backed by spaces.allow_ssh', async () => {
    const off = await manager.patch(`/v3/spaces/${s.guid}/features/ssh`, { enabled: false });
    expect(off.status).toBe(200);
    expect(off.body).toEqual({ name: 'ssh', description: 'Enable SSHing into apps in the space.', enabled: false });
    const row = await t.kiln.store.db.selectFrom('spaces').select('allow_ssh').where('guid', '=', s.guid).executeTakeFirstOrThrow();
    expect(row.allow_ssh).toBe(0);
    expect((await auditor.get(`/v3/spaces/${s.guid}/features/ssh`)).body.enabled).toBe(false);
    const on = await t.admin.patch(`/v3/spaces/${s.guid}/features/ssh`, { enabled: true });
    expect(on.body.enabled).toBe(true);
  });

  it('answers unknown features, forbidden callers and bad bodies with CF errors', async () => {
    const unknown = await auditor.get(`/v3/spaces/${s.guid}/features/diego_docker`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.errors[0]).toEqual({ detail: 'Feature not found', title: 'CF-ResourceNotFound', code: 10010 });
    expect((await manager.patch(`/v3/spaces/${s.guid}/features/bogus`, { enabled: true })).status).toBe(404);

    const forbidden = await auditor.patch(`/v3/spaces/${s.guid}/features/ssh`, { enabled: false });
    expect(forbidden.status).toBe(403);
    const outsider = await t.user('feature-outsider');
    expect((await outsider.get(`/v3/spaces/${s.guid}/features`)).status).toBe(404);
    expect((await outsider.get(`/v3/spaces/${s.guid}/features/ssh`)).status).toBe(404);
    expect((await outsider.patch(`/v3/spaces/${s.guid}/features/ssh`, { enabled: false })).status).toBe(404);

    for (const [payload, detail] of [
      [{}, 'Enabled must be a boolean'],
      [{ enabled: 'yes' }, 'Enabled must be a boolean'],
      [{ enabled: true, extra: 1 }, "Unknown field(s): 'extra'"],
    ] as const) {
      const res = await manager.patch(`/v3/spaces/${s.guid}/features/ssh`, payload);
      expect(res.status).toBe(422);
      expect(res.body.errors[0].detail).toBe(detail);
    }
    expect((await t.admin.get(`/v3/spaces/${s.guid}/features/ssh`)).body.enabled).toBe(true);
    expect((await t.anonymous.get(`/v3/spaces/${s.guid}/features`)).status).toBe(401);
    expect((await t.admin.get(`/v3/spaces/${s.guid}/features?x=1`)).status).toBe(400);
  });
});

describe('usage summaries', () => {
  it('counts usage for a space and an org (private domains are the org’s)', async () => {
    const o = await t.org('usage-org');
    const s = await t.space('usage-space', o.guid);
    await t.kiln.store.write(async (tx) => {
      for (const name of ['a.example.com', 'b.example.com']) {
        await tx.insert('domains', { name, internal: 0, owning_organization_guid: o.guid, router_group_guid: null });
      }
    });
    const expected = { started_instances: 0, memory_in_mb: 0, routes: 0, service_instances: 0, reserved_ports: 0, domains: 2, per_app_tasks: 0, service_keys: 0 };

    const dev = await t.user('usage-dev');
    await t.grant(dev, 'organization_user', { org: o.guid });
    await t.grant(dev, 'space_developer', { space: s.guid });
    const spaceUsage = await dev.get(`/v3/spaces/${s.guid}/usage_summary`);
    expect(spaceUsage.status).toBe(200);
    expect(spaceUsage.body).toEqual({
      usage_summary: expected,
      links: {
        self: { href: `http://kiln.test/v3/spaces/${s.guid}/usage_summary` },
        space: { href: `http://kiln.test/v3/spaces/${s.guid}` },
      },
    });

    const orgUsage = await dev.get(`/v3/organizations/${o.guid}/usage_summary`);
    expect(orgUsage.status).toBe(200);
    expect(orgUsage.body).toEqual({
      usage_summary: expected,
      links: {
        self: { href: `http://kiln.test/v3/organizations/${o.guid}/usage_summary` },
        organization: { href: `http://kiln.test/v3/organizations/${o.guid}` },
      },
    });

    // An org user reads the org's summary but not the space's.
    const orgUser = await t.user('usage-org-user');
    await t.grant(orgUser, 'organization_user', { org: o.guid });
    expect((await orgUser.get(`/v3/organizations/${o.guid}/usage_summary`)).status).toBe(200);
    expect((await orgUser.get(`/v3/spaces/${s.guid}/usage_summary`)).status).toBe(404);
    const nobody = await t.user('usage-nobody');
    const hiddenOrg = await nobody.get(`/v3/organizations/${o.guid}/usage_summary`);
    expect(hiddenOrg.status).toBe(404);
    expect(hiddenOrg.body.errors[0].detail).toBe('Organization not found');
    expect((await t.anonymous.get(`/v3/spaces/${s.guid}/usage_summary`)).status).toBe(401);
    expect((await t.admin.get(`/v3/spaces/${s.guid}/usage_summary?x=1`)).status).toBe(400);
  });
});

describe('deleting unmapped routes', () => {
  let s: any;
  let dev: Client;
  let supporter: Client;
  let auditor: Client;
  beforeAll(async () => {
    const o = await t.org('routes-org');
    s = await t.space('routes-space', o.guid);
    dev = await t.user('routes-dev');
    supporter = await t.user('routes-supporter');
    auditor = await t.user('routes-auditor');
    await t.grant(dev, 'space_developer', { space: s.guid });
    await t.grant(supporter, 'space_supporter', { space: s.guid });
    await t.grant(auditor, 'space_auditor', { space: s.guid });
  });

  it('answers 202 with a job that is already complete', async () => {
    for (const cl of [dev, supporter, t.admin]) {
      const res = await cl.delete(`/v3/spaces/${s.guid}/routes?unmapped=true`);
      expect(res.status).toBe(202);
      expect(res.headers.get('location')).toMatch(/^http:\/\/kiln\.test\/v3\/jobs\/[0-9a-f-]{36}$/);
      const job = await t.awaitJob(res.headers.get('location'));
      expect(job).toMatchObject({ state: 'COMPLETE', operation: 'space.delete_unmapped_routes', errors: [], warnings: [] });
      expect(job.links.space.href).toBe(`http://kiln.test/v3/spaces/${s.guid}`);
    }
  });

  it('requires unmapped=true, the right role and a visible space', async () => {
    const missing = await dev.delete(`/v3/spaces/${s.guid}/routes`);
    expect(missing.status).toBe(422);
    expect(missing.body.errors[0]).toEqual({
      detail: "Mass delete not supported for routes. Use 'unmapped' parameter to delete all unmapped routes.",
      title: 'CF-UnprocessableEntity',
      code: 10008,
    });
    const mapped = await dev.delete(`/v3/spaces/${s.guid}/routes?unmapped=false`);
    expect(mapped.status).toBe(422);
    expect(mapped.body.errors[0].detail).toContain("Use 'unmapped=true'");
    expect((await dev.delete(`/v3/spaces/${s.guid}/routes?unmapped=yes`)).status).toBe(422);
    expect((await dev.delete(`/v3/spaces/${s.guid}/routes?unmapped=true&all=1`)).status).toBe(400);

    const jobsBefore = await t.kiln.store.db.selectFrom('jobs').select('guid').execute();
    expect((await auditor.delete(`/v3/spaces/${s.guid}/routes?unmapped=true`)).status).toBe(403);
    const outsider = await t.user('routes-outsider');
    expect((await outsider.delete(`/v3/spaces/${s.guid}/routes?unmapped=true`)).status).toBe(404);
    expect((await t.anonymous.delete(`/v3/spaces/${s.guid}/routes?unmapped=true`)).status).toBe(401);
    expect(await t.kiln.store.db.selectFrom('jobs').select('guid').execute()).toHaveLength(jobsBefore.length);
  });
});

describe('deleting spaces', () => {
  it('deletes through a space.delete job and cascades to the roles in the space', async () => {
    const o = await t.org('delete-org');
    const s = await t.space('doomed', o.guid, { metadata: { labels: { gone: 'soon' } } });
    const keep = await t.space('kept', o.guid);
    const manager = await t.user('delete-org-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const dev = await t.user('delete-dev');
    const orgRole = await t.grant(dev, 'organization_user', { org: o.guid });
    await t.grant(dev, 'space_developer', { space: s.guid });
    const keptRole = await t.grant(dev, 'space_developer', { space: keep.guid });

    const res = await manager.delete(`/v3/spaces/${s.guid}`);
    expect(res.status).toBe(202);
    expect(res.text).toBe('');
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'space.delete', errors: [] });
    expect(job.links.space).toBeUndefined();

    expect((await t.admin.get(`/v3/spaces/${s.guid}`)).status).toBe(404);
    expect((await t.admin.get(`/v3/spaces/${keep.guid}`)).status).toBe(200);
    const roles = await t.kiln.store.db.selectFrom('roles').select(['guid', 'space_guid']).where('user_guid', '=', dev.userGuid!).execute();
    expect(roles.map((r) => r.guid).sort()).toEqual([orgRole, keptRole].sort());
    const labels = await t.kiln.store.db.selectFrom('labels').select('id').where('resource_guid', '=', s.guid).execute();
    expect(labels).toEqual([]);

    // The space was marked deleting in the request, then removed by the job.
    const feed = await t.kiln.store.db.selectFrom('changes').select('op').where('kind', '=', 'spaces').where('guid', '=', s.guid).orderBy('revision').execute();
    expect(feed.map((f) => f.op)).toEqual(['create', 'update', 'delete']);
    const audit = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', s.guid).orderBy('id').execute();
    expect(audit.map((a) => a.type)).toContain('audit.space.delete-request');
  });

  it('hands back the job already in flight when a delete is repeated', async () => {
    const o = await t.org('redelete-org');
    const s = await t.space('twice', o.guid);
    // A PROCESSING job written without a change-feed entry, so the job controller leaves it alone here.
    const inFlight = randomUUID();
    const now = new Date().toISOString();
    await t.kiln.store.db
      .insertInto('jobs')
      .values({
        guid: inFlight,
        created_at: now,
        updated_at: now,
        operation: 'space.delete',
        state: 'PROCESSING',
        resource_type: 'space',
        resource_guid: s.guid,
        errors: '[]',
        warnings: '[]',
        user_guid: null,
        attempts: 0,
      })
      .execute();
    const res = await t.admin.delete(`/v3/spaces/${s.guid}`);
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(`http://kiln.test/v3/jobs/${inFlight}`);
  });

  it('forbids space roles (403), hides from outsiders (404) and writes nothing', async () => {
    const o = await t.org('delete-perm-org');
    const s = await t.space('protected', o.guid);
    const spaceManager = await t.user('delete-space-manager');
    await t.grant(spaceManager, 'space_manager', { space: s.guid });
    const forbidden = await spaceManager.delete(`/v3/spaces/${s.guid}`);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.errors[0].title).toBe('CF-NotAuthorized');
    const outsider = await t.user('delete-outsider');
    expect((await outsider.delete(`/v3/spaces/${s.guid}`)).status).toBe(404);
    expect((await t.admin.delete(`/v3/spaces/${randomUUID()}`)).status).toBe(404);
    expect((await t.anonymous.delete(`/v3/spaces/${s.guid}`)).status).toBe(401);
    const row = await t.kiln.store.db.selectFrom('spaces').select('status').where('guid', '=', s.guid).executeTakeFirstOrThrow();
    expect(row.status).toBe('active');
    const jobs = await t.kiln.store.db.selectFrom('jobs').select('guid').where('resource_guid', '=', s.guid).execute();
    expect(jobs).toEqual([]);
  });

  it('removes the spaces of a deleted org', async () => {
    const o = await t.org('cascade-org');
    const s = await t.space('inside', o.guid);
    const res = await t.admin.delete(`/v3/organizations/${o.guid}`);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    expect((await t.admin.get(`/v3/spaces/${s.guid}`)).status).toBe(404);
  });
});
