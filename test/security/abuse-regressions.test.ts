import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/**
 * Bodies the random-body suite (abuse-random-bodies.test.ts) found answered with a 500, each replayed here as
 * it was found, so the fix stays put whatever seed the suite runs with next.
 */
let t: TestKiln;
let org: any;
let space: any;
beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('regress-org');
  space = await t.space('regress-space', org.guid);
});
afterAll(() => t.close());

describe('client mistakes are 4xx, never 500', () => {
  // JSON.parse gives `{"toString": …}` an own toString that is no function: String() on it throws.
  it('names a guid that is an object with its own toString in the 422 of an isolation segment entitlement', async () => {
    const seg = (await t.admin.post('/v3/isolation_segments', { name: 'regress-seg' })).body;
    const res = await t.admin.post(`/v3/isolation_segments/${seg.guid}/relationships/organizations`, { data: [{ guid: { toString: 0 } }] });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toBe('Data {"toString":0} not a string');
  });

  it('names a guid that is an object with its own toString in the 422 of a route transfer', async () => {
    expect((await t.admin.patch('/v3/feature_flags/route_sharing', { enabled: true })).status).toBe(200);
    const domain = (await t.admin.post('/v3/domains', { name: 'regress.example.org', relationships: { organization: { data: { guid: org.guid } } } })).body;
    const route = (await t.admin.post('/v3/routes', { host: 'r', relationships: { domain: { data: { guid: domain.guid } }, space: { data: { guid: space.guid } } } })).body;
    const res = await t.admin.patch(`/v3/routes/${route.guid}/relationships/space`, { data: { guid: { toString: { 'kiln.io/x': 'bits' } } } });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toBe('Data {"toString":{"kiln.io/x":"bits"}} must be a string');
  });

  it('quotes a strategy or a security group protocol with its own valueOf instead of failing', async () => {
    const app = (await t.admin.post('/v3/apps', { name: 'regress-app', relationships: { space: { data: { guid: space.guid } } } })).body;
    const dep = await t.admin.post('/v3/deployments', { strategy: { valueOf: 1 }, relationships: { app: { data: { guid: app.guid } } } });
    expect(dep.status).toBe(422);
    const sg = await t.admin.post('/v3/security_groups', { name: 'regress-sg', rules: [{ protocol: { toString: 1 }, destination: '10.0.0.1' }] });
    expect(sg.status).toBe(422);
  });
});
