import type * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { instancePod, podName, probes, stagingJob, taskJob } from '../../src/runtime/kubernetes/objects.ts';
import { instanceStatus, taskStatus } from '../../src/runtime/kubernetes/status.ts';
import { instanceId, type InstanceSpec } from '../../src/runtime/runtime.ts';
import { BlobUrlSigner } from '../../src/lifecycle/blobs.ts';

/** The pods and Jobs the Kubernetes runtime makes, and how it reads pod and Job status back (no cluster involved). */
const settings = { namespace: 'apps', stackImage: 'stack:1', dropletUrl: 'http://kiln/blobs/droplets/d?sig', dropletBlobKey: 'droplets/d' };
const spec: InstanceSpec = {
  id: instanceId('p1', 'ver-1', 2),
  appGuid: 'a1',
  processGuid: 'p1',
  processType: 'worker',
  version: 'ver-1',
  index: 2,
  dropletDir: '/x',
  command: 'bin/run --flag',
  env: { DOLLAR: 'a$(B)$$c', VCAP_APPLICATION: '{}' },
  memoryMb: 512,
  diskMb: 1024,
  healthCheck: { type: 'http', endpoint: 'health', timeoutSeconds: 30, invocationTimeoutSeconds: 2, intervalSeconds: 7 },
  sidecars: [{ name: 'Config_Server', command: 'bin/sidecar' }],
};

describe('instance pods', () => {
  const pod = instancePod(spec, settings);
  const main = pod.spec!.containers[0]!;
  const env = Object.fromEntries((main.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));

  it('is named and labelled after its slot, with the full ids as annotations', () => {
    expect(pod.metadata?.name).toBe(podName(spec));
    expect(pod.metadata?.name).toMatch(/^p-p1-[0-9a-f]{10}-2$/);
    expect(pod.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'kiln', 'kiln.dev/app-guid': 'a1', 'kiln.dev/process-guid': 'p1', 'kiln.dev/index': '2' });
    expect(pod.metadata?.annotations).toMatchObject({ 'kiln.dev/instance-id': spec.id, 'kiln.dev/version': 'ver-1', 'kiln.dev/process-type': 'worker' });
  });

  it('downloads the droplet in an init container and starts the command with the CF launcher', () => {
    const init = pod.spec!.initContainers![0]!;
    expect(init.env).toContainEqual({ name: 'KILN_DROPLET_URL', value: settings.dropletUrl });
    expect(init.volumeMounts).toEqual([{ name: 'home', mountPath: '/home/vcap' }]);
    expect(main.command?.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(main.command?.slice(-2)).toEqual(['/home/vcap', 'bin/run --flag']);
    expect(main.workingDir).toBe('/home/vcap/app');
    expect(main.image).toBe('stack:1');
  });

  it('sets limits, grace period and CF variables (pod IP and uid from the downward API, literal `$`)', () => {
    expect(main.resources?.limits).toEqual({ memory: '512Mi', 'ephemeral-storage': '1024Mi' });
    expect(pod.spec?.terminationGracePeriodSeconds).toBe(10);
    expect(pod.spec?.volumes?.[0]?.emptyDir?.sizeLimit).toBe('1024Mi');
    expect(env).toMatchObject({ CF_INSTANCE_INDEX: '2', PORT: '8080', CF_INSTANCE_IP: 'status.podIP', CF_INSTANCE_GUID: 'metadata.uid', CF_INSTANCE_ADDR: '$(CF_INSTANCE_IP):8080', MEMORY_LIMIT: '512m', HOME: '/home/vcap/app' });
    expect(env.DOLLAR).toBe('a$$(B)$$$$c');
  });

  it('turns the CF health check into startup, readiness and liveness probes', () => {
    expect(main.startupProbe).toMatchObject({ httpGet: { path: '/health', port: 8080 }, periodSeconds: 1, failureThreshold: 30, timeoutSeconds: 2 });
    expect(main.readinessProbe).toMatchObject({ httpGet: { path: '/health', port: 8080 } });
    expect(main.livenessProbe).toMatchObject({ periodSeconds: 7 });
    expect(probes({ type: 'port' }, 8080).readinessProbe).toMatchObject({ tcpSocket: { port: 8080 } });
    expect(probes({ type: 'process' }, 8080)).toEqual({});
  });

  it('runs sidecars as containers of the pod', () => {
    expect(pod.spec!.containers[1]).toMatchObject({ name: 'sidecar-config-server' });
    expect(pod.spec!.containers[1]!.command?.at(-1)).toBe('bin/sidecar');
  });
});

describe('Jobs', () => {
  it('runs a task once, without a port', () => {
    const job = taskJob({ id: 't1', name: 'migrate', appGuid: 'a1', dropletDir: '/x', command: 'rake db:migrate', env: {}, memoryMb: 256, diskMb: 0 }, settings);
    expect(job.metadata?.name).toBe('task-t1');
    expect(job.spec).toMatchObject({ backoffLimit: 0, template: { spec: { restartPolicy: 'Never' } } });
    const env = job.spec!.template.spec!.containers[0]!.env!.map((e) => e.name);
    expect(env).not.toContain('PORT');
  });

  it('stages with the configured runner, input and upload URLs', () => {
    const job = stagingJob(
      { buildGuid: 'b1', appGuid: 'a1', inputBlobKey: 'i', dropletBlobKey: 'o', memoryMb: 1024, diskMb: 2048, timeoutMs: 900_000 },
      { namespace: 'apps', stackImage: 'kiln:1', stagerCommand: ['kiln', 'stage-job'], inputUrl: 'http://in', dropletUrl: 'http://out' },
    );
    expect(job.spec?.activeDeadlineSeconds).toBe(900);
    const c = job.spec!.template.spec!.containers[0]!;
    expect(c.command).toEqual(['kiln', 'stage-job']);
    expect(c.env).toEqual(expect.arrayContaining([{ name: 'KILN_STAGING_INPUT_URL', value: 'http://in' }, { name: 'KILN_STAGING_DROPLET_URL', value: 'http://out' }]));
  });
});

describe('reading status back', () => {
  const base = instancePod(spec, settings);
  const withStatus = (status: k8s.V1PodStatus, md: Partial<k8s.V1ObjectMeta> = {}): k8s.V1Pod => ({ ...base, metadata: { ...base.metadata, ...md }, status });
  const at = new Date('2026-01-01T00:00:00Z');

  it('maps container states to instance states', () => {
    expect(instanceStatus(withStatus({ phase: 'Pending' }))?.state).toBe('STARTING');
    expect(instanceStatus(withStatus({ phase: 'Running', podIP: '10.0.0.5', containerStatuses: [{ name: 'app', image: '', imageID: '', ready: false, restartCount: 0, state: { running: { startedAt: at } } }] }))?.state).toBe('STARTING');
    const running = instanceStatus(withStatus({ phase: 'Running', podIP: '10.0.0.5', containerStatuses: [{ name: 'app', image: '', imageID: '', ready: true, restartCount: 0, state: { running: { startedAt: at } } }] }));
    expect(running).toMatchObject({ state: 'RUNNING', host: '10.0.0.5', port: 8080, index: 2, processGuid: 'p1', version: 'ver-1', since: at.getTime(), crashCount: 0 });
    expect(instanceStatus(withStatus({ phase: 'Running' }, { deletionTimestamp: at }))?.state).toBe('STOPPING');
  });

  it('reads crashes: CrashLoopBackOff with the last termination, OOMKilled as out of memory, a failing droplet download', () => {
    const crashed = instanceStatus(
      withStatus({
        phase: 'Running',
        containerStatuses: [
          { name: 'app', image: '', imageID: '', ready: false, restartCount: 2, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', finishedAt: at } } },
        ],
      }),
    );
    expect(crashed).toMatchObject({ state: 'CRASHED', crashCount: 3, lastExit: { code: 137, at: at.getTime(), reason: 'APP/PROC/WORKER: Exited with status 137 (out of memory)' } });
    const download = instanceStatus(
      withStatus({
        phase: 'Pending',
        initContainerStatuses: [{ name: 'droplet', image: '', imageID: '', ready: false, restartCount: 1, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 22, finishedAt: at } } }],
        containerStatuses: [{ name: 'app', image: '', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }],
      }),
    );
    expect(download).toMatchObject({ state: 'CRASHED', lastExit: { code: 22, reason: 'failed to download the droplet: exited with status 22' } });
  });

  it('reads a task from its Job and pod', () => {
    const job = (conditions: k8s.V1JobCondition[], annotations: Record<string, string> = {}): k8s.V1Job => ({ metadata: { name: 'task-t', annotations: { 'kiln.dev/task-name': 'm', ...annotations } }, status: { conditions } });
    const pod = (exitCode: number, reason?: string): k8s.V1Pod => ({ status: { containerStatuses: [{ name: 'app', image: '', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, ...(reason ? { reason } : {}) } } }] } });
    expect(taskStatus('t', job([]), undefined).state).toBe('RUNNING');
    expect(taskStatus('t', job([{ type: 'Complete', status: 'True' }]), pod(0))).toEqual({ id: 't', state: 'SUCCEEDED', exitCode: 0 });
    expect(taskStatus('t', job([{ type: 'Failed', status: 'True' }]), pod(137, 'OOMKilled'))).toMatchObject({ state: 'FAILED', failureReason: 'APP/TASK/m: Exited with status 137 (out of memory)' });
    expect(taskStatus('t', job([], { 'kiln.dev/cancelled': 'true' }), undefined)).toMatchObject({ state: 'FAILED', failureReason: 'task was cancelled' });
  });
});

describe('signed blob URLs', () => {
  it('keeps download and upload signatures apart', () => {
    const signer = new BlobUrlSigner(Buffer.alloc(32, 7));
    const params = (url: string) => new URL(url, 'http://x').searchParams;
    const down = params(signer.sign('staging-input/b', 60));
    const up = params(signer.signUpload('staging-droplets/b', 60));
    expect(signer.verify('staging-input/b', down.get('expires')!, down.get('signature')!)).toBe(true);
    expect(signer.verifyUpload('staging-droplets/b', up.get('expires')!, up.get('signature')!)).toBe(true);
    expect(signer.verify('staging-droplets/b', up.get('expires')!, up.get('signature')!)).toBe(false);
    expect(signer.verifyUpload('staging-input/b', down.get('expires')!, down.get('signature')!)).toBe(false);
    expect(signer.verifyUpload('staging-droplets/b', up.get('expires')!, up.get('signature')!, Date.now() + 120_000)).toBe(false);
  });
});
