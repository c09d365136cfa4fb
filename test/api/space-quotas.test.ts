import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

const body = (name: string, orgGuid: string, extra: Record<string, unknown> = {}) => ({
  name,
  relationships: { organization: { data: { guid: orgGuid } } },
  ...extra,
});

async function quota(name: string, orgGuid: string, extra: Record<string, unknown> = {}, as: Client = t.admin): Promise<any> {
  const res = await as.post('/v3/space_quotas', body(name, orgGuid, extra));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function auditTypes(targetGuid: string): Promise<string[]> {
  const rows = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', targetGuid).orderBy('id').execute();
  return rows.map((r) => r.type);
}

const err = (res: { body: any }) => res.body.errors[0];

describe('creating space quotas', () => {
  it('creates a quota with every field, scoped to an org, optionally applied to its spaces', async () => {
    const o = await t.org('sq-create');
    const s = await t.space('dev', o.guid);
    const res = await t.admin.post(
      '/v3/space_quotas',
      body('full', o.guid, {
        apps: { total_memory_in_mb: 2048, per_process_memory_in_mb: 512, total_instances: 4, per_app_tasks: 2, log_rate_limit_in_bytes_per_second: 1000 },
        services: { paid_services_allowed: false, total_service_instances: 3, total_service_keys: 6 },
        routes: { total_routes: 5, total_reserved_ports: 0 },
        relationships: { organization: { data: { guid: o.guid } }, spaces: { data: [{ guid: s.guid }] } },
      }),
    );
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: 'full',
      apps: { total_memory_in_mb: 2048, per_process_memory_in_mb: 512, total_instances: 4, per_app_tasks: 2, log_rate_limit_in_bytes_per_second: 1000 },
      services: { paid_services_allowed: false, total_service_instances: 3, total_service_keys: 6 },
      routes: { total_routes: 5, total_reserved_ports: 0 },
      relationships: { organization: { data: { guid: o.guid } }, spaces: { data: [{ guid: s.guid }] } },
      links: {
        self: { href: `http://kiln.test/v3/space_quotas/${res.body.guid}` },
        organization: { href: `http://kiln.test/v3/organizations/${o.guid}` },
      },
    });
    expect(res.body.domains).toBeUndefined();
    const sp = await t.admin.get(`/v3/spaces/${s.guid}`);
    expect(sp.body.relationships.quota.data.guid).toBe(res.body.guid);
    expect(await auditTypes(res.body.guid)).toEqual(['audit.space_quota.create']);

    const minimal = await quota('minimal', o.guid);
    expect(minimal).toMatchObject({
      apps: { total_memory_in_mb: null, per_process_memory_in_mb: null, total_instances: null, per_app_tasks: null, log_rate_limit_in_bytes_per_second: null },
      services: { paid_services_allowed: true, total_service_instances: null, total_service_keys: null },
      routes: { total_routes: null, total_reserved_ports: null },
      relationships: { spaces: { data: [] } },
    });
  });

  it('keeps names unique per org', async () => {
    const o1 = await t.org('sq-uniq-1');
    const o2 = await t.org('sq-uniq-2');
    await quota('same', o1.guid);
    await quota('same', o2.guid);
    const dup = await t.admin.post('/v3/space_quotas', body('same', o1.guid));
    expect(dup.status).toBe(422);
    expect(err(dup)).toEqual({ detail: "Space Quota 'same' already exists.", title: 'CF-UnprocessableEntity', code: 10008 });
  });

  it('validates the body, the org, the spaces and the reserved ports', async () => {
    const o = await t.org('sq-validate');
    const other = await t.org('sq-validate-other');
    const foreign = await t.space('foreign', other.guid);
    const cases: Array<[unknown, string]> = [
      [{ name: 'x' }, "Relationships 'relationships' is not an object"],
      [{ relationships: { organization: { data: { guid: o.guid } } } }, "Name can't be blank"],
      [{ name: '  ', relationships: { organization: { data: { guid: o.guid } } } }, "Name can't be blank"],
      [{ name: 'x', relationships: { organization: { guid: o.guid } } }, 'Relationships Organization must be structured like this: "organization: {"data": {"guid": "valid-guid"}}"'],
      [body('x', o.guid, { domains: { total_domains: 1 } }), "Unknown field(s): 'domains'"],
      [body('x', o.guid, { apps: { total_memory_in_mb: 'big' } }), 'Apps Total memory in mb is not a number'],
      [body('x', o.guid, { routes: { total_routes: 1, total_reserved_ports: 2 } }), 'Total reserved ports must be -1, 0, or a positive integer, must be less than or equal to total routes, and must be less than or equal to total reserved ports for the organization quota.'],
      // The default org quota reserves no ports, so a space quota may not either.
      [body('x', o.guid, { routes: { total_reserved_ports: 1 } }), 'Total reserved ports must be -1, 0, or a positive integer, must be less than or equal to total routes, and must be less than or equal to total reserved ports for the organization quota.'],
      [
        body('x', o.guid, { relationships: { organization: { data: { guid: o.guid } }, spaces: { data: [{ guid: foreign.guid }] } } }),
        `Spaces with guids ["${foreign.guid}"] do not exist within the organization specified, or you do not have access to them.`,
      ],
    ];
    for (const [b, detail] of cases) {
      const res = await t.admin.post('/v3/space_quotas', b);
      expect(res.status, JSON.stringify(b)).toBe(422);
      expect(err(res).detail, JSON.stringify(b)).toBe(detail);
    }
    const missingOrg = randomUUID();
    const noOrg = await t.admin.post('/v3/space_quotas', body('x', missingOrg));
    expect(noOrg.status).toBe(422);
    expect(err(noOrg).detail).toBe(`Organization with guid '${missingOrg}' does not exist, or you do not have access to it.`);
    expect((await t.admin.get(`/v3/space_quotas?organization_guids=${o.guid}`)).body.resources).toHaveLength(0);
  });

  it('lets org managers create quotas in their org only', async () => {
    const o = await t.org('sq-om');
    const elsewhere = await t.org('sq-om-elsewhere');
    const manager = await t.user();
    await t.grant(manager, 'organization_manager', { org: o.guid });
    await t.grant(manager, 'organization_user', { org: elsewhere.guid });
    const q = await quota('by-manager', o.guid, {}, manager);
    expect(q.relationships.organization.data.guid).toBe(o.guid);
    // Readable but not managed: 403. Invisible: 422 like any unusable relationship.
    expect((await manager.post('/v3/space_quotas', body('nope', elsewhere.guid))).status).toBe(403);
    const hidden = await t.org('sq-om-hidden');
    expect((await manager.post('/v3/space_quotas', body('nope', hidden.guid))).status).toBe(422);
    const developer = await t.user();
    const s = await t.space('dev', o.guid);
    await t.grant(developer, 'organization_user', { org: o.guid });
    await t.grant(developer, 'space_developer', { space: s.guid });
    expect((await developer.post('/v3/space_quotas', body('dev-q', o.guid))).status).toBe(403);
  });

  it('refuses writes in a suspended org to org managers', async () => {
    const o = await t.org('sq-suspended');
    const manager = await t.user();
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const q = await quota('before-suspension', o.guid);
    await t.admin.patch(`/v3/organizations/${o.guid}`, { suspended: true });
    const res = await manager.post('/v3/space_quotas', body('during', o.guid));
    expect(res.status).toBe(403);
    expect(err(res).title).toBe('CF-OrgSuspended');
    expect((await manager.patch(`/v3/space_quotas/${q.guid}`, { name: 'y' })).status).toBe(403);
    expect((await t.admin.patch(`/v3/space_quotas/${q.guid}`, { name: 'by-admin' })).status).toBe(200);
  });
});

describe('reading space quotas', () => {
  it('shows quotas to org managers of the org and to space members of spaces using them', async () => {
    const o = await t.org('sq-read');
    const s1 = await t.space('s1', o.guid);
    const s2 = await t.space('s2', o.guid);
    const used = await quota('used', o.guid, { relationships: { organization: { data: { guid: o.guid } }, spaces: { data: [{ guid: s1.guid }, { guid: s2.guid }] } } });
    const unused = await quota('unused', o.guid);

    const manager = await t.user();
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const managerList = await manager.get(`/v3/space_quotas?organization_guids=${o.guid}`);
    expect(managerList.body.resources.map((q: any) => q.name)).toEqual(['used', 'unused']);

    const dev = await t.user();
    await t.grant(dev, 'organization_user', { org: o.guid });
    await t.grant(dev, 'space_developer', { space: s1.guid });
    const devList = await dev.get('/v3/space_quotas');
    expect(devList.body.resources.map((q: any) => q.guid)).toEqual([used.guid]);
    // Only the spaces the developer can read are shown.
    expect(devList.body.resources[0].relationships.spaces.data).toEqual([{ guid: s1.guid }]);
    expect((await dev.get(`/v3/space_quotas/${used.guid}`)).status).toBe(200);
    const hidden = await dev.get(`/v3/space_quotas/${unused.guid}`);
    expect(hidden.status).toBe(404);
    expect(err(hidden)).toEqual({ detail: 'Space quota not found', title: 'CF-ResourceNotFound', code: 10010 });

    // Org users and auditors without a space role see nothing.
    const auditor = await t.user();
    await t.grant(auditor, 'organization_auditor', { org: o.guid });
    expect((await auditor.get('/v3/space_quotas')).body.resources).toHaveLength(0);
    expect((await auditor.get(`/v3/space_quotas/${used.guid}`)).status).toBe(404);

    const global = await t.user(undefined, ['cloud_controller.global_auditor']);
    const globalView = await global.get(`/v3/space_quotas/${used.guid}`);
    expect(globalView.body.relationships.spaces.data).toEqual([{ guid: s1.guid }, { guid: s2.guid }]);
  });

  it('filters by names, organization_guids, space_guids and guids, with pagination', async () => {
    const o = await t.org('sq-filter');
    const s = await t.space('s', o.guid);
    const a = await quota('fa', o.guid, { relationships: { organization: { data: { guid: o.guid } }, spaces: { data: [{ guid: s.guid }] } } });
    const b = await quota('fb', o.guid);
    const names = await t.admin.get('/v3/space_quotas?names=fa,fb&per_page=1&order_by=-created_at');
    expect(names.body.pagination.total_results).toBe(2);
    expect(names.body.resources[0].guid).toBe(b.guid);
    expect(names.body.pagination.next.href).toBe('http://kiln.test/v3/space_quotas?names=fa%2Cfb&order_by=-created_at&page=2&per_page=1');
    expect((await t.admin.get(`/v3/space_quotas?space_guids=${s.guid}`)).body.resources.map((q: any) => q.guid)).toEqual([a.guid]);
    expect((await t.admin.get(`/v3/space_quotas?organization_guids=${o.guid}&guids=${b.guid}`)).body.resources.map((q: any) => q.guid)).toEqual([b.guid]);
    const bad = await t.admin.get('/v3/space_quotas?include=space');
    expect(bad.status).toBe(400);
    expect(err(bad).title).toBe('CF-BadQueryParameter');
  });
});

describe('updating space quotas', () => {
  it('changes only the given fields; null makes a limit unlimited', async () => {
    const o = await t.org('sq-update');
    const q = await quota('u', o.guid, { apps: { total_memory_in_mb: 100, total_instances: 2 }, routes: { total_routes: 4 } });
    const res = await t.admin.patch(`/v3/space_quotas/${q.guid}`, { name: 'u2', apps: { total_memory_in_mb: null }, services: { total_service_keys: 1 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      name: 'u2',
      apps: { total_memory_in_mb: null, total_instances: 2 },
      routes: { total_routes: 4 },
      services: { total_service_keys: 1, paid_services_allowed: true },
    });
    expect(await auditTypes(q.guid)).toEqual(['audit.space_quota.create', 'audit.space_quota.update']);
  });

  it('checks visibility, then permission, then the body, then business rules', async () => {
    const o = await t.org('sq-update-order');
    const s = await t.space('s', o.guid);
    const q = await quota('uo', o.guid, { relationships: { organization: { data: { guid: o.guid } }, spaces: { data: [{ guid: s.guid }] } } });
    await quota('uo-taken', o.guid);
    const stranger = await t.user();
    expect((await stranger.patch(`/v3/space_quotas/${q.guid}`, { name: 5 })).status).toBe(404);
    const dev = await t.user();
    await t.grant(dev, 'organization_user', { org: o.guid });
    await t.grant(dev, 'space_developer', { space: s.guid });
    expect((await dev.patch(`/v3/space_quotas/${q.guid}`, { name: 5 })).status).toBe(403);
    const bad = await t.admin.patch(`/v3/space_quotas/${q.guid}`, { name: 5, routes: { total_routes: -1 } });
    expect(bad.status).toBe(422);
    expect(err(bad).detail).toBe('Name must be a string, Routes Total routes must be greater than or equal to 0');
    const taken = await t.admin.patch(`/v3/space_quotas/${q.guid}`, { name: 'uo-taken' });
    expect(err(taken).detail).toBe("Space Quota 'uo-taken' already exists.");
    const ports = await t.admin.patch(`/v3/space_quotas/${q.guid}`, { routes: { total_reserved_ports: 3 } });
    expect(ports.status).toBe(422);
    expect((await t.admin.patch(`/v3/space_quotas/${randomUUID()}`, { name: 'z' })).status).toBe(404);

    const manager = await t.user();
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const ok = await manager.patch(`/v3/space_quotas/${q.guid}`, { name: 'by-manager' });
    expect(ok.status).toBe(200);
    expect(ok.body.name).toBe('by-manager');
  });
});

describe('applying and removing space quotas', () => {
  it('applies to spaces of its org and removes again', async () => {
    const o = await t.org('sq-apply');
    const s1 = await t.space('s1', o.guid);
    const s2 = await t.space('s2', o.guid);
    const q = await quota('ap', o.guid);
    const url = `/v3/space_quotas/${q.guid}/relationships/spaces`;
    const res = await t.admin.post(url, { data: [{ guid: s1.guid }, { guid: s2.guid }] });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [{ guid: s1.guid }, { guid: s2.guid }], links: { self: { href: `http://kiln.test${url}` } } });
    expect((await t.admin.get(`/v3/spaces/${s2.guid}`)).body.relationships.quota.data.guid).toBe(q.guid);

    const removed = await t.admin.delete(`${url}/${s1.guid}`);
    expect(removed.status).toBe(204);
    expect(removed.text).toBe('');
    expect((await t.admin.get(`/v3/spaces/${s1.guid}`)).body.relationships.quota.data).toBeNull();
    const again = await t.admin.delete(`${url}/${s1.guid}`);
    expect(again.status).toBe(422);
    expect(err(again).detail).toBe(`Unable to remove quota from space with guid '${s1.guid}'. Ensure the space quota is applied to this space.`);
    expect(await auditTypes(q.guid)).toEqual(['audit.space_quota.create', 'audit.space_quota.apply', 'audit.space_quota.apply', 'audit.space_quota.remove']);
  });

  it('refuses spaces outside the org, unknown or unreadable spaces, and bad bodies', async () => {
    const o = await t.org('sq-apply-bad');
    const other = await t.org('sq-apply-other');
    const s = await t.space('s', o.guid);
    const outside = await t.space('outside', other.guid);
    const q = await quota('apb', o.guid);
    const url = `/v3/space_quotas/${q.guid}/relationships/spaces`;
    const foreign = await t.admin.post(url, { data: [{ guid: outside.guid }] });
    expect(foreign.status).toBe(422);
    expect(err(foreign).detail).toBe('Space quotas cannot be applied outside of their owning organization.');
    const missing = randomUUID();
    const unknown = await t.admin.post(url, { data: [{ guid: s.guid }, { guid: missing }] });
    expect(err(unknown).detail).toBe(`Spaces with guids ["${missing}"] do not exist, or you do not have access to them.`);
    expect((await t.admin.get(`/v3/spaces/${s.guid}`)).body.relationships.quota.data).toBeNull();
    expect(err(await t.admin.post(url, {})).detail).toBe("Data can't be blank");
    expect(err(await t.admin.post(url, { data: [{ guid: s.guid }], extra: 1 })).detail).toBe("Unknown field(s): 'extra'");

    // An org manager of another org sees that org's spaces but may not apply this org's quota to them.
    const manager = await t.user();
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const notReadable = await manager.post(url, { data: [{ guid: outside.guid }] });
    expect(err(notReadable).detail).toBe(`Spaces with guids ["${outside.guid}"] do not exist, or you do not have access to them.`);
    expect((await manager.post(url, { data: [{ guid: s.guid }] })).status).toBe(200);

    const dev = await t.user();
    await t.grant(dev, 'organization_user', { org: o.guid });
    await t.grant(dev, 'space_developer', { space: s.guid });
    expect((await dev.post(url, { data: [{ guid: s.guid }] })).status).toBe(403);
    expect((await dev.delete(`${url}/${s.guid}`)).status).toBe(403);
    const stranger = await t.user();
    expect((await stranger.post(url, { data: [{ guid: s.guid }] })).status).toBe(404);
    expect((await stranger.delete(`${url}/${s.guid}`)).status).toBe(404);
  });
});

describe('deleting space quotas', () => {
  it('deletes an unused quota through a job, and refuses one in use', async () => {
    const o = await t.org('sq-delete');
    const s = await t.space('s', o.guid);
    const used = await quota('used', o.guid, { relationships: { organization: { data: { guid: o.guid } }, spaces: { data: [{ guid: s.guid }] } } });
    const inUse = await t.admin.delete(`/v3/space_quotas/${used.guid}`);
    expect(inUse.status).toBe(422);
    expect(err(inUse)).toEqual({
      detail: 'This quota is applied to one or more spaces. Remove this quota from all spaces before deleting.',
      title: 'CF-UnprocessableEntity',
      code: 10008,
    });

    const manager = await t.user();
    await t.grant(manager, 'organization_manager', { org: o.guid });
    const unused = await quota('unused', o.guid);
    const res = await manager.delete(`/v3/space_quotas/${unused.guid}`);
    expect(res.status).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'space_quota.delete', errors: [] });
    expect((await t.admin.get(`/v3/space_quotas/${unused.guid}`)).status).toBe(404);
    expect(await auditTypes(unused.guid)).toEqual(['audit.space_quota.create', 'audit.space_quota.delete']);

    const dev = await t.user();
    await t.grant(dev, 'organization_user', { org: o.guid });
    await t.grant(dev, 'space_developer', { space: s.guid });
    expect((await dev.delete(`/v3/space_quotas/${used.guid}`)).status).toBe(403);
    expect((await t.admin.delete(`/v3/space_quotas/${randomUUID()}`)).status).toBe(404);
  });

  it('goes away with its org', async () => {
    const o = await t.org('sq-org-delete');
    const q = await quota('dies-with-org', o.guid);
    const res = await t.admin.delete(`/v3/organizations/${o.guid}`);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    expect((await t.admin.get(`/v3/space_quotas/${q.guid}`)).status).toBe(404);
  });
});
