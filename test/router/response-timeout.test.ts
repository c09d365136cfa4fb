import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { AccessLogEntry } from '../../src/router/access-log.ts';
import { Router } from '../../src/router/router.ts';
import { loadConfig } from '../../src/config/config.ts';
import { afterEachServers, backendAt, deferred, echoBackend, listen, request, type TestServer } from './helpers.ts';

const { cleanups, track } = afterEachServers();

async function startRouter(opts: ConstructorParameters<typeof Router>[0]): Promise<{ router: Router; port: number; log: AccessLogEntry[] }> {
  const log: AccessLogEntry[] = [];
  const router = new Router({ onAccess: (e) => log.push(e), ...opts });
  const server = http.createServer(router.handle);
  server.on('upgrade', router.handleUpgrade);
  const s = await track(listen(server));
  cleanups.push(() => router.close());
  return { router, port: s.port, log };
}

/** A backend that reads requests and never answers; it reports each connection and when that closes. */
async function silentBackend(): Promise<{ server: TestServer; requests: () => number; connected: Promise<void>; closed: Promise<void> }> {
  let requests = 0;
  const connected = deferred();
  const closed = deferred();
  const server = http.createServer(() => {
    requests++;
  });
  server.on('connection', (socket: net.Socket) => {
    connected.resolve();
    socket.on('close', () => closed.resolve());
  });
  return { server: await track(listen(server)), requests: () => requests, connected: connected.promise, closed: closed.promise };
}

describe('backend response timeout', () => {
  it('answers 502 endpoint_failure when no response headers come in time, and closes the backend connection', async () => {
    const silent = await silentBackend();
    const { router, port, log } = await startRouter({ responseTimeoutMs: 200 });
    router.table.setBackends('app.example.com', [backendAt('silent', silent.server.port)]);

    const startedAt = Date.now();
    const r = await request(port, { host: 'app.example.com' });
    expect(r.status).toBe(502);
    expect(r.headers['x-cf-routererror']).toBe('endpoint_failure');
    expect(r.headers['x-vcap-request-id']).toBeTruthy();
    expect(r.text).toContain('Registered endpoint failed to handle the request');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(190);
    await silent.closed;
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ status: 502, routerError: 'endpoint_failure', instanceId: 'silent', appGuid: 'app-silent' });
    expect(router.inFlight('silent')).toBe(0);
  });

  it('does not retry a timed-out request on another instance', async () => {
    const silent = await silentBackend();
    const live = await track(echoBackend('live'));
    const { router, port, log } = await startRouter({ responseTimeoutMs: 200 });
    // Round robin may start anywhere: send requests until one lands on the silent backend first.
    router.table.setBackends('app.example.com', [backendAt('silent', silent.server.port), backendAt('live', live.port, 1)]);
    let timedOut: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < 4 && !timedOut; i++) {
      const r = await request(port, { host: 'app.example.com', method: 'POST', body: 'charge-card' });
      if (r.status !== 200) timedOut = r;
    }
    expect(timedOut?.status).toBe(502);
    expect(timedOut?.headers['x-cf-routererror']).toBe('endpoint_failure');
    expect(silent.requests()).toBe(1);
    const failed = log.filter((e) => e.status === 502);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ instanceId: 'silent', routerError: 'endpoint_failure' });
    await silent.closed;
  });

  it('leaves slow responses alone once their headers arrived', async () => {
    const backend = await track(
      listen(
        http.createServer((_req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('first ');
          // The body keeps streaming past the timeout: only the wait for headers is bounded.
          setTimeout(() => res.end('last'), 400);
        }),
      ),
    );
    const { router, port } = await startRouter({ responseTimeoutMs: 200 });
    router.table.setBackends('app.example.com', [backendAt('slow', backend.port)]);
    const r = await request(port, { host: 'app.example.com' });
    expect(r.status).toBe(200);
    expect(r.text).toBe('first last');
  });

  it('times out only the requests still waiting, wherever they are among those in flight', async () => {
    // /never gets no answer, /late one after 100 ms (within the timeout), /now one at once.
    const backend = await track(
      listen(
        http.createServer((req, res) => {
          if (req.url === '/never') return;
          const answer = (): void => void res.end(`${req.url}`);
          if (req.url === '/late') setTimeout(answer, 100);
          else answer();
        }),
      ),
    );
    const { router, port, log } = await startRouter({ responseTimeoutMs: 300 });
    router.table.setBackends('app.example.com', [backendAt('mixed', backend.port)]);
    const paths = ['/never', '/late', '/now', '/never', '/late'];
    const replies = await Promise.all(paths.map((path) => request(port, { host: 'app.example.com', path })));
    expect(replies.map((r) => r.status)).toEqual([502, 200, 200, 502, 200]);
    expect(replies[1]!.text).toBe('/late');
    expect(replies[2]!.text).toBe('/now');
    expect(log.filter((e) => e.routerError === 'endpoint_failure').map((e) => e.url)).toEqual(['/never', '/never']);
    expect(router.inFlight('mixed')).toBe(0);
    // Requests after the timeouts are served as usual.
    expect((await request(port, { host: 'app.example.com', path: '/now' })).status).toBe(200);
  });

  it('times out an upgrade the backend never answers', async () => {
    const silent = await silentBackend();
    const { router, port, log } = await startRouter({ responseTimeoutMs: 200 });
    router.table.setBackends('app.example.com', [backendAt('silent', silent.server.port)]);
    const r = await request(port, { host: 'app.example.com', headers: { connection: 'Upgrade', upgrade: 'websocket' } });
    expect(r.status).toBe(502);
    expect(r.headers['x-cf-routererror']).toBe('endpoint_failure');
    await silent.closed;
    expect(log[0]).toMatchObject({ status: 502, routerError: 'endpoint_failure' });
    expect(router.inFlight('silent')).toBe(0);
  });
});

describe('KILN_ROUTER_TIMEOUT_SECONDS', () => {
  it('defaults to gorouter’s 900 s and rejects values below 1', () => {
    expect(loadConfig({}).routerTimeoutSeconds).toBe(900);
    expect(loadConfig({ KILN_ROUTER_TIMEOUT_SECONDS: '5' }).routerTimeoutSeconds).toBe(5);
    expect(() => loadConfig({ KILN_ROUTER_TIMEOUT_SECONDS: '0' })).toThrow(/KILN_ROUTER_TIMEOUT_SECONDS/);
  });
});
