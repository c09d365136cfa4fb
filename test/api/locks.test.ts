import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

/**
 * Locks (Kiln extension, docs/kiln-openapi.json): the five operations, who may do what, and the write guard —
 * while someone else holds an app (or its space), their pushes, deployments, scaling, env changes and deletes
 * are refused with a 422 that names the holder and the expiry; the holder works normally. Every response is
 * checked against kiln-openapi.json by the harness.
 */

let t: TestKiln;
let org: any;
let space: any;
let alice: Client;
let bob: Client;
let auditor: Client;
let manager: Client;
let outsider: Client;

beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('locks-org');
  space = await t.space('locks-space', org.guid);
  alice = await t.spaceMember('space_developer', space);
  bob = await t.spaceMember('space_developer', space);
  auditor = await t.spaceMember('space_auditor', space);
  manager = await t.spaceMember('space_manager', space);
  outsider = await t.user();
});
afterAll(() => t.close());

async function newApp(name: string) {
  const res = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

const lockApp = (client: Client, appGuid: string, extra: Record<string, unknown> = {}) =>
  client.post('/v3/locks', { name: 'deploy', relationships: { app: { data: { guid: appGuid } } }, ...extra });
const detail = (res: { body: any }) => res.body.errors?.[0]?.detail as string | undefined;
const bitsPackage = (client: Client, appGuid: string) => client.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: appGuid } } } });

/** Polls `fn` until it returns true, with a deadline (expiry is wall-clock time). */
async function until(fn: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('taking, reading, renewing and releasing a lock', () => {
  let app: any;
  let lock: any;

  beforeAll(async () => {
    app = await newApp('lock-crud');
  });

  it('a space developer takes a lock on an app and sees its owner, lease and links', async () => {
    const before = Date.now();
    const res = await lockApp(alice, app.guid, { reason: 'pipeline #42', ttl_in_seconds: 120, metadata: { labels: { ci: 'yes' } } });
    expect(res.status, res.text).toBe(201);
    lock = res.body;
    expect(lock).toMatchObject({
      name: 'deploy',
      reason: 'pipeline #42',
      resource_type: 'app',
      owner: { guid: alice.userGuid, name: alice.username },
      ttl_in_seconds: 120,
      relationships: { app: { data: { guid: app.guid } }, space: { data: { guid: space.guid } } },
      metadata: { labels: { ci: 'yes' }, annotations: {} },
    });
    const expires = Date.parse(lock.expires_at);
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 119_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 121_000);
    expect(lock.links.self.href).toBe(`http://kiln.test/v3/locks/${lock.guid}`);
    expect(lock.links.renew).toEqual({ href: `http://kiln.test/v3/locks/${lock.guid}`, method: 'PATCH' });
    expect(lock.links.app.href).toBe(`http://kiln.test/v3/apps/${app.guid}`);
  });

  it('is visible to whoever can read the app, and to nobody else', async () => {
    expect((await auditor.get(`/v3/locks/${lock.guid}`)).body).toEqual(lock);
    expect((await outsider.get(`/v3/locks/${lock.guid}`)).status).toBe(404);
    const listed = await auditor.get(`/v3/locks?app_guids=${app.guid}`);
    expect(listed.body.resources.map((l: any) => l.guid)).toEqual([lock.guid]);
    expect((await outsider.get('/v3/locks')).body.pagination.total_results).toBe(0);
    expect((await t.admin.get(`/v3/locks?owner_guids=${alice.userGuid}&label_selector=ci=yes`)).body.pagination.total_results).toBe(1);
    const count = async (q: string) => (await t.admin.get(`/v3/locks?${q}`)).body.pagination.total_results;
    expect(await count(`organization_guids=${org.guid}&resource_types=app&names=deploy`)).toBe(1);
    expect(await count('resource_types=space')).toBe(0);
    expect(await count('resource_types=planet')).toBe(0);
    expect(await count(`space_guids=${space.guid}&order_by=-expires_at`)).toBe(1);
    expect((await t.admin.get('/v3/locks?order_by=owner')).status).toBe(400);
    expect((await t.admin.get('/v3/locks?holder=me')).status).toBe(400);
  });

  it('a second lock on the app is refused, naming the holder and the expiry', async () => {
    const res = await lockApp(bob, app.guid);
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toMatchObject({ title: 'CF-UnprocessableEntity', code: 10008 });
    expect(detail(res)).toBe(`App 'lock-crud' is locked by ${alice.username} until ${lock.expires_at} (lock 'deploy': pipeline #42). Wait until the lock is released or expires.`);
  });

  it('PATCH by the holder renews the lease; anyone else gets 403', async () => {
    expect((await bob.patch(`/v3/locks/${lock.guid}`, {})).status).toBe(403);
    expect((await auditor.patch(`/v3/locks/${lock.guid}`, {})).status).toBe(403);
    const res = await alice.patch(`/v3/locks/${lock.guid}`, { ttl_in_seconds: 600, reason: null });
    expect(res.status, res.text).toBe(200);
    expect(res.body.ttl_in_seconds).toBe(600);
    expect(res.body.reason).toBeNull();
    expect(Date.parse(res.body.expires_at)).toBeGreaterThan(Date.parse(lock.expires_at) + 400_000);
    lock = res.body;
  });

  it('rejects malformed requests with 422', async () => {
    const both = await alice.post('/v3/locks', { name: 'x', relationships: { app: { data: { guid: app.guid } }, space: { data: { guid: space.guid } } } });
    expect(both.status).toBe(422);
    expect(detail(both)).toContain('exactly one of app or space');
    expect((await lockApp(alice, app.guid, { ttl_in_seconds: 0 })).status).toBe(422);
    expect((await lockApp(alice, app.guid, { owner: 'me' })).status).toBe(422);
    const hidden = await lockApp(outsider, app.guid);
    expect(hidden.status).toBe(422);
    expect(detail(hidden)).toBe('Invalid app. Ensure that the app exists and you have access to it.');
    expect((await lockApp(auditor, app.guid)).status).toBe(403);
  });

  it('only the holder, an admin or a manager may release it; the release is audited', async () => {
    expect((await auditor.delete(`/v3/locks/${lock.guid}`)).status).toBe(403);
    expect((await bob.delete(`/v3/locks/${lock.guid}`)).status).toBe(403);
    expect((await outsider.delete(`/v3/locks/${lock.guid}`)).status).toBe(404);
    expect((await alice.delete(`/v3/locks/${lock.guid}`)).status).toBe(204);
    expect((await alice.get(`/v3/locks/${lock.guid}`)).status).toBe(404);
    const events = await t.admin.get(`/v3/audit_events?target_guids=${lock.guid}`);
    expect(events.body.resources.map((e: any) => e.type)).toEqual(['audit.lock.create', 'audit.lock.update', 'audit.lock.delete']);
  });

  it('a space manager breaks a lock someone else holds', async () => {
    const taken = await lockApp(alice, app.guid);
    expect(taken.status, taken.text).toBe(201);
    expect((await manager.delete(`/v3/locks/${taken.body.guid}`)).status).toBe(204);
  });
});

describe('writes to a locked app', () => {
  let app: any;
  let lock: any;

  beforeAll(async () => {
    app = await newApp('locked-writes');
    const droplet = await t.droplet(app.guid);
    expect((await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
    lock = (await lockApp(alice, app.guid, { reason: 'release 7' })).body;
  });

  const refusal = (res: { status: number; body: any }) => {
    expect(res.status).toBe(422);
    expect(detail(res)).toContain(`App 'locked-writes' is locked by ${alice.username} until ${lock.expires_at}`);
  };

  it('refuses pushes, deployments, scaling, env changes and deletes by others', async () => {
    refusal(await bitsPackage(bob, app.guid));
    refusal(await bob.post('/v3/deployments', { relationships: { app: { data: { guid: app.guid } } } }));
    refusal(await bob.post(`/v3/processes/${app.guid}/actions/scale`, { instances: 3 }));
    refusal(await bob.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { A: '1' } }));
    refusal(await bob.post(`/v3/apps/${app.guid}/actions/stop`));
    refusal(await bob.patch(`/v3/apps/${app.guid}`, { name: 'renamed' }));
    refusal(await bob.delete(`/v3/apps/${app.guid}`));
    // Admins are not exempt: a lock protects a pipeline from every other writer.
    refusal(await t.admin.post(`/v3/processes/${app.guid}/actions/scale`, { instances: 3 }));
    // Reads are not affected.
    expect((await bob.get(`/v3/apps/${app.guid}`)).status).toBe(200);
  });

  it('lets the holder work normally', async () => {
    expect((await bitsPackage(alice, app.guid)).status).toBe(201);
    expect((await alice.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { A: '1' } })).status).toBe(200);
    expect((await alice.post(`/v3/processes/${app.guid}/actions/scale`, { instances: 2 })).status).toBe(202);
  });

  it('after the release, others write again', async () => {
    expect((await alice.delete(`/v3/locks/${lock.guid}`)).status).toBe(204);
    expect((await bitsPackage(bob, app.guid)).status).toBe(201);
  });
});

describe('two clients taking the same app at once', () => {
  it('lets exactly one of them have it', async () => {
    const app = await newApp('raced');
    const [a, b] = await Promise.all([lockApp(alice, app.guid), lockApp(bob, app.guid)]);
    expect([a.status, b.status].sort()).toEqual([201, 422]);
    const winner = a.status === 201 ? a : b;
    const loser = a.status === 201 ? b : a;
    const holder = winner === a ? alice : bob;
    expect(detail(loser)).toContain(`App 'raced' is locked by ${holder.username}`);
    expect((await holder.delete(`/v3/locks/${winner.body.guid}`)).status).toBe(204);
  });
});

describe('expiry', () => {
  it('an expired lock stops refusing writes and is reclaimed by the next lock', async () => {
    const app = await newApp('short-lease');
    const first = await lockApp(alice, app.guid, { ttl_in_seconds: 2 });
    expect(first.status, first.text).toBe(201);
    expect((await bitsPackage(bob, app.guid)).status).toBe(422);
    // Lists show it until it expires, even when nothing is written meanwhile (no list cache serves a stale page).
    const listed = async () => (await bob.get(`/v3/locks?app_guids=${app.guid}`)).body.pagination.total_results;
    expect(await listed()).toBe(1);
    expect(await listed()).toBe(1);
    await until(async () => (await listed()) === 0, 'the lock to leave the list');
    await until(async () => (await bitsPackage(bob, app.guid)).status === 201, 'the lease to run out');
    // Expired: no longer shown, renewable or releasable.
    expect((await alice.get(`/v3/locks/${first.body.guid}`)).status).toBe(404);
    expect((await alice.patch(`/v3/locks/${first.body.guid}`, {})).status).toBe(404);
    const second = await lockApp(bob, app.guid);
    expect(second.status, second.text).toBe(201);
    expect(second.body.owner.guid).toBe(bob.userGuid);
    const rows = await t.kiln.store.db.selectFrom('locks').select('guid').where('resource_guid', '=', app.guid).execute();
    expect(rows.map((r) => r.guid)).toEqual([second.body.guid]);
    expect((await bitsPackage(alice, app.guid)).status).toBe(422);
    expect((await bob.delete(`/v3/locks/${second.body.guid}`)).status).toBe(204);
  });
});

describe('space locks', () => {
  it('hold every app of the space, and new apps, against others', async () => {
    const app = await newApp('in-locked-space');
    const res = await alice.post('/v3/locks', { name: 'maintenance', relationships: { space: { data: { guid: space.guid } } } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ resource_type: 'space', relationships: { app: { data: null }, space: { data: { guid: space.guid } } } });
    expect(res.body.links.app).toBeUndefined();
    const created = await bob.post('/v3/apps', { name: 'newcomer', relationships: { space: { data: { guid: space.guid } } } });
    expect(created.status).toBe(422);
    expect(detail(created)).toContain(`Space 'locks-space' is locked by ${alice.username}`);
    expect((await bitsPackage(bob, app.guid)).status).toBe(422);
    expect((await lockApp(bob, app.guid)).status).toBe(422);
    expect((await bitsPackage(alice, app.guid)).status).toBe(201);
    const manifest = await bob.post(`/v3/spaces/${space.guid}/actions/apply_manifest`, undefined, {
      raw: 'applications:\n- name: in-locked-space\n  instances: 2\n',
      headers: { 'content-type': 'application/x-yaml' },
    });
    expect(manifest.status).toBe(422);
    expect((await alice.delete(`/v3/locks/${res.body.guid}`)).status).toBe(204);
  });

  it('cannot be taken while someone else holds an app of the space', async () => {
    const app = await newApp('held-first');
    const appLock = await lockApp(bob, app.guid);
    expect(appLock.status).toBe(201);
    const res = await alice.post('/v3/locks', { name: 'maintenance', relationships: { space: { data: { guid: space.guid } } } });
    expect(res.status).toBe(422);
    expect(detail(res)).toContain(`App 'held-first' is locked by ${bob.username}`);
    expect((await bob.delete(`/v3/locks/${appLock.body.guid}`)).status).toBe(204);
  });

  it('keep others from deleting the space while it or one of its apps is held', async () => {
    const other = await t.space('locks-doomed', org.guid);
    const app = (await t.admin.post('/v3/apps', { name: 'doomed-app', relationships: { space: { data: { guid: other.guid } } } })).body;
    const dev = await t.spaceMember('space_developer', other);
    const held = await lockApp(dev, app.guid);
    expect(held.status, held.text).toBe(201);
    const refused = await t.admin.delete(`/v3/spaces/${other.guid}`);
    expect(refused.status).toBe(422);
    expect(detail(refused)).toContain(`App 'doomed-app' is locked by ${dev.username}`);
    expect((await dev.delete(`/v3/locks/${held.body.guid}`)).status).toBe(204);
    const del = await t.admin.delete(`/v3/spaces/${other.guid}`);
    expect(del.status).toBe(202);
    await t.awaitJob(del.headers.get('location'));
  });

  it('go away with the app they hold', async () => {
    const app = await newApp('deleted-with-lock');
    const lock = await lockApp(alice, app.guid);
    const del = await alice.delete(`/v3/apps/${app.guid}`);
    expect(del.status).toBe(202);
    await t.awaitJob(del.headers.get('location'));
    expect((await alice.get(`/v3/locks/${lock.body.guid}`)).status).toBe(404);
  });
});
