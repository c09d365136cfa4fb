import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

async function quota(name: string, extra: Record<string, unknown> = {}): Promise<any> {
  const res = await t.admin.post('/v3/organization_quotas', { name, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function auditTypes(targetGuid: string): Promise<string[]> {
  const rows = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', targetGuid).orderBy('id').execute();
  return rows.map((r) => r.type);
}

const err = (res: { body: any }) => res.body.errors[0];

describe('the default organization quota', () => {
  it('is seeded and given to new orgs', async () => {
    const list = await t.admin.get('/v3/organization_quotas?names=default');
    expect(list.status).toBe(200);
    expect(list.body.resources).toHaveLength(1);
    const def = list.body.resources[0];
    const o = await t.org('gets-default');
    expect(o.relationships.quota.data.guid).toBe(def.guid);
    const got = await t.admin.get(`/v3/organization_quotas/${def.guid}`);
    expect(got.body.relationships.organizations.data).toContainEqual({ guid: o.guid });
  });
});

describe('creating organization quotas', () => {
  it('creates a quota with every field and renders unset limits as null (unlimited)', async () => {
    const res = await t.admin.post('/v3/organization_quotas', {
      name: 'full',
      apps: { total_memory_in_mb: 5120, per_process_memory_in_mb: 1024, total_instances: 10, per_app_tasks: 5, log_rate_limit_in_bytes_per_second: 2048 },
      services: { paid_services_allowed: false, total_service_instances: 10, total_service_keys: 20 },
      routes: { total_routes: 8, total_reserved_ports: 4 },
      domains: { total_domains: 7 },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: 'full',
      apps: { total_memory_in_mb: 5120, per_process_memory_in_mb: 1024, total_instances: 10, per_app_tasks: 5, log_rate_limit_in_bytes_per_second: 2048 },
      services: { paid_services_allowed: false, total_service_instances: 10, total_service_keys: 20 },
      routes: { total_routes: 8, total_reserved_ports: 4 },
      domains: { total_domains: 7 },
      relationships: { organizations: { data: [] } },
      links: { self: { href: `http://kiln.test/v3/organization_quotas/${res.body.guid}` } },
    });
    expect(res.body.metadata).toBeUndefined();
    expect(await auditTypes(res.body.guid)).toEqual(['audit.organization_quota.create']);

    const minimal = await quota('minimal');
    expect(minimal).toMatchObject({
      apps: { total_memory_in_mb: null, per_process_memory_in_mb: null, total_instances: null, per_app_tasks: null, log_rate_limit_in_bytes_per_second: null },
      services: { paid_services_allowed: true, total_service_instances: null, total_service_keys: null },
      routes: { total_routes: null, total_reserved_ports: null },
      domains: { total_domains: null },
    });
  });

  it('applies the quota to orgs named in relationships', async () => {
    const o1 = await t.org('rel-1');
    const o2 = await t.org('rel-2');
    const q = await quota('with-orgs', { relationships: { organizations: { data: [{ guid: o1.guid }, { guid: o2.guid }] } } });
    expect(q.relationships.organizations.data).toEqual([{ guid: o1.guid }, { guid: o2.guid }]);
    const got = await t.admin.get(`/v3/organizations/${o1.guid}`);
    expect(got.body.relationships.quota.data.guid).toBe(q.guid);

    const missing = randomUUID();
    const bad = await t.admin.post('/v3/organization_quotas', { name: 'with-missing', relationships: { organizations: { data: [{ guid: missing }] } } });
    expect(bad.status).toBe(422);
    expect(err(bad).detail).toBe(`Organizations with guids ["${missing}"] do not exist, or you do not have access to them.`);
    expect((await t.admin.get('/v3/organization_quotas?names=with-missing')).body.resources).toHaveLength(0);
  });

  it('rejects a duplicate name with 422', async () => {
    await quota('dupe');
    const res = await t.admin.post('/v3/organization_quotas', { name: 'dupe' });
    expect(res.status).toBe(422);
    expect(err(res)).toEqual({ detail: "Organization Quota 'dupe' already exists.", title: 'CF-UnprocessableEntity', code: 10008 });
  });

  it('validates the body as Cloud Controller words it', async () => {
    const cases: Array<[unknown, string]> = [
      [{}, "Name can't be blank"],
      [{ name: 5 }, 'Name must be a string'],
      [{ name: 'x'.repeat(251) }, 'Name is too long (maximum is 250 characters)'],
      [{ name: 'm', metadata: {} }, "Unknown field(s): 'metadata'"],
      [{ name: 'a', apps: 5 }, 'Apps must be an object'],
      [{ name: 'a', apps: { total_memory_in_mb: -1 } }, 'Apps Total memory in mb must be greater than or equal to 0'],
      [{ name: 'a', apps: { total_instances: 1.5 } }, 'Apps Total instances must be an integer'],
      [{ name: 'a', apps: { per_app_tasks: 'lots' } }, 'Apps Per app tasks is not a number'],
      [{ name: 'a', apps: { total_memory_in_mb: 2147483648 } }, 'Apps Total memory in mb must be less than or equal to 2147483647'],
      [{ name: 'a', apps: { memory: 1 } }, "Apps Unknown field(s): 'memory'"],
      [{ name: 'a', services: { paid_services_allowed: 'yes' } }, 'Services Paid services allowed must be a boolean'],
      [{ name: 'a', routes: { total_routes: -2 } }, 'Routes Total routes must be greater than or equal to 0'],
      [{ name: 'a', domains: { total_domains: 'x' } }, 'Domains Total domains is not a number'],
      [{ name: 'a', relationships: [] }, "Relationships 'relationships' is not an object"],
      [
        { name: 'a', relationships: { organizations: [{ guid: 'x' }] } },
        'Relationships Organizations must be structured like this: "organizations: {"data": [{"guid": "valid-guid"},{"guid": "valid-guid"}]}"',
      ],
      [{ name: 'a', routes: { total_routes: 2, total_reserved_ports: 3 } }, 'Total reserved ports must be -1, 0, or a positive integer, and must be less than or equal to total routes.'],
    ];
    for (const [body, detail] of cases) {
      const res = await t.admin.post('/v3/organization_quotas', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(err(res).detail, JSON.stringify(body)).toBe(detail);
    }
    const parse = await t.admin.post('/v3/organization_quotas', undefined, { raw: '{"name":' });
    expect(parse.status).toBe(400);
    const several = await t.admin.post('/v3/organization_quotas', { name: '', apps: { total_instances: -1 } });
    expect(err(several).detail).toBe("Name is too short (minimum is 1 character), Name can't be blank, Apps Total instances must be greater than or equal to 0");
  });

  it('is for admins only, refused before the body is looked at', async () => {
    const manager = await t.user();
    const o = await t.org('om-org');
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const res = await manager.post('/v3/organization_quotas', { name: 5 });
    expect(res.status).toBe(403);
    expect(err(res).title).toBe('CF-NotAuthorized');
    const auditor = await t.user(undefined, ['cloud_controller.global_auditor']);
    expect((await auditor.post('/v3/organization_quotas', { name: 'ga' })).status).toBe(403);
  });
});

describe('reading organization quotas', () => {
  it('lists with filters and pagination, and shows relationships only to orgs the caller can read', async () => {
    const mine = await t.org('list-mine');
    const theirs = await t.org('list-theirs');
    const q = await quota('list-q', { relationships: { organizations: { data: [{ guid: mine.guid }, { guid: theirs.guid }] } } });
    await quota('list-other');

    const byName = await t.admin.get('/v3/organization_quotas?names=list-q,list-other&order_by=-created_at&per_page=1');
    expect(byName.status).toBe(200);
    expect(byName.body.pagination.total_results).toBe(2);
    expect(byName.body.resources[0].name).toBe('list-other');
    expect(byName.body.pagination.next.href).toBe(
      'http://kiln.test/v3/organization_quotas?names=list-q%2Clist-other&order_by=-created_at&page=2&per_page=1',
    );

    const byOrg = await t.admin.get(`/v3/organization_quotas?organization_guids=${theirs.guid}`);
    expect(byOrg.body.resources.map((r: any) => r.name)).toEqual(['list-q']);
    const byGuid = await t.admin.get(`/v3/organization_quotas?guids=${q.guid}`);
    expect(byGuid.body.resources).toHaveLength(1);

    const user = await t.user();
    await t.grant(user, 'organization_auditor', { org: mine.guid });
    const seen = await user.get(`/v3/organization_quotas/${q.guid}`);
    expect(seen.status).toBe(200);
    expect(seen.body.relationships.organizations.data).toEqual([{ guid: mine.guid }]);
    const listed = await user.get('/v3/organization_quotas?names=list-q');
    expect(listed.body.resources[0].relationships.organizations.data).toEqual([{ guid: mine.guid }]);
    // organization_guids only matches orgs the caller can read.
    expect((await user.get(`/v3/organization_quotas?organization_guids=${theirs.guid}`)).body.resources).toHaveLength(0);
    expect((await user.get(`/v3/organization_quotas?organization_guids=${mine.guid}`)).body.resources).toHaveLength(1);

    // Upstream shows every quota (not its orgs) to any reader, even one without roles.
    const stranger = await t.user();
    const strangerView = await stranger.get(`/v3/organization_quotas/${q.guid}`);
    expect(strangerView.status).toBe(200);
    expect(strangerView.body.relationships.organizations.data).toEqual([]);
  });

  it('answers 404 for an unknown quota and 400 for bad query parameters', async () => {
    const res = await t.admin.get(`/v3/organization_quotas/${randomUUID()}`);
    expect(res.status).toBe(404);
    expect(err(res)).toEqual({ detail: 'Organization quota not found', title: 'CF-ResourceNotFound', code: 10010 });
    const bad = await t.admin.get('/v3/organization_quotas?label_selector=a');
    expect(bad.status).toBe(400);
    expect(err(bad).detail).toContain("Unknown query parameter(s): 'label_selector'");
    const order = await t.admin.get('/v3/organization_quotas?order_by=name');
    expect(order.status).toBe(400);
    expect(err(order).detail).toBe("The query parameter is invalid: Order by can only be: 'created_at', 'updated_at'");
  });
});

describe('updating organization quotas', () => {
  it('changes only the given fields; null makes a limit unlimited', async () => {
    const q = await quota('upd', { apps: { total_memory_in_mb: 100, total_instances: 3 }, services: { paid_services_allowed: false } });
    const res = await t.admin.patch(`/v3/organization_quotas/${q.guid}`, {
      name: 'upd-2',
      apps: { total_memory_in_mb: null },
      routes: { total_routes: 9 },
      services: { paid_services_allowed: null },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      name: 'upd-2',
      apps: { total_memory_in_mb: null, total_instances: 3 },
      routes: { total_routes: 9 },
      services: { paid_services_allowed: true },
    });
    expect(await auditTypes(q.guid)).toEqual(['audit.organization_quota.create', 'audit.organization_quota.update']);
  });

  it('validates, keeps names unique and checks the merged limits', async () => {
    await quota('upd-taken');
    const q = await quota('upd-b', { routes: { total_routes: 5 } });
    const taken = await t.admin.patch(`/v3/organization_quotas/${q.guid}`, { name: 'upd-taken' });
    expect(taken.status).toBe(422);
    expect(err(taken).detail).toBe("Organization Quota 'upd-taken' already exists.");
    const ports = await t.admin.patch(`/v3/organization_quotas/${q.guid}`, { routes: { total_reserved_ports: 6 } });
    expect(ports.status).toBe(422);
    const badBody = await t.admin.patch(`/v3/organization_quotas/${randomUUID()}`, { apps: { total_instances: -5 } });
    expect(badBody.status).toBe(422);
    const missing = await t.admin.patch(`/v3/organization_quotas/${randomUUID()}`, { name: 'x' });
    expect(missing.status).toBe(404);
    const user = await t.user();
    expect((await user.patch(`/v3/organization_quotas/${q.guid}`, { name: 'mine' })).status).toBe(403);
    expect((await t.admin.get(`/v3/organization_quotas/${q.guid}`)).body.name).toBe('upd-b');
  });
});

describe('applying organization quotas', () => {
  it('applies to orgs idempotently and returns every org using the quota', async () => {
    const o1 = await t.org('apply-1');
    const o2 = await t.org('apply-2');
    const q = await quota('apply-q');
    const url = `/v3/organization_quotas/${q.guid}/relationships/organizations`;
    const res = await t.admin.post(url, { data: [{ guid: o1.guid }] });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [{ guid: o1.guid }], links: { self: { href: `http://kiln.test${url}` } } });
    const again = await t.admin.post(url, { data: [{ guid: o1.guid }, { guid: o2.guid }] });
    expect(again.body.data).toEqual([{ guid: o1.guid }, { guid: o2.guid }]);
    expect((await t.admin.get(`/v3/organizations/${o2.guid}`)).body.relationships.quota.data.guid).toBe(q.guid);
    expect(await auditTypes(q.guid)).toEqual([
      'audit.organization_quota.create',
      'audit.organization_quota.apply',
      'audit.organization_quota.apply',
      'audit.organization_quota.apply',
    ]);
  });

  it('refuses bad bodies, unknown orgs and quotas, and non-admins', async () => {
    const o = await t.org('apply-bad');
    const q = await quota('apply-bad-q');
    const url = `/v3/organization_quotas/${q.guid}/relationships/organizations`;
    const empty = await t.admin.post(url, { data: [] });
    expect(empty.status).toBe(422);
    expect(err(empty).detail).toBe("Data can't be blank");
    const notArray = await t.admin.post(url, { data: { guid: o.guid } });
    expect(err(notArray).detail).toBe('Data must be an array');
    const badGuid = await t.admin.post(url, { data: [{ guid: 1 }] });
    expect(err(badGuid).detail).toBe('Invalid data type: Data[0] guid should be a string.');
    const missing = randomUUID();
    const unknownOrg = await t.admin.post(url, { data: [{ guid: o.guid }, { guid: missing }] });
    expect(unknownOrg.status).toBe(422);
    expect(err(unknownOrg).detail).toBe(`Organizations with guids ["${missing}"] do not exist`);
    // Nothing was applied: the request is all or nothing.
    expect((await t.admin.get(`/v3/organizations/${o.guid}`)).body.relationships.quota.data.guid).not.toBe(q.guid);
    const noQuota = await t.admin.post(`/v3/organization_quotas/${randomUUID()}/relationships/organizations`, { data: [{ guid: o.guid }] });
    expect(noQuota.status).toBe(404);
    const manager = await t.user();
    await t.grant(manager, 'organization_manager', { org: o.guid });
    expect((await manager.post(url, { data: [{ guid: o.guid }] })).status).toBe(403);
  });
});

describe('deleting organization quotas', () => {
  it('deletes an unused quota through a job', async () => {
    const q = await quota('del-q');
    const res = await t.admin.delete(`/v3/organization_quotas/${q.guid}`);
    expect(res.status).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'organization_quota.delete', errors: [] });
    expect(job.links.organization_quota).toBeUndefined();
    expect((await t.admin.get(`/v3/organization_quotas/${q.guid}`)).status).toBe(404);
    expect(await auditTypes(q.guid)).toContain('audit.organization_quota.delete');
  });

  it('refuses to delete a quota in use, and checks permission before existence', async () => {
    const o = await t.org('del-in-use');
    const q = await quota('del-used', { relationships: { organizations: { data: [{ guid: o.guid }] } } });
    const res = await t.admin.delete(`/v3/organization_quotas/${q.guid}`);
    expect(res.status).toBe(422);
    expect(err(res)).toEqual({
      detail: 'This quota is applied to one or more organizations. Apply different quotas to those organizations before deleting.',
      title: 'CF-UnprocessableEntity',
      code: 10008,
    });
    expect((await t.admin.delete(`/v3/organization_quotas/${randomUUID()}`)).status).toBe(404);
    const user = await t.user();
    expect((await user.delete(`/v3/organization_quotas/${randomUUID()}`)).status).toBe(403);
    expect((await user.delete(`/v3/organization_quotas/${q.guid}`)).status).toBe(403);
  });
});
