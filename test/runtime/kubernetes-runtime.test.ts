import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubernetesRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime.ts';
import { instanceId, type InstanceSpec, type LogLine } from '../../src/runtime/runtime.ts';
import { createTarGz } from '../../src/staging/tarball.ts';
import { startApiServer, type ApiServer } from '../kube/apiserver/index.ts';
import { TestKubelet } from '../kube/kubelet/index.ts';
import { until } from '../helpers/until.ts';

/**
 * KubernetesRuntime against the in-memory API server and the test kubelet (no real cluster): the droplet arrives
 * by the init container's download, the CF launcher runs profile.d and .profile, CF_INSTANCE_INDEX is the pod's
 * index, restart replaces the pod, OOMKilled becomes CF's out-of-memory crash reason, stop is graceful, tasks are
 * Jobs (exit status, cancel), and a new runtime on the same cluster sees what runs.
 */
const NS = 'rt';
let apiServer: ApiServer;
let kubelet: TestKubelet;
let blobs: http.Server;
let runtime: KubernetesRuntime;
let core: k8s.CoreV1Api;
let dir: string;
let kubeconfig: string;
let blobUrl: (key: string) => string;
const lines: LogLine[] = [];

const APP = `
const http = require('http');
process.on('SIGTERM', () => { console.log('got SIGTERM'); process.exit(0); });
http.createServer((q, s) => s.end(JSON.stringify({ index: process.env.CF_INSTANCE_INDEX, from_profile_d: process.env.FROM_PROFILE_D, from_profile: process.env.FROM_PROFILE, port: process.env.PORT, ip: process.env.CF_INSTANCE_IP, literal: process.env.LITERAL })))
  .listen(Number(process.env.PORT), () => console.log('listening on ' + process.env.PORT));
`;


const get = (host: string, port: number) =>
  new Promise<string>((resolve, reject) => {
    http.get({ host, port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });

function spec(index: number, overrides: Partial<InstanceSpec> = {}): InstanceSpec {
  const processGuid = overrides.processGuid ?? '11111111-2222-3333-4444-555555555555';
  return {
    id: instanceId(processGuid, 'v1', index),
    appGuid: 'aaaaaaaa-0000-0000-0000-000000000001',
    processGuid,
    processType: 'web',
    version: 'v1',
    index,
    dropletDir: '/nonexistent',
    droplet: { guid: 'd1', blobKey: 'droplet.tgz' },
    command: 'node server.js',
    env: { LITERAL: 'a$(B)c$$d' },
    memoryMb: 256,
    diskMb: 256,
    healthCheck: { type: 'port' },
    ...overrides,
  };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kube-runtime-'));
  const droplet = path.join(dir, 'droplet');
  fs.mkdirSync(path.join(droplet, 'app'), { recursive: true });
  fs.mkdirSync(path.join(droplet, 'profile.d'), { recursive: true });
  fs.writeFileSync(path.join(droplet, 'app', 'server.js'), APP);
  fs.writeFileSync(path.join(droplet, 'app', '.profile'), 'export FROM_PROFILE=yes\n');
  fs.writeFileSync(path.join(droplet, 'profile.d', 'node.sh'), `export FROM_PROFILE_D=yes\nexport PATH="${path.dirname(process.execPath)}:$PATH"\n`);
  await createTarGz(droplet, ['app', 'profile.d'], path.join(dir, 'droplet.tgz'));
  blobs = http.createServer((req, res) => {
    if (req.url !== '/droplet.tgz') return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/gzip' });
    fs.createReadStream(path.join(dir, 'droplet.tgz')).pipe(res);
  });
  await new Promise<void>((r) => blobs.listen(0, '127.0.0.1', r));
  const blobPort = (blobs.address() as AddressInfo).port;
  blobUrl = (key) => `http://127.0.0.1:${blobPort}/${key}`;

  let k: TestKubelet | undefined;
  apiServer = await startApiServer({ subresources: (sub, req, res) => k!.serveSubresource(sub, req, res) });
  kubeconfig = apiServer.writeKubeconfig(dir);
  kubelet = k = new TestKubelet({ kubeconfig, restartBackoffMs: 200, hostPorts: [blobPort], metrics: true, metricsIntervalMs: 300 });
  await kubelet.start();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  runtime = new KubernetesRuntime({ kubeconfig, namespace: NS, stackImage: 'stack', blobUrl, graceMs: 3000, finishedJobKeepMs: 200 });
  await runtime.start();
  runtime.onLog((line) => lines.push(line));
}, 30_000);

afterAll(async () => {
  await runtime?.shutdown();
  await kubelet?.stop();
  await apiServer?.close();
  blobs?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('KubernetesRuntime (in-memory API server + test kubelet)', () => {
  it('runs an instance from the downloaded droplet with the CF launcher, at its pod IP', async () => {
    await runtime.ensureInstance(spec(3));
    await runtime.ensureInstance(spec(3)); // idempotent
    const running = await until('RUNNING', () => runtime.listInstances().find((i) => i.index === 3 && i.state === 'RUNNING'));
    expect(running.host).toMatch(/^127\./);
    expect(running.port).toBe(8080);
    const body = JSON.parse(await get(running.host, running.port!)) as Record<string, string>;
    expect(body).toEqual({ index: '3', from_profile_d: 'yes', from_profile: 'yes', port: '8080', ip: running.host, literal: 'a$(B)c$$d' });
    // CPU and memory from the metrics API (the test kubelet publishes PodMetrics, as metrics-server would).
    const stats = await until('metrics', async () => {
      const s = await runtime.stats(running.id);
      return s && s.memBytes > 0 ? s : undefined;
    });
    expect(stats.memBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(stats.uptimeSeconds).toBeGreaterThanOrEqual(0);
    await until('app log line', () => lines.find((l) => l.sourceType === 'APP/PROC/WEB/3' && l.text === 'listening on 8080'));
    expect((await core.listNamespacedPod({ namespace: NS })).items).toHaveLength(1);
  }, 30_000);

  it('runs sidecars beside the app, and checks http health at the endpoint', async () => {
    const withSidecar = spec(0, {
      processGuid: '77777777-2222-3333-4444-555555555555',
      healthCheck: { type: 'http', endpoint: '/' },
      sidecars: [{ name: 'Config_Server', command: `node -e 'console.log("sidecar up on " + process.env.PORT); setInterval(() => {}, 1e6)'` }],
    });
    await runtime.ensureInstance(withSidecar);
    await until('RUNNING', () => runtime.listInstances({ processGuid: withSidecar.processGuid }).find((i) => i.state === 'RUNNING'));
    await until('sidecar log line', () => lines.find((l) => l.sourceType === 'APP/PROC/WEB/SIDECAR/CONFIG_SERVER/0' && l.text === 'sidecar up on 8080'));
    await runtime.stopInstance(withSidecar.id, { graceMs: 1000 });
  }, 30_000);

  it('is read back by a new runtime on the same cluster (a restarted Kiln)', async () => {
    const again = new KubernetesRuntime({ kubeconfig, namespace: NS, stackImage: 'stack', blobUrl });
    await again.start();
    try {
      expect(again.listInstances().map((i) => [i.index, i.state])).toEqual([[3, 'RUNNING']]);
    } finally {
      await again.shutdown();
    }
    expect(runtime.listInstances()).toHaveLength(1);
  });

  it('replaces the pod on restartInstance, keeping its index', async () => {
    const id = spec(3).id;
    const before = (await core.listNamespacedPod({ namespace: NS })).items[0]!.metadata!.uid;
    await runtime.restartInstance(id);
    await until('RUNNING again', () => runtime.listInstances().find((i) => i.id === id && i.state === 'RUNNING'));
    const after = (await core.listNamespacedPod({ namespace: NS })).items[0]!.metadata!.uid;
    expect(after).not.toBe(before);
  }, 30_000);

  it('stops an instance gracefully (SIGTERM reaches the app) and forgets it', async () => {
    const id = spec(3).id;
    await runtime.stopInstance(id);
    expect(runtime.listInstances()).toEqual([]);
    await until('SIGTERM logged', () => lines.find((l) => l.sourceType === 'APP/PROC/WEB/3' && l.text === 'got SIGTERM'));
  }, 30_000);

  it('reports a crash, and OOMKilled as out of memory', async () => {
    const hog = spec(0, { processGuid: '99999999-2222-3333-4444-555555555555', command: `node -e 'const a=[]; for(;;) a.push(Buffer.alloc(1<<20, 1))'`, memoryMb: 64, healthCheck: { type: 'process' } });
    await runtime.ensureInstance(hog);
    const crashed = await until('OOM crash', () => runtime.listInstances({ processGuid: hog.processGuid }).find((i) => i.lastExit !== undefined));
    expect(crashed.lastExit?.reason).toBe('APP/PROC/WEB: Exited with status 137 (out of memory)');
    expect(crashed.lastExit?.code).toBe(137);
    expect(crashed.crashCount).toBeGreaterThanOrEqual(1);
    await until('CELL line', () => lines.find((l) => l.sourceType === 'CELL/0' && l.text === 'Exit status 137 (out of memory)'));
    await runtime.stopInstance(hog.id, { graceMs: 0 });
  }, 30_000);

  it('runs tasks as Jobs: exit status, cancel', async () => {
    const task = { appGuid: 'aaaaaaaa-0000-0000-0000-000000000001', dropletDir: '/nonexistent', droplet: { guid: 'd1', blobKey: 'droplet.tgz' }, env: {}, memoryMb: 128, diskMb: 128 };
    await runtime.runTask({ ...task, id: 'bbbbbbbb-0000-0000-0000-000000000001', name: 'fails', command: 'echo working; exit 5' });
    expect(runtime.taskStatus('bbbbbbbb-0000-0000-0000-000000000001')?.state).toBe('RUNNING');
    const failed = await until('task FAILED', () => {
      const s = runtime.taskStatus('bbbbbbbb-0000-0000-0000-000000000001');
      return s?.state === 'FAILED' ? s : undefined;
    });
    expect(failed).toMatchObject({ exitCode: 5, failureReason: 'APP/TASK/fails: Exited with status 5' });
    await until('task log', () => lines.find((l) => l.sourceType === 'APP/TASK/fails/0' && l.text === 'working'));

    await runtime.runTask({ ...task, id: 'bbbbbbbb-0000-0000-0000-000000000002', name: 'sleeper', command: 'sleep 60' });
    await until('task pod running', async () => (await core.listNamespacedPod({ namespace: NS, labelSelector: 'kiln.dev/task-guid=bbbbbbbb-0000-0000-0000-000000000002' })).items[0]?.status?.containerStatuses?.[0]?.state?.running);
    await runtime.cancelTask('bbbbbbbb-0000-0000-0000-000000000002');
    expect(runtime.taskStatus('bbbbbbbb-0000-0000-0000-000000000002')).toMatchObject({ state: 'FAILED', failureReason: 'task was cancelled' });
    // Finished Jobs are collected (finishedJobKeepMs), their results stay readable.
    await until('jobs collected', async () => ((await core.listNamespacedPod({ namespace: NS, labelSelector: 'kiln.dev/task-guid' })).items.length === 0 ? true : undefined));
    expect(runtime.taskStatus('bbbbbbbb-0000-0000-0000-000000000001')?.state).toBe('FAILED');
  }, 40_000);
});
