import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

describe('organizations', () => {
  it('creates an org as the cf CLI does and reads it back', async () => {
    const res = await t.admin.post('/v3/organizations', { name: 'org-a', suspended: false });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: 'org-a', suspended: false, metadata: { labels: {}, annotations: {} } });
    expect(res.body.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(res.body.links.self.href).toBe(`http://kiln.test/v3/organizations/${res.body.guid}`);
    expect(res.body.relationships.quota.data.guid).toBeTruthy();

    const got = await t.admin.get(`/v3/organizations/${res.body.guid}`);
    expect(got.status).toBe(200);
    expect(got.body.name).toBe('org-a');
  });

  it('answers a duplicate name with the 422 the CLI treats as success', async () => {
    await t.admin.post('/v3/organizations', { name: 'dup-org' });
    const res = await t.admin.post('/v3/organizations', { name: 'DUP-org' });
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toEqual({ detail: "Organization 'DUP-org' already exists.", title: 'CF-UnprocessableEntity', code: 10008 });
  });

  it('rejects bad bodies with CF errors and writes nothing', async () => {
    const before = (await t.admin.get('/v3/organizations?per_page=5000')).body.pagination.total_results;
    const unknown = await t.admin.post('/v3/organizations', { name: 'x', color: 'red' });
    expect(unknown.status).toBe(422);
    expect(unknown.body.errors[0].detail).toBe("Unknown field(s): 'color'");
    const notJson = await t.admin.post('/v3/organizations', undefined, { raw: '{"name":' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errors[0].title).toBe('CF-MessageParseError');
    const badName = await t.admin.post('/v3/organizations', { name: 42 });
    expect(badName.status).toBe(422);
    const badLabel = await t.admin.post('/v3/organizations', { name: 'lbl', metadata: { labels: { 'bad key!': 'v' } } });
    expect(badLabel.status).toBe(422);
    expect(badLabel.body.errors[0].detail).toContain('Metadata label key error');
    const after = (await t.admin.get('/v3/organizations?per_page=5000')).body.pagination.total_results;
    expect(after).toBe(before);
  });

  it('paginates with absolute links and filters by name and label', async () => {
    for (const n of ['p1', 'p2', 'p3']) {
      await t.admin.post('/v3/organizations', { name: n, metadata: { labels: { tier: n === 'p2' ? 'gold' : 'silver' } } });
    }
    const page = await t.admin.get('/v3/organizations?names=p1,p2,p3&per_page=2&order_by=-name');
    expect(page.status).toBe(200);
    expect(page.body.pagination.total_results).toBe(3);
    expect(page.body.pagination.total_pages).toBe(2);
    expect(page.body.resources.map((o: any) => o.name)).toEqual(['p3', 'p2']);
    expect(page.body.pagination.next.href).toBe('http://kiln.test/v3/organizations?names=p1%2Cp2%2Cp3&order_by=-name&page=2&per_page=2');
    expect(page.body.pagination.previous).toBeNull();
    const gold = await t.admin.get('/v3/organizations?label_selector=tier%3Dgold');
    expect(gold.body.resources.map((o: any) => o.name)).toEqual(['p2']);
    const notGold = await t.admin.get('/v3/organizations?names=p1,p2,p3&label_selector=tier!%3Dgold');
    expect(notGold.body.resources.map((o: any) => o.name)).toEqual(['p1', 'p3']);
    const bad = await t.admin.get('/v3/organizations?per_page=0');
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]).toMatchObject({ title: 'CF-BadQueryParameter', code: 10005 });
    const unknownParam = await t.admin.get('/v3/organizations?colour=red');
    expect(unknownParam.status).toBe(400);
    expect(unknownParam.body.errors[0].detail).toContain("Unknown query parameter(s): 'colour'");
  });

  it('updates metadata with merge semantics', async () => {
    const org = (await t.admin.post('/v3/organizations', { name: 'meta-org', metadata: { labels: { env: 'staging', ready: 'true' }, annotations: { v: '0.1' } } })).body;
    const res = await t.admin.patch(`/v3/organizations/${org.guid}`, { metadata: { labels: { env: 'production', ready: null }, annotations: { month: 'nov' } } });
    expect(res.status).toBe(200);
    expect(res.body.metadata).toEqual({ labels: { env: 'production' }, annotations: { v: '0.1', month: 'nov' } });
  });

  it('hides orgs from users without a role and forbids non-admin creation by default', async () => {
    const org = (await t.admin.post('/v3/organizations', { name: 'secret-org' })).body;
    const alice = await t.user('alice-orgs');
    expect((await alice.get(`/v3/organizations/${org.guid}`)).status).toBe(404);
    const list = await alice.get('/v3/organizations');
    expect(list.body.pagination.total_results).toBe(0);
    const create = await alice.post('/v3/organizations', { name: 'alice-org' });
    expect(create.status).toBe(403);
    expect(create.body.errors[0]).toMatchObject({ title: 'CF-NotAuthorized', code: 10003 });
  });

  it('deletes asynchronously through a job', async () => {
    const org = (await t.admin.post('/v3/organizations', { name: 'doomed' })).body;
    const res = await t.admin.delete(`/v3/organizations/${org.guid}`);
    expect(res.status).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'organization.delete', errors: [] });
    expect(job.links.organization).toBeUndefined();
    expect((await t.admin.get(`/v3/organizations/${org.guid}`)).status).toBe(404);
  });

  it('requires authentication', async () => {
    const res = await t.anonymous.get('/v3/organizations');
    expect(res.status).toBe(401);
    expect(res.body.errors[0]).toEqual({ detail: 'Authentication error', title: 'CF-NotAuthenticated', code: 10002 });
    const bad = await t.anonymous.get('/v3/organizations', { headers: { authorization: 'bearer not-a-jwt' } });
    expect(bad.status).toBe(401);
    expect(bad.body.errors[0].title).toBe('CF-InvalidAuthToken');
  });
});

describe('organization and space naming as Cloud Controller words it', () => {
  it('answers a rename to a taken org name with organization_update.rb\'s message', async () => {
    await t.admin.post('/v3/organizations', { name: 'rename-taken' });
    const other = await t.admin.post('/v3/organizations', { name: 'rename-me' });
    const res = await t.admin.patch(`/v3/organizations/${other.body.guid}`, { name: 'rename-taken' });
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toEqual({ detail: "Organization name 'rename-taken' is already taken.", title: 'CF-UnprocessableEntity', code: 10008 });
    expect((await t.admin.get(`/v3/organizations/${other.body.guid}`)).body.name).toBe('rename-me');
  });

  it('answers an org create with an empty body with "Name can\'t be blank"', async () => {
    const res = await t.admin.post('/v3/organizations', {});
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toEqual({ detail: "Name can't be blank", title: 'CF-UnprocessableEntity', code: 10008 });
  });

  it('answers a rename to a taken space name naming the org', async () => {
    const org = await t.org('space-rename-org');
    await t.space('taken-space', org.guid);
    const other = await t.space('other-space', org.guid);
    const res = await t.admin.patch(`/v3/spaces/${other.guid}`, { name: 'taken-space' });
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toEqual({
      detail: "Organization 'space-rename-org' already contains a space with name 'taken-space'.",
      title: 'CF-UnprocessableEntity',
      code: 10008,
    });
  });

  it('answers a non-admin org create with user_org_creation off with 403 CF-NotAuthorized', async () => {
    const user = await t.user('no-org-maker');
    const res = await user.post('/v3/organizations', { name: 'not-allowed' });
    expect(res.status).toBe(403);
    expect(res.body.errors[0]).toEqual({ detail: 'You are not authorized to perform the requested action', title: 'CF-NotAuthorized', code: 10003 });
  });

  it('answers an unknown /v3 path with 404 CF-NotFound before asking for a token', async () => {
    for (const [method, path] of [['GET', '/v3/potatoes'], ['POST', '/v3/apps/x/actions/dance'], ['GET', '/v3/apps/x/y/z']] as const) {
      const res = await t.anonymous.request(method, path, undefined, { skipSpec: true });
      expect(res.status).toBe(404);
      expect(res.body.errors[0]).toEqual({ detail: 'Unknown request', title: 'CF-NotFound', code: 10000 });
    }
    // A known route still asks for a token first.
    expect((await t.anonymous.get('/v3/apps')).status).toBe(401);
    expect((await t.anonymous.get('/v3/organizations/some-guid')).status).toBe(401);
  });
});
