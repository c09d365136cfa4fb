import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from './apiserver/index.ts';
import { TestKubelet } from './kubelet/index.ts';
import { until } from '../helpers/until.ts';

/**
 * The test kubelet against the in-memory API server: it schedules and runs pods (init containers, volumes, env
 * with downward API and $(VAR)), gives each its own network at a pod IP, runs probes, restarts crashed containers
 * (restartCount, lastState), reports OOMKilled, serves pods/log, deletes gracefully, and runs Jobs.
 */
let server: ApiServer;
let kubelet: TestKubelet;
let core: k8s.CoreV1Api;
let batch: k8s.BatchV1Api;
let dir: string;
const ns = 'default';


const pod = (name: string) => core.readNamespacedPod({ name, namespace: ns });
const get = (url: string) =>
  new Promise<string>((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });

const SERVER = `require('http').createServer((q, s) => s.end(process.env.GREETING + ' ' + require('fs').readFileSync('/tmp/data/file', 'utf8'))).listen(8080)`;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubelet-test-'));
  let k: TestKubelet | undefined;
  server = await startApiServer({ subresources: (sub, req, res) => k!.serveSubresource(sub, req, res) });
  const kubeconfig = server.writeKubeconfig(dir);
  kubelet = k = new TestKubelet({ kubeconfig, restartBackoffMs: 100 });
  await kubelet.start();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  batch = kc.makeApiClient(k8s.BatchV1Api);
});

afterAll(async () => {
  await kubelet?.stop();
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('test kubelet', () => {
  it('runs init containers then containers in their own network, with volumes, env and readiness', async () => {
    const spec = (name: string): k8s.V1Pod => ({
      metadata: { name },
      spec: {
        terminationGracePeriodSeconds: 5,
        initContainers: [{ name: 'init', image: 'x', command: ['/bin/sh', '-c', 'echo "from $(POD)" > /tmp/data/file'], env: [{ name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }], volumeMounts: [{ name: 'd', mountPath: '/tmp/data' }] }],
        containers: [
          {
            name: 'app',
            image: 'x',
            command: [process.execPath, '-e', SERVER],
            env: [{ name: 'A', value: 'hello' }, { name: 'GREETING', value: '$(A)' }],
            ports: [{ containerPort: 8080 }],
            readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
            volumeMounts: [{ name: 'd', mountPath: '/tmp/data' }],
          },
        ],
        volumes: [{ name: 'd', emptyDir: {} }],
      },
    });
    await core.createNamespacedPod({ namespace: ns, body: spec('web-a') });
    await core.createNamespacedPod({ namespace: ns, body: spec('web-b') });
    const a = await until('web-a ready', async () => ((await pod('web-a')).status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? pod('web-a') : undefined));
    const b = await until('web-b ready', async () => ((await pod('web-b')).status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? pod('web-b') : undefined));
    expect(a.status?.podIP).not.toBe(b.status?.podIP);
    expect(a.spec?.nodeName).toBe(kubelet.nodeName);
    // Both listen on 8080, each in its own network namespace.
    expect(await get(`http://${a.status!.podIP}:8080/`)).toBe('hello from web-a\n');
    expect(await get(`http://${b.status!.podIP}:8080/`)).toBe('hello from web-b\n');
    expect(a.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);

    // Graceful deletion: the pod stays with a deletionTimestamp until the kubelet has stopped it.
    const deleted = await core.deleteNamespacedPod({ name: 'web-b', namespace: ns });
    expect(deleted.metadata?.deletionTimestamp).toBeDefined();
    await until('web-b gone', async () => (await pod('web-b').then(() => false, () => true)) || undefined);
  });

  it('restarts a crashing container with restartCount and lastState, and reports OOMKilled', async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: 'crasher' }, spec: { containers: [{ name: 'c', image: 'x', command: ['/bin/sh', '-c', 'echo started; exit 3'] }] } },
    });
    const crashed = await until('restarts', async () => {
      const p = await pod('crasher');
      const c = p.status?.containerStatuses?.[0];
      return (c?.restartCount ?? 0) >= 1 && c?.lastState?.terminated ? c : undefined;
    });
    expect(crashed.lastState?.terminated?.exitCode).toBe(3);
    expect(crashed.lastState?.terminated?.reason).toBe('Error');
    // The current incarnation may just have started; the previous one surely printed.
    const log = await core.readNamespacedPodLog({ name: 'crasher', namespace: ns, container: 'c', previous: true });
    expect(log).toContain('started');

    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'hog' },
        spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'x', command: [process.execPath, '-e', 'const a=[]; for(;;){a.push(Buffer.alloc(1<<20,1))}'], resources: { limits: { memory: '64Mi' } } }] },
      },
    });
    const oom = await until('OOMKilled', async () => (await pod('hog')).status?.containerStatuses?.[0]?.state?.terminated);
    expect(oom.reason).toBe('OOMKilled');
    expect((await pod('hog')).status?.phase).toBe('Failed');
  });

  it('runs a Job to completion', async () => {
    await batch.createNamespacedJob({
      namespace: ns,
      body: { metadata: { name: 'once' }, spec: { backoffLimit: 0, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'x', command: ['/bin/sh', '-c', 'echo done'] }] } } } },
    });
    const job = await until('job complete', async () => {
      const j = await batch.readNamespacedJob({ name: 'once', namespace: ns });
      return j.status?.conditions?.some((c) => c.type === 'Complete') ? j : undefined;
    });
    expect(job.status?.succeeded).toBe(1);
  });
});
