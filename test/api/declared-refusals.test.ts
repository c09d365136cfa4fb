import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

/**
 * CF API writes to what a resource declares are refused (src/domain/declared.ts): the objects here carry the marks
 * the kube sync and the GitSource reconciler write (`kiln.dev/managed-by`, `kiln.dev/resource`, `kiln.dev/owns`),
 * set by the test through the API so that every refusal can be checked without a Kubernetes API server
 * (test/kube/kube-sync.test.ts shows the same refusals on objects the sync made). Reads, start/stop/restart and
 * writes to fields the resource does not name stay allowed.
 */
let t: TestKiln;
let dev: Client;
let space: any;
let org: any;
let app: { guid: string };
let web: { guid: string };
let route: { guid: string };
let otherRoute: { guid: string };
let domain: string;

const declaredBy = (resource: string, owns?: string) => ({
  labels: { 'kiln.dev/managed-by': 'kubernetes' },
  annotations: { 'kiln.dev/resource': resource, ...(owns !== undefined ? { 'kiln.dev/owns': owns } : {}) },
});
const YAML = { 'content-type': 'application/x-yaml' };
const rel = (guid: string) => ({ data: { guid } });

function refused(res: { status: number; body: any }, detail: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(422);
  expect(res.body.errors[0]).toMatchObject({ code: 10008, title: 'CF-UnprocessableEntity', detail });
}

beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('decl-org');
  space = await t.space('decl-space', org.guid);
  dev = await t.spaceMember('space_developer', space);
  domain = (await t.admin.get('/v3/domains')).body.resources[0].name;
  app = (await t.admin.post('/v3/apps', { name: 'hello', relationships: { space: rel(space.guid) }, environment_variables: { GREETING: 'hi', FREE: 'x' } })).body;
  web = (await t.admin.get(`/v3/apps/${app.guid}/processes/web`)).body;
  const domainGuid = (await t.admin.get('/v3/domains')).body.resources[0].guid;
  route = (await t.admin.post('/v3/routes', { host: 'hello', relationships: { space: rel(space.guid), domain: rel(domainGuid) } })).body;
  expect((await t.admin.post(`/v3/routes/${route.guid}/destinations`, { destinations: [{ app: { guid: app.guid } }] })).status).toBe(200);
  // Declared once mapped (as the sync's manifest apply leaves it): from here on the resource owns the mapping.
  const marks = declaredBy('App/demo/hello', `name,web.instances,web.command,env.GREETING,routes,route:hello.${domain},services,service:db`);
  expect((await t.admin.patch(`/v3/apps/${app.guid}`, { metadata: marks })).status).toBe(200);
  otherRoute = (
    await t.admin.post('/v3/routes', { host: 'shop', relationships: { space: rel(space.guid), domain: rel(domainGuid) }, metadata: declaredBy('Route/demo/shop', 'address,destinations') })
  ).body;
}, 60_000);
afterAll(() => t?.kiln.stop());

const OWNER = 'kiln.dev/v1alpha1 App demo/hello';

describe('an app declared by an App resource', () => {
  it('refuses a rename, and changes to the ownership marks; other labels and reads stay allowed', async () => {
    refused(await dev.patch(`/v3/apps/${app.guid}`, { name: 'renamed' }), `App 'hello' is managed by ${OWNER}, which declares name; change the resource instead`);
    refused(
      await dev.patch(`/v3/apps/${app.guid}`, { metadata: { labels: { 'kiln.dev/managed-by': null } } }),
      `App 'hello' is managed by ${OWNER}, which declares metadata.kiln.dev/managed-by; change the resource instead`,
    );
    expect((await dev.patch(`/v3/apps/${app.guid}`, { metadata: { labels: { team: 'blue' } } })).status).toBe(200);
    // An admin may detach an object whose declaration is gone; here it is put back at once.
    expect((await t.admin.patch(`/v3/apps/${app.guid}`, { metadata: { labels: { 'kiln.dev/managed-by': null } } })).status).toBe(200);
    expect((await dev.patch(`/v3/apps/${app.guid}`, { name: 'hello-detached' })).status).toBe(200);
    expect((await dev.patch(`/v3/apps/${app.guid}`, { name: 'hello' })).status).toBe(200);
    expect((await t.admin.patch(`/v3/apps/${app.guid}`, { metadata: { labels: { 'kiln.dev/managed-by': 'kubernetes' } } })).status).toBe(200);
    // The same name is no change.
    expect((await dev.patch(`/v3/apps/${app.guid}`, { name: 'hello' })).status).toBe(200);
    expect((await dev.get(`/v3/apps/${app.guid}`)).status).toBe(200);
  });

  it('refuses scaling a declared field, allows the others', async () => {
    refused(await dev.post(`/v3/processes/${web.guid}/actions/scale`, { instances: 3 }), `App 'hello' is managed by ${OWNER}, which declares web.instances; change the resource instead`);
    refused(await dev.post(`/v3/apps/${app.guid}/processes/web/actions/scale`, { instances: 3, memory_in_mb: 512 }), `App 'hello' is managed by ${OWNER}, which declares web.instances; change the resource instead`);
    const mem = await dev.post(`/v3/apps/${app.guid}/processes/web/actions/scale`, { memory_in_mb: 512 });
    expect(mem.status).toBe(202);
    refused(await dev.patch(`/v3/processes/${web.guid}`, { command: 'node other.js' }), `App 'hello' is managed by ${OWNER}, which declares web.command; change the resource instead`);
    expect((await dev.patch(`/v3/processes/${web.guid}`, { health_check: { type: 'process' } })).status).toBe(200);
  });

  it('refuses env changes to declared keys only', async () => {
    refused(await dev.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { GREETING: 'bye', NEW: '1' } }), `App 'hello' is managed by ${OWNER}, which declares env.GREETING; change the resource instead`);
    refused(await dev.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { GREETING: null } }), `App 'hello' is managed by ${OWNER}, which declares env.GREETING; change the resource instead`);
    const ok = await dev.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { FREE: 'y', GREETING: 'hi' } });
    expect(ok.status).toBe(200);
    expect(ok.body.var).toEqual({ GREETING: 'hi', FREE: 'y' });
  });

  it('refuses unmapping and deleting its declared route, and mapping it elsewhere', async () => {
    const dest = (await dev.get(`/v3/routes/${route.guid}/destinations`)).body.destinations[0];
    refused(await dev.delete(`/v3/routes/${route.guid}/destinations/${dest.guid}`), `App 'hello' is managed by ${OWNER}, which declares routes; change the resource instead`);
    refused(await dev.patch(`/v3/routes/${route.guid}/destinations`, { destinations: [] }), `App 'hello' is managed by ${OWNER}, which declares routes; change the resource instead`);
    refused(await dev.delete(`/v3/routes/${route.guid}`), `App 'hello' is managed by ${OWNER}, which declares route:hello.${domain}; change the resource instead`);
    expect((await dev.get(`/v3/routes/${route.guid}/destinations`)).body.destinations).toHaveLength(1);
  });

  it('refuses a manifest that changes what the resource declares; one that does not goes through (cf push of bits)', async () => {
    refused(
      await dev.post(`/v3/spaces/${space.guid}/actions/apply_manifest`, undefined, { raw: 'applications:\n- name: hello\n  instances: 4\n  env: { FREE: z }\n', headers: YAML }),
      `App 'hello' is managed by ${OWNER}, which declares web.instances; change the resource instead`,
    );
    const push = await dev.post(`/v3/spaces/${space.guid}/actions/apply_manifest`, undefined, { raw: 'applications:\n- name: hello\n  env: { FREE: z }\n', headers: YAML });
    expect(push.status).toBe(202);
    expect((await t.awaitJob(push.headers.get('location'))).state).toBe('COMPLETE');
  });

  it('allows start, stop and restart (a resource declares no state)', async () => {
    // Pushing bits stays allowed: a droplet is set as cf push sets it.
    const droplet = await t.droplet(app.guid);
    expect((await dev.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
    const started = await dev.post(`/v3/apps/${app.guid}/actions/start`);
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    expect((await dev.post(`/v3/apps/${app.guid}/actions/restart`)).status).toBe(200);
    expect((await dev.post(`/v3/apps/${app.guid}/actions/stop`)).status).toBe(200);
  });

  it('refuses deleting the app', async () => {
    refused(await dev.delete(`/v3/apps/${app.guid}`), `App 'hello' is managed by ${OWNER}; change the resource instead`);
    expect((await dev.get(`/v3/apps/${app.guid}`)).status).toBe(200);
  });
});

describe('routes, service instances and bindings declared by resources', () => {
  it('a Route resource with destinations owns them, and its deletion', async () => {
    const owner = 'kiln.dev/v1alpha1 Route demo/shop';
    const free = (await t.admin.post('/v3/apps', { name: 'free', relationships: { space: rel(space.guid) } })).body;
    refused(await dev.post(`/v3/routes/${otherRoute.guid}/destinations`, { destinations: [{ app: { guid: free.guid } }] }), `Route 'shop.${domain}' is managed by ${owner}, which declares destinations; change the resource instead`);
    refused(await dev.delete(`/v3/routes/${otherRoute.guid}`), `Route 'shop.${domain}' is managed by ${owner}; change the resource instead`);
    // Options are not declared by a Route resource.
    expect((await dev.patch(`/v3/routes/${otherRoute.guid}`, { options: { loadbalancing: 'least-connection' } })).status).toBe(200);
  });

  it('a ServiceInstance resource owns the instance; a ServiceBinding resource and an App resource own their bindings', async () => {
    const owner = 'kiln.dev/v1alpha1 ServiceInstance demo/db';
    const inst = (
      await t.admin.post('/v3/service_instances', { type: 'user-provided', name: 'db', credentials: { password: 'p' }, relationships: { space: rel(space.guid) }, metadata: declaredBy('ServiceInstance/demo/db') })
    ).body;
    refused(await dev.patch(`/v3/service_instances/${inst.guid}`, { credentials: { password: 'mine' } }), `Service instance 'db' is managed by ${owner}, which declares credentials; change the resource instead`);
    refused(await dev.delete(`/v3/service_instances/${inst.guid}`), `Service instance 'db' is managed by ${owner}; change the resource instead`);
    expect((await dev.patch(`/v3/service_instances/${inst.guid}`, { metadata: { labels: { tier: 'gold' } } })).status).toBe(200);

    // Bound by the App resource's `services: [db]` (the binding itself carries no marks).
    const byApp = (await t.admin.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(inst.guid), app: rel(app.guid) } })).body;
    refused(await dev.delete(`/v3/service_credential_bindings/${byApp.guid}`), `App 'hello' is managed by ${OWNER}, which declares service:db; change the resource instead`);

    const free = (await t.admin.get('/v3/apps?names=free')).body.resources[0];
    const declared = (
      await t.admin.post('/v3/service_credential_bindings', {
        type: 'app',
        name: 'freedb',
        relationships: { service_instance: rel(inst.guid), app: rel(free.guid) },
        metadata: declaredBy('ServiceBinding/demo/free-db'),
      })
    ).body;
    refused(await dev.delete(`/v3/service_credential_bindings/${declared.guid}`), `Service binding 'freedb' is managed by kiln.dev/v1alpha1 ServiceBinding demo/free-db; change the resource instead`);
    // A binding nobody declares is unbound as usual.
    const plain = await t.admin.post('/v3/service_instances', { type: 'user-provided', name: 'plain', relationships: { space: rel(space.guid) } });
    const b = (await t.admin.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: rel(plain.body.guid), app: rel(free.guid) } })).body;
    expect((await dev.delete(`/v3/service_credential_bindings/${b.guid}`)).status).toBe(204);
  });

  it('GitSource-declared objects name the source and file, and say to change the repository', async () => {
    const gitApp = (
      await t.admin.post('/v3/apps', {
        name: 'fromgit',
        relationships: { space: rel(space.guid) },
        metadata: { labels: { 'kiln.dev/managed-by': 'gitsource' }, annotations: { 'kiln.dev/git-source': 'shop', 'kiln.dev/applied-from-path': 'apps/fromgit.yaml', 'kiln.dev/owns': 'name' } },
      })
    ).body;
    refused(await dev.delete(`/v3/apps/${gitApp.guid}`), `App 'fromgit' is managed by GitSource shop (file apps/fromgit.yaml); change the repository instead`);
  });

  it('a declared space and org keep their names and are not deleted through the API', async () => {
    const o = await t.org('decl-org2', { metadata: declaredBy('Organization//decl-org2') });
    refused(await t.admin.patch(`/v3/organizations/${o.guid}`, { name: 'other' }), `Organization 'decl-org2' is managed by kiln.dev/v1alpha1 Organization decl-org2, which declares name; change the resource instead`);
    refused(await t.admin.delete(`/v3/organizations/${o.guid}`), `Organization 'decl-org2' is managed by kiln.dev/v1alpha1 Organization decl-org2; change the resource instead`);
    const s = await t.space('decl-s2', o.guid, { metadata: declaredBy('Space//decl-s2') });
    refused(await t.admin.delete(`/v3/spaces/${s.guid}`), `Space 'decl-s2' is managed by kiln.dev/v1alpha1 Space decl-s2; change the resource instead`);
  });
});
