import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

/**
 * What the cross-tenant suite (abuse-cross-tenant.test.ts) found in the service endpoints, replayed with the
 * smallest fixtures: a user with roles in one org names another org's resources and gets exactly what a guid that
 * exists nowhere gets.
 */
let t: TestKiln;
let dev: Client;
let own: { space: string };
let other: { space: string; route: string };
const rel = (guid: string) => ({ data: { guid } });
const GHOST = '6c1c2b3e-0000-4000-8000-000000000001';

beforeAll(async () => {
  t = await createTestKiln();
  const orgA = await t.org('svc-regress-a');
  const spaceA = await t.space('svc-regress-a-space', orgA.guid);
  const domainA = (await t.admin.post('/v3/domains', { name: 'svc-regress-a.example.org', relationships: { organization: rel(orgA.guid) } })).body;
  const routeA = (await t.admin.post('/v3/routes', { host: 'secret', relationships: { domain: rel(domainA.guid), space: rel(spaceA.guid) } })).body;
  other = { space: spaceA.guid, route: routeA.guid };
  const orgB = await t.org('svc-regress-b');
  const spaceB = await t.space('svc-regress-b-space', orgB.guid);
  own = { space: spaceB.guid };
  dev = await t.spaceMember('space_developer', spaceB);
});
afterAll(() => t.close());

describe("another org's resources in a service request body", () => {
  it("a route binding to another org's route is refused as for a route that does not exist (not 403)", async () => {
    const ups = await dev.post('/v3/service_instances', {
      type: 'user-provided',
      name: 'proxy',
      route_service_url: 'https://proxy.example.org',
      relationships: { space: rel(own.space) },
    });
    expect(ups.status, ups.text).toBe(201);
    const theirs = await dev.post('/v3/service_route_bindings', { relationships: { service_instance: rel(ups.body.guid), route: rel(other.route) } });
    const ghost = await dev.post('/v3/service_route_bindings', { relationships: { service_instance: rel(ups.body.guid), route: rel(GHOST) } });
    expect(theirs.status, theirs.text).toBe(422);
    expect(theirs.body.errors[0].detail).toBe(`The route could not be found: '${other.route}'.`);
    expect(ghost.body.errors[0].detail).toBe(`The route could not be found: '${GHOST}'.`);
    expect((await t.admin.get(`/v3/service_route_bindings?route_guids=${other.route}`)).body.resources).toEqual([]);
  });
});
