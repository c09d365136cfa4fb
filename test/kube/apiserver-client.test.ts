import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from './apiserver/index.ts';
import { until } from '../helpers/until.ts';

/**
 * The in-memory API server driven by @kubernetes/client-node: optimistic concurrency, generation and status,
 * patch formats, Status errors, paging, watches through an informer (bookmarks, 410 Gone → relist).
 */
let server: ApiServer;
let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let objects: k8s.KubernetesObjectApi;
let custom: k8s.CustomObjectsApi;


async function failure(p: Promise<unknown>): Promise<{ code: number; status: { reason: string; code: number; message: string; details?: { name?: string; kind?: string } } }> {
  try {
    await p;
  } catch (e) {
    const err = e as k8s.ApiException<string>;
    return { code: err.code, status: JSON.parse(err.body) };
  }
  throw new Error('expected the call to fail');
}

const GADGETS = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'gadgets.example.com' },
  spec: {
    group: 'example.com',
    scope: 'Namespaced',
    names: { kind: 'Gadget', plural: 'gadgets', singular: 'gadget' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: { type: 'object', properties: { size: { type: 'integer' } } },
              status: { type: 'object', properties: { phase: { type: 'string' } } },
            },
          },
        },
      },
    ],
  },
};

beforeAll(async () => {
  server = await startApiServer({ bookmarkIntervalMs: 100, eventLogSize: 50 });
  kc = new k8s.KubeConfig();
  kc.loadFromFile(server.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'kube-'))));
  core = kc.makeApiClient(k8s.CoreV1Api);
  custom = kc.makeApiClient(k8s.CustomObjectsApi);
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  await objects.create(GADGETS);
});
afterAll(() => server?.close());

describe('the in-memory API server under @kubernetes/client-node', () => {
  it('creates, reads, lists and deletes a config map, answering a second create with AlreadyExists', async () => {
    const made = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'one', labels: { app: 'x' } }, data: { a: '1' } } });
    expect(made.metadata?.uid).toBeTruthy();
    expect(made.metadata?.resourceVersion).toMatch(/^\d+$/);
    expect((await core.readNamespacedConfigMap({ name: 'one', namespace: 'default' })).data).toEqual({ a: '1' });
    const again = await failure(core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'one' } } }));
    expect(again.code).toBe(409);
    expect(again.status).toMatchObject({ reason: 'AlreadyExists', code: 409, details: { name: 'one', kind: 'configmaps' } });
    const list = await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'app=x' });
    expect(list.items.map((i) => i.metadata?.name)).toEqual(['one']);
    await core.deleteNamespacedConfigMap({ name: 'one', namespace: 'default' });
    const missing = await failure(core.readNamespacedConfigMap({ name: 'one', namespace: 'default' }));
    expect(missing.status).toMatchObject({ reason: 'NotFound', code: 404, message: 'configmaps "one" not found' });
  });

  it('refuses an update with a stale resourceVersion with 409 Conflict', async () => {
    const made = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'occ' }, data: { v: '1' } } });
    await core.replaceNamespacedConfigMap({ name: 'occ', namespace: 'default', body: { ...made, data: { v: '2' } } });
    const stale = await failure(core.replaceNamespacedConfigMap({ name: 'occ', namespace: 'default', body: { ...made, data: { v: '3' } } }));
    expect(stale.status).toMatchObject({ reason: 'Conflict', code: 409 });
    expect((await core.readNamespacedConfigMap({ name: 'occ', namespace: 'default' })).data).toEqual({ v: '2' });
  });

  it('bumps generation for spec changes only, and keeps status and spec apart', async () => {
    const g = await custom.createNamespacedCustomObject({ group: 'example.com', version: 'v1', namespace: 'default', plural: 'gadgets', body: { apiVersion: 'example.com/v1', kind: 'Gadget', metadata: { name: 'g1' }, spec: { size: 1 }, status: { phase: 'ignored' } } });
    expect(g.metadata.generation).toBe(1);
    expect(g.status).toBeUndefined();
    const labelled = await objects.patch({ apiVersion: 'example.com/v1', kind: 'Gadget', metadata: { name: 'g1', namespace: 'default', labels: { l: '1' } } } as k8s.KubernetesObject, undefined, undefined, undefined, undefined, k8s.PatchStrategy.MergePatch);
    expect(labelled.metadata?.generation).toBe(1);
    const resized = await objects.patch({ apiVersion: 'example.com/v1', kind: 'Gadget', metadata: { name: 'g1', namespace: 'default' }, spec: { size: 2 } } as k8s.KubernetesObject, undefined, undefined, undefined, undefined, k8s.PatchStrategy.MergePatch);
    expect(resized.metadata?.generation).toBe(2);
    const status = await custom.patchNamespacedCustomObjectStatus(
      { group: 'example.com', version: 'v1', namespace: 'default', plural: 'gadgets', name: 'g1', body: { status: { phase: 'Ready' }, spec: { size: 99 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(status.status).toEqual({ phase: 'Ready' });
    expect(status.spec).toEqual({ size: 2 });
    expect(status.metadata.generation).toBe(2);
    const smp = await failure(
      custom.patchNamespacedCustomObject({ group: 'example.com', version: 'v1', namespace: 'default', plural: 'gadgets', name: 'g1', body: { spec: { size: 3 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch)),
    );
    expect(smp.code).toBe(415);
    const jp = await custom.patchNamespacedCustomObject(
      { group: 'example.com', version: 'v1', namespace: 'default', plural: 'gadgets', name: 'g1', body: [{ op: 'replace', path: '/spec/size', value: 5 }] },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    );
    expect(jp.spec.size).toBe(5);
    const invalid = await failure(custom.createNamespacedCustomObject({ group: 'example.com', version: 'v1', namespace: 'default', plural: 'gadgets', body: { apiVersion: 'example.com/v1', kind: 'Gadget', metadata: { name: 'g2' }, spec: { size: 'big' } } }));
    expect(invalid.status).toMatchObject({ reason: 'Invalid', code: 422 });
  });

  it('pages a list with limit and continue', async () => {
    for (const n of ['p1', 'p2', 'p3']) await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: n, labels: { page: 'yes' } }, stringData: { n } } });
    const first = await core.listNamespacedSecret({ namespace: 'default', labelSelector: 'page', limit: 2 });
    expect(first.items.map((i) => i.metadata?.name)).toEqual(['p1', 'p2']);
    const rest = await core.listNamespacedSecret({ namespace: 'default', labelSelector: 'page', limit: 2, _continue: first.metadata?._continue });
    expect(rest.items.map((i) => i.metadata?.name)).toEqual(['p3']);
    expect(rest.metadata?._continue).toBeUndefined();
    expect(Buffer.from(rest.items[0]!.data!.n!, 'base64').toString()).toBe('p3');
  });

  it('feeds an informer: adds, updates and deletes, through selector transitions and after 410 Gone', async () => {
    const informer = k8s.makeInformer(kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'watched=yes' }), 'watched=yes');
    const seen: string[] = [];
    informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => seen.push(`update ${o.metadata?.name} ${o.data?.v}`));
    informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    const errors: unknown[] = [];
    // Stopping an informer aborts its request, which client-node reports as an AbortError.
    informer.on('error', (e) => (e as Error).name !== 'AbortError' && errors.push(e));
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'w1', labels: { watched: 'yes' } }, data: { v: '1' } } });
    await informer.start();
    await until('initial add', () => seen.includes('add w1'));
    await core.patchNamespacedConfigMap({ name: 'w1', namespace: 'default', body: { data: { v: '2' } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await until('update', () => seen.includes('update w1 2'));
    // Leaving the selector is a delete for this watch; coming back is an add.
    await core.patchNamespacedConfigMap({ name: 'w1', namespace: 'default', body: { metadata: { labels: { watched: 'no' } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await until('delete on leaving the selector', () => seen.includes('delete w1'));

    // Make the watch's resourceVersion too old: the server closes it with a 410 and the informer relists.
    const lists = () => server.calls.filter((c) => c.verb === 'list' && c.resource === 'configmaps').length;
    const listsBefore = lists();
    informer.stop();
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'w2', labels: { watched: 'yes' } } } });
    server.storage.compact();
    await informer.start();
    await until('add after relist', () => seen.includes('add w2'));
    expect(lists()).toBeGreaterThan(listsBefore);
    await core.deleteNamespacedConfigMap({ name: 'w2', namespace: 'default' });
    await until('delete', () => seen.includes('delete w2'));
    informer.stop();
    expect(errors).toEqual([]);
  });

  it('sends bookmarks to watches that ask for them, and ERROR 410 to a watch from a compacted version', async () => {
    const watch = new k8s.Watch(kc);
    const events: string[] = [];
    const rv = server.storage.resourceVersion;
    const req = await watch.watch('/api/v1/namespaces/default/pods', { allowWatchBookmarks: true, resourceVersion: rv }, (type) => events.push(type), () => {});
    await until('a bookmark', () => events.includes('BOOKMARK'));
    req.abort();

    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'old' } } });
    server.storage.compact();
    const errs: { code?: number; reason?: string }[] = [];
    let done = false;
    await watch.watch('/api/v1/namespaces/default/configmaps', { resourceVersion: rv }, (type, obj) => type === 'ERROR' && errs.push(obj), () => (done = true));
    await until('stream closed', () => done);
    expect(errs).toEqual([expect.objectContaining({ code: 410, reason: 'Expired' })]);
  });

  it('deletes a dependent in the background once its owner is gone, and orphans it on request', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'owner' } } });
    const ref = { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! };
    await core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'dep', ownerReferences: [ref] }, spec: { containers: [{ name: 'c', image: 'i' }] } } });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace: 'default' });
    await until('dependent gone', async () => (await core.listNamespacedPod({ namespace: 'default', fieldSelector: 'metadata.name=dep' })).items.length === 0);

    const owner2 = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'owner2' } } });
    await core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'dep2', ownerReferences: [{ ...ref, name: 'owner2', uid: owner2.metadata!.uid! }] }, spec: { containers: [{ name: 'c', image: 'i' }] } } });
    await core.deleteNamespacedConfigMap({ name: 'owner2', namespace: 'default', propagationPolicy: 'Orphan' });
    const pod = await core.readNamespacedPod({ name: 'dep2', namespace: 'default' });
    expect(pod.metadata?.ownerReferences).toBeUndefined();
    expect(pod.status?.phase).toBe('Pending');
  });
});
