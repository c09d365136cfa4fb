import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Linker } from '../../src/api/cf/links.ts';
import type { Env } from '../../src/api/context.ts';
import { ListCache } from '../../src/api/middleware/list-cache.ts';
import type { Principal } from '../../src/domain/principal.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

const principal = (guid: string, scopes = ['cloud_controller.read']): Principal => ({
  guid,
  username: guid,
  origin: 'uaa',
  email: null,
  isClient: false,
  scopes: new Set(scopes),
});

/** A tiny app in front of a ListCache: callers pick who they are with `x-who`, the handler counts its runs. */
function cachedApp(opts: { maxEntries?: number; maxBytes?: number } = {}) {
  const state = { version: 'v1', runs: 0, status: 200 as 200 | 404, render: true, writeDuringRequest: false, versionReads: 0 };
  const cache = new ListCache(
    () => {
      state.versionReads++;
      return state.version;
    },
    opts.maxEntries ?? 10,
    opts.maxBytes,
  );
  const app = new Hono<Env>();
  app.use('*', async (c, next) => {
    const who = c.req.header('x-who');
    if (who) c.set('principal', principal(who, (c.req.header('x-scopes') ?? 'cloud_controller.read').split(' ')));
    c.set('linker', new Linker(`http://${c.req.header('host') ?? 'a.test'}`));
    await next();
  });
  app.use('*', cache.middleware());
  app.on(['GET', 'POST'], '/v3/things', (c) => {
    state.runs++;
    if (state.writeDuringRequest) state.version = `v${state.runs + 100}`;
    const text = JSON.stringify({ run: state.runs, path: c.req.url });
    if (state.render) c.set('listCacheBody', text);
    c.header('X-Cf-Warnings', 'careful');
    return c.body(text, state.status, { 'Content-Type': 'application/json' });
  });
  const get = async (path: string, headers: Record<string, string> = { 'x-who': 'u1' }, method = 'GET') => {
    const res = await app.request(`http://a.test${path}`, { method, headers });
    return { status: res.status, body: (await res.json()) as { run: number }, headers: res.headers };
  };
  /** The cache only considers paths renderList has answered before: one request teaches it /v3/things. */
  const learned = async () => {
    await get('/v3/things?learn');
    state.runs = 0;
    state.versionReads = 0;
  };
  return { state, cache, get, learned };
}

describe('ListCache', () => {
  it('learns which paths are lists: a path’s first answer is not kept, other GETs never read the version', async () => {
    const { state, cache, get } = cachedApp();
    state.render = false;
    await get('/v3/things?x');
    await get('/v3/things?x');
    expect(state.versionReads).toBe(0);
    state.render = true;
    await get('/v3/things?x');
    expect(cache.size).toBe(0);
    await get('/v3/things?x');
    await get('/v3/things?x');
    expect(state.runs).toBe(4);
    expect(cache.size).toBe(1);
  });

  it('answers a repeat from memory, with the same body and headers, until the data version moves', async () => {
    const { state, get, learned } = cachedApp();
    await learned();
    const first = await get('/v3/things?page=1');
    const again = await get('/v3/things?page=1');
    expect(state.runs).toBe(1);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('content-type')).toBe('application/json');
    expect(again.headers.get('x-cf-warnings')).toBe('careful');

    state.version = 'v2';
    expect((await get('/v3/things?page=1')).body.run).toBe(2);
    expect((await get('/v3/things?page=1')).body.run).toBe(2);
  });

  it('keeps callers, scopes, origins and queries apart', async () => {
    const { state, get, learned } = cachedApp();
    await learned();
    await get('/v3/things');
    await get('/v3/things', { 'x-who': 'u2' });
    await get('/v3/things', { 'x-who': 'u1', 'x-scopes': 'cloud_controller.admin' });
    await get('/v3/things', { 'x-who': 'u1', host: 'b.test' });
    await get('/v3/things?order_by=name');
    expect(state.runs).toBe(5);
    await get('/v3/things', { 'x-who': 'u2' });
    expect(state.runs).toBe(5);
  });

  it('stores neither errors, nor responses renderList did not produce, nor anonymous or non-GET requests', async () => {
    const { state, cache, get, learned } = cachedApp();
    await learned();
    state.status = 404;
    await get('/v3/things');
    await get('/v3/things');
    state.status = 200;
    state.render = false;
    await get('/v3/things');
    await get('/v3/things');
    state.render = true;
    await get('/v3/things', {});
    await get('/v3/things', {});
    await get('/v3/things', { 'x-who': 'u1' }, 'POST');
    await get('/v3/things', { 'x-who': 'u1' }, 'POST');
    expect(state.runs).toBe(8);
    expect(cache.size).toBe(0);
  });

  it('does not keep a page read while a write committed', async () => {
    const { state, cache, get, learned } = cachedApp();
    await learned();
    state.writeDuringRequest = true;
    await get('/v3/things');
    expect(cache.size).toBe(0);
    state.writeDuringRequest = false;
    await get('/v3/things');
    await get('/v3/things');
    expect(state.runs).toBe(2);
  });

  it('evicts the least recently used entry when full', async () => {
    const { state, cache, get, learned } = cachedApp({ maxEntries: 2 });
    await learned();
    await get('/v3/things?a');
    await get('/v3/things?b');
    await get('/v3/things?a');
    await get('/v3/things?c');
    expect(cache.size).toBe(2);
    expect(state.runs).toBe(3);
    await get('/v3/things?a');
    expect(state.runs).toBe(3);
    await get('/v3/things?b');
    expect(state.runs).toBe(4);
  });

  it('keeps the bodies it holds under its byte budget, and never keeps one over a quarter of it', async () => {
    const { state, cache, get, learned } = cachedApp({ maxEntries: 100, maxBytes: 200 });
    await learned();
    for (const q of ['a', 'b', 'c', 'd', 'e', 'f']) await get(`/v3/things?${q}`);
    expect(cache.heldBytes).toBeLessThanOrEqual(200);
    expect(cache.size).toBe(4); // each body is 44 bytes
    await get('/v3/things?f');
    expect(state.runs).toBe(6);
    await get('/v3/things?a');
    expect(state.runs).toBe(7);
    const long = `/v3/things?${'x'.repeat(20)}`;
    await get(long);
    await get(long);
    expect(state.runs).toBe(9);
  });
});

// The harness runs Kiln with its default configuration, so the list cache is on for every API test; these
// walk the cases where a stale page would be easiest to miss.
describe('lists stay current with the list cache on', () => {
  let t: TestKiln;
  beforeAll(async () => {
    t = await createTestKiln();
  });
  afterAll(() => t.close());

  const names = async (client: TestKiln['admin'], path: string) =>
    ((await client.get(path)).body.resources as Array<{ name: string }>).map((r) => r.name).sort();

  it('shows a new space, a granted role and a changed label on the next identical request', async () => {
    const org = await t.org('cache-org');
    const listPath = `/v3/spaces?organization_guids=${org.guid}`;
    expect(await names(t.admin, listPath)).toEqual([]);
    const space = await t.space('cache-a', org.guid);
    expect(await names(t.admin, listPath)).toEqual(['cache-a']);

    const dev = await t.user('cache-dev');
    expect(await names(dev, listPath)).toEqual([]);
    await t.grant(dev, 'organization_user', { org: org.guid });
    await t.grant(dev, 'space_developer', { space: space.guid });
    expect(await names(dev, listPath)).toEqual(['cache-a']);

    const labelled = `${listPath}&label_selector=tier%3Dgold`;
    expect(await names(t.admin, labelled)).toEqual([]);
    expect((await t.admin.patch(`/v3/spaces/${space.guid}`, { metadata: { labels: { tier: 'gold' } } })).status).toBe(200);
    expect(await names(t.admin, labelled)).toEqual(['cache-a']);
  });

  it('labels cached answers in the metrics with the route, like computed ones', async () => {
    const count = async () => {
      const text = await (await t.kiln.app.request('http://kiln.test/metrics')).text();
      const line = text.split('\n').find((l) => l.startsWith('kiln_http_requests_total{method="GET",route="/v3/stacks",status="200"}'));
      return { n: Number(line?.split(' ').at(-1) ?? 0), wildcard: text.includes('route="/v3/*"') };
    };
    const before = await count();
    await t.admin.get('/v3/stacks');
    await t.admin.get('/v3/stacks');
    const after = await count();
    expect(after.n - before.n).toBe(2);
    expect(after.wildcard).toBe(false);
  });

  it('renders links for the origin each request came from', async () => {
    const viaProxy = await t.admin.get('/v3/organizations', { headers: { 'x-forwarded-host': 'api.example.org', 'x-forwarded-proto': 'https' } });
    const direct = await t.admin.get('/v3/organizations');
    expect(viaProxy.body.pagination.first.href).toMatch(/^https:\/\/api\.example\.org\/v3\/organizations/);
    expect(direct.body.pagination.first.href).toMatch(/^http:\/\/kiln\.test\/v3\/organizations/);
  });
});
