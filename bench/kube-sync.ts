/**
 * Kubernetes front door benchmark: `npx tsx bench/kube-sync.ts`.
 *
 * Starts the in-memory Kubernetes API server (test/kube/apiserver) and Kiln in this process with the CRD sync
 * on, then creates BENCH_APPS App resources through client-node, one at a time, and reports per app:
 *   - resource created → the app exists in Kiln's store (the sync saw the watch event and applied the manifest);
 *   - resource created → the resource's status says Synced=True (Kiln's apply job finished and status was
 *     written back through the status subresource).
 * Then the same with all apps created at once (throughput); then, for BENCH_SERVICES of those apps, a Secret, a
 * user-provided ServiceInstance from it, a ServiceBinding and a Route, until all three say Ready. And, as context, the API server's own numbers:
 * client-node creates per second and the delay from a write to its watch event.
 *
 * Nothing here ran against a real cluster; a real API server (etcd, admission, TLS) is slower per request.
 * Env: BENCH_APPS (default 50), BENCH_RESYNC_MS (default 5000: status must come from change-feed wakeups).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { loadConfig } from '../src/config/config.ts';
import { generatedCrds } from '../src/kube/crds.ts';
import { buildKiln } from '../src/server.ts';
import { startApiServer } from '../test/kube/apiserver/index.ts';
import { median } from './kiln.ts';

const APPS = Number(process.env.BENCH_APPS ?? 50);
const RESYNC_MS = Number(process.env.BENCH_RESYNC_MS ?? 5000);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 20);

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms, p90 ${pct(xs, 90).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;

async function until(fn: () => boolean | Promise<boolean>, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const apiserver = await startApiServer();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-kube-'));
const kubeconfig = apiserver.writeKubeconfig(dir);
const crdType = apiserver.storage.type('apiextensions.k8s.io', 'customresourcedefinitions')!;
for (const crd of generatedCrds().values()) apiserver.storage.create(crdType, undefined, crd);

const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);

// ---- the API server alone
{
  const n = 500;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: `cm-${i}` }, data: { i: String(i) } } });
  const createsPerSec = n / ((performance.now() - t0) / 1000);
  const delays: number[] = [];
  const watch = new k8s.Watch(kc);
  let sentAt = 0;
  let got = 0;
  const req = await watch.watch('/api/v1/namespaces/default/configmaps', { resourceVersion: apiserver.storage.resourceVersion }, () => {
    delays.push(performance.now() - sentAt);
    got++;
  }, () => {});
  for (let i = 0; i < 100; i++) {
    sentAt = performance.now();
    await core.patchNamespacedConfigMap({ name: 'cm-0', namespace: 'default', body: { data: { i: `x${i}` } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await until(() => got > i);
  }
  req.abort();
  console.log(`in-memory API server: ${createsPerSec.toFixed(0)} creates/s (client-node, sequential); write → watch event ${fmt(delays)}`);
}

const config = loadConfig({
  KILN_DATA_DIR: path.join(dir, 'kiln'),
  KILN_ADMIN_PASSWORD: randomBytes(12).toString('hex'),
  LOG_LEVEL: 'silent',
  KILN_DEFAULT_ORG: '',
  KILN_KUBECONFIG: kubeconfig,
  KILN_KUBE_RESYNC_SECONDS: String(RESYNC_MS / 1000),
});
const kiln = await buildKiln(config, { log: pino({ level: 'silent' }) });
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const group = { group: 'kiln.dev', version: 'v1alpha1' };
await custom.createClusterCustomObject({ ...group, plural: 'organizations', body: { apiVersion: 'kiln.dev/v1alpha1', kind: 'Organization', metadata: { name: 'bench' } } });
await custom.createClusterCustomObject({ ...group, plural: 'spaces', body: { apiVersion: 'kiln.dev/v1alpha1', kind: 'Space', metadata: { name: 'bench' }, spec: { org: 'bench' } } });
const appType = apiserver.storage.type('kiln.dev', 'apps')!;
const synced = (name: string) => {
  const o = apiserver.storage.find(appType, 'default', name);
  return (o?.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Synced' && c.status === 'True');
};
const inKiln = async (name: string) => Boolean(await kiln.store.db.selectFrom('apps').select('guid').where('name', '=', name).executeTakeFirst());
const body = (name: string) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'App', metadata: { name }, spec: { org: 'bench', space: 'bench', instances: 1, memory: '64M', env: { N: name } } });

const toStore: number[] = [];
const toStatus: number[] = [];
for (let i = 0; i < APPS; i++) {
  const name = `one-${i}`;
  const t0 = performance.now();
  await custom.createNamespacedCustomObject({ ...group, namespace: 'default', plural: 'apps', body: body(name) });
  await until(() => inKiln(name));
  toStore.push(performance.now() - t0);
  await until(() => synced(name));
  toStatus.push(performance.now() - t0);
}
console.log(`one App at a time (${APPS}): created → app in Kiln ${fmt(toStore)}; created → status Synced=True ${fmt(toStatus)}`);

const t0 = performance.now();
const names = Array.from({ length: APPS }, (_, i) => `many-${i}`);
await Promise.all(names.map((n) => custom.createNamespacedCustomObject({ ...group, namespace: 'default', plural: 'apps', body: body(n) })));
await until(async () => names.every(synced), 120_000);
const secs = (performance.now() - t0) / 1000;
console.log(`${APPS} Apps at once: all Synced=True after ${secs.toFixed(2)} s (${(APPS / secs).toFixed(1)} apps/s)`);

// ---- Route, ServiceInstance (user-provided, credentials from a Secret) and ServiceBinding for existing apps
{
  const n = Math.min(SERVICES, APPS);
  const ready = (plural: string, name: string) => {
    const o = apiserver.storage.find(apiserver.storage.type('kiln.dev', plural)!, 'default', name);
    return (o?.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
  };
  const place = { org: 'bench', space: 'bench' };
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t1 = performance.now();
    await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: `creds-${i}` }, stringData: { password: `p${i}` } } });
    await custom.createNamespacedCustomObject({ ...group, namespace: 'default', plural: 'serviceinstances', body: { apiVersion: 'kiln.dev/v1alpha1', kind: 'ServiceInstance', metadata: { name: `db-${i}` }, spec: { ...place, type: 'user-provided', credentials: { secretRef: { name: `creds-${i}` } } } } });
    await custom.createNamespacedCustomObject({ ...group, namespace: 'default', plural: 'servicebindings', body: { apiVersion: 'kiln.dev/v1alpha1', kind: 'ServiceBinding', metadata: { name: `bind-${i}` }, spec: { ...place, app: `one-${i}`, instance: `db-${i}` } } });
    await custom.createNamespacedCustomObject({ ...group, namespace: 'default', plural: 'routes', body: { apiVersion: 'kiln.dev/v1alpha1', kind: 'Route', metadata: { name: `route-${i}` }, spec: { ...place, domain: 'apps.localhost', host: `r-${i}`, destinations: [{ app: `one-${i}` }] } } });
    await until(() => ready('serviceinstances', `db-${i}`) && ready('servicebindings', `bind-${i}`) && ready('routes', `route-${i}`));
    times.push(performance.now() - t1);
  }
  console.log(`Secret + ServiceInstance + ServiceBinding + Route created → all three Ready (${n}, one set at a time): ${fmt(times)}`);
}

await kiln.stop();
await apiserver.close();
fs.rmSync(dir, { recursive: true, force: true });
