import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;

// POST /v3/organizations currently deadlocks on SQLite (services/organizations.ts checks the name through
// store.db inside its write transaction), so orgs are inserted directly; everything else goes through the API.
async function newOrg(name: string): Promise<string> {
  const guid = randomUUID();
  await t.kiln.store.write((tx) => tx.insert('organizations', { guid, name, suspended: 0, status: 'active', quota_guid: null, default_isolation_segment_guid: null }));
  return guid;
}

async function newSpace(orgGuid: string, name: string): Promise<string> {
  const res = await t.admin.post('/v3/spaces', { name, relationships: { organization: { data: { guid: orgGuid } } } });
  expect(res.status, res.text).toBe(201);
  return res.body.guid;
}

async function grant(type: string, user: Client, target: { org?: string; space?: string }): Promise<void> {
  const relationships: Record<string, unknown> = { user: { data: { guid: user.userGuid } } };
  if (target.org) relationships.organization = { data: { guid: target.org } };
  if (target.space) relationships.space = { data: { guid: target.space } };
  const res = await t.admin.post('/v3/roles', { type, relationships });
  expect(res.status, res.text).toBe(201);
}

const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

let orgA: string;
let orgB: string;
let spaceA1: string;
let spaceA2: string;
let spaceB1: string;
let member: Client;

const all = async (as: Client, query = '') => {
  const res = await as.get(`/v3/audit_events?per_page=5000${query}`);
  expect(res.status, res.text).toBe(200);
  return res.body.resources as any[];
};

beforeAll(async () => {
  t = await createTestKiln();
  orgA = await newOrg('audit-org-a');
  orgB = await newOrg('audit-org-b');
  spaceA1 = await newSpace(orgA, 'a1');
  spaceA2 = await newSpace(orgA, 'a2');
  spaceB1 = await newSpace(orgB, 'b1');
  member = await t.user('audit-member');
  await grant('organization_user', member, { org: orgA });
  await grant('space_developer', member, { space: spaceA1 });
  expect((await t.admin.patch(`/v3/organizations/${orgA}`, { metadata: { labels: { team: 'x' } } })).status).toBe(200);
  expect((await t.admin.patch(`/v3/spaces/${spaceB1}`, { name: 'b1-renamed' })).status).toBe(200);
});
afterAll(() => t.close());

describe('audit events written by the org, space and role services', () => {
  it('records a space create as Cloud Foundry does', async () => {
    const [ev] = await all(t.admin, `&types=audit.space.create&target_guids=${spaceA1}`);
    expect(ev).toEqual({
      guid: expect.any(String),
      created_at: expect.stringMatching(TS),
      updated_at: ev.created_at,
      type: 'audit.space.create',
      actor: { guid: t.admin.userGuid, type: 'user', name: 'admin' },
      target: { guid: spaceA1, type: 'space', name: 'a1' },
      data: { request: expect.objectContaining({ name: 'a1' }) },
      space: { guid: spaceA1 },
      organization: { guid: orgA },
      links: { self: { href: `http://kiln.test/v3/audit_events/${ev.guid}` } },
    });
  });

  it('records org updates with no space, and role grants against the user', async () => {
    const [orgUpdate] = await all(t.admin, `&types=audit.organization.update&target_guids=${orgA}`);
    expect(orgUpdate).toMatchObject({
      target: { guid: orgA, type: 'organization', name: 'audit-org-a' },
      space: null,
      organization: { guid: orgA },
      data: { request: { metadata: { labels: { team: 'x' } } } },
    });
    const roleEvents = await all(t.admin, `&target_guids=${member.userGuid}`);
    expect(roleEvents.map((e) => e.type)).toEqual(['audit.user.organization_user_add', 'audit.user.space_developer_add']);
    expect(roleEvents[0]).toMatchObject({ target: { guid: member.userGuid, type: 'user', name: 'audit-member' }, space: null, organization: { guid: orgA } });
    expect(roleEvents[1]).toMatchObject({ space: { guid: spaceA1 }, organization: { guid: orgA } });
    const rename = await all(t.admin, `&types=audit.space.update&space_guids=${spaceB1}`);
    expect(rename[0]).toMatchObject({ target: { name: 'b1-renamed' }, data: { request: { name: 'b1-renamed' } } });
  });
});

describe('GET /v3/audit_events filters', () => {
  it('filters by types, target_guids, space_guids and organization_guids (lists OR, filters AND)', async () => {
    const creates = await all(t.admin, '&types=audit.space.create,audit.organization.update');
    expect(creates.map((e) => e.type).sort()).toEqual(['audit.organization.update', 'audit.space.create', 'audit.space.create', 'audit.space.create']);
    const inA = await all(t.admin, `&organization_guids=${orgA}&types=audit.space.create`);
    expect(inA.map((e) => e.target.guid).sort()).toEqual([spaceA1, spaceA2].sort());
    const inSpaces = await all(t.admin, `&space_guids=${spaceA2},${spaceB1}`);
    expect(new Set(inSpaces.map((e) => e.space.guid))).toEqual(new Set([spaceA2, spaceB1]));
    const targets = await all(t.admin, `&target_guids=${spaceA1},${spaceA2}&types=audit.space.create`);
    expect(targets).toHaveLength(2);
    expect(await all(t.admin, '&types=')).toEqual([]);
    const guid = targets[0].guid;
    expect((await all(t.admin, `&guids=${guid}`)).map((e) => e.guid)).toEqual([guid]);
  });

  it('excludes targets with target_guids[not] and keeps the filter in page links', async () => {
    const everything = await all(t.admin);
    const rest = await all(t.admin, `&target_guids%5Bnot%5D=${spaceA1},${member.userGuid}`);
    expect(rest.length).toBe(everything.filter((e) => e.target.guid !== spaceA1 && e.target.guid !== member.userGuid).length);
    expect(rest.some((e) => e.target.guid === spaceA1 || e.target.guid === member.userGuid)).toBe(false);
    const paged = await t.admin.get(`/v3/audit_events?target_guids%5Bnot%5D=${spaceA1}&per_page=1`);
    expect(paged.body.pagination.next.href).toBe(
      `http://kiln.test/v3/audit_events?page=2&per_page=1&target_guids%5Bnot%5D=${spaceA1}`,
    );
  });

  it('filters by created_ats with relational operators', async () => {
    const [ev] = await all(t.admin, `&types=audit.space.create&target_guids=${spaceA1}`);
    expect(await all(t.admin, '&created_ats%5Blt%5D=2000-01-01T00:00:00Z')).toEqual([]);
    expect((await all(t.admin, '&created_ats%5Bgte%5D=2000-01-01T00:00:00Z')).length).toBe((await all(t.admin)).length);
    expect((await all(t.admin, `&created_ats=${ev.created_at}`)).map((e) => e.guid)).toContain(ev.guid);
    expect((await all(t.admin, `&created_ats%5Blte%5D=${ev.created_at}`)).map((e) => e.guid)).toContain(ev.guid);
    expect((await all(t.admin, `&created_ats%5Bgt%5D=${ev.created_at}`)).map((e) => e.guid)).not.toContain(ev.guid);
    expect((await all(t.admin, `&created_ats%5Blt%5D=${ev.created_at}`)).map((e) => e.guid)).not.toContain(ev.guid);
    const bad = await t.admin.get('/v3/audit_events?created_ats=yesterday');
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].detail).toContain('has an invalid timestamp format');
    const badOp = await t.admin.get('/v3/audit_events?created_ats%5Bnear%5D=2020-01-01T00:00:00Z');
    expect(badOp.status).toBe(400);
  });

  it('orders by created_at / updated_at only, pages, and rejects unknown parameters', async () => {
    const asc = await all(t.admin);
    const desc = await all(t.admin, '&order_by=-created_at');
    expect(desc[0].created_at >= desc.at(-1).created_at).toBe(true);
    expect(desc.map((e) => e.guid).sort()).toEqual(asc.map((e) => e.guid).sort());
    expect((await t.admin.get('/v3/audit_events?order_by=updated_at')).status).toBe(200);
    const byName = await t.admin.get('/v3/audit_events?order_by=name');
    expect(byName.status).toBe(400);
    expect(byName.body.errors[0].detail).toContain("Order by can only be: 'created_at', 'updated_at'");
    const page = await t.admin.get('/v3/audit_events?per_page=2&page=2');
    expect(page.body.resources.map((e: any) => e.guid)).toEqual(asc.slice(2, 4).map((e) => e.guid));
    expect(page.body.pagination.total_results).toBe(asc.length);
    const unknown = await t.admin.get('/v3/audit_events?actor_guids=x');
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors[0].detail).toContain("Unknown query parameter(s): 'actor_guids'");
    expect((await t.admin.get('/v3/audit_events?target_guids%5Bin%5D=x')).status).toBe(400);
    expect((await t.admin.get('/v3/audit_events?per_page=0')).status).toBe(400);
  });
});

describe('audit event visibility', () => {
  it('shows everything to admins, admin read-only and global auditors', async () => {
    const count = (await all(t.admin)).length;
    const ga = await t.user('audit-ga', ['cloud_controller.global_auditor']);
    const aro = await t.user('audit-aro', ['cloud_controller.admin_read_only']);
    expect((await all(ga)).length).toBe(count);
    expect((await all(aro)).length).toBe(count);
  });

  it("shows a space developer the events of their spaces only", async () => {
    const seen = await all(member);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((e) => e.space?.guid === spaceA1)).toBe(true);
    expect(seen.map((e) => e.type)).toEqual(expect.arrayContaining(['audit.space.create', 'audit.user.space_developer_add']));
    const orgUpdate = (await all(t.admin, `&types=audit.organization.update&target_guids=${orgA}`))[0];
    const single = await member.get(`/v3/audit_events/${orgUpdate.guid}`);
    expect(single.status).toBe(404);
    expect(single.body.errors[0]).toEqual({ detail: 'Event not found', title: 'CF-ResourceNotFound', code: 10010 });
    const own = await member.get(`/v3/audit_events/${seen[0].guid}`);
    expect(own.status).toBe(200);
    expect(own.body.guid).toBe(seen[0].guid);
  });

  it('shows space auditors and supporters their spaces, org auditors their whole org', async () => {
    const sa = await t.user('audit-sa');
    await grant('organization_user', sa, { org: orgB });
    await grant('space_auditor', sa, { space: spaceB1 });
    const saSeen = await all(sa);
    expect(saSeen.length).toBeGreaterThan(0);
    expect(saSeen.every((e) => e.space?.guid === spaceB1)).toBe(true);

    const ss = await t.user('audit-ss');
    await grant('organization_user', ss, { org: orgA });
    await grant('space_supporter', ss, { space: spaceA2 });
    const ssSeen = await all(ss);
    expect(ssSeen.length).toBeGreaterThan(0);
    expect(ssSeen.every((e) => e.space?.guid === spaceA2)).toBe(true);

    const oa = await t.user('audit-oa');
    await grant('organization_auditor', oa, { org: orgA });
    const oaSeen = await all(oa);
    expect(oaSeen.every((e) => e.organization?.guid === orgA)).toBe(true);
    expect(new Set(oaSeen.map((e) => e.type))).toEqual(
      new Set(['audit.space.create', 'audit.organization.update', 'audit.user.organization_user_add', 'audit.user.space_developer_add', 'audit.user.space_supporter_add', 'audit.user.organization_auditor_add']),
    );
    const bEvent = (await all(t.admin, `&space_guids=${spaceB1}`))[0];
    expect((await oa.get(`/v3/audit_events/${bEvent.guid}`)).status).toBe(404);
  });

  it('shows managers, org users and strangers nothing, as upstream', async () => {
    const om = await t.user('audit-om');
    await grant('organization_manager', om, { org: orgA });
    const sm = await t.user('audit-sm');
    await grant('organization_user', sm, { org: orgA });
    await grant('space_manager', sm, { space: spaceA1 });
    const stranger = await t.user('audit-stranger');
    for (const c of [om, sm, stranger]) {
      const res = await c.get('/v3/audit_events');
      expect(res.status).toBe(200);
      expect(res.body.resources).toEqual([]);
      expect(res.body.pagination).toMatchObject({ total_results: 0, total_pages: 1, next: null, previous: null });
    }
    const any = (await all(t.admin))[0];
    expect((await stranger.get(`/v3/audit_events/${any.guid}`)).status).toBe(404);
  });

  it('keeps platform-wide events (no org) for global readers', async () => {
    expect((await t.admin.patch('/v3/feature_flags/route_sharing', { enabled: true })).status).toBe(200);
    const adminSees = await all(t.admin, '&types=audit.feature_flag.update');
    expect(adminSees).toHaveLength(1);
    expect(adminSees[0]).toMatchObject({ space: null, organization: null, data: { request: { enabled: true } } });
    expect(await all(member, '&types=audit.feature_flag.update')).toEqual([]);
  });

  it('needs a token and 404s unknown guids', async () => {
    expect((await t.anonymous.get('/v3/audit_events')).status).toBe(401);
    expect((await t.admin.get(`/v3/audit_events/${randomUUID()}`)).status).toBe(404);
    expect((await t.admin.get(`/v3/audit_events/${randomUUID()}?x=1`)).status).toBe(400);
  });
});
