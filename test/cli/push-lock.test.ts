import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FetchLike } from '../../src/cli/api-client.ts';
import { parsePushArgs, push, type PushIO, type PushOptions } from '../../src/cli/push.ts';
import { LockRefused } from '../../src/cli/push-lock.ts';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';
import { FIXTURES } from '../helpers/push.ts';

/**
 * `kiln push --lock` against a Kiln running in this process (all controllers, the local runtime): two clients
 * push the same app; the second is refused while the first holds the app, and gets through once the first push
 * released its lock, or once a lock left by a push that died has expired.
 */

let t: TestKiln;
let space: any;
let alice: Client;
let bob: Client;

beforeAll(async () => {
  t = await createTestKiln();
  const org = await t.org('push-lock-org');
  space = await t.space('push-lock-space', org.guid);
  alice = await t.spaceMember('space_developer', space);
  bob = await t.spaceMember('space_developer', space);
}, 60_000);
afterAll(() => t.close());

const API = 'http://kiln.test';
const inProcess: FetchLike = async (input, init) => t.kiln.app.request(String(input), init);

function pushAs(client: Client, extra: string[] = [], fetch: FetchLike = inProcess) {
  const options = parsePushArgs([path.join(FIXTURES, 'hello'), '--name', 'shared-app', '--no-manifest', '--lock', ...extra], {
    KILN_API: API,
    KILN_TOKEN: client.token!,
    KILN_ORG: 'push-lock-org',
    KILN_SPACE: 'push-lock-space',
  }) as PushOptions;
  const out: string[] = [];
  const io: PushIO = {
    out: { write: (s: string) => out.push(s), isTTY: false } as unknown as PushIO['out'],
    err: { write: (s: string) => out.push(s) },
    fetch,
    timing: { pollMs: 50, logPollMs: 50, startupTimeoutMs: 60_000, stagingTimeoutMs: 120_000 },
  };
  return { run: () => push(options, io), out };
}

const locksOn = async (appName: string) => {
  const apps = (await t.admin.get(`/v3/apps?names=${appName}`)).body.resources;
  if (apps.length === 0) return [];
  return (await t.admin.get(`/v3/locks?app_guids=${apps[0].guid}`)).body.resources;
};

describe('kiln push --lock', () => {
  it('refuses a second push while the first holds the app, and lets it through after the release', async () => {
    // Alice's push stops at its upload until Bob has tried.
    let openGate!: () => void;
    const gate = new Promise<void>((r) => (openGate = r));
    let atGate!: () => void;
    const reachedGate = new Promise<void>((r) => (atGate = r));
    const gated: FetchLike = async (input, init) => {
      if (init?.method === 'POST' && /\/v3\/packages\/[^/]+\/upload$/.test(new URL(String(input)).pathname)) {
        atGate();
        await gate;
      }
      return inProcess(input, init);
    };
    const first = pushAs(alice, [], gated);
    const firstDone = first.run();
    await reachedGate;
    const held = await locksOn('shared-app');
    expect(held).toHaveLength(1);
    expect(held[0]).toMatchObject({ name: 'kiln-push', resource_type: 'app', owner: { guid: alice.userGuid }, ttl_in_seconds: 120 });
    // No space lock is left once the app exists.
    expect((await t.admin.get(`/v3/locks?space_guids=${space.guid}`)).body.pagination.total_results).toBe(1);

    const second = pushAs(bob);
    const refused = await second.run().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(LockRefused);
    expect((refused as Error).message).toContain(`App 'shared-app' is locked by ${alice.username} until ${held[0].expires_at} (lock 'kiln-push'`);
    // Bob's refused push wrote nothing: the app has no package but Alice's.
    const appGuid = held[0].relationships.app.data.guid;
    expect((await t.admin.get(`/v3/apps/${appGuid}/packages`)).body.resources).toHaveLength(1);

    openGate();
    const result = await firstDone;
    expect(result.appGuid).toBe(appGuid);
    expect(await locksOn('shared-app')).toEqual([]);

    const again = await pushAs(bob).run();
    expect(again.appGuid).toBe(appGuid);
    expect(await locksOn('shared-app')).toEqual([]);
  }, 180_000);

  it('a lock left by a push that died stops others until it expires, then is reclaimed', async () => {
    const appGuid = (await t.admin.get('/v3/apps?names=shared-app')).body.resources[0].guid;
    // What a killed `kiln push --lock --lock-ttl 2` leaves behind: its lock, no longer renewed.
    const stale = await alice.post('/v3/locks', { name: 'kiln-push', ttl_in_seconds: 2, relationships: { app: { data: { guid: appGuid } } } });
    expect(stale.status, stale.text).toBe(201);
    await expect(pushAs(bob).run()).rejects.toThrow(LockRefused);
    const deadline = Date.now() + 10_000;
    while ((await alice.get(`/v3/locks/${stale.body.guid}`)).status !== 404) {
      if (Date.now() > deadline) throw new Error('the stale lock never expired');
      await new Promise((r) => setTimeout(r, 100));
    }
    const out = pushAs(bob, ['--lock-ttl', '30']);
    await out.run();
    expect(out.out.join('')).toContain('lease 30s renewed while pushing');
    const rows = await t.kiln.store.db.selectFrom('locks').select('guid').execute();
    expect(rows).toEqual([]);
  }, 180_000);

  it('checks its flags', () => {
    expect(() => parsePushArgs(['--lock-ttl', '5'], {})).toThrow('--lock-ttl needs --lock.');
    expect(() => parsePushArgs(['--lock', '--lock-ttl', '0'], {})).toThrow('--lock-ttl must be a whole number');
    expect((parsePushArgs(['--lock'], {}) as PushOptions).lockTtl).toBe(120);
    expect((parsePushArgs([], {}) as PushOptions).lockTtl).toBeUndefined();
  });
});
