import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

const SHARED = '933b4c58-120b-499a-b85d-4b6fc9e2903b';
const BASE = 'http://kiln.test';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

async function segment(name: string, extra: Record<string, unknown> = {}): Promise<any> {
  const res = await t.admin.post('/v3/isolation_segments', { name, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function entitle(segGuid: string, ...orgGuids: string[]) {
  const res = await t.admin.post(`/v3/isolation_segments/${segGuid}/relationships/organizations`, {
    data: orgGuids.map((guid) => ({ guid })),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

const detail = (res: { body: any }) => res.body.errors[0].detail;

async function auditTypes(targetGuid: string): Promise<string[]> {
  const rows = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', targetGuid).orderBy('id').execute();
  return rows.map((r) => r.type);
}

describe('the shared isolation segment', () => {
  it('is seeded under its well-known guid', async () => {
    const res = await t.admin.get(`/v3/isolation_segments/${SHARED}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ guid: SHARED, name: 'shared', metadata: { labels: {}, annotations: {} } });
  });

  it('can be neither updated nor deleted', async () => {
    const upd = await t.admin.patch(`/v3/isolation_segments/${SHARED}`, { name: 'other' });
    expect(upd.status).toBe(422);
    expect(detail(upd)).toBe('Cannot update the shared Isolation Segment');
    const del = await t.admin.delete(`/v3/isolation_segments/${SHARED}`);
    expect(del.status).toBe(422);
    expect(detail(del)).toBe('Cannot delete the shared Isolation Segment');
  });

  it('becomes the default of an org without one when entitled to it', async () => {
    const o = await t.org('shared-entitled-org');
    const withDefault = await t.org('shared-keeps-default-org');
    const s = await segment('shared-test-own');
    await entitle(s.guid, withDefault.guid);
    expect((await t.admin.patch(`/v3/organizations/${withDefault.guid}/relationships/default_isolation_segment`, { data: { guid: s.guid } })).status).toBe(200);

    await entitle(SHARED, o.guid, withDefault.guid);
    const res = await t.admin.get(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`);
    expect(res.body.data).toEqual({ guid: SHARED });
    const kept = await t.admin.get(`/v3/organizations/${withDefault.guid}/relationships/default_isolation_segment`);
    expect(kept.body.data).toEqual({ guid: s.guid });
  });
});

describe('creating isolation segments', () => {
  it('creates one with metadata and records an audit event', async () => {
    const res = await t.admin.post('/v3/isolation_segments', {
      name: 'create-seg',
      metadata: { labels: { tier: 'gold' }, annotations: { note: 'x' } },
    });
    expect(res.status).toBe(201);
    const s = res.body;
    expect(s).toMatchObject({ name: 'create-seg', metadata: { labels: { tier: 'gold' }, annotations: { note: 'x' } } });
    expect(s.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(s.links).toEqual({
      self: { href: `${BASE}/v3/isolation_segments/${s.guid}` },
      organizations: { href: `${BASE}/v3/isolation_segments/${s.guid}/organizations` },
    });
    expect(Object.keys(s)).toEqual(['guid', 'created_at', 'updated_at', 'name', 'metadata', 'links']);
    expect(await auditTypes(s.guid)).toEqual(['audit.isolation_segment.create']);
  });

  it('refuses names that differ only in case', async () => {
    await segment('Case-Seg');
    const res = await t.admin.post('/v3/isolation_segments', { name: 'case-seg' });
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toEqual({
      detail: 'Isolation Segment names are case insensitive and must be unique',
      title: 'CF-UnprocessableEntity',
      code: 10008,
    });
  });

  it('validates the body', async () => {
    const cases: Array<[unknown, string]> = [
      [{}, "Name can't be blank"],
      [{ name: '   ' }, "Name can't be blank"],
      [{ name: 42 }, 'Name must be a string'],
      [{ name: 'tab\there' }, 'Isolation Segment names can only contain non-blank unicode characters'],
      [{ name: 'ok', colour: 'red' }, "Unknown field(s): 'colour'"],
      [{ name: 'ok', metadata: { labels: { 'bad key!': 'v' } } }, "Metadata label key error: 'bad key!' contains invalid characters"],
    ];
    for (const [body, message] of cases) {
      const res = await t.admin.post('/v3/isolation_segments', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(detail(res)).toBe(message);
    }
    const parse = await t.admin.post('/v3/isolation_segments', undefined, { raw: '{nope' });
    expect(parse.status).toBe(400);
    expect(parse.body.errors[0].title).toBe('CF-MessageParseError');
  });

  it('is for admins only, before the body is even looked at', async () => {
    const user = await t.user('create-non-admin');
    const res = await user.post('/v3/isolation_segments', { name: 42 });
    expect(res.status).toBe(403);
    expect(res.body.errors[0].title).toBe('CF-NotAuthorized');
    const auditor = await t.user('create-global-auditor', ['cloud_controller.global_auditor']);
    expect((await auditor.post('/v3/isolation_segments', { name: 'x' })).status).toBe(403);
  });
});

describe('reading isolation segments', () => {
  let visibleOrg: any;
  let seen: any;
  let hidden: any;
  let orgUser: Client;
  beforeAll(async () => {
    visibleOrg = await t.org('read-visible-org');
    seen = await segment('read-seen', { metadata: { labels: { env: 'prod' } } });
    hidden = await segment('read-hidden', { metadata: { labels: { env: 'dev' } } });
    await entitle(seen.guid, visibleOrg.guid);
    orgUser = await t.user('read-org-user');
    await t.grant(orgUser, 'organization_user', { org: visibleOrg.guid });
  });

  it('shows a non-admin only the segments entitled to orgs they can read', async () => {
    expect((await orgUser.get(`/v3/isolation_segments/${seen.guid}`)).status).toBe(200);
    const res = await orgUser.get(`/v3/isolation_segments/${hidden.guid}`);
    expect(res.status).toBe(404);
    expect(res.body.errors[0]).toEqual({ detail: 'Isolation segment not found', title: 'CF-ResourceNotFound', code: 10010 });
    const list = await orgUser.get('/v3/isolation_segments');
    expect(list.body.resources.map((s: any) => s.guid)).toEqual([seen.guid]);
    expect(list.body.pagination.total_results).toBe(1);
    const stranger = await t.user('read-stranger');
    expect((await stranger.get('/v3/isolation_segments')).body.resources).toEqual([]);
  });

  it('shows global readers everything', async () => {
    const auditor = await t.user('read-global-auditor', ['cloud_controller.global_auditor']);
    expect((await auditor.get(`/v3/isolation_segments/${hidden.guid}`)).status).toBe(200);
    const list = await auditor.get('/v3/isolation_segments?names=read-seen,read-hidden');
    expect(list.body.resources).toHaveLength(2);
  });

  it('filters by names, organization_guids, label_selector and orders by name', async () => {
    const names = await t.admin.get('/v3/isolation_segments?names=read-hidden');
    expect(names.body.resources.map((s: any) => s.guid)).toEqual([hidden.guid]);
    const byOrg = await t.admin.get(`/v3/isolation_segments?organization_guids=${visibleOrg.guid}`);
    expect(byOrg.body.resources.map((s: any) => s.guid)).toEqual([seen.guid]);
    const labelled = await t.admin.get('/v3/isolation_segments?label_selector=env%3Ddev');
    expect(labelled.body.resources.map((s: any) => s.guid)).toEqual([hidden.guid]);
    const ordered = await t.admin.get('/v3/isolation_segments?names=read-seen,read-hidden&order_by=-name');
    expect(ordered.body.resources.map((s: any) => s.name)).toEqual(['read-seen', 'read-hidden']);
    const paged = await t.admin.get('/v3/isolation_segments?names=read-seen,read-hidden&order_by=name&per_page=1&page=2');
    expect(paged.body.resources.map((s: any) => s.name)).toEqual(['read-seen']);
    expect(paged.body.pagination.previous.href).toContain('page=1');
  });

  it('rejects unknown or invalid query parameters', async () => {
    const res = await t.admin.get('/v3/isolation_segments?colour=red');
    expect(res.status).toBe(400);
    expect(detail(res)).toContain("Unknown query parameter(s): 'colour'");
    expect((await t.admin.get('/v3/isolation_segments?order_by=size')).status).toBe(400);
    expect((await t.admin.get(`/v3/isolation_segments/${seen.guid}?x=1`)).status).toBe(400);
  });

  it('lists the entitled organizations (filtered to what the caller can read)', async () => {
    const other = await t.org('read-other-org');
    await entitle(seen.guid, other.guid);
    const rel = await t.admin.get(`/v3/isolation_segments/${seen.guid}/relationships/organizations`);
    expect(rel.status).toBe(200);
    expect(rel.body).toEqual({
      data: [{ guid: visibleOrg.guid }, { guid: other.guid }],
      links: {
        self: { href: `${BASE}/v3/isolation_segments/${seen.guid}/relationships/organizations` },
        related: { href: `${BASE}/v3/isolation_segments/${seen.guid}/organizations` },
      },
    });
    const mine = await orgUser.get(`/v3/isolation_segments/${seen.guid}/relationships/organizations`);
    expect(mine.body.data).toEqual([{ guid: visibleOrg.guid }]);
    expect((await orgUser.get(`/v3/isolation_segments/${hidden.guid}/relationships/organizations`)).status).toBe(404);

    const orgs = await orgUser.get(`/v3/isolation_segments/${seen.guid}/organizations`);
    expect(orgs.status).toBe(200);
    expect(orgs.body.resources.map((o: any) => o.guid)).toEqual([visibleOrg.guid]);
    const all = await t.admin.get(`/v3/isolation_segments/${seen.guid}/organizations?order_by=-name`);
    expect(all.body.resources.map((o: any) => o.name)).toEqual(['read-visible-org', 'read-other-org']);
    expect(all.body.pagination.first.href).toBe(`${BASE}/v3/isolation_segments/${seen.guid}/organizations?order_by=-name&page=1&per_page=50`);
    expect((await orgUser.get(`/v3/isolation_segments/${hidden.guid}/organizations`)).status).toBe(404);
    expect((await t.admin.get(`/v3/isolation_segments/${randomUUID()}/organizations`)).status).toBe(404);
  });

  it('lists the spaces assigned to a segment (filtered to what the caller can read)', async () => {
    const s1 = await t.space('read-space-1', visibleOrg.guid);
    const s2 = await t.space('read-space-2', visibleOrg.guid);
    for (const s of [s1, s2]) {
      const res = await t.admin.patch(`/v3/spaces/${s.guid}/relationships/isolation_segment`, { data: { guid: seen.guid } });
      expect(res.status).toBe(200);
    }
    const rel = await t.admin.get(`/v3/isolation_segments/${seen.guid}/relationships/spaces`);
    expect(rel.body).toEqual({
      data: [{ guid: s1.guid }, { guid: s2.guid }],
      links: { self: { href: `${BASE}/v3/isolation_segments/${seen.guid}/relationships/spaces` } },
    });
    const dev = await t.user('read-space-dev');
    await t.grant(dev, 'organization_user', { org: visibleOrg.guid });
    await t.grant(dev, 'space_developer', { space: s2.guid });
    expect((await dev.get(`/v3/isolation_segments/${seen.guid}/relationships/spaces`)).body.data).toEqual([{ guid: s2.guid }]);
    expect((await orgUser.get(`/v3/isolation_segments/${seen.guid}/relationships/spaces`)).body.data).toEqual([]);
    for (const s of [s1, s2]) await t.admin.patch(`/v3/spaces/${s.guid}/relationships/isolation_segment`, { data: null });
  });
});

describe('updating isolation segments', () => {
  it('renames and merges metadata', async () => {
    const s = await segment('upd-seg', { metadata: { labels: { a: '1', b: '2' } } });
    const res = await t.admin.patch(`/v3/isolation_segments/${s.guid}`, { name: 'upd-seg-renamed', metadata: { labels: { a: null, c: '3' } } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'upd-seg-renamed', metadata: { labels: { b: '2', c: '3' }, annotations: {} } });
    expect(await auditTypes(s.guid)).toEqual(['audit.isolation_segment.create', 'audit.isolation_segment.update']);
    expect((await t.admin.get(`/v3/isolation_segments/${s.guid}`)).body.name).toBe('upd-seg-renamed');
  });

  it('refuses a name in use, a bad body, unknown segments and non-admins', async () => {
    await segment('upd-taken');
    const s = await segment('upd-other');
    const dup = await t.admin.patch(`/v3/isolation_segments/${s.guid}`, { name: 'UPD-TAKEN' });
    expect(dup.status).toBe(422);
    expect(detail(dup)).toBe('Isolation Segment names are case insensitive and must be unique');
    const bad = await t.admin.patch(`/v3/isolation_segments/${s.guid}`, { name: 7 });
    expect(bad.status).toBe(422);
    expect(detail(bad)).toBe('Name must be a string');
    expect(detail(await t.admin.patch(`/v3/isolation_segments/${s.guid}`, { name: null }))).toBe(
      'Isolation Segment names can only contain non-blank unicode characters',
    );
    const missing = await t.admin.patch(`/v3/isolation_segments/${randomUUID()}`, { name: 'x' });
    expect(missing.status).toBe(404);
    const user = await t.user('upd-non-admin');
    expect((await user.patch(`/v3/isolation_segments/${s.guid}`, { name: 'x' })).status).toBe(403);
  });

  it('refuses to update a segment used as a default', async () => {
    const o = await t.org('upd-default-org');
    const s = await segment('upd-in-use');
    await entitle(s.guid, o.guid);
    await t.admin.patch(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`, { data: { guid: s.guid } });
    const res = await t.admin.patch(`/v3/isolation_segments/${s.guid}`, { metadata: { labels: { x: 'y' } } });
    expect(res.status).toBe(422);
    expect(detail(res)).toBe('Cannot update Isolation Segments that are assigned as the default for an Organization or Space.');
  });
});

describe('deleting isolation segments', () => {
  it('deletes an unused segment with its metadata', async () => {
    const s = await segment('del-seg', { metadata: { labels: { gone: 'soon' } } });
    const res = await t.admin.delete(`/v3/isolation_segments/${s.guid}`);
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect((await t.admin.get(`/v3/isolation_segments/${s.guid}`)).status).toBe(404);
    const labels = await t.kiln.store.db.selectFrom('labels').select('id').where('resource_guid', '=', s.guid).execute();
    expect(labels).toEqual([]);
    expect(await auditTypes(s.guid)).toContain('audit.isolation_segment.delete');
  });

  it('refuses segments still entitled, unknown segments and non-admins', async () => {
    const o = await t.org('del-entitled-org');
    const s = await segment('del-entitled');
    await entitle(s.guid, o.guid);
    const res = await t.admin.delete(`/v3/isolation_segments/${s.guid}`);
    expect(res.status).toBe(422);
    expect(detail(res)).toBe('Revoke the Organization entitlements for your Isolation Segment.');
    expect((await t.admin.delete(`/v3/isolation_segments/${randomUUID()}`)).status).toBe(404);
    const user = await t.user('del-non-admin');
    await t.grant(user, 'organization_manager', { org: o.guid });
    expect((await user.delete(`/v3/isolation_segments/${s.guid}`)).status).toBe(403);
  });
});

describe('entitling and revoking organizations', () => {
  it('entitles orgs idempotently and answers with every entitled org', async () => {
    const o1 = await t.org('ent-org-1');
    const o2 = await t.org('ent-org-2');
    const s = await segment('ent-seg');
    const first = await entitle(s.guid, o1.guid);
    expect(first.data).toEqual([{ guid: o1.guid }]);
    const second = await entitle(s.guid, o2.guid, o1.guid);
    expect(second).toEqual({
      data: [{ guid: o1.guid }, { guid: o2.guid }],
      links: {
        self: { href: `${BASE}/v3/isolation_segments/${s.guid}/relationships/organizations` },
        related: { href: `${BASE}/v3/isolation_segments/${s.guid}/organizations` },
      },
    });
    expect(await auditTypes(s.guid)).toContain('audit.isolation_segment.entitle_organizations');
  });

  it('refuses missing orgs without entitling any, bad bodies, unknown segments and non-admins', async () => {
    const o = await t.org('ent-partial-org');
    const s = await segment('ent-partial');
    const missing = randomUUID();
    const res = await t.admin.post(`/v3/isolation_segments/${s.guid}/relationships/organizations`, { data: [{ guid: o.guid }, { guid: missing }] });
    expect(res.status).toBe(422);
    expect(detail(res)).toBe(`Unable to entitle organizations ['${missing}'] for the isolation segment. Ensure the organizations exist.`);
    expect((await t.admin.get(`/v3/isolation_segments/${s.guid}/relationships/organizations`)).body.data).toEqual([]);

    const cases: Array<[unknown, string]> = [
      [{}, "Data can't be blank"],
      [{ data: [] }, "Data can't be blank"],
      [{ data: { guid: o.guid } }, 'Data must be an array'],
      [{ data: [{ guid: 5 }] }, 'Data 5 not a string'],
      [{ data: [{ guid: o.guid }], extra: 1 }, "Unknown field(s): 'extra'"],
    ];
    for (const [body, message] of cases) {
      const r = await t.admin.post(`/v3/isolation_segments/${s.guid}/relationships/organizations`, body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      expect(detail(r)).toBe(message);
    }
    expect((await t.admin.post(`/v3/isolation_segments/${randomUUID()}/relationships/organizations`, { data: [{ guid: o.guid }] })).status).toBe(404);
    const manager = await t.user('ent-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    expect((await manager.post(`/v3/isolation_segments/${s.guid}/relationships/organizations`, { data: [{ guid: o.guid }] })).status).toBe(403);
  });

  it('revokes an entitlement unless it is the org default or a space uses it', async () => {
    const o = await t.org('rev-org');
    const sp = await t.space('rev-space', o.guid);
    const s = await segment('rev-seg');
    await entitle(s.guid, o.guid);

    await t.admin.patch(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`, { data: { guid: s.guid } });
    const asDefault = await t.admin.delete(`/v3/isolation_segments/${s.guid}/relationships/organizations/${o.guid}`);
    expect(asDefault.status).toBe(422);
    expect(detail(asDefault)).toBe(
      'Cannot remove the entitlement while this Isolation Segment is assigned as the Default Isolation Segment for the Organization.',
    );
    await t.admin.patch(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`, { data: null });

    await t.admin.patch(`/v3/spaces/${sp.guid}/relationships/isolation_segment`, { data: { guid: s.guid } });
    const inUse = await t.admin.delete(`/v3/isolation_segments/${s.guid}/relationships/organizations/${o.guid}`);
    expect(inUse.status).toBe(422);
    expect(detail(inUse)).toBe("Cannot remove the entitlement while this Isolation Segment is assigned to any Spaces. Currently assigned to: 'rev-space'");
    await t.admin.patch(`/v3/spaces/${sp.guid}/relationships/isolation_segment`, { data: null });

    const user = await t.user('rev-non-admin');
    await t.grant(user, 'organization_manager', { org: o.guid });
    expect((await user.delete(`/v3/isolation_segments/${s.guid}/relationships/organizations/${o.guid}`)).status).toBe(403);

    const ok = await t.admin.delete(`/v3/isolation_segments/${s.guid}/relationships/organizations/${o.guid}`);
    expect(ok.status).toBe(204);
    expect((await t.admin.get(`/v3/isolation_segments/${s.guid}/relationships/organizations`)).body.data).toEqual([]);
    expect(await auditTypes(s.guid)).toContain('audit.isolation_segment.revoke_organization');

    const missingOrg = await t.admin.delete(`/v3/isolation_segments/${s.guid}/relationships/organizations/${randomUUID()}`);
    expect(missingOrg.status).toBe(404);
    expect(detail(missingOrg)).toBe('Organization not found');
    const missingSeg = await t.admin.delete(`/v3/isolation_segments/${randomUUID()}/relationships/organizations/${o.guid}`);
    expect(detail(missingSeg)).toBe('Isolation segment not found');
  });

  it('drops entitlements when the org is deleted', async () => {
    const o = await t.org('rev-deleted-org');
    const s = await segment('rev-deleted-seg');
    await entitle(s.guid, o.guid);
    const del = await t.admin.delete(`/v3/organizations/${o.guid}`);
    expect((await t.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
    expect((await t.admin.get(`/v3/isolation_segments/${s.guid}/relationships/organizations`)).body.data).toEqual([]);
    expect((await t.admin.delete(`/v3/isolation_segments/${s.guid}`)).status).toBe(204);
  });
});

describe("an organization's default isolation segment", () => {
  let o: any;
  let s: any;
  let manager: Client;
  beforeAll(async () => {
    o = await t.org('def-org');
    s = await segment('def-seg');
    await entitle(s.guid, o.guid);
    manager = await t.user('def-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
  });

  it('starts unset and can be set and cleared by an org manager', async () => {
    const empty = await manager.get(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`);
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual({
      data: null,
      links: { self: { href: `${BASE}/v3/organizations/${o.guid}/relationships/default_isolation_segment` } },
    });
    const set = await manager.patch(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`, { data: { guid: s.guid } });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({
      data: { guid: s.guid },
      links: {
        self: { href: `${BASE}/v3/organizations/${o.guid}/relationships/default_isolation_segment` },
        related: { href: `${BASE}/v3/isolation_segments/${s.guid}` },
      },
    });
    expect((await manager.get(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`)).body.data).toEqual({ guid: s.guid });
    expect(await auditTypes(o.guid)).toContain('audit.organization.update');
    const cleared = await manager.patch(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`, { data: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body.data).toBeNull();
  });

  it('refuses segments not entitled to the org, and bad bodies', async () => {
    const other = await segment('def-not-entitled');
    for (const guid of [other.guid, 'no-such-segment']) {
      const res = await t.admin.patch(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`, { data: { guid } });
      expect(res.status).toBe(422);
      expect(detail(res)).toBe(`Unable to assign isolation segment with guid '${guid}'. Ensure it has been entitled to the organization.`);
    }
    const cases: Array<[unknown, string]> = [
      [{ data: 'x' }, 'Data must be an object'],
      [{ data: { guid: 3 } }, 'Data 3 must be a string'],
      [{ data: { guid: s.guid, name: 'x' } }, 'Data can only accept one key'],
      [{ data: { name: 'x' } }, "Data can only accept key 'guid'"],
      [{ data: null, more: 1 }, "Unknown field(s): 'more'"],
    ];
    for (const [body, message] of cases) {
      const res = await t.admin.patch(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`, body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(detail(res)).toContain(message);
    }
  });

  it('hides orgs from strangers and forbids changes by other org roles', async () => {
    const stranger = await t.user('def-stranger');
    const res = await stranger.get(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`);
    expect(res.status).toBe(404);
    expect(detail(res)).toBe('Organization not found');
    expect((await stranger.patch(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`, { data: null })).status).toBe(404);
    const auditor = await t.user('def-org-auditor');
    await t.grant(auditor, 'organization_auditor', { org: o.guid });
    expect((await auditor.get(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`)).status).toBe(200);
    expect((await auditor.patch(`/v3/organizations/${o.guid}/relationships/default_isolation_segment`, { data: null })).status).toBe(403);
  });

  it('refuses changes to a suspended org by its manager', async () => {
    const so = await t.org('def-suspended-org');
    await entitle(s.guid, so.guid);
    const m = await t.user('def-suspended-manager');
    await t.grant(m, 'organization_manager', { org: so.guid });
    expect((await t.admin.patch(`/v3/organizations/${so.guid}`, { suspended: true })).status).toBe(200);
    const res = await m.patch(`/v3/organizations/${so.guid}/relationships/default_isolation_segment`, { data: { guid: s.guid } });
    expect(res.status).toBe(403);
    expect(res.body.errors[0].title).toBe('CF-OrgSuspended');
    expect((await t.admin.patch(`/v3/organizations/${so.guid}/relationships/default_isolation_segment`, { data: { guid: s.guid } })).status).toBe(200);
  });
});

describe("a space's isolation segment", () => {
  let o: any;
  let sp: any;
  let s: any;
  beforeAll(async () => {
    o = await t.org('spc-org');
    sp = await t.space('spc-space', o.guid);
    s = await segment('spc-seg');
    await entitle(s.guid, o.guid);
  });

  it('is assigned and cleared by org managers and shown to space readers', async () => {
    const manager = await t.user('spc-org-manager');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const set = await manager.patch(`/v3/spaces/${sp.guid}/relationships/isolation_segment`, { data: { guid: s.guid } });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({
      data: { guid: s.guid },
      links: {
        self: { href: `${BASE}/v3/spaces/${sp.guid}/relationships/isolation_segment` },
        related: { href: `${BASE}/v3/isolation_segments/${s.guid}` },
      },
    });
    const dev = await t.user('spc-dev');
    await t.grant(dev, 'organization_user', { org: o.guid });
    await t.grant(dev, 'space_developer', { space: sp.guid });
    expect((await dev.get(`/v3/spaces/${sp.guid}/relationships/isolation_segment`)).body.data).toEqual({ guid: s.guid });
    const audit = await t.kiln.store.db.selectFrom('audit_events').selectAll().where('target_guid', '=', sp.guid).where('type', '=', 'audit.space.update').orderBy('id').execute();
    expect(audit.length).toBeGreaterThan(0);

    const cleared = await manager.patch(`/v3/spaces/${sp.guid}/relationships/isolation_segment`, { data: null });
    expect(cleared.body).toEqual({ data: null, links: { self: { href: `${BASE}/v3/spaces/${sp.guid}/relationships/isolation_segment` } } });
  });

  it('refuses space managers, strangers and segments the org is not entitled to', async () => {
    const spaceManager = await t.user('spc-space-manager');
    await t.grant(spaceManager, 'organization_user', { org: o.guid });
    await t.grant(spaceManager, 'space_manager', { space: sp.guid });
    expect((await spaceManager.get(`/v3/spaces/${sp.guid}/relationships/isolation_segment`)).status).toBe(200);
    expect((await spaceManager.patch(`/v3/spaces/${sp.guid}/relationships/isolation_segment`, { data: { guid: s.guid } })).status).toBe(403);

    const orgUser = await t.user('spc-org-user');
    await t.grant(orgUser, 'organization_user', { org: o.guid });
    expect((await orgUser.get(`/v3/spaces/${sp.guid}/relationships/isolation_segment`)).status).toBe(404);
    const stranger = await t.user('spc-stranger');
    const hidden = await stranger.patch(`/v3/spaces/${sp.guid}/relationships/isolation_segment`, { data: null });
    expect(hidden.status).toBe(404);
    expect(detail(hidden)).toBe('Space not found');

    const other = await segment('spc-not-entitled');
    const res = await t.admin.patch(`/v3/spaces/${sp.guid}/relationships/isolation_segment`, { data: { guid: other.guid } });
    expect(res.status).toBe(422);
    expect(detail(res)).toBe(
      `Unable to assign isolation segment with guid '${other.guid}'. Ensure it has been entitled to the organization that this space belongs to.`,
    );
    const bad = await t.admin.patch(`/v3/spaces/${sp.guid}/relationships/isolation_segment`, { data: [] });
    expect(bad.status).toBe(422);
    expect((await t.admin.get(`/v3/spaces/${randomUUID()}/relationships/isolation_segment`)).status).toBe(404);
  });
});
