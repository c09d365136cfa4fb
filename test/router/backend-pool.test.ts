import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { BackendPool } from '../../src/router/backend-pool.ts';
import { Router } from '../../src/router/router.ts';
import { afterEachServers, backendAt, listen, request } from './helpers.ts';

const { cleanups, track } = afterEachServers();

async function startRouter(pool?: BackendPool): Promise<{ router: Router; port: number }> {
  const router = new Router(pool ? { pool } : {});
  const server = http.createServer(router.handle);
  const s = await track(listen(server));
  cleanups.push(() => router.close());
  return { router, port: s.port };
}

/** A backend on raw sockets: `answer` gets each connection's bytes and writes what it likes. */
async function rawBackend(onConnection: (socket: net.Socket) => void): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, connections: () => connections };
}

/** Reads request heads off a raw connection and calls `reply` once per request (bodiless requests only). */
function perRequest(socket: net.Socket, reply: (head: string, n: number) => void): void {
  let buf = '';
  let n = 0;
  socket.on('data', (c: Buffer) => {
    buf += c.toString('latin1');
    let end: number;
    while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
      const head = buf.slice(0, end);
      buf = buf.slice(end + 4);
      reply(head, n++);
    }
  });
}

describe('backend connections', () => {
  it('reuses one keep-alive connection for requests one after another', async () => {
    let connections = 0;
    const b = await track(
      listen(
        http.createServer((_req, res) => {
          res.end('ok');
        }).on('connection', () => connections++),
      ),
    );
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    for (let i = 0; i < 5; i++) expect((await request(port, { host: 'app.example.com' })).text).toBe('ok');
    expect(connections).toBe(1);
  });

  it('retries on another instance when a reused connection turns out closed before any response byte', async () => {
    // The first instance answers one request per connection as keep-alive, then drops the connection on the next
    // request without a byte: what a backend closing an idle connection looks like when the close races the request.
    const flaky = await rawBackend((socket) =>
      perRequest(socket, (_head, n) => {
        if (n === 0) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst');
        else socket.destroy();
      }),
    );
    const other = await track(listen(http.createServer((_req, res) => res.end('other'))));
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('flaky', flaky.port)]);
    expect((await request(port, { host: 'app.example.com' })).text).toBe('first');
    router.table.setBackends('app.example.com', [backendAt('flaky', flaky.port), backendAt('other', other.port)]);
    const route = router.table.get('app.example.com')!;
    route.cursor = 0;
    const r = await request(port, { host: 'app.example.com' });
    expect(r.status).toBe(200);
    expect(r.text).toBe('other');
  });

  it('answers a HEAD request from the head alone, whatever Content-Length says', async () => {
    const b = await track(
      listen(
        http.createServer((req, res) => {
          res.writeHead(200, { 'content-length': '12', 'x-method': req.method });
          res.end(req.method === 'HEAD' ? undefined : 'hello world\n');
        }),
      ),
    );
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    const head = await request(port, { host: 'app.example.com', method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('12');
    expect(head.text).toBe('');
    // The connection is still in step: the next request on it gets its own answer.
    expect((await request(port, { host: 'app.example.com' })).text).toBe('hello world\n');
  });

  it('passes a chunked request body and a chunked response body through whole', async () => {
    const b = await track(
      listen(
        http.createServer((req, res) => {
          const chunks: Buffer[] = [];
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('end', () => {
            res.writeHead(200, { 'x-te': req.headers['transfer-encoding'] ?? '' });
            res.write('got:');
            setImmediate(() => res.end(Buffer.concat(chunks)));
          });
        }),
      ),
    );
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    const r = await new Promise<{ status: number; te: string | undefined; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { host: 'app.example.com' }, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, te: res.headers['x-te'] as string | undefined, body }));
      });
      req.on('error', reject);
      req.write('part one, ');
      setTimeout(() => req.end('part two'), 20);
    });
    expect(r).toEqual({ status: 200, te: 'chunked', body: 'got:part one, part two' });
  });

  it('relays a body that ends with the backend closing the connection', async () => {
    const b = await rawBackend((socket) =>
      perRequest(socket, () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil ');
        setTimeout(() => socket.end('the end'), 20);
      }),
    );
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    const r = await request(port, { host: 'app.example.com' });
    expect(r.status).toBe(200);
    expect(r.text).toBe('until the end');
    expect(router.inFlight('b')).toBe(0);
  });

  it('drops interim 1xx responses and relays the final one', async () => {
    const b = await rawBackend((socket) =>
      perRequest(socket, () => {
        socket.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n');
        socket.write('HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone');
      }),
    );
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    const r = await request(port, { host: 'app.example.com' });
    expect(r.status).toBe(201);
    expect(r.text).toBe('done');
  });

  it('relays responses with many headers (llhttp hands them over in pieces)', async () => {
    const b = await track(
      listen(
        http.createServer((_req, res) => {
          for (let i = 0; i < 60; i++) res.setHeader(`x-h${i}`, `v${i}`);
          res.end('many');
        }),
      ),
    );
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    const r = await request(port, { host: 'app.example.com' });
    expect(r.text).toBe('many');
    for (let i = 0; i < 60; i++) expect(r.headers[`x-h${i}`]).toBe(`v${i}`);
  });

  it('does not reuse a connection whose response came before the request body was sent', async () => {
    const b = await track(
      listen(
        http.createServer((req, res) => {
          if (req.url === '/early') {
            res.writeHead(413, { 'content-length': '5', connection: 'keep-alive' });
            res.end('early');
            return;
          }
          req.resume();
          req.on('end', () => res.end('normal'));
        }),
      ),
    );
    let connections = 0;
    b.server.on('connection', () => connections++);
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    const early = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/early', headers: { host: 'app.example.com' }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => {
          req.destroy();
          resolve(res.statusCode ?? 0);
        });
      });
      req.on('error', () => undefined);
      req.write('a body that never ends');
      void reject;
    });
    expect(early).toBe(413);
    expect((await request(port, { host: 'app.example.com', method: 'POST', body: 'x' })).text).toBe('normal');
    expect(connections).toBe(2);
  });

  it('closes connections that stay idle longer than idleTimeoutMs', async () => {
    let open = 0;
    const b = await track(
      listen(
        http.createServer((_req, res) => res.end('ok')).on('connection', (s: net.Socket) => {
          open++;
          s.on('close', () => open--);
        }),
      ),
    );
    const pool = new BackendPool({ idleTimeoutMs: 150 });
    cleanups.push(() => pool.close());
    const { router, port } = await startRouter(pool);
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    expect((await request(port, { host: 'app.example.com' })).text).toBe('ok');
    expect(pool.idleCount()).toBe(1);
    await expect.poll(() => open, { timeout: 3_000 }).toBe(0);
    expect(pool.idleCount()).toBe(0);
    // A new request simply opens a new connection.
    expect((await request(port, { host: 'app.example.com' })).text).toBe('ok');
  });

  it('answers 502 endpoint_failure for a response that is not HTTP', async () => {
    const b = await rawBackend((socket) => perRequest(socket, () => socket.write('SSH-2.0-OpenSSH\r\n\r\n')));
    const { router, port } = await startRouter();
    router.table.setBackends('app.example.com', [backendAt('b', b.port)]);
    const r = await request(port, { host: 'app.example.com' });
    expect(r.status).toBe(502);
    expect(r.headers['x-cf-routererror']).toBe('endpoint_failure');
    expect(router.inFlight('b')).toBe(0);
  });
});
