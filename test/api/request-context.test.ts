import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request context', () => {
  it('echoes the caller’s X-Vcap-Request-Id and makes one up otherwise, on JSON, error and text responses', async () => {
    const echoed = await t.admin.get('/v3/spaces', { headers: { 'x-vcap-request-id': 'cli-abc-1' } });
    expect(echoed.status).toBe(200);
    expect(echoed.headers.get('x-vcap-request-id')).toBe('cli-abc-1');

    const made = await t.admin.get('/v3/organizations');
    expect(made.headers.get('x-vcap-request-id')).toMatch(UUID);

    const missing = await t.admin.get('/v3/spaces/00000000-0000-4000-8000-000000000000');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-vcap-request-id')).toMatch(UUID);

    const unknownRoute = await t.anonymous.get('/no/such/path', { skipSpec: true });
    expect(unknownRoute.status).toBe(404);
    expect(unknownRoute.headers.get('x-vcap-request-id')).toMatch(UUID);

    const metrics = await t.kiln.app.request('http://kiln.test/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metrics.headers.get('x-vcap-request-id')).toMatch(UUID);
  });

  it('keeps exactly one request id header and the JSON content type on list responses', async () => {
    const res = await t.kiln.app.request('http://kiln.test/v3/info');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('x-vcap-request-id')!.split(',')).toHaveLength(1);
  });
});
