import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
let user: Client;
let defaultStack: any;
beforeAll(async () => {
  t = await createTestKiln();
  user = await t.user('stacks-user');
  defaultStack = (await t.admin.get('/v3/stacks?default=true')).body.resources[0];
});
afterAll(() => t.close());

async function createStack(body: Record<string, unknown>): Promise<any> {
  const res = await t.admin.post('/v3/stacks', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

const auditTypes = async (guid: string) =>
  (await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', guid).orderBy('id').execute()).map((a) => a.type);

const NOT_AUTHORIZED = { detail: 'You are not authorized to perform the requested action', title: 'CF-NotAuthorized', code: 10003 };
const STACK_NOT_FOUND = { detail: 'Stack not found', title: 'CF-ResourceNotFound', code: 10010 };

describe('stacks', () => {
  it('seeds one default stack, readable by every user', async () => {
    expect(defaultStack).toMatchObject({
      name: 'cflinuxfs4',
      default: true,
      state: 'ACTIVE',
      state_reason: null,
      build_rootfs_image: 'cflinuxfs4',
      run_rootfs_image: 'cflinuxfs4',
      metadata: { labels: {}, annotations: {} },
      links: { self: { href: `http://kiln.test/v3/stacks/${defaultStack.guid}` } },
    });
    const got = await user.get(`/v3/stacks/${defaultStack.guid}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(defaultStack);
    expect((await t.anonymous.get('/v3/stacks')).status).toBe(401);
  });

  it('lets admins create stacks with defaults, metadata and an audit event', async () => {
    const s = await createStack({ name: '  custom-1  ', metadata: { labels: { os: 'linux' } } });
    expect(s).toMatchObject({
      name: 'custom-1',
      description: null,
      state: 'ACTIVE',
      state_reason: null,
      build_rootfs_image: 'custom-1',
      run_rootfs_image: 'custom-1',
      default: false,
      metadata: { labels: { os: 'linux' }, annotations: {} },
    });
    expect(s.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(await auditTypes(s.guid)).toEqual(['audit.stack.create']);
    const full = await createStack({ name: 'custom-2', description: 'the second', state: 'DEPRECATED', state_reason: 'use custom-1' });
    expect(full).toMatchObject({ description: 'the second', state: 'DEPRECATED', state_reason: 'use custom-1' });
  });

  it('rejects duplicates, bad bodies and non-admins without writing', async () => {
    await createStack({ name: 'dup-stack' });
    const dup = await t.admin.post('/v3/stacks', { name: 'dup-stack' });
    expect(dup.status).toBe(422);
    expect(dup.body.errors[0]).toEqual({ detail: 'Name must be unique', title: 'CF-UnprocessableEntity', code: 10008 });

    const before = (await t.admin.get('/v3/stacks')).body.pagination.total_results;
    const cases: Array<[unknown, string]> = [
      [{}, "Name can't be blank"],
      [{ name: '   ' }, "Name can't be blank"],
      [{ name: 7 }, 'Name must be a string'],
      [{ name: 'n'.repeat(251) }, 'Name is too long (maximum is 250 characters)'],
      [{ name: 'x', description: 'd'.repeat(251) }, 'Description is too long (maximum is 250 characters)'],
      [{ name: 'x', state: 'BROKEN' }, 'State must be one of ACTIVE, RESTRICTED, DEPRECATED, DISABLED'],
      [{ name: 'x', state: null }, 'State must be one of ACTIVE, RESTRICTED, DEPRECATED, DISABLED'],
      [{ name: 'x', state_reason: 'r'.repeat(5001) }, 'State reason is too long (maximum is 5000 characters)'],
      [{ name: 'x', colour: 'red' }, "Unknown field(s): 'colour'"],
      [{ name: 'x', metadata: { labels: { 'bad key!': 'v' } } }, 'Metadata label key error'],
    ];
    for (const [body, detail] of cases) {
      const res = await t.admin.post('/v3/stacks', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.errors[0].detail).toContain(detail);
    }
    // Non-admins are refused before their body is even looked at.
    const forbidden = await user.post('/v3/stacks', { name: 42 });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.errors[0]).toEqual(NOT_AUTHORIZED);
    expect((await t.admin.get('/v3/stacks')).body.pagination.total_results).toBe(before);
  });

  it('answers 404 for unknown stacks', async () => {
    const res = await user.get(`/v3/stacks/${randomUUID()}`);
    expect(res.status).toBe(404);
    expect(res.body.errors[0]).toEqual(STACK_NOT_FOUND);
    expect((await user.get(`/v3/stacks/${defaultStack.guid}?x=1`)).status).toBe(400);
  });
});

describe('listing stacks', () => {
  beforeAll(async () => {
    await createStack({ name: 'list-b', metadata: { labels: { tier: 'gold' } } });
    await createStack({ name: 'list-a' });
    await createStack({ name: 'list-c' });
  });

  it('filters by names, default and labels', async () => {
    const byName = await user.get('/v3/stacks?names=list-a,list-c');
    expect(byName.body.resources.map((s: any) => s.name)).toEqual(['list-a', 'list-c']);
    const defaults = await user.get('/v3/stacks?default=true');
    expect(defaults.body.resources.map((s: any) => s.name)).toEqual(['cflinuxfs4']);
    const others = await user.get('/v3/stacks?default=false&names=list-a,cflinuxfs4');
    expect(others.body.resources.map((s: any) => s.name)).toEqual(['list-a']);
    const gold = await user.get('/v3/stacks?label_selector=tier%3Dgold');
    expect(gold.body.resources.map((s: any) => s.name)).toEqual(['list-b']);
  });

  it('orders by name and paginates with absolute links', async () => {
    const page = await user.get('/v3/stacks?names=list-a,list-b,list-c&order_by=name&per_page=2');
    expect(page.status).toBe(200);
    expect(page.body.resources.map((s: any) => s.name)).toEqual(['list-a', 'list-b']);
    expect(page.body.pagination).toMatchObject({ total_results: 3, total_pages: 2, previous: null });
    expect(page.body.pagination.next.href).toBe('http://kiln.test/v3/stacks?names=list-a%2Clist-b%2Clist-c&order_by=%2Bname&page=2&per_page=2');
    const desc = await user.get('/v3/stacks?names=list-a,list-b,list-c&order_by=-name');
    expect(desc.body.resources.map((s: any) => s.name)).toEqual(['list-c', 'list-b', 'list-a']);
  });

  it('rejects bad list queries with 400', async () => {
    const cases: Array<[string, string]> = [
      ['default=maybe', "Default must be 'true' or 'false'"],
      ['order_by=state', "Order by can only be: 'created_at', 'updated_at', 'name'"],
      ['per_page=0', 'Per page must be a positive integer'],
      ['colour=red', "Unknown query parameter(s): 'colour'"],
    ];
    for (const [q, detail] of cases) {
      const res = await user.get(`/v3/stacks?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.errors[0]).toEqual({ detail: expect.stringContaining(detail), title: 'CF-BadQueryParameter', code: 10005 });
    }
  });
});

describe('updating stacks', () => {
  it('sets state and merges metadata for admins', async () => {
    const s = await createStack({ name: 'upd-stack', metadata: { labels: { a: '1', b: '2' } } });
    const res = await t.admin.patch(`/v3/stacks/${s.guid}`, {
      state: 'RESTRICTED',
      state_reason: 'migrating',
      metadata: { labels: { a: null }, annotations: { note: 'x' } },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      name: 'upd-stack',
      state: 'RESTRICTED',
      state_reason: 'migrating',
      metadata: { labels: { b: '2' }, annotations: { note: 'x' } },
    });
    expect(res.headers.get('x-cf-warnings')).toBeNull();
    const cleared = await t.admin.patch(`/v3/stacks/${s.guid}`, { state_reason: null });
    expect(cleared.body).toMatchObject({ state: 'RESTRICTED', state_reason: null });
    expect(await auditTypes(s.guid)).toEqual(['audit.stack.create', 'audit.stack.update', 'audit.stack.update']);
  });

  it("warns when the default stack's state changes", async () => {
    const res = await t.admin.patch(`/v3/stacks/${defaultStack.guid}`, { state: 'ACTIVE' });
    expect(res.status).toBe(200);
    expect(decodeURIComponent((res.headers.get('x-cf-warnings') ?? '').replace(/\+/g, ' '))).toBe(
      "Changing state on the default stack 'cflinuxfs4' may affect new application deployments.",
    );
    const metadataOnly = await t.admin.patch(`/v3/stacks/${defaultStack.guid}`, { metadata: { labels: { x: 'y' } } });
    expect(metadataOnly.headers.get('x-cf-warnings')).toBeNull();
  });

  it('answers 404, then 403 for non-admins, then 422 for bad bodies', async () => {
    const s = await createStack({ name: 'upd-perm-stack' });
    expect((await t.admin.patch(`/v3/stacks/${randomUUID()}`, { state: 'ACTIVE' })).status).toBe(404);
    const forbidden = await user.patch(`/v3/stacks/${s.guid}`, { state: 'NOPE' });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.errors[0]).toEqual(NOT_AUTHORIZED);
    for (const [body, detail] of [
      [{ state: 'NOPE' }, 'State must be one of ACTIVE, RESTRICTED, DEPRECATED, DISABLED'],
      [{ name: 'renamed' }, "Unknown field(s): 'name'"],
      [{ description: 'd' }, "Unknown field(s): 'description'"],
    ] as const) {
      const res = await t.admin.patch(`/v3/stacks/${s.guid}`, body);
      expect(res.status).toBe(422);
      expect(res.body.errors[0].detail).toBe(detail);
    }
    expect((await t.admin.get(`/v3/stacks/${s.guid}`)).body.state).toBe('ACTIVE');
  });
});

describe('deleting stacks', () => {
  it('deletes at once for admins (204) with an audit event', async () => {
    const s = await createStack({ name: 'del-stack', metadata: { labels: { a: 'b' } } });
    const forbidden = await user.delete(`/v3/stacks/${s.guid}`);
    expect(forbidden.status).toBe(403);
    const res = await t.admin.delete(`/v3/stacks/${s.guid}`);
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect((await t.admin.get(`/v3/stacks/${s.guid}`)).status).toBe(404);
    expect(await auditTypes(s.guid)).toEqual(['audit.stack.create', 'audit.stack.delete']);
    const labels = await t.kiln.store.db.selectFrom('labels').select('id').where('resource_guid', '=', s.guid).execute();
    expect(labels).toEqual([]);
    const again = await t.admin.delete(`/v3/stacks/${s.guid}`);
    expect(again.status).toBe(404);
    expect(again.body.errors[0]).toEqual(STACK_NOT_FOUND);
  });
});

describe('apps on a stack', () => {
  it('lists the visible apps using the stack and keeps a stack in use from deletion', async () => {
    const stack = (await t.admin.post('/v3/stacks', { name: 'used-stack' })).body;
    const org = await t.org('stack-apps-org');
    const space = await t.space('stack-apps-space', org.guid);
    const created = await t.admin.post('/v3/apps', {
      name: 'on-stack',
      lifecycle: { type: 'buildpack', data: { stack: 'used-stack' } },
      relationships: { space: { data: { guid: space.guid } } },
    });
    expect(created.status, created.text).toBe(201);
    const listed = await t.admin.get(`/v3/stacks/${stack.guid}/apps?include=space`);
    expect(listed.body.resources.map((a: { name: string }) => a.name)).toEqual(['on-stack']);
    expect(listed.body.included.spaces[0].guid).toBe(space.guid);
    expect((await user.get(`/v3/stacks/${stack.guid}/apps`)).body.resources).toEqual([]);
    const del = await t.admin.delete(`/v3/stacks/${stack.guid}`);
    expect(del.status).toBe(422);
    expect(del.body.errors[0].detail).toBe("Cannot delete stack 'used-stack' because apps are currently using the stack.");
  });

  it('is an empty, correctly paginated list when no app uses it', async () => {
    const res = await user.get(`/v3/stacks/${defaultStack.guid}/apps?per_page=10&order_by=-name`);
    expect(res.status).toBe(200);
    const self = `http://kiln.test/v3/stacks/${defaultStack.guid}/apps`;
    expect(res.body).toEqual({
      pagination: {
        total_results: 0,
        total_pages: 1,
        first: { href: `${self}?order_by=-name&page=1&per_page=10` },
        last: { href: `${self}?order_by=-name&page=1&per_page=10` },
        next: null,
        previous: null,
      },
      resources: [],
    });
    const included = await user.get(`/v3/stacks/${defaultStack.guid}/apps?include=space.organization`);
    expect(included.body.included).toEqual({ spaces: [], organizations: [] });
    const beyond = await user.get(`/v3/stacks/${defaultStack.guid}/apps?page=3`);
    expect(beyond.body.pagination.previous.href).toBe(`${self}?page=2&per_page=50`);
  });

  it('validates the query like GET /v3/apps and 404s for unknown stacks', async () => {
    const base = `/v3/stacks/${defaultStack.guid}/apps`;
    const cases: Array<[string, string]> = [
      ['lifecycle_type=rocket', "Invalid lifecycle_type: 'rocket'"],
      ['include=droplet', "Invalid included resource: 'droplet'"],
      ['order_by=position', "Order by can only be: 'created_at', 'updated_at', 'name', 'state'"],
      ['hosts=x', "Unknown query parameter(s): 'hosts'"],
    ];
    for (const [q, detail] of cases) {
      const res = await user.get(`${base}?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.errors[0].detail).toContain(detail);
    }
    expect((await user.get(`${base}?lifecycle_type=docker&names=a&label_selector=x%3Dy`)).status).toBe(200);
    const missing = await user.get(`/v3/stacks/${randomUUID()}/apps`);
    expect(missing.status).toBe(404);
    expect(missing.body.errors[0]).toEqual(STACK_NOT_FOUND);
  });
});
