import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Backend } from '../../src/router/route-table.ts';
import { afterEachCleanup, type Cleanup } from '../helpers/cleanup.ts';

export interface TestServer {
  server: http.Server;
  port: number;
  close(): Promise<void>;
}

export async function listen(server: http.Server): Promise<TestServer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A backend that answers with its name and what it received. */
export function echoBackend(name: string): Promise<TestServer> {
  return listen(
    http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.stringify({ name, method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name });
        res.end(body);
      });
    }),
  );
}

/** A port nothing listens on (bound, then released). */
export async function deadPort(): Promise<number> {
  const s = await listen(http.createServer());
  await s.close();
  return s.port;
}

export function backendAt(id: string, port: number, index = 0): Backend {
  return { instanceId: id, processGuid: `process-${id}`, appGuid: `app-${id}`, index, host: '127.0.0.1', port };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** A request with an explicit Host header (fetch cannot set one), on a fresh connection. */
export function request(
  port: number,
  opts: { host: string; path?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | string },
): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: opts.path ?? '/', method: opts.method ?? 'GET', headers: { ...opts.headers, host: opts.host }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString() });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Cleanup for one test file: `track` closes a server after each test, `cleanups` takes any other closer;
 * they run newest first.
 */
export function afterEachServers(): {
  cleanups: Cleanup[];
  track(server: Promise<TestServer>): Promise<TestServer>;
} {
  const { cleanups } = afterEachCleanup();
  return {
    cleanups,
    async track(server) {
      const s = await server;
      cleanups.push(() => s.close());
      return s;
    },
  };
}
