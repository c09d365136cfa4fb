import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeSync } from '../../src/kube/kube-sync.ts';
import { startFixtureBroker, type FixtureBroker } from '../fixtures/broker/broker.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { startApiServer, type ApiServer } from './apiserver/index.ts';
import { kubectlFor, mustSucceed, kubectlPath } from './kubectl.ts';
import { until } from '../helpers/until.ts';

/**
 * Route, ServiceInstance and ServiceBinding resources driven by the real kubectl against the in-memory API server,
 * synced by a KubeSync into a Kiln built by the test harness: the CF objects exist with the ownership label,
 * status says Ready (kubectl wait sees it), a Secret's change reaches the user-provided instance, and kubectl
 * delete removes them from Kiln.
 */
let apiserver: ApiServer;
let t: TestKiln;
let sync: KubeSync;
let kubectl: ReturnType<typeof kubectlFor>;
let broker: FixtureBroker;


const ok = (args: string[], stdin?: string): Promise<string> => mustSucceed(kubectl, args, stdin);

const resource = async (kind: string, name: string) => JSON.parse(await ok(['get', kind, name, '-o', 'json']));

const PLACEMENT = `apiVersion: kiln.dev/v1alpha1
kind: Organization
metadata: { name: sorg }
---
apiVersion: kiln.dev/v1alpha1
kind: Space
metadata: { name: sspace }
spec: { org: sorg }
---
apiVersion: kiln.dev/v1alpha1
kind: App
metadata: { name: web }
spec: { org: sorg, space: sspace }
---
apiVersion: kiln.dev/v1alpha1
kind: App
metadata: { name: worker }
spec: { org: sorg, space: sspace, no-route: true }
`;

const SERVICES = `apiVersion: v1
kind: Secret
metadata: { name: db-credentials }
stringData: { username: alice, password: s3cret }
---
apiVersion: kiln.dev/v1alpha1
kind: ServiceInstance
metadata: { name: db }
spec:
  org: sorg
  space: sspace
  type: user-provided
  credentials: { secretRef: { name: db-credentials } }
  syslog_drain_url: syslog://logs.example.com:514
  tags: [sql]
---
apiVersion: kiln.dev/v1alpha1
kind: ServiceBinding
metadata: { name: web-db }
spec: { org: sorg, space: sspace, app: web, instance: db, name: database }
---
apiVersion: kiln.dev/v1alpha1
kind: Route
metadata: { name: shop }
spec:
  org: sorg
  space: sspace
  domain: apps.localhost
  host: shop
  path: /cart
  destinations: [ { app: web }, { app: worker, process: web } ]
`;

beforeAll(async () => {
  apiserver = await startApiServer({ bookmarkIntervalMs: 1000 });
  const kubeconfig = apiserver.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'kube-svc-')));
  kubectl = kubectlFor(kubeconfig);
  t = await createTestKiln({ KILN_BROKER_POLL_INTERVAL_SECONDS: '0.05' });
  broker = await startFixtureBroker();
  const reg = await t.admin.post('/v3/service_brokers', { name: 'fixture', url: broker.url, authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } } });
  expect((await t.awaitJob(reg.headers.get('location'))).state).toBe('COMPLETE');
  sync = new KubeSync({ store: t.kiln.store, log: pino({ level: 'silent' }), kubeconfig, resyncMs: 300, runtime: t.kiln.runtime });
}, 60_000);

afterAll(async () => {
  await sync?.stop();
  await t?.kiln.stop();
  await broker?.close();
  await apiserver?.close();
});

describe.skipIf(!kubectlPath())('Route, ServiceInstance and ServiceBinding resources (kubectl → in-memory API server → Kiln)', () => {
  let instanceGuid: string;
  let bindingGuid: string;
  let routeGuid: string;

  it('kubectl apply makes the instance, binding and route in Kiln, owned by the resources, and kubectl wait sees Ready', async () => {
    await ok(['apply', '-k', path.resolve(import.meta.dirname, '../../crds')]);
    await ok(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=10s']);
    void sync.start();
    await ok(['apply', '-f', '-'], PLACEMENT);
    await ok(['apply', '-f', '-'], SERVICES);
    for (const r of ['serviceinstance/db', 'servicebinding/web-db', 'route/shop']) {
      const waited = await kubectl(['wait', '--for=condition=Ready', r, '--timeout=30s']);
      expect(waited.stderr, r).toBe('');
      expect(waited.code, r).toBe(0);
    }

    const inst = (await t.admin.get('/v3/service_instances?names=db')).body.resources[0];
    instanceGuid = inst.guid;
    expect(inst).toMatchObject({ type: 'user-provided', syslog_drain_url: 'syslog://logs.example.com:514', tags: ['sql'] });
    expect(inst.metadata.labels['kiln.dev/managed-by']).toBe('kubernetes');
    expect(inst.metadata.annotations['kiln.dev/resource']).toBe('ServiceInstance/default/db');
    expect((await t.admin.get(`/v3/service_instances/${inst.guid}/credentials`)).body).toEqual({ username: 'alice', password: 's3cret' });
    const si = await resource('serviceinstance', 'db');
    expect(si.status).toMatchObject({ observedGeneration: 1, guid: inst.guid, lastOperation: { type: 'create', state: 'succeeded' } });
    expect(si.status.conditions).toEqual([expect.objectContaining({ type: 'Ready', status: 'True', reason: 'CreateSucceeded' })]);

    const webGuid = (await t.admin.get('/v3/apps?names=web')).body.resources[0].guid;
    const binding = (await t.admin.get(`/v3/service_credential_bindings?app_guids=${webGuid}`)).body.resources[0];
    bindingGuid = binding.guid;
    expect(binding).toMatchObject({ type: 'app', name: 'database', last_operation: { type: 'create', state: 'succeeded' } });
    expect(binding.metadata.annotations['kiln.dev/resource']).toBe('ServiceBinding/default/web-db');
    const env = (await t.admin.get(`/v3/apps/${webGuid}/env`)).body;
    expect(env.system_env_json.VCAP_SERVICES['user-provided'][0]).toMatchObject({ instance_name: 'db', binding_name: 'database', credentials: { username: 'alice', password: 's3cret' } });

    const route = (await t.admin.get('/v3/routes?hosts=shop')).body.resources[0];
    routeGuid = route.guid;
    expect(route.url).toBe('shop.apps.localhost/cart');
    expect(route.destinations.map((d: { app: { guid: string } }) => d.app.guid).sort()).toHaveLength(2);
    expect(route.metadata.labels['kiln.dev/managed-by']).toBe('kubernetes');
    expect((await resource('route', 'shop')).status).toMatchObject({ guid: route.guid, url: 'shop.apps.localhost/cart', destinations: 2 });

    const table = await ok(['get', 'routes']);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+URL\s+DESTINATIONS\s+READY\s+AGE$/);
    expect(table).toMatch(/shop\s+shop\.apps\.localhost\/cart\s+2\s+True/);
    expect(await ok(['get', 'ksi'])).toMatch(/db\s+user-provided\s+(<none>\s+)*succeeded\s+True/);
    expect(await ok(['get', 'ksb'])).toMatch(/web-db\s+web\s+db\s+succeeded\s+True/);
  }, 120_000);

  it('follows the resources: a changed Secret updates the credentials, a changed destination list remaps the route', async () => {
    await ok(['apply', '-f', '-'], 'apiVersion: v1\nkind: Secret\nmetadata: { name: db-credentials }\nstringData: { username: alice, password: rotated }\n');
    // The Secret is read again on the next resync of the instance (every 10 s at most); a touch of the resource brings it sooner.
    await ok(['annotate', 'serviceinstance', 'db', 'touched=1']);
    await until('rotated credentials', async () => (await t.admin.get(`/v3/service_instances/${instanceGuid}/credentials`)).body.password === 'rotated');
    await ok(['patch', 'route', 'shop', '--type=merge', '-p', '{"spec":{"destinations":[{"app":"web"}]}}']);
    await until('one destination', async () => {
      const res = await t.admin.get(`/v3/routes/${routeGuid}/destinations`);
      if (res.status !== 200) throw new Error(JSON.stringify(res.body));
      return res.body.destinations.length === 1;
    });
    await until('status of generation 2', async () => {
      const s = (await resource('route', 'shop')).status;
      return s.observedGeneration === 2 && s.destinations === 1;
    });
  }, 60_000);

  it('shows what Kiln refuses as Ready=False with the reason', async () => {
    await ok(['apply', '-f', '-'], 'apiVersion: kiln.dev/v1alpha1\nkind: ServiceBinding\nmetadata: { name: nothing }\nspec: { org: sorg, space: sspace, app: web, instance: missing }\n');
    const s = await until('InstanceNotFound', async () => {
      const st = (await resource('servicebinding', 'nothing')).status;
      return st?.conditions?.[0]?.reason === 'InstanceNotFound' ? st : undefined;
    });
    expect(s.lastError).toBe('service instance missing does not exist in sorg/sspace');
    await ok(['delete', 'servicebinding', 'nothing', '--timeout=20s']);
  }, 60_000);

  it('a managed instance: the async operation in status, Ready once the broker is done, a failed create as Ready=False', async () => {
    const managed = (name: string, plan: string) =>
      `apiVersion: kiln.dev/v1alpha1\nkind: ServiceInstance\nmetadata: { name: ${name} }\nspec: { org: sorg, space: sspace, type: managed, offering: fixture-db, plan: ${plan}, parameters: { size: 1 } }\n`;
    await ok(['apply', '-f', '-'], managed('cache', 'async'));
    const waited = await kubectl(['wait', '--for=condition=Ready', 'serviceinstance/cache', '--timeout=30s']);
    expect(waited.code, waited.stderr).toBe(0);
    const st = (await resource('serviceinstance', 'cache')).status;
    expect(st.lastOperation).toMatchObject({ type: 'create', state: 'succeeded' });
    const inst = (await t.admin.get(`/v3/service_instances/${st.guid}`)).body;
    expect(inst).toMatchObject({ type: 'managed', name: 'cache', last_operation: { type: 'create', state: 'succeeded' } });
    expect(broker.requests.some((r) => r.method === 'PUT' && r.path === `/v2/service_instances/${st.guid}` && r.body.parameters?.size === 1)).toBe(true);
    // A changed parameter is an update of the instance (cf update-service -c).
    await ok(['patch', 'serviceinstance', 'cache', '--type=merge', '-p', '{"spec":{"parameters":{"size":2}}}']);
    await until('update sent', () => broker.requests.some((r) => r.method === 'PATCH' && r.path === `/v2/service_instances/${st.guid}` && r.body.parameters?.size === 2));
    await until('update succeeded', async () => {
      const s = (await resource('serviceinstance', 'cache')).status;
      return s.observedGeneration === 2 && s.lastOperation?.type === 'update' && s.lastOperation.state === 'succeeded';
    });

    // A new name in the spec renames the instance it made (cf rename-service), same guid.
    await ok(['patch', 'serviceinstance', 'cache', '--type=merge', '-p', '{"spec":{"name":"cache2"}}']);
    await until('renamed', async () => (await t.admin.get(`/v3/service_instances/${st.guid}`)).body.name === 'cache2');
    expect((await t.admin.get('/v3/service_instances?names=cache')).body.resources).toHaveLength(0);

    await ok(['apply', '-f', '-'], managed('broken', 'async-fail'));
    const failed = await until('CreateFailed', async () => {
      const s = (await resource('serviceinstance', 'broken')).status;
      return s?.conditions?.[0]?.reason === 'CreateFailed' ? s : undefined;
    });
    expect(failed.conditions[0].status).toBe('False');
    expect(failed.lastOperation).toMatchObject({ type: 'create', state: 'failed' });
    await ok(['delete', 'serviceinstance', 'cache', '--timeout=30s']);
    expect((await t.admin.get(`/v3/service_instances/${st.guid}`)).status).toBe(404);
    // The fixture's async-fail plan fails the deprovision too: the resource stays (the broker still has the
    // instance) and says why.
    await ok(['delete', 'serviceinstance', 'broken', '--wait=false']);
    const stuck = await until('DeleteFailed', async () => {
      const s = (await resource('serviceinstance', 'broken')).status;
      return s?.conditions?.[0]?.reason === 'DeleteFailed' ? s : undefined;
    });
    expect(stuck.lastOperation).toMatchObject({ type: 'delete', state: 'failed' });
    expect((await t.admin.get(`/v3/service_instances/${failed.guid}`)).status).toBe(200);
    await ok(['patch', 'serviceinstance', 'broken', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  }, 90_000);

  it('kubectl delete removes the binding, the instance and the route from Kiln', async () => {
    await ok(['delete', 'servicebinding', 'web-db', '--timeout=30s']);
    expect((await t.admin.get(`/v3/service_credential_bindings/${bindingGuid}`)).status).toBe(404);
    await ok(['delete', 'serviceinstance', 'db', '--timeout=30s']);
    expect((await t.admin.get(`/v3/service_instances/${instanceGuid}`)).status).toBe(404);
    await ok(['delete', 'route', 'shop', '--timeout=30s']);
    expect((await t.admin.get(`/v3/routes/${routeGuid}`)).status).toBe(404);
    // Kiln going away deletes nothing: with the sync stopped, a deleted resource waits on its finalizer.
    await ok(['apply', '-f', '-'], 'apiVersion: kiln.dev/v1alpha1\nkind: Route\nmetadata: { name: kept }\nspec: { org: sorg, space: sspace, domain: apps.localhost, host: kept }\n');
    await until('kept route in Kiln', async () => (await t.admin.get('/v3/routes?hosts=kept')).body.resources[0]);
    await kubectl(['wait', '--for=condition=Ready', 'route/kept', '--timeout=20s']);
    await sync.stop();
    await ok(['delete', 'route', 'kept', '--wait=false']);
    await new Promise((r) => setTimeout(r, 500));
    expect((await t.admin.get('/v3/routes?hosts=kept')).body.resources).toHaveLength(1);
  }, 120_000);
});
