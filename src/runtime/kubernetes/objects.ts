import { createHash } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { instanceEnv } from '../local/environment.ts';
import { LAUNCHER, SANDBOX_DROPLET_DIR } from '../local/launch.ts';
import type { HealthCheck, InstanceSpec, StagingRun, TaskSpec } from '../runtime.ts';

/**
 * The Kubernetes objects Kiln makes for instances and tasks. Everything carries `app.kubernetes.io/managed-by: kiln`
 * and the owning app's guid as labels, so Kiln finds what it made by listing the cluster (never by remembering), and
 * `kubectl delete pods,jobs -l kiln.dev/app-guid=<guid>` removes an app's leftovers.
 */

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'kiln';
export const LABEL_APP = 'kiln.dev/app-guid';
export const LABEL_PROCESS = 'kiln.dev/process-guid';
export const LABEL_VERSION = 'kiln.dev/version-hash';
export const LABEL_INDEX = 'kiln.dev/index';
export const LABEL_TASK = 'kiln.dev/task-guid';
export const LABEL_BUILD = 'kiln.dev/build-guid';
/** Full values (which may exceed a label's 63 characters) are annotations. */
export const ANNOTATION_INSTANCE = 'kiln.dev/instance-id';
export const ANNOTATION_VERSION = 'kiln.dev/version';
export const ANNOTATION_PROCESS_TYPE = 'kiln.dev/process-type';
export const ANNOTATION_TASK_NAME = 'kiln.dev/task-name';
export const ANNOTATION_DROPLET_BLOB = 'kiln.dev/droplet-blob-key';
export const ANNOTATION_SIDECARS = 'kiln.dev/sidecars';

/** A sidecar's container name: `sidecar-<name>` as a DNS label. */
export const sidecarContainerName = (name: string): string => `sidecar-${name}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63).replace(/-+$/, '');

/** The port every instance listens on (CF's container port). Pods have their own network, so all use the same one. */
export const APP_PORT = 8080;
/** CF's default graceful stop period (Diego: 10 s between SIGTERM and SIGKILL). */
export const DEFAULT_GRACE_SECONDS = 10;
export const MAIN_CONTAINER = 'app';
export const DROPLET_INIT_CONTAINER = 'droplet';

export interface ObjectSettings {
  namespace: string;
  /** Image of the init container and of the app's containers (its files are the stack's root filesystem). */
  stackImage: string;
  /** A short-lived URL the init container downloads the droplet (a gzipped tar) from. */
  dropletUrl: string;
  /** The droplet's blob key, kept on the pod so a replacement pod gets a fresh URL. */
  dropletBlobKey: string;
}

const hash = (text: string, n = 10): string => createHash('sha256').update(text).digest('hex').slice(0, n);

/** Pod name of an instance slot: unique per (process, version, index), a valid DNS label. */
export function podName(spec: Pick<InstanceSpec, 'processGuid' | 'version' | 'index'>): string {
  return `p-${spec.processGuid}-${hash(spec.version)}-${spec.index}`.toLowerCase();
}

export const jobName = (taskGuid: string): string => `task-${taskGuid}`.toLowerCase();
export const stagingJobName = (buildGuid: string): string => `stage-${buildGuid}`.toLowerCase();

/**
 * Fetches the droplet and unpacks it where CF's containers have it (/home/vcap: app/, deps/, profile.d/); curl or
 * wget, whichever the stack image has. The URL comes from the environment so it never shows in `ps` output.
 */
const DOWNLOAD = [
  'set -e',
  'mkdir -p "$KILN_DROPLET_DIR"',
  'if command -v curl >/dev/null 2>&1; then curl -fsS --retry 3 -o /tmp/droplet.tgz "$KILN_DROPLET_URL"; else wget -q -O /tmp/droplet.tgz "$KILN_DROPLET_URL"; fi',
  'tar -xzf /tmp/droplet.tgz -C "$KILN_DROPLET_DIR"',
  'rm -f /tmp/droplet.tgz',
  'mkdir -p "$KILN_DROPLET_DIR/app" "$KILN_DROPLET_DIR/tmp"',
].join('\n');

function dropletInit(settings: ObjectSettings, diskMb: number): k8s.V1Container {
  return {
    name: DROPLET_INIT_CONTAINER,
    image: settings.stackImage,
    command: ['/bin/sh', '-c', DOWNLOAD],
    env: [
      { name: 'KILN_DROPLET_URL', value: settings.dropletUrl },
      { name: 'KILN_DROPLET_DIR', value: SANDBOX_DROPLET_DIR },
    ],
    volumeMounts: [{ name: 'home', mountPath: SANDBOX_DROPLET_DIR }],
    resources: { limits: { memory: '256Mi', ...(diskMb > 0 ? { 'ephemeral-storage': `${diskMb}Mi` } : {}) } },
  };
}

function resources(memoryMb: number, diskMb: number): k8s.V1ResourceRequirements {
  // Requests equal limits for memory: CF's memory quota is a reservation, as Diego places instances by it.
  const limits: Record<string, string> = {};
  if (memoryMb > 0) limits.memory = `${memoryMb}Mi`;
  if (diskMb > 0) limits['ephemeral-storage'] = `${diskMb}Mi`;
  return { limits, requests: { ...(memoryMb > 0 ? { memory: `${memoryMb}Mi` } : {}), cpu: '10m' } };
}

/**
 * The container environment: the local runtime's (CF's variables, nothing of Kiln's own), with the pod's address and
 * uid from the downward API. `$(VAR)` refers to a variable defined earlier in the list, as Kubernetes expands it.
 */
function containerEnv(base: Record<string, string>, index: number, memoryMb: number, port: number | undefined): k8s.V1EnvVar[] {
  const env = instanceEnv({
    base,
    dropletDir: SANDBOX_DROPLET_DIR,
    tmpDir: `${SANDBOX_DROPLET_DIR}/tmp`,
    home: `${SANDBOX_DROPLET_DIR}/app`,
    host: '$(CF_INSTANCE_IP)',
    index,
    instanceGuid: '',
    memoryMb,
    ...(port !== undefined ? { port } : {}),
  });
  const fromPod = new Set(['CF_INSTANCE_IP', 'CF_INSTANCE_INTERNAL_IP', 'CF_INSTANCE_GUID']);
  // Values are literal: Kubernetes reads `$$` as `$`, so every `$` of an app's value is doubled and none expands.
  const literal = (value: string): string => value.replaceAll('$', () => '$$');
  return [
    { name: 'CF_INSTANCE_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'CF_INSTANCE_INTERNAL_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'CF_INSTANCE_GUID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
    ...Object.entries(env)
      .filter(([name]) => !fromPod.has(name))
      .map(([name, value]) => ({ name, value: name === 'CF_INSTANCE_ADDR' ? `$(CF_INSTANCE_IP):${port}` : literal(value) })),
  ];
}

function launched(name: string, command: string, settings: ObjectSettings, env: k8s.V1EnvVar[], res: k8s.V1ResourceRequirements): k8s.V1Container {
  return {
    name,
    image: settings.stackImage,
    // The local runtime's launcher: profile.d, .profile.d, .profile, then the start command, in /home/vcap/app.
    command: ['/bin/sh', '-c', LAUNCHER, 'kiln-launcher', SANDBOX_DROPLET_DIR, command],
    workingDir: `${SANDBOX_DROPLET_DIR}/app`,
    env,
    resources: res,
    volumeMounts: [{ name: 'home', mountPath: SANDBOX_DROPLET_DIR }],
  };
}

/** CF health checks as probes: a startup probe for CF's start timeout, then readiness and liveness (CF's interval). */
export function probes(check: HealthCheck, port: number): Pick<k8s.V1Container, 'startupProbe' | 'readinessProbe' | 'livenessProbe'> {
  if (check.type === 'process') return {};
  const action: k8s.V1Probe =
    check.type === 'http'
      ? { httpGet: { path: check.endpoint.startsWith('/') ? check.endpoint : `/${check.endpoint || ''}`, port } }
      : { tcpSocket: { port } };
  const timeoutSeconds = check.invocationTimeoutSeconds ?? 1;
  const startTimeout = check.timeoutSeconds ?? 60;
  const interval = check.type === 'http' ? (check.intervalSeconds ?? 10) : 10;
  return {
    startupProbe: { ...action, periodSeconds: 1, timeoutSeconds, failureThreshold: Math.max(1, startTimeout) },
    readinessProbe: { ...action, periodSeconds: 1, timeoutSeconds, failureThreshold: 1 },
    livenessProbe: { ...action, periodSeconds: interval, timeoutSeconds, failureThreshold: 1 },
  };
}

export function instancePod(spec: InstanceSpec, settings: ObjectSettings): k8s.V1Pod {
  const env = containerEnv(spec.env, spec.index, spec.memoryMb, APP_PORT);
  const main: k8s.V1Container = {
    ...launched(MAIN_CONTAINER, spec.command, settings, env, resources(spec.memoryMb, spec.diskMb)),
    ports: [{ name: 'http', containerPort: APP_PORT, protocol: 'TCP' }],
    ...probes(spec.healthCheck, APP_PORT),
  };
  // Sidecars share the pod's network and files as they share a container in CF; their usage counts against the app's.
  const sidecars = (spec.sidecars ?? []).map((s) => launched(sidecarContainerName(s.name), s.command, settings, env, {}));
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(spec),
      namespace: settings.namespace,
      labels: {
        [LABEL_MANAGED_BY]: MANAGED_BY,
        [LABEL_APP]: spec.appGuid,
        [LABEL_PROCESS]: spec.processGuid,
        [LABEL_VERSION]: hash(spec.version),
        [LABEL_INDEX]: String(spec.index),
      },
      annotations: {
        [ANNOTATION_INSTANCE]: spec.id,
        [ANNOTATION_VERSION]: spec.version,
        [ANNOTATION_PROCESS_TYPE]: spec.processType,
        [ANNOTATION_DROPLET_BLOB]: settings.dropletBlobKey,
        // Container names are DNS labels; the sidecars' own names (their log source) are kept here.
        ...(spec.sidecars?.length ? { [ANNOTATION_SIDECARS]: JSON.stringify(Object.fromEntries(spec.sidecars.map((s) => [sidecarContainerName(s.name), s.name]))) } : {}),
      },
    },
    spec: {
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: DEFAULT_GRACE_SECONDS,
      enableServiceLinks: false,
      automountServiceAccountToken: false,
      initContainers: [dropletInit(settings, spec.diskMb)],
      containers: [main, ...sidecars],
      volumes: [{ name: 'home', emptyDir: spec.diskMb > 0 ? { sizeLimit: `${spec.diskMb}Mi` } : {} }],
    },
  };
}

/** A task as a Job: one pod, never retried (CF runs a task once), kept after it finishes so its result can be read. */
export function taskJob(spec: TaskSpec, settings: ObjectSettings): k8s.V1Job {
  const labels = { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_APP]: spec.appGuid, [LABEL_TASK]: spec.id };
  const annotations = { [ANNOTATION_TASK_NAME]: spec.name ?? spec.id };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: jobName(spec.id), namespace: settings.namespace, labels, annotations },
    spec: {
      backoffLimit: 0,
      // Long enough for Kiln to read the result, short enough that finished tasks do not pile up.
      ttlSecondsAfterFinished: 3600,
      template: {
        metadata: { labels, annotations },
        spec: {
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: DEFAULT_GRACE_SECONDS,
          enableServiceLinks: false,
          automountServiceAccountToken: false,
          initContainers: [dropletInit(settings, spec.diskMb)],
          containers: [launched(MAIN_CONTAINER, spec.command, settings, containerEnv(spec.env, 0, spec.memoryMb, undefined), resources(spec.memoryMb, spec.diskMb))],
          volumes: [{ name: 'home', emptyDir: spec.diskMb > 0 ? { sizeLimit: `${spec.diskMb}Mi` } : {} }],
        },
      },
    },
  };
}

/**
 * Staging as a Job: Kiln's buildpack runner (`kiln stage-job`, src/staging/stage-job.ts) in the stack image, which
 * must therefore hold Kiln; it downloads its input and uploads the droplet by signed URL. Never retried: a failed
 * staging is reported as such, as CF does.
 */
export function stagingJob(
  run: StagingRun,
  settings: { namespace: string; stackImage: string; stagerCommand: string[]; inputUrl: string; dropletUrl: string },
): k8s.V1Job {
  const labels = { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_APP]: run.appGuid, [LABEL_BUILD]: run.buildGuid };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: stagingJobName(run.buildGuid), namespace: settings.namespace, labels },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: Math.ceil(run.timeoutMs / 1000),
      ttlSecondsAfterFinished: 600,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          enableServiceLinks: false,
          automountServiceAccountToken: false,
          containers: [
            {
              name: 'stager',
              image: settings.stackImage,
              command: settings.stagerCommand,
              env: [
                { name: 'KILN_STAGING_INPUT_URL', value: settings.inputUrl },
                { name: 'KILN_STAGING_DROPLET_URL', value: settings.dropletUrl },
                { name: 'TMPDIR', value: '/tmp/staging' },
              ],
              resources: resources(run.memoryMb, run.diskMb),
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp/staging' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: run.diskMb > 0 ? { sizeLimit: `${run.diskMb}Mi` } : {} }],
        },
      },
    },
  };
}
