import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { AccessLogEntry } from '../../src/router/access-log.ts';
import { createFrontDoorServer } from '../../src/router/front-door.ts';
import { Router } from '../../src/router/router.ts';
import { afterEachServers, backendAt, deadPort, echoBackend, listen } from './helpers.ts';

const { cleanups, track } = afterEachServers();

/** The front door as the server runs it (fast path on), with an API that names itself. */
async function startDoor(): Promise<{ router: Router; port: number; server: http.Server; log: AccessLogEntry[] }> {
  const log: AccessLogEntry[] = [];
  const router = new Router({ onAccess: (e) => log.push(e) });
  const server = createFrontDoorServer({
    api: (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`api ${req.method} ${req.url} ${body}`);
      });
    },
    router,
    appsDomains: ['apps.test'],
    apiHosts: ['api.test'],
  });
  const s = await track(listen(server));
  cleanups.push(() => router.close());
  return { router, port: s.port, server, log };
}

/** Sends raw bytes on one connection and collects everything until the server closes it or `done` says so. */
function raw(port: number, data: string | string[], done: (text: string) => boolean = () => false): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    const finish = (): void => {
      socket.destroy();
      resolve(text);
    };
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (done(text)) finish();
    });
    socket.on('close', finish);
    socket.on('error', reject);
    const parts = Array.isArray(data) ? data : [data];
    let i = 0;
    const next = (): void => {
      if (i < parts.length) socket.write(parts[i++]!, () => setTimeout(next, 20));
    };
    next();
  });
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

function get(agent: http.Agent, port: number, host: string, path = '/', method = 'GET', body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: { host }, agent }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('front door fast path', () => {
  it('proxies a plain GET with the forwarding headers, a Date and an RTR access record', async () => {
    const app = await track(echoBackend('app'));
    const { router, port, log } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const r = await get(agent, port, 'web.apps.test', '/path?q=1');
    expect(r.status).toBe(200);
    expect(r.headers.date).toBeDefined();
    expect(r.headers['x-backend']).toBe('app');
    const seen = JSON.parse(r.text) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe('/path?q=1');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-host']).toBe('web.apps.test');
    expect(seen.headers['x-vcap-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(seen.headers['x-request-start'])).toBeGreaterThan(0);
    expect(r.headers['x-vcap-request-id']).toBe(seen.headers['x-vcap-request-id']);
    await expect.poll(() => log.length).toBe(1);
    expect(log[0]).toMatchObject({ status: 200, method: 'GET', url: '/path?q=1', instanceId: 'i0', host: 'web.apps.test' });
  });

  it('serves app and API requests on one keep-alive connection, each by its own side', async () => {
    const app = await track(echoBackend('app'));
    const { router, port } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const first = await get(agent, port, 'web.apps.test', '/one');
    const second = await get(agent, port, 'web.apps.test', '/two');
    const api = await get(agent, port, 'api.test', '/v3', 'POST', 'payload');
    const after = await get(agent, port, 'web.apps.test', '/three');
    expect([first, second, api, after].map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect((JSON.parse(second.text) as { url: string }).url).toBe('/two');
    expect(api.text).toBe('api POST /v3 payload');
    expect((JSON.parse(after.text) as { url: string }).url).toBe('/three');
    expect([second.reused, api.reused, after.reused]).toEqual([true, true, true]);
  });

  it('answers pipelined requests in order', async () => {
    const app = await track(echoBackend('app'));
    const { router, port } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const req = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: web.apps.test\r\n\r\n`;
    const text = await raw(port, req('/a') + req('/b') + req('/c'), (t) => count(t, 'HTTP/1.1 200') === 3 && t.includes('"/c"'));
    expect(text.indexOf('"/a"')).toBeLessThan(text.indexOf('"/b"'));
    expect(text.indexOf('"/b"')).toBeLessThan(text.indexOf('"/c"'));
  });

  it('hands a pipelined request that needs node’s server over after the fast one', async () => {
    const app = await track(echoBackend('app'));
    const { router, port } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const text = await raw(
      port,
      'GET /fast HTTP/1.1\r\nHost: web.apps.test\r\n\r\nPOST /v3/x HTTP/1.1\r\nHost: api.test\r\nContent-Length: 4\r\n\r\nbody',
      (t) => t.includes('api POST /v3/x body'),
    );
    expect(text.indexOf('"/fast"')).toBeGreaterThan(0);
    expect(text.indexOf('"/fast"')).toBeLessThan(text.indexOf('api POST /v3/x body'));
  });

  it('counts the header size limit per request, not per connection', async () => {
    const app = await track(echoBackend('app'));
    const { router, port } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const big = 'b'.repeat(10_000);
    const req = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: web.apps.test\r\nX-Big: ${big}\r\n\r\n`;
    // Three heads of 10 kB each on one connection: 30 kB in all, above node's 16 kB limit for one head.
    const text = await raw(port, [req('/1'), req('/2'), req('/3')], (t) => t.includes('"/3"'));
    expect(count(text, 'HTTP/1.1 200 OK')).toBe(3);
  });

  it('keeps a head split over several packets together', async () => {
    const app = await track(echoBackend('app'));
    const { router, port } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const text = await raw(port, ['GET /split HTTP/1.1\r\nHo', 'st: web.apps.test\r\nX-A: 1', '\r\n\r\n'], (t) => t.includes('"/split"'));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK/);
  });

  it('leaves request bodies, unknown routes, HTTP/1.0 and bad requests to node’s server with the usual answers', async () => {
    const app = await track(echoBackend('app'));
    const { router, port } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const post = await raw(port, 'POST /p HTTP/1.1\r\nHost: web.apps.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
    expect(post).toMatch(/^HTTP\/1\.1 200/);
    expect(post).toContain('"body":"hello"');
    const unknown = await raw(port, 'GET / HTTP/1.1\r\nHost: nope.apps.test\r\nConnection: close\r\n\r\n');
    expect(unknown).toMatch(/^HTTP\/1\.1 404/);
    expect(unknown.toLowerCase()).toContain('x-cf-routererror: unknown_route');
    const old = await raw(port, 'GET /old HTTP/1.0\r\nHost: web.apps.test\r\n\r\n');
    expect(old).toMatch(/^HTTP\/1\.1 200/);
    expect(old).toContain('"/old"');
    const bad = await raw(port, 'GET / HTTP/1.1\r\nHost: web.apps.test\r\nBad Header\r\n\r\n');
    expect(bad).toMatch(/^HTTP\/1\.1 400/);
    const big = await raw(port, `GET / HTTP/1.1\r\nHost: web.apps.test\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(big).toMatch(/^HTTP\/1\.1 431/);
  });

  it('closes the connection after the response when the client asks', async () => {
    const app = await track(echoBackend('app'));
    const { router, port } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const text = await raw(port, 'GET /bye HTTP/1.1\r\nHost: web.apps.test\r\nConnection: close\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).toContain('Connection: close');
    expect(text).toContain('"/bye"');
  });

  it('relays a chunked response and answers HEAD without a body', async () => {
    const app = await track(
      listen(
        http.createServer((req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          if (req.method === 'HEAD') {
            res.end();
            return;
          }
          res.write('one,');
          setTimeout(() => res.end('two'), 10);
        }),
      ),
    );
    const { router, port } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const body = await get(agent, port, 'web.apps.test');
    expect(body.text).toBe('one,two');
    expect(body.headers['transfer-encoding']).toBe('chunked');
    const head = await get(agent, port, 'web.apps.test', '/', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    const again = await get(agent, port, 'web.apps.test');
    expect(again.text).toBe('one,two');
  });

  it('retries a refused instance and answers 502 endpoint_failure when none is left', async () => {
    const app = await track(echoBackend('app'));
    const dead = await deadPort();
    const { router, port, log } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('dead', dead), backendAt('live', app.port, 1)]);
    router.table.setBackends('gone.apps.test', [backendAt('dead', dead)]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    for (let i = 0; i < 2; i++) expect((await get(agent, port, 'web.apps.test')).status).toBe(200);
    const failed = await get(agent, port, 'gone.apps.test');
    expect(failed.status).toBe(502);
    expect(failed.headers['x-cf-routererror']).toBe('endpoint_failure');
    await expect.poll(() => log.length).toBe(3);
    expect(log.map((e) => e.status)).toEqual([200, 200, 502]);
    expect(router.inFlight('dead')).toBe(0);
  });

  it('logs 499 and frees the instance when the client leaves before the response', async () => {
    let arrived!: () => void;
    const arrivedP = new Promise<void>((r) => (arrived = r));
    const app = await track(listen(http.createServer(() => arrived())));
    const { router, port, log } = await startDoor();
    router.table.setBackends('web.apps.test', [backendAt('slow', app.port)]);
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('GET /wait HTTP/1.1\r\nHost: web.apps.test\r\n\r\n');
    await arrivedP;
    expect(router.inFlight('slow')).toBe(1);
    socket.destroy();
    await expect.poll(() => log.length).toBe(1);
    expect(log[0]).toMatchObject({ status: 499, instanceId: 'slow' });
    expect(router.inFlight('slow')).toBe(0);
  });

  it('closes idle connections after the server’s keepAliveTimeout', async () => {
    const app = await track(echoBackend('app'));
    const { router, port, server } = await startDoor();
    server.keepAliveTimeout = 100;
    router.table.setBackends('web.apps.test', [backendAt('i0', app.port)]);
    const started = Date.now();
    const text = await raw(port, 'GET / HTTP/1.1\r\nHost: web.apps.test\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    // Closed by the server (raw() resolves on close), within the sweep interval after the timeout.
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
