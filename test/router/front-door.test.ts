import http from 'node:http';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { createFrontDoor, createFrontDoorServer } from '../../src/router/front-door.ts';
import { Router } from '../../src/router/router.ts';
import { backendAt, echoBackend, listen, request, type TestServer } from './helpers.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(opts: { appsDomains?: string[]; apiHosts?: string[] } = {}): Promise<{ port: number; router: Router; backend: TestServer }> {
  const api = new Hono();
  api.get('/v3', (c) => c.json({ api: true, host: c.req.header('host') }));
  api.post('/v3/echo', async (c) => c.json({ api: true, body: await c.req.text() }));
  const backend = await echoBackend('app');
  cleanups.push(() => backend.close());
  const router = new Router();
  cleanups.push(() => router.close());
  const server = await listen(createFrontDoorServer({ api, router, ...opts }));
  cleanups.push(() => server.close());
  router.table.setBackends('myapp.apps.example.com', [backendAt('i1', backend.port)]);
  return { port: server.port, router, backend };
}

describe('front door', () => {
  it('sends routed hosts to the router and the rest to the API', async () => {
    const { port } = await setup();
    const app = await request(port, { host: 'MyApp.apps.example.com:9000', path: '/v3' });
    expect(app.headers['x-backend']).toBe('app');
    expect(JSON.parse(app.text)).toMatchObject({ name: 'app', url: '/v3' });

    const api = await request(port, { host: 'api.example.com', path: '/v3' });
    expect(JSON.parse(api.text)).toEqual({ api: true, host: 'api.example.com' });
    const posted = await request(port, { host: 'localhost', path: '/v3/echo', method: 'POST', body: 'hello' });
    expect(JSON.parse(posted.text)).toEqual({ api: true, body: 'hello' });

    // Without appsDomains an unknown host is API traffic.
    const unknown = await request(port, { host: 'other.apps.example.com', path: '/v3' });
    expect(JSON.parse(unknown.text)).toMatchObject({ api: true });
  });

  it('gives unrouted hosts under an apps domain the router 404, but not the API hosts', async () => {
    const { port } = await setup({ appsDomains: ['apps.example.com'], apiHosts: ['api.apps.example.com'] });
    const unknown = await request(port, { host: 'other.apps.example.com', path: '/v3' });
    expect(unknown.status).toBe(404);
    expect(unknown.headers['x-cf-routererror']).toBe('unknown_route');
    const api = await request(port, { host: 'api.apps.example.com', path: '/v3' });
    expect(JSON.parse(api.text)).toMatchObject({ api: true });
    expect((await request(port, { host: 'myapp.apps.example.com' })).headers['x-backend']).toBe('app');
  });

  it('follows route changes immediately', async () => {
    const { port, router } = await setup();
    router.table.removeRoute('myapp.apps.example.com');
    expect(JSON.parse((await request(port, { host: 'myapp.apps.example.com', path: '/v3' })).text)).toMatchObject({ api: true });
  });

  it('accepts a custom predicate and a plain node listener for the API', async () => {
    const router = new Router();
    cleanups.push(() => router.close());
    const door = createFrontDoor({
      api: (_req, res) => {
        res.end('node-api');
      },
      router,
      isRouted: (host) => host.endsWith('.routed.test'),
    });
    expect(door.isRouted('x.routed.test:80')).toBe(true);
    expect(door.isRouted('x.example.com')).toBe(false);
    expect(door.isRouted(undefined)).toBe(false);
    const server = await listen(http.createServer(door.listener));
    cleanups.push(() => server.close());
    expect((await request(server.port, { host: 'x.example.com' })).text).toBe('node-api');
    expect((await request(server.port, { host: 'x.routed.test' })).status).toBe(404);
  });
});
