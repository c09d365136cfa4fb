import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../kube/apiserver/index.ts';
import { TestKubelet } from '../kube/kubelet/index.ts';
import { allows, RUNTIME_CLUSTER_RULES, RUNTIME_NAMESPACE_RULES } from '../../src/runtime/kubernetes/rbac.ts';
import { adminTarget, FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * The real server with KILN_RUNTIME=kubernetes against the in-memory API server and the test kubelet (no real
 * cluster is involved): push → pods → the app answers through Kiln's router at its pod IP; scale; crashes from pod
 * status; a task as a Job; logs from pod log streams; a Kiln restart leaves the pods alone; deleting the app
 * deletes its pods.
 */
const NS = 'kiln-apps';
let apiServer: ApiServer;
let kubelet: TestKubelet;
let server: ServerProcess;
let core: k8s.CoreV1Api;
let dir: string;
let kubeconfig: string;
let api: string;
let token: string;
let client: ReturnType<typeof pushClient>;

const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);
const pods = async (selector = 'app.kubernetes.io/managed-by=kiln') => (await core.listNamespacedPod({ namespace: NS, labelSelector: selector })).items;
const REPO = path.resolve(import.meta.dirname, '../..');
/** The staging Job runs Kiln's buildpack runner from this checkout (the test kubelet ignores images). */
const STAGER = [process.execPath, '--import', path.join(REPO, 'node_modules/tsx/dist/loader.mjs'), path.join(REPO, 'src/main.ts'), 'stage-job'];
const env = () => ({
  KILN_RUNTIME: 'kubernetes',
  KILN_KUBE_RUNTIME_KUBECONFIG: kubeconfig,
  KILN_KUBE_RUNTIME_NAMESPACE: NS,
  KILN_STACK_IMAGE: 'ignored/by-the-test-kubelet',
  KILN_KUBE_RUNTIME_STAGER_COMMAND: JSON.stringify(STAGER),
});

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-kube-runtime-'));
  let k: TestKubelet | undefined;
  apiServer = await startApiServer({ subresources: (sub, req, res) => k!.serveSubresource(sub, req, res) });
  // Kiln and the kubelet call as different users, so the calls Kiln made can be told apart (RBAC check below).
  kubeconfig = apiServer.writeKubeconfig(dir, NS, { user: 'kiln', file: 'kiln.kubeconfig' });
  kubelet = k = new TestKubelet({ kubeconfig: apiServer.writeKubeconfig(dir, 'default', { user: 'kubelet' }), restartBackoffMs: 200, metrics: true });
  await kubelet.start();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(apiServer.writeKubeconfig(dir, 'default', { user: 'test', file: 'test.kubeconfig' }));
  core = kc.makeApiClient(k8s.CoreV1Api);
  server = await startServerProcess({ env: env() });
  // Pods reach Kiln (droplet downloads) at 127.0.0.1:<Kiln's port>, like a cluster Service.
  kubelet.hostPorts.push(Number(new URL(server.url).port));
  ({ api, token, client } = await adminTarget(server, 'kube-org'));
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await kubelet?.stop();
  await apiServer?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('KILN_RUNTIME=kubernetes (in-memory API server + test kubelet)', () => {
  let hello: string;

  it('pushes an app that runs as a pod and answers through the router', async () => {
    hello = await client.push('hello', path.join(FIXTURES, 'hello'));
    expect((await client.stats(hello)).map((i) => i.state)).toEqual(['RUNNING']);
    const [pod] = await pods(`kiln.dev/app-guid=${hello}`);
    expect(pod?.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'kiln', 'kiln.dev/index': '0' });
    expect(pod?.spec?.initContainers?.[0]?.name).toBe('droplet');
    expect(pod?.spec?.containers[0]?.resources?.limits).toMatchObject({ memory: '1024Mi' });
    expect(pod?.spec?.containers[0]?.readinessProbe?.tcpSocket?.port).toBe(8080);
    const res = await client.viaRouter('hello.apps.localhost', '/greet');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ version: 'v1', index: '0', path: '/greet' });
    const stats = await client.stats(hello);
    expect(stats[0]).toMatchObject({ host: pod?.status?.podIP });
    // Memory from the metrics API (published by the test kubelet as metrics-server would).
    await until('memory in stats', async () => (((await client.stats(hello))[0] as { usage?: { mem?: number } }).usage?.mem ?? 0) > 0 || undefined);
    // App output reaches log-cache from the pod's log stream; staging ran as a Job and its output became STG lines.
    const lines = await until('APP/PROC/WEB log line', async () => {
      const logs = await call('GET', `/api/v1/read/${hello}?descending=true&envelope_types=LOG&limit=1000&start_time=-6795364578871345152`);
      const lines = logs.body.envelopes.batch.map((e: { tags: { source_type: string }; log: { payload: string } }) => `${e.tags.source_type} ${Buffer.from(e.log.payload, 'base64').toString()}`);
      return lines.some((l: string) => l.startsWith('APP/PROC/WEB hello listening on 8080')) ? (lines as string[]) : undefined;
    });
    expect(kubelet.ran.some((name) => name.startsWith('stage-'))).toBe(true);
    expect(lines.filter((l) => l.startsWith('STG ')).length).toBeGreaterThan(2);
    expect(lines).toContain('STG Staging complete (detected nodejs)');
    expect(lines.some((l) => l.includes('KILN_STAGING_RESULT'))).toBe(false);
  }, 120_000);

  it('scales to two pods with stable indexes, both answering', async () => {
    const web = (await call('GET', `/v3/apps/${hello}/processes/web`)).body;
    expect((await call('POST', `/v3/processes/${web.guid}/actions/scale`, { instances: 2 })).status).toBe(202);
    await until('2 running', async () => ((await client.stats(hello)).filter((i) => i.state === 'RUNNING').length === 2 ? true : undefined), 60_000);
    const seen = new Set<string>();
    await until('both indexes answer', async () => {
      const res = await client.viaRouter('hello.apps.localhost');
      if (res.status === 200) seen.add((JSON.parse(res.body) as { index: string }).index);
      return seen.size === 2 ? true : undefined;
    });
    expect([...seen].sort()).toEqual(['0', '1']);
    expect((await pods(`kiln.dev/app-guid=${hello}`)).map((p) => p.metadata?.labels?.['kiln.dev/index']).sort()).toEqual(['0', '1']);
  }, 120_000);

  it('rolls out a new version without failing a request', async () => {
    expect((await call('PATCH', `/v3/apps/${hello}/environment_variables`, { var: { HELLO_VERSION: 'v2' } })).status).toBe(200);
    const load = { total: 0, failed: 0, failures: [] as string[], versions: new Map<string, number>(), stopped: false };
    const worker = async () => {
      while (!load.stopped) {
        load.total++;
        try {
          const res = await client.viaRouter('hello.apps.localhost');
          if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.slice(0, 200)}`);
          const version = (JSON.parse(res.body) as { version: string }).version;
          load.versions.set(version, (load.versions.get(version) ?? 0) + 1);
        } catch (err) {
          load.failed++;
          if (load.failures.length < 10) load.failures.push(String(err));
        }
      }
    };
    const workers = Promise.all([worker(), worker()]);
    await until('load on v1', async () => (load.total > 30 ? true : undefined));
    const t0 = Date.now();
    const created = await call('POST', '/v3/deployments', {
      relationships: { app: { data: { guid: hello } } },
      strategy: 'rolling',
      options: { max_in_flight: 1, web_instances: null, memory_in_mb: null, disk_in_mb: null, log_rate_limit_in_bytes_per_second: null },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const final = await until(
      'deployment FINALIZED',
      async () => {
        const d = await call('GET', `/v3/deployments/${created.body.guid}`);
        return d.body.status.value === 'FINALIZED' ? d.body : undefined;
      },
      120_000,
    );
    const ms = Date.now() - t0;
    await until('only v2 answers', async () => {
      for (let i = 0; i < 10; i++) {
        const r = await client.viaRouter('hello.apps.localhost');
        if (r.status !== 200 || (JSON.parse(r.body) as { version: string }).version !== 'v2') return undefined;
      }
      return true;
    });
    load.stopped = true;
    await workers;
    console.log(`kubernetes runtime rolling deployment, 2 instances, max_in_flight 1: ${ms} ms; ${load.total} requests, ${load.failed} failed; versions ${JSON.stringify([...load.versions])}`);
    expect(final.status.reason).toBe('DEPLOYED');
    expect(load.failures).toEqual([]);
    expect(load.versions.get('v1')).toBeGreaterThan(0);
    expect(load.versions.get('v2')).toBeGreaterThan(0);
  }, 180_000);

  it('reports a crashing app from pod status as crash events', async () => {
    const app = await client.push('crasher', path.join(FIXTURES, 'crasher'));
    const crashes = await until(
      'two app.crash events',
      async () => {
        const r = await call('GET', `/v3/audit_events?types=app.crash&target_guids=${app}&per_page=100`);
        return r.body.resources.length >= 2 ? r.body.resources : undefined;
      },
      60_000,
    );
    expect(crashes[0].data).toMatchObject({ index: 0, reason: 'CRASHED', exit_status: 3, exit_description: 'APP/PROC/WEB: Exited with status 3' });
    // Between crashes the pod restarts and the instance is STARTING for a while (as on Diego); it settles into
    // CRASHED for each back-off.
    await until('the instance reported CRASHED', async () => ((await client.stats(app))[0]?.state === 'CRASHED' ? true : undefined), 60_000);
    await call('DELETE', `/v3/apps/${app}`);
  }, 120_000);

  it('runs a task as a Job to SUCCEEDED', async () => {
    const task = await call('POST', `/v3/apps/${hello}/tasks`, { command: 'echo "task ran on $CF_INSTANCE_INDEX"' });
    expect(task.status).toBe(202);
    const done = await until(
      'task finished',
      async () => {
        const t = await call('GET', `/v3/tasks/${task.body.guid}`);
        return t.body.state === 'SUCCEEDED' || t.body.state === 'FAILED' ? t.body : undefined;
      },
      60_000,
    );
    expect(done.state, done.result?.failure_reason).toBe('SUCCEEDED');
    const [taskPod] = await pods(`kiln.dev/task-guid=${task.body.guid}`);
    expect(taskPod?.metadata?.ownerReferences?.[0]?.kind).toBe('Job');
  }, 120_000);

  it('leaves running pods alone when Kiln restarts, and deletes them with the app', async () => {
    const before = (await pods(`kiln.dev/app-guid=${hello},kiln.dev/process-guid`)).map((p) => p.metadata?.uid).sort();
    const dataDir = server.dataDir;
    await server.stop({ keepData: true });
    server = await startServerProcess({ dataDir, env: env() });
    kubelet.hostPorts.push(Number(new URL(server.url).port));
    ({ api, token, client } = await adminTarget(server, 'kube-org-2'));
    const res = await until('app answers after restart', async () => {
      const r = await client.viaRouter('hello.apps.localhost');
      return r.status === 200 ? r : undefined;
    });
    expect(res.status).toBe(200);
    expect((await pods(`kiln.dev/app-guid=${hello},kiln.dev/process-guid`)).map((p) => p.metadata?.uid).sort()).toEqual(before);

    expect((await call('DELETE', `/v3/apps/${hello}`)).status).toBe(202);
    // Instance pods go with the app (a finished task's Job and pod are collected a minute after it finished).
    await until('instance pods gone', async () => ((await pods(`kiln.dev/app-guid=${hello},kiln.dev/process-guid`)).length === 0 ? true : undefined), 60_000);
  }, 120_000);

  it('calls only what its RBAC rules grant', () => {
    const kiln = apiServer.calls.filter((c) => c.user === 'kiln');
    const used = [...new Set(kiln.map((c) => `${c.group}|${c.subresource ? `${c.resource}/${c.subresource}` : c.resource}|${c.verb}|${c.namespace ?? ''}`))].sort();
    console.log(`calls Kiln's runtime made: ${used.join(', ')}`);
    expect(used.length).toBeGreaterThan(5);
    for (const key of used) {
      const [group, resource, verb, namespace] = key.split('|') as [string, string, string, string];
      const rules = namespace ? RUNTIME_NAMESPACE_RULES : RUNTIME_CLUSTER_RULES;
      expect(allows(rules, group, resource, verb), key).toBe(true);
      if (namespace) expect(namespace).toBe(NS);
    }
  });
});
