import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoutingController } from '../../../src/controllers/routing-controller.ts';
import { routeKey } from '../../../src/router/route-table.ts';
import { Router } from '../../../src/router/router.ts';
import { instanceId } from '../../../src/runtime/runtime.ts';
import { reconcilerTest, type ReconcilerTest } from '../../helpers/reconciler-harness.ts';
import { appFixture, type AppFixture } from './fixtures.ts';

const router = new Router();
let routing: RoutingController;
let r: ReconcilerTest;
let domain: { guid: string; name: string };
beforeAll(async () => {
  r = await reconcilerTest((t, runtime) => {
    routing = new RoutingController(t.kiln.store, runtime, router, pino({ level: 'silent' }));
    return routing.reconciler();
  });
  domain = (await r.t.admin.get('/v3/domains')).body.resources[0];
});
afterAll(async () => {
  router.close();
  await r.close();
});

async function mappedRoute(host: string): Promise<{ f: AppFixture; route: string; key: string }> {
  const f = await appFixture(r.t, host);
  const route = await r.t.admin.post('/v3/routes', { host, relationships: { space: { data: { guid: f.space } }, domain: { data: { guid: domain.guid } } } });
  expect(route.status, route.text).toBe(201);
  const mapped = await r.t.admin.post(`/v3/routes/${route.body.guid}/destinations`, { destinations: [{ app: { guid: f.app } }] });
  expect(mapped.status, mapped.text).toBe(200);
  return { f, route: route.body.guid, key: routeKey(`${host}.${domain.name}`) };
}

/** Starts a fake instance of the web process directly: the process controller is not running here. */
async function instance(f: AppFixture, index: number): Promise<string> {
  const id = instanceId(f.web, 'v1', index);
  await r.runtime.ensureInstance({
    id,
    appGuid: f.app,
    processGuid: f.web,
    processType: 'web',
    version: 'v1',
    index,
    dropletDir: '/nonexistent',
    command: 'x',
    env: {},
    memoryMb: 64,
    diskMb: 64,
    healthCheck: { type: 'port' },
  });
  return id;
}

const backends = (key: string) => router.table.get(key)?.backends.map((b) => b.instanceId);

describe('the routing controller', () => {
  it('routes a mapped route to its RUNNING instances only, as their states change', async () => {
    const { f, key } = await mappedRoute('routed');
    await r.settle();
    expect(backends(key)).toEqual([]);

    const a = await instance(f, 0);
    const b = await instance(f, 1);
    await r.settle();
    expect(backends(key)).toEqual([]);

    r.runtime.runAll(f.web);
    await r.settle();
    expect(backends(key)).toEqual([a, b]);

    r.runtime.crash(a);
    await r.settle();
    expect(backends(key)).toEqual([b]);

    await r.runtime.stopInstance(b);
    await r.settle();
    expect(backends(key)).toEqual([]);
  });

  it('drops a route from the table once it is deleted, and never routes to a draining instance', async () => {
    const { f, route, key } = await mappedRoute('draining');
    const a = await instance(f, 0);
    const b = await instance(f, 1);
    r.runtime.runAll(f.web);
    await r.settle();
    expect(backends(key)).toEqual([a, b]);

    await routing.drain(a);
    await r.manager.resync();
    await r.settle();
    expect(backends(key)).toEqual([b]);

    const del = await r.t.admin.delete(`/v3/routes/${route}`);
    expect(del.status).toBe(202);
    // The delete job's controller is not running here: remove the row as it would.
    await r.t.kiln.store.write(async (tx) => {
      await tx.deleteWhere('route_destinations', (eb) => eb('route_guid', '=', route));
      await tx.delete('routes', route);
    });
    await r.settle();
    expect(router.table.get(key)).toBeUndefined();
  });
});

describe('the routing controller and route policies', () => {
  it('marks routes on an enforcing domain with their policies, following creates and deletes', async () => {
    const f = await appFixture(r.t, 'guarded');
    const enforcing = await r.t.admin.post('/v3/domains', { name: 'guarded.example', enforce_route_policies: true, route_policies_scope: 'space' });
    expect(enforcing.status, enforcing.text).toBe(201);
    const route = await r.t.admin.post('/v3/routes', { host: 'api', relationships: { space: { data: { guid: f.space } }, domain: { data: { guid: enforcing.body.guid } } } });
    expect(route.status, route.text).toBe(201);
    const key = routeKey('api.guarded.example');
    await r.settle();
    // Enforcing without policies: nobody gets through (gorouter's default deny).
    const org = (await r.t.admin.get(`/v3/spaces/${f.space}`)).body.relationships.organization.data.guid;
    expect(router.table.get(key)?.access).toEqual({ sources: [], scope: 'space', spaceGuid: f.space, organizationGuid: org });

    // Route policies are not in openapi.json; their own schema is checked in test/api/route-policies.test.ts.
    const policy = await r.t.admin.post('/v3/route_policies', { source: `cf:app:${f.app}`, relationships: { route: { data: { guid: route.body.guid } } } }, { skipSpec: true });
    expect(policy.status, policy.text).toBe(201);
    await r.settle();
    expect(router.table.get(key)?.access?.sources).toEqual([`cf:app:${f.app}`]);

    expect((await r.t.admin.delete(`/v3/route_policies/${policy.body.guid}`, { skipSpec: true })).status).toBe(204);
    await r.settle();
    expect(router.table.get(key)?.access?.sources).toEqual([]);
  });

  it('leaves routes of other domains unchecked', async () => {
    const { key } = await mappedRoute('unguarded');
    await r.settle();
    expect(router.table.get(key)?.access).toBeUndefined();
  });
});
