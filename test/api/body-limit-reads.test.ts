import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { requestBodyLimits } from '../../src/api/middleware/body-limit.ts';
import type { Env } from '../../src/api/context.ts';

/**
 * The body limit must not ask a GET or HEAD for its body: with the Node adapter that builds a whole fetch Request
 * (headers, AbortController, stream) per request, which halved the throughput of every small GET (bench/api.ts's
 * constant-JSON baseline went from ~6,000 to ~12,000 req/s without it).
 */
describe('requestBodyLimits on reads', () => {
  const app = new Hono<Env>();
  app.use('*', requestBodyLimits({ jsonBytes: 16 }));
  app.all('/x', (c) => c.text('ok'));

  /** A request whose `body` getter records that it was read. */
  const probe = (method: string, body?: string) => {
    const req = new Request('http://localhost/x', { method, ...(body === undefined ? {} : { body }) });
    let read = false;
    const real = Object.getOwnPropertyDescriptor(Request.prototype, 'body')!.get!;
    Object.defineProperty(req, 'body', {
      get() {
        read = true;
        return real.call(req);
      },
    });
    return { req, read: () => read };
  };

  it.each(['GET', 'HEAD'])('%s passes without the body being asked for', async (method) => {
    const p = probe(method);
    const res = await app.request(p.req);
    expect(res.status).toBe(200);
    expect(p.read()).toBe(false);
  });

  it('a POST over the limit is still refused with 413', async () => {
    const p = probe('POST', 'x'.repeat(64));
    const res = await app.request(p.req);
    expect(res.status).toBe(413);
    expect(p.read()).toBe(true);
  });
});
