import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatAccessLog, type AccessLogEntry } from '../../src/router/access-log.ts';
import { Router } from '../../src/router/router.ts';
import { afterEachServers, backendAt, deadPort, deferred, echoBackend, listen, request } from './helpers.ts';

interface Echo {
  name: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

const { cleanups, track } = afterEachServers();

async function startRouter(
  opts: ConstructorParameters<typeof Router>[0] = {},
): Promise<{ router: Router; port: number; log: AccessLogEntry[]; logged: (n: number) => Promise<void> }> {
  const log: AccessLogEntry[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const logged = (n: number): Promise<void> =>
    log.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }));
  const router = new Router({
    onAccess: (e) => {
      log.push(e);
      for (const w of waiters.splice(0)) {
        if (log.length >= w.n) w.resolve();
        else waiters.push(w);
      }
    },
    ...opts,
  });
  const server = http.createServer(router.handle);
  server.on('upgrade', router.handleUpgrade);
  const s = await track(listen(server));
  cleanups.push(() => router.close());
  return { router, port: s.port, log, logged };
}

function echo(r: { text: string }): Echo {
  return JSON.parse(r.text) as Echo;
}

describe('routing', () => {
  it('routes by host and by longest path prefix', async () => {
    const root = await track(echoBackend('root'));
    const api = await track(echoBackend('api'));
    const other = await track(echoBackend('other'));
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('root', root.port)]);
    router.table.setBackends('app.example.com/api', [backendAt('api', api.port)]);
    router.table.setBackends('other.example.com', [backendAt('other', other.port)]);

    expect(echo(await request(port, { host: 'app.example.com' })).name).toBe('root');
    expect(echo(await request(port, { host: 'APP.example.com:8080', path: '/api/v1?q=1' }))).toMatchObject({ name: 'api', url: '/api/v1?q=1' });
    expect(echo(await request(port, { host: 'app.example.com', path: '/apiary' })).name).toBe('root');
    expect(echo(await request(port, { host: 'other.example.com', path: '/api' })).name).toBe('other');
  });

  it('spreads requests round robin', async () => {
    const servers = await Promise.all(['a', 'b', 'c'].map((n) => track(echoBackend(n))));
    const { router, port } = await startRouter();
    router.table.setBackends('rr.example.com', servers.map((s, i) => backendAt(['a', 'b', 'c'][i]!, s.port, i)));
    const names: string[] = [];
    for (let i = 0; i < 6; i++) names.push(echo(await request(port, { host: 'rr.example.com' })).name);
    expect(names).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('answers 404 unknown_route naming the host', async () => {
    const { port, log } = await startRouter();
    const r = await request(port, { host: 'nope.example.com:9000', path: '/x' });
    expect(r.status).toBe(404);
    expect(r.headers['x-cf-routererror']).toBe('unknown_route');
    // gorouter words it with the Host header as sent, port included.
    expect(r.text).toBe("404 Not Found: Requested route ('nope.example.com:9000') does not exist.\n");
    expect(log[0]).toMatchObject({ status: 404, routerError: 'unknown_route', appGuid: undefined });
  });

  it('answers 404 unknown_route once the last instance of a route went away, as gorouter prunes empty pools', async () => {
    const s = await track(echoBackend('only'));
    const { router, port } = await startRouter();
    router.table.setBackends('gone.example.com', [backendAt('only', s.port)]);
    expect((await request(port, { host: 'gone.example.com' })).status).toBe(200);
    router.table.removeBackend('only');
    const drained = await request(port, { host: 'gone.example.com:8080' });
    expect(drained.status).toBe(404);
    expect(drained.headers['x-cf-routererror']).toBe('unknown_route');
    expect(drained.text).toBe("404 Not Found: Requested route ('gone.example.com:8080') does not exist.\n");
    router.table.setBackends('stopped.example.com', []);
    const stopped = await request(port, { host: 'stopped.example.com' });
    expect(stopped.status).toBe(404);
    expect(stopped.headers['x-cf-routererror']).toBe('unknown_route');
    // The route still claims its host, so the front door keeps sending it to the router rather than the API.
    expect(router.table.hasHost('stopped.example.com')).toBe(true);
  });

  it('relays backend status, headers and multi-value set-cookie', async () => {
    const s = await track(
      listen(
        http.createServer((_req, res) => {
          res.setHeader('set-cookie', ['a=1', 'b=2']);
          res.writeHead(201, 'Made', { 'x-custom': 'yes', connection: 'keep-alive' });
          res.end('created');
        }),
      ),
    );
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('x', s.port)]);
    const r = await request(port, { host: 'app.example.com' });
    expect(r.status).toBe(201);
    expect(r.text).toBe('created');
    expect(r.headers['x-custom']).toBe('yes');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-vcap-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('forwarded headers', () => {
  it('appends X-Forwarded-For and sets proto, host, request id and start time', async () => {
    const b = await track(echoBackend('b'));
    const { router, port, log } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    const before = Date.now();
    const r = await request(port, {
      host: 'app.example.com',
      headers: { 'x-forwarded-for': '10.1.2.3', connection: 'x-secret', 'x-secret': 'hop', 'user-agent': 'test-agent' },
    });
    const seen = echo(r).headers;
    expect(seen['host']).toBe('app.example.com');
    expect(seen['x-forwarded-for']).toBe('10.1.2.3, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe('app.example.com');
    expect(seen['x-vcap-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.headers['x-vcap-request-id']).toBe(seen['x-vcap-request-id']);
    expect(Number(seen['x-request-start'])).toBeGreaterThanOrEqual(before);
    expect(Number(seen['x-request-start'])).toBeLessThanOrEqual(Date.now());
    expect(seen['x-secret']).toBeUndefined();
    expect(seen['user-agent']).toBe('test-agent');
    expect(log[0]).toMatchObject({ requestId: seen['x-vcap-request-id'], xForwardedFor: '10.1.2.3, 127.0.0.1', userAgent: 'test-agent' });
  });

  it('keeps an incoming request id, proto and forwarded host', async () => {
    const b = await track(echoBackend('b'));
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    const r = await request(port, {
      host: 'app.example.com',
      headers: { 'x-vcap-request-id': 'abc-123', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'public.example.org' },
    });
    const seen = echo(r).headers;
    expect(seen['x-vcap-request-id']).toBe('abc-123');
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('https');
    expect(seen['x-forwarded-host']).toBe('public.example.org');
  });
});

describe('retries', () => {
  it('retries a refused connection on another instance, replaying a small body', async () => {
    const live = await track(echoBackend('live'));
    const dead = await deadPort();
    const { router, port, log } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('dead', dead), backendAt('live', live.port, 1)]);
    for (let i = 0; i < 4; i++) {
      const r = await request(port, { host: 'app.example.com', method: 'POST', body: `payload-${i}`, headers: { 'content-type': 'text/plain' } });
      expect(r.status).toBe(200);
      expect(echo(r)).toMatchObject({ name: 'live', body: `payload-${i}` });
    }
    expect(log.map((e) => [e.status, e.instanceId, e.appIndex])).toEqual(Array(4).fill([200, 'live', 1]));
    expect(router.inFlight('dead')).toBe(0);
  });

  it('gives up after three attempts with 502 endpoint_failure', async () => {
    const dead = await Promise.all([deadPort(), deadPort(), deadPort(), deadPort()]);
    const live = await track(echoBackend('live'));
    const { router, port, log } = await startRouter();
    // The live instance is fourth in line, beyond the three attempts a request gets.
    router.table.setBackends('app.example.com', [...dead.map((p, i) => backendAt(`dead${i}`, p)), backendAt('live', live.port)]);
    const r = await request(port, { host: 'app.example.com' });
    expect(r.status).toBe(502);
    expect(r.headers['x-cf-routererror']).toBe('endpoint_failure');
    expect(r.text).toContain('Registered endpoint failed to handle the request');
    expect(log[0]).toMatchObject({ status: 502, routerError: 'endpoint_failure' });
    for (let i = 0; i < 4; i++) expect(router.inFlight(`dead${i}`)).toBe(0);
  });

  it('does not retry when the backend dies after receiving the request', async () => {
    let hits = 0;
    const crashing = await track(listen(http.createServer((req) => {
      hits++;
      req.socket.destroy();
    })));
    const other = await track(echoBackend('other'));
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('crash', crashing.port), backendAt('other', other.port)]);
    const r = await request(port, { host: 'app.example.com', method: 'POST', body: 'once' });
    expect(r.status).toBe(502);
    expect(hits).toBe(1);
  });
});

describe('backend failure mid-response', () => {
  it('cuts the client connection instead of passing off a truncated body as complete', async () => {
    const b = await track(
      listen(
        http.createServer((req, res) => {
          res.writeHead(200, { 'content-length': '1000' });
          res.write('partial', () => req.socket.destroy());
        }),
      ),
    );
    const { router, port, log, logged } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    await expect(request(port, { host: 'app.example.com' })).rejects.toThrow();
    await logged(1);
    expect(log[0]).toMatchObject({ status: 200, instanceId: 'b' });
    expect(router.inFlight('b')).toBe(0);
  });
});

describe('streaming', () => {
  it('streams a large request body and a large response body', async () => {
    const block = randomBytes(1024 * 1024);
    const blocks = 24;
    const expected = createHash('sha256');
    for (let i = 0; i < blocks; i++) expected.update(block);
    const digest = expected.digest('hex');

    const b = await track(
      listen(
        http.createServer((req, res) => {
          if (req.method === 'POST') {
            const h = createHash('sha256');
            let n = 0;
            req.on('data', (c: Buffer) => {
              h.update(c);
              n += c.length;
            });
            req.on('end', () => res.end(JSON.stringify({ n, digest: h.digest('hex') })));
            return;
          }
          let sent = 0;
          const pump = (): void => {
            while (sent < blocks) {
              sent++;
              if (!res.write(block)) {
                res.once('drain', pump);
                return;
              }
            }
            res.end();
          };
          pump();
        }),
      ),
    );
    const { router, port, log } = await startRouter();
    router.table.setBackends('big.example.com', [backendAt('big', b.port)]);

    // Upload without content-length: chunked all the way through.
    const upload = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/up', headers: { host: 'big.example.com' }, agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      let i = 0;
      const pump = (): void => {
        while (i < blocks) {
          i++;
          if (!req.write(block)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    expect(JSON.parse(upload)).toEqual({ n: blocks * block.length, digest });

    const download = await new Promise<{ n: number; digest: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/down', headers: { host: 'big.example.com' }, agent: false }, (res) => {
          const h = createHash('sha256');
          let n = 0;
          res.on('data', (c: Buffer) => {
            h.update(c);
            n += c.length;
          });
          res.on('end', () => resolve({ n, digest: h.digest('hex') }));
        })
        .on('error', reject);
    });
    expect(download).toEqual({ n: blocks * block.length, digest });
    expect(log.map((e) => [e.bytesIn, e.bytesOut])).toEqual([
      [blocks * block.length, expect.any(Number)],
      [0, blocks * block.length],
    ]);
  });
});

describe('drain', () => {
  it('takes the instance out of rotation and waits for its in-flight request', async () => {
    const arrived = deferred();
    const release = deferred();
    const slow = await track(
      listen(
        http.createServer((_req, res) => {
          arrived.resolve();
          void release.promise.then(() => res.end('slow done'));
        }),
      ),
    );
    const fast = await track(echoBackend('fast'));
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('slow', slow.port), backendAt('fast', fast.port)]);

    const pending = request(port, { host: 'app.example.com' });
    await arrived.promise;
    expect(router.inFlight('slow')).toBe(1);

    let drained = false;
    const draining = router.drain('slow').then(() => (drained = true));
    expect(router.table.get('app.example.com')?.backends.map((b) => b.instanceId)).toEqual(['fast']);
    // New traffic goes elsewhere while the slow request is still open, and the drain keeps waiting.
    for (let i = 0; i < 3; i++) expect(echo(await request(port, { host: 'app.example.com' })).name).toBe('fast');
    expect(drained).toBe(false);

    release.resolve();
    expect((await pending).text).toBe('slow done');
    await draining;
    expect(drained).toBe(true);
    expect(router.inFlight('slow')).toBe(0);
  });

  it('resolves at once for an idle instance and after the timeout for a stuck one', async () => {
    const arrived = deferred();
    const stuck = await track(listen(http.createServer(() => arrived.resolve())));
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('stuck', stuck.port)]);
    await router.drain('unknown-instance');

    const pending = request(port, { host: 'app.example.com' }).catch(() => undefined);
    await arrived.promise;
    await router.drain('stuck', { timeoutMs: 20 });
    expect(router.inFlight('stuck')).toBe(1);
    await stuck.close();
    await pending;
  });
});

describe('client abort', () => {
  it('releases the instance and logs 499 when the client leaves before the response', async () => {
    const arrived = deferred();
    const backendClosed = deferred();
    const slow = await track(
      listen(
        http.createServer((req) => {
          arrived.resolve();
          req.socket.on('close', () => backendClosed.resolve());
        }),
      ),
    );
    const { router, port, log } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('slow', slow.port)]);
    const client = http.request({ host: '127.0.0.1', port, headers: { host: 'app.example.com' }, agent: false });
    client.on('error', () => undefined);
    client.end();
    await arrived.promise;
    const drained = router.drain('slow');
    client.destroy();
    await drained;
    await backendClosed.promise;
    expect(router.inFlight('slow')).toBe(0);
    expect(log[0]).toMatchObject({ status: 499, instanceId: 'slow' });
  });
});

describe('access log', () => {
  it('formats gorouter RTR lines', async () => {
    const b = await track(echoBackend('b'));
    const { router, port, log } = await startRouter();
    router.table.setBackends('app.example.com', [{ ...backendAt('inst-1', b.port, 2), appGuid: 'app-guid-1' }]);
    await request(port, { host: 'app.example.com', path: '/p?q=1', headers: { referer: 'http://r.example.com/', 'user-agent': 'ua "x"' } });
    const line = formatAccessLog(log[0]!);
    expect(line).toMatch(
      new RegExp(
        String.raw`^app\.example\.com - \[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000\] "GET /p\?q=1 HTTP/1\.1" 200 0 \d+ ` +
          String.raw`"http://r\.example\.com/" "ua \\"x\\"" "127\.0\.0\.1:\d+" "127\.0\.0\.1:${b.port}" ` +
          String.raw`x_forwarded_for:"127\.0\.0\.1" x_forwarded_proto:"http" vcap_request_id:"[0-9a-f-]{36}" ` +
          String.raw`response_time:\d+\.\d{6} app_id:"app-guid-1" app_index:"2" instance_id:"inst-1"$`,
      ),
    );

    await request(port, { host: 'missing.example.com' });
    expect(formatAccessLog(log[1]!)).toMatch(/^missing\.example\.com - \[.*\] "GET \/ HTTP\/1\.1" 404 0 \d+ "-" "-" "127\.0\.0\.1:\d+" "-" .* app_id:"-" app_index:"-" instance_id:"-"$/);
  });
});

describe('upgrade', () => {
  it('passes a protocol upgrade through to the backend', async () => {
    const backend = http.createServer((_req, res) => res.end('plain'));
    backend.on('upgrade', (req: http.IncomingMessage, socket) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nX-Seen-Host: ${req.headers.host}\r\n\r\n`);
      socket.pipe(socket);
    });
    const b = await track(listen(backend));
    const { router, port, log } = await startRouter();
    router.table.setBackends('ws.example.com', [backendAt('ws', b.port)]);

    const { res, socket } = await new Promise<{ res: http.IncomingMessage; socket: import('node:net').Socket }>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port,
        headers: { host: 'ws.example.com', connection: 'Upgrade', upgrade: 'echo' },
        agent: false,
      });
      req.on('upgrade', (r, s) => resolve({ res: r, socket: s }));
      req.on('error', reject);
      req.end();
    });
    expect(res.statusCode).toBe(101);
    expect(res.headers['x-seen-host']).toBe('ws.example.com');
    expect(router.inFlight('ws')).toBe(1);
    const echoed = await new Promise<string>((resolve) => {
      socket.once('data', (c: Buffer) => resolve(c.toString()));
      socket.write('ping');
    });
    expect(echoed).toBe('ping');
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const draining = router.drain('ws');
    socket.destroy();
    await closed;
    await draining;
    expect(router.inFlight('ws')).toBe(0);
    expect(log[0]).toMatchObject({ status: 101, instanceId: 'ws' });
  });

  it('refuses upgrades for unknown routes', async () => {
    const { port } = await startRouter();
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, headers: { host: 'none.example.com', connection: 'Upgrade', upgrade: 'echo' }, agent: false });
      req.on('response', (r) => resolve(r.statusCode ?? 0));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(404);
  });
});
