import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SYNC_RBAC_RULES } from '../../src/kube/kube-client.ts';
import { KubeSync } from '../../src/kube/kube-sync.ts';
import { generatedCrds } from '../../src/kube/crds.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { startApiServer, type ApiServer, type KObj } from './apiserver/index.ts';
import { until } from '../helpers/until.ts';

/**
 * The CRD sync controller in-process: a Kiln built by the test harness, the in-memory API server, and a
 * KubeSync started and stopped by the test (to check what a restart does and does not do).
 */
let apiserver: ApiServer;
let kubeconfig: string;
let t: TestKiln;
let syncs: KubeSync[] = [];

const storage = () => apiserver.storage;
const type = (plural: string) => storage().type('kiln.dev', plural)!;
const get = (plural: string, name: string, ns?: string): KObj | undefined => storage().find(type(plural), ns, name);
const create = (plural: string, obj: KObj, ns?: string) => storage().create(type(plural), ns, { apiVersion: 'kiln.dev/v1alpha1', ...obj });
const mergeSpec = (plural: string, name: string, spec: KObj, ns?: string) => {
  const cur = storage().get(type(plural), ns, name);
  return storage().update(type(plural), ns, name, { ...cur, spec: { ...cur.spec, ...spec } }, undefined);
};


function startSync(): KubeSync {
  const sync = new KubeSync({ store: t.kiln.store, log: pino({ level: 'silent' }), kubeconfig, resyncMs: 200, runtime: t.kiln.runtime });
  syncs.push(sync);
  void sync.start();
  return sync;
}

const condition = (obj: KObj | undefined, type: string) => (obj?.status?.conditions ?? []).find((c: { type: string }) => c.type === type);
const appRow = (name: string) => t.kiln.store.db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirst();
const applyJobs = async () => (await t.kiln.store.db.selectFrom('jobs').select('guid').where('operation', '=', 'space.apply_manifest').execute()).length;

beforeAll(async () => {
  apiserver = await startApiServer();
  kubeconfig = apiserver.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'kube-sync-')));
  for (const crd of generatedCrds().values()) storage().create(storage().type('apiextensions.k8s.io', 'customresourcedefinitions')!, undefined, crd);
});
afterAll(() => apiserver?.close());

beforeEach(async () => {
  t = await createTestKiln();
});
afterEach(async () => {
  for (const s of syncs) await s.stop();
  syncs = [];
  // Resources left by a test would be picked up by the next test's Kiln.
  for (const plural of ['apps', 'spaces', 'organizations'])
    for (const o of storage().list(type(plural), { labels: () => true, fields: () => true })) {
      const cur = storage().find(type(plural), o.metadata.namespace, o.metadata.name)!;
      if (cur.metadata.finalizers) storage().update(type(plural), o.metadata.namespace, o.metadata.name, { ...cur, metadata: { ...cur.metadata, finalizers: [] } }, undefined);
      if (storage().find(type(plural), o.metadata.namespace, o.metadata.name)) storage().delete(type(plural), o.metadata.namespace, o.metadata.name);
    }
  await t.kiln.stop();
});

describe('the CRD sync controller', () => {
  it('reports an App whose space does not exist yet, and applies it once the Space resource makes the space', async () => {
    startSync();
    create('apps', { kind: 'App', metadata: { name: 'early' }, spec: { org: 'o1', space: 's1', instances: 2 } }, 'default');
    await until('SpaceNotFound', () => condition(get('apps', 'early', 'default'), 'Ready')?.reason === 'SpaceNotFound');
    expect(get('apps', 'early', 'default')!.status.lastError).toBe('space o1/s1 does not exist (declare it with a Space resource)');
    expect(get('apps', 'early', 'default')!.metadata.finalizers).toEqual(['kiln.dev/sync']);

    create('spaces', { kind: 'Space', metadata: { name: 's1' }, spec: { org: 'o1' } });
    await until('OrganizationNotFound', () => condition(get('spaces', 's1'), 'Ready')?.reason === 'OrganizationNotFound');
    create('organizations', { kind: 'Organization', metadata: { name: 'o1' } });
    await until('the app in Kiln', () => appRow('early'));
    await until('Synced', () => condition(get('apps', 'early', 'default'), 'Synced')?.status === 'True');
    expect(condition(get('spaces', 's1'), 'Ready')).toMatchObject({ status: 'True', reason: 'Created' });
  });

  it('shows what Kiln refuses in a manifest as Synced=False, and applies the fixed generation', async () => {
    startSync();
    create('organizations', { kind: 'Organization', metadata: { name: 'o2' } });
    create('spaces', { kind: 'Space', metadata: { name: 's2' }, spec: { org: 'o2' } });
    create('apps', { kind: 'App', metadata: { name: 'bad' }, spec: { org: 'o2', space: 's2', memory: 'lots' } }, 'default');
    const rejected = await until('ManifestRejected', () => {
      const c = condition(get('apps', 'bad', 'default'), 'Synced');
      return c?.reason === 'ManifestRejected' ? c : undefined;
    });
    expect(rejected.status).toBe('False');
    expect(rejected.message).toMatch(/memory/i);
    expect(await appRow('bad')).toBeUndefined();

    mergeSpec('apps', 'bad', { memory: '128M' }, 'default');
    await until('applied', async () => (await appRow('bad')) && get('apps', 'bad', 'default')!.status.observedGeneration === 2);
    await until('Synced', () => condition(get('apps', 'bad', 'default'), 'Synced')?.status === 'True');
  });

  it('applies nothing while Kiln matches the resource, refuses CF API writes to declared fields, and reverts and reports a change made past the API', async () => {
    startSync();
    create('organizations', { kind: 'Organization', metadata: { name: 'o4' } });
    create('spaces', { kind: 'Space', metadata: { name: 's4' }, spec: { org: 'o4' } });
    create('apps', { kind: 'App', metadata: { name: 'owned' }, spec: { org: 'o4', space: 's4', instances: 2, env: { A: '1' }, routes: [{ route: 'owned.apps.localhost' }] } }, 'default');
    await until('Synced', () => condition(get('apps', 'owned', 'default'), 'Synced')?.reason === 'ManifestApplied');
    const jobs = await applyJobs();
    // Several resyncs (200 ms) and change-feed wakeups: an unchanged app is not applied again.
    await new Promise((r) => setTimeout(r, 1200));
    expect(await applyJobs()).toBe(jobs);

    const app = (await appRow('owned'))!;
    const web = (await t.admin.get(`/v3/apps/${app.guid}/processes/web`)).body as { guid: string };
    // What the resource declares is its own: cf scale, cf set-env of a declared key and cf delete are refused.
    const owner = 'kiln.dev/v1alpha1 App default/owned';
    const scaled = await t.admin.post(`/v3/processes/${web.guid}/actions/scale`, { instances: 5 });
    expect(scaled.status).toBe(422);
    expect((scaled.body as { errors: { detail: string }[] }).errors[0]!.detail).toBe(`App 'owned' is managed by ${owner}, which declares web.instances; change the resource instead`);
    const env = await t.admin.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { A: '2', B: 'mine' } });
    expect((env.body as { errors: { detail: string }[] }).errors[0]!.detail).toBe(`App 'owned' is managed by ${owner}, which declares env.A; change the resource instead`);
    expect((await t.admin.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { B: 'mine' } })).status).toBe(200);
    expect((await t.admin.delete(`/v3/apps/${app.guid}`)).status).toBe(422);

    // A change that did not come through the API (an older Kiln, a restored backup) is still reverted and reported.
    await t.kiln.store.write((tx) => tx.update('processes', web.guid, { instances: 5 }));
    await until('instances back to 2', async () => ((await t.admin.get(`/v3/processes/${web.guid}`)).body as { instances: number }).instances === 2);
    // env is merged by a manifest apply: a key the resource does not name stays.
    expect(((await t.admin.get(`/v3/apps/${app.guid}/environment_variables`)).body as { var: object }).var).toEqual({ A: '1', B: 'mine' });
    await until('DriftReverted in status', () => condition(get('apps', 'owned', 'default'), 'Synced')?.reason === 'DriftReverted');
    const events = storage().list(storage().type('', 'events')!, { namespace: 'default', labels: () => true, fields: (e) => (e as KObj).involvedObject?.name === 'owned' });
    expect(events.map((e) => `${e.type} ${e.reason}`)).toEqual(expect.arrayContaining(['Normal Created', 'Warning DriftReverted']));
    expect(events.filter((e) => e.reason === 'DriftReverted').map((e) => e.message as string).join(' ')).toMatch(/instances/);
  });

  it('after a restart applies nothing again, and a resource deleted while Kiln was away is finished when it is back', async () => {
    const first = startSync();
    create('organizations', { kind: 'Organization', metadata: { name: 'o3' } });
    create('spaces', { kind: 'Space', metadata: { name: 's3' }, spec: { org: 'o3' } });
    create('apps', { kind: 'App', metadata: { name: 'kept' }, spec: { org: 'o3', space: 's3' } }, 'default');
    await until('Synced', () => condition(get('apps', 'kept', 'default'), 'Synced')?.status === 'True');
    const jobs = await applyJobs();
    await first.stop();

    // Kiln away: deleting the resource only marks it; Kiln's app stays.
    storage().delete(type('apps'), 'default', 'kept');
    expect(get('apps', 'kept', 'default')!.metadata.deletionTimestamp).toBeTruthy();
    expect(await appRow('kept')).toBeDefined();

    startSync();
    await until('resource gone', () => !get('apps', 'kept', 'default'));
    expect(await appRow('kept')).toBeUndefined();
    expect(await applyJobs()).toBe(jobs);
  });

  it('makes only the requests its RBAC rules allow', () => {
    const allowed = (c: { verb: string; group: string; resource: string; subresource?: string }) =>
      SYNC_RBAC_RULES.some(
        (r) => (r.apiGroups as readonly string[]).includes(c.group) && (r.resources as readonly string[]).includes(c.subresource ? `${c.resource}/${c.subresource}` : c.resource) && (r.verbs as readonly string[]).includes(c.verb),
      );
    const made = apiserver.calls.filter((c) => !c.unresolved);
    expect(made.length).toBeGreaterThan(0);
    expect(made.filter((c) => !allowed(c))).toEqual([]);
    // Every rule is used (none is wider than needed).
    for (const verb of ['list', 'watch', 'patch']) expect(made.some((c) => c.verb === verb && c.group === 'kiln.dev' && !c.subresource)).toBe(true);
    expect(made.some((c) => c.subresource === 'status' && c.verb === 'patch')).toBe(true);
    expect(made.some((c) => c.resource === 'events' && c.verb === 'create')).toBe(true);
  });
});
