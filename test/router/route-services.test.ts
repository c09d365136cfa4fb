import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { Router } from '../../src/router/router.ts';
import { RouteServiceSigner } from '../../src/router/route-services.ts';
import { startFixtureBroker } from '../fixtures/broker/broker.ts';
import { afterEachServers, backendAt, echoBackend, listen, request } from './helpers.ts';

const { cleanups, track } = afterEachServers();

async function routerWithApp() {
  const router = new Router({});
  const s = await track(listen(http.createServer(router.handle)));
  cleanups.push(() => router.close());
  const app = await track(echoBackend('app'));
  // The route's host is the router's own address, so the route service can send the request back by URL.
  const route = router.table.setBackends('127.0.0.1', [backendAt('i1', app.port)]);
  return { router, port: s.port, route };
}

describe('route services', () => {
  it('send a request through the route service with the CF headers, then to the app', async () => {
    const broker = await startFixtureBroker();
    cleanups.push(() => broker.close());
    const { port, route } = await routerWithApp();
    route.routeServiceUrl = broker.routeServiceUrl;

    const res = await request(port, { host: `127.0.0.1:${port}`, path: '/hello?x=1' });
    expect(res.status).toBe(200);
    expect(res.headers['x-route-service']).toBe('fixture');
    const seen = broker.requests.find((r) => r.path === '/route-service')!;
    expect(seen.headers['x-cf-forwarded-url']).toBe(`http://127.0.0.1:${port}/hello?x=1`);
    expect(seen.headers['x-cf-proxy-signature']).toBeTruthy();
    expect(seen.headers['x-cf-proxy-metadata']).toBeTruthy();
    const echoed = JSON.parse(res.text);
    expect(echoed).toMatchObject({ name: 'app', url: '/hello?x=1' });
  });

  it('do not let a request with a forged signature skip the route service', async () => {
    const broker = await startFixtureBroker();
    cleanups.push(() => broker.close());
    const { port, route } = await routerWithApp();
    route.routeServiceUrl = broker.routeServiceUrl;
    const forged = new RouteServiceSigner().sign(`http://127.0.0.1:${port}/`);
    const res = await request(port, {
      host: `127.0.0.1:${port}`,
      headers: { 'x-cf-forwarded-url': `http://127.0.0.1:${port}/`, 'x-cf-proxy-signature': forged.signature, 'x-cf-proxy-metadata': forged.metadata },
    });
    expect(res.headers['x-route-service']).toBe('fixture');
  });

  it('signatures name their URL and expire', () => {
    const signer = new RouteServiceSigner();
    const { signature, metadata } = signer.sign('http://a.example.org/x', 1_000_000);
    expect(signer.verify(signature, metadata, 'http://a.example.org/x', 1_000_500)).toBe(true);
    expect(signer.verify(signature, metadata, 'http://a.example.org/y', 1_000_500)).toBe(false);
    expect(signer.verify(signature, metadata, 'http://a.example.org/x', 1_100_000)).toBe(false);
  });
});
