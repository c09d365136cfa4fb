import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import * as k8s from '@kubernetes/client-node';
import { sidecarLogSource } from '../local/instance.ts';
import { TASK_CANCELLED_REASON } from '../local/task.ts';
import type { InstanceSpec, InstanceStats, InstanceStatus, LogLine, Runtime, StagingRun, TaskSpec, TaskStatus } from '../runtime.ts';
import {
  ANNOTATION_SIDECARS,
  ANNOTATION_DROPLET_BLOB,
  ANNOTATION_INSTANCE,
  ANNOTATION_PROCESS_TYPE,
  DEFAULT_GRACE_SECONDS,
  DROPLET_INIT_CONTAINER,
  LABEL_APP,
  LABEL_BUILD,
  LABEL_INDEX,
  LABEL_MANAGED_BY,
  LABEL_TASK,
  MAIN_CONTAINER,
  MANAGED_BY,
  instancePod,
  jobName,
  podName,
  stagingJob,
  stagingJobName,
  taskJob,
} from './objects.ts';
import { ANNOTATION_CANCELLED, instanceStatus, processSource, taskSource, taskStatus } from './status.ts';
import { Listeners } from '../listeners.ts';

export interface KubernetesRuntimeOptions {
  /** A kubeconfig file, or `in-cluster` for the pod's service account. */
  kubeconfig: string;
  /** Where every pod and Job of Kiln's apps lives (created when missing). */
  namespace: string;
  /** Image of the droplet download and of the app's containers (CF's stack: cflinuxfs4 or alike, with sh, tar, curl). */
  stackImage: string;
  /** A URL pods can download a blob from, valid for `ttlSeconds` (Kiln's signed `/blobs/` URLs). */
  blobUrl: (blobKey: string, ttlSeconds: number) => string;
  /** A URL a staging pod uploads a blob to with PUT, valid for `ttlSeconds`. */
  blobUploadUrl?: (blobKey: string, ttlSeconds: number) => string;
  /** Command of a staging Job's container (Kiln's buildpack runner in the stack image); default `kiln stage-job`. */
  stagerCommand?: string[];
  /** Grace period of stopInstance/cancelTask when none is given (default CF's 10 s). */
  graceMs?: number;
  /** How long a finished task's Job stays after Kiln has read its result (default 60 s). */
  finishedJobKeepMs?: number;
}

type ChangeEvent = { kind: 'instance' | 'task'; id: string; appGuid: string };
type Informer<T extends k8s.KubernetesObject> = k8s.Informer<T> & k8s.ObjectCache<T>;

/** The signed droplet URL only has to outlive the pod's start (the init container runs once per pod). */
const DROPLET_URL_TTL_SECONDS = 15 * 60;
const POLL_MS = 50;
/** How long a finished task's Job is kept after Kiln has seen it finish. */
const FINISHED_JOB_KEEP_MS = 60_000;

/**
 * Runs instances and tasks on Kubernetes.
 *
 * **Pods owned by Kiln, not a StatefulSet per process version.** Kiln is already the reconciler of instances: the
 * process controller decides which (process, version, index) slots exist and the deployment controller rolls versions
 * one instance at a time. A StatefulSet would be a second controller over the same slots — its own rollout, its own
 * ordinal management, a scale subresource to keep in step — and could only stop the highest ordinals, while Kiln stops
 * specific slots (a rolling deploy drains old-version indexes, `cf restart-app-instance` one index). A pod per slot,
 * named after (process, version hash, index), gives CF's stable `CF_INSTANCE_INDEX` directly: the index is part of the
 * name and labels, and a restarted container keeps its pod. Kubernetes still restarts crashed containers in place
 * (restartPolicy Always, with its back-off), which is what Diego does for a crashed instance.
 *
 * **Kiln reads the cluster, it does not remember.** Instance and task state come from pod and Job informers (listed
 * before the controllers start); `shutdown` only stops watching, so restarting Kiln never touches a running pod.
 * Deleting an app stops its instances through the process controller, and a task's Job owns its pod (deleted with
 * it, and by the Job's TTL after it finishes).
 */
export class KubernetesRuntime implements Runtime {
  private readonly kc: k8s.KubeConfig;
  private readonly core: k8s.CoreV1Api;
  private readonly batch: k8s.BatchV1Api;
  private readonly custom: k8s.CustomObjectsApi;
  private readonly pods: Informer<k8s.V1Pod>;
  private readonly jobs: Informer<k8s.V1Job>;
  private readonly changeListeners = new Listeners<ChangeEvent>();
  private readonly logListeners = new Listeners<LogLine>();
  /** Log streams being followed, by pod uid / container / restart count. */
  private readonly streams = new Map<string, (() => void) | undefined>();
  /** Incarnation ends already told as CELL lines (pod uid / finishedAt). */
  private readonly toldExits = new Set<string>();
  /** Tasks launched but not yet seen by the Job informer, and results of tasks whose Job is gone. */
  private readonly taskResults = new Map<string, TaskStatus>();
  private readonly graceMs: number;
  private readonly startedAt = Date.now();
  private metricsAvailable: boolean | undefined;
  private metricsCheckedAt: number | undefined;
  /** Finished Jobs waiting for collection. */
  private readonly collecting = new Set<string>();
  /** Output listeners of staging runs, by build guid. */
  private readonly stagingLines = new Map<string, { onLine: (text: string, stream: 'stdout' | 'stderr') => void; ended: Set<string> }>();
  private closed = false;

  constructor(private readonly options: KubernetesRuntimeOptions) {
    this.kc = new k8s.KubeConfig();
    if (options.kubeconfig === 'in-cluster') this.kc.loadFromCluster();
    else this.kc.loadFromFile(options.kubeconfig);
    this.core = this.kc.makeApiClient(k8s.CoreV1Api);
    this.batch = this.kc.makeApiClient(k8s.BatchV1Api);
    this.custom = this.kc.makeApiClient(k8s.CustomObjectsApi);
    this.graceMs = options.graceMs ?? DEFAULT_GRACE_SECONDS * 1000;
    const ns = options.namespace;
    const selector = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
    this.pods = k8s.makeInformer(this.kc, `/api/v1/namespaces/${ns}/pods`, () => this.core.listNamespacedPod({ namespace: ns, labelSelector: selector }), selector);
    this.jobs = k8s.makeInformer(this.kc, `/apis/batch/v1/namespaces/${ns}/jobs`, () => this.batch.listNamespacedJob({ namespace: ns, labelSelector: selector }), selector);
  }

  /** Creates the namespace when missing and lists what runs there; call before the controllers start. */
  async start(): Promise<void> {
    try {
      await this.core.createNamespace({ body: { metadata: { name: this.options.namespace, labels: { [LABEL_MANAGED_BY]: MANAGED_BY } } } });
    } catch (err) {
      // 409: it exists; 403: Kiln may not create namespaces, so someone made it for Kiln.
      if (!hasCode(err, 409, 403)) throw err;
    }
    this.watch(this.pods, (pod) => this.podChanged(pod));
    this.watch(this.jobs, (job) => this.jobChanged(job));
    await Promise.all([this.pods.start(), this.jobs.start()]);
  }

  async ensureInstance(spec: InstanceSpec): Promise<void> {
    this.assertOpen();
    if (!spec.droplet) throw new Error('the Kubernetes runtime needs the droplet blob of an instance');
    const name = podName(spec);
    const existing = this.pods.get(name, this.options.namespace);
    if (existing && !existing.metadata?.deletionTimestamp) return;
    if (existing) await this.waitGone(name, (existing.metadata?.deletionGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS) * 1000 + 10_000);
    const pod = instancePod(spec, this.settings(spec.droplet.blobKey));
    await this.createPod(pod);
  }

  async stopInstance(id: string, opts?: { graceMs?: number }): Promise<void> {
    const pod = this.podOf(id);
    if (!pod?.metadata?.name) return;
    const graceMs = opts?.graceMs ?? this.graceMs;
    await this.deletePod(pod.metadata.name, graceMs, pod.metadata.uid);
    await this.waitGone(pod.metadata.name, graceMs + 10_000);
  }

  /** Replaces the pod (same name, so the same index) with a fresh one, as `cf restart-app-instance` asks. */
  async restartInstance(id: string): Promise<void> {
    const pod = this.podOf(id);
    const name = pod?.metadata?.name;
    if (!pod || !name || pod.metadata?.deletionTimestamp) return;
    await this.deletePod(name, this.graceMs, pod.metadata?.uid);
    await this.waitGone(name, this.graceMs + 10_000);
    const blobKey = pod.metadata?.annotations?.[ANNOTATION_DROPLET_BLOB];
    const fresh: k8s.V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: this.options.namespace, labels: pod.metadata?.labels ?? {}, annotations: pod.metadata?.annotations ?? {} },
      spec: { ...pod.spec!, nodeName: undefined as unknown as string },
    };
    delete fresh.spec!.nodeName;
    // The old pod's droplet URL has expired by now; the new pod gets a new one.
    if (blobKey) this.withDropletUrl(fresh.spec!, this.options.blobUrl(blobKey, DROPLET_URL_TTL_SECONDS));
    await this.createPod(fresh);
  }

  listInstances(filter?: { processGuid?: string; appGuid?: string }): InstanceStatus[] {
    const out: InstanceStatus[] = [];
    for (const pod of this.pods.list(this.options.namespace)) {
      const status = instanceStatus(pod);
      if (!status) continue;
      if (filter?.processGuid !== undefined && status.processGuid !== filter.processGuid) continue;
      if (filter?.appGuid !== undefined && status.appGuid !== filter.appGuid) continue;
      out.push(status);
    }
    return out.sort((a, b) => a.processGuid.localeCompare(b.processGuid) || a.index - b.index || a.version.localeCompare(b.version));
  }

  /**
   * Uptime from the pod's status; CPU and memory from the metrics API (metrics-server) when the cluster serves it,
   * else zero. Disk use is not reported by Kubernetes per pod: zero.
   */
  async stats(id: string): Promise<InstanceStats | undefined> {
    const pod = this.podOf(id);
    if (!pod?.metadata?.name) return undefined;
    const main = pod.status?.containerStatuses?.find((c) => c.name === MAIN_CONTAINER);
    const started = main?.state?.running?.startedAt;
    const uptimeSeconds = started ? Math.max(0, Math.floor((Date.now() - new Date(started).getTime()) / 1000)) : 0;
    const usage = await this.podMetrics(pod.metadata.name);
    return { cpu: usage?.cpu ?? 0, memBytes: usage?.memBytes ?? 0, diskBytes: 0, uptimeSeconds };
  }

  async runTask(spec: TaskSpec): Promise<void> {
    this.assertOpen();
    if (this.jobs.get(jobName(spec.id), this.options.namespace) || this.taskResults.has(spec.id)) return;
    if (!spec.droplet) throw new Error('the Kubernetes runtime needs the droplet blob of a task');
    const job = taskJob(spec, this.settings(spec.droplet.blobKey));
    // Seen as RUNNING from now on, even before the informer hears of the Job.
    this.taskResults.set(spec.id, { id: spec.id, state: 'RUNNING' });
    try {
      await this.batch.createNamespacedJob({ namespace: this.options.namespace, body: job });
    } catch (err) {
      if (!hasCode(err, 409)) {
        this.taskResults.delete(spec.id);
        throw err;
      }
    }
  }

  /** Marks the Job cancelled (so it reads FAILED "task was cancelled" meanwhile) and deletes it with its pod. */
  async cancelTask(id: string): Promise<void> {
    const name = jobName(id);
    const job = this.jobs.get(name, this.options.namespace);
    if (!job) return;
    const current = taskStatus(id, job, this.taskPod(id));
    if (current.state !== 'RUNNING') return;
    await this.batch
      .patchNamespacedJob(
        { name, namespace: this.options.namespace, body: { metadata: { annotations: { [ANNOTATION_CANCELLED]: 'true' } } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      )
      .catch((err: unknown) => {
        if (!hasCode(err, 404)) throw err;
      });
    this.taskResults.set(id, { id, state: 'FAILED', failureReason: TASK_CANCELLED_REASON });
    const graceSeconds = Math.ceil(this.graceMs / 1000);
    await this.batch.deleteNamespacedJob({ name, namespace: this.options.namespace, propagationPolicy: 'Background', gracePeriodSeconds: graceSeconds }).catch((err: unknown) => {
      if (!hasCode(err, 404)) throw err;
    });
    const pod = this.taskPod(id);
    if (pod?.metadata?.name) {
      await this.deletePod(pod.metadata.name, this.graceMs, pod.metadata.uid);
      await this.waitGone(pod.metadata.name, this.graceMs + 10_000);
    }
  }

  /**
   * Runs staging as a Job and follows its pod's log into `onLine`; resolves once the Job finished and its log was read
   * to the end. The Job is deleted afterwards (its TTL is the backstop should Kiln stop meanwhile).
   */
  async runStaging(run: StagingRun, onLine: (text: string, stream: 'stdout' | 'stderr') => void): Promise<{ exitCode: number | null; reason?: string }> {
    this.assertOpen();
    if (!this.options.blobUploadUrl) throw new Error('the Kubernetes runtime was given no upload URLs for staging');
    const ttl = Math.ceil(run.timeoutMs / 1000) + 300;
    const name = stagingJobName(run.buildGuid);
    const listener = { onLine, ended: new Set<string>() };
    this.stagingLines.set(run.buildGuid, listener);
    try {
      const job = stagingJob(run, {
        namespace: this.options.namespace,
        stackImage: this.options.stackImage,
        stagerCommand: this.options.stagerCommand ?? ['kiln', 'stage-job'],
        inputUrl: this.options.blobUrl(run.inputBlobKey, ttl),
        dropletUrl: this.options.blobUploadUrl(run.dropletBlobKey, ttl),
      });
      try {
        await this.batch.createNamespacedJob({ namespace: this.options.namespace, body: job });
      } catch (err) {
        if (!hasCode(err, 409)) throw err;
      }
      const deadline = Date.now() + run.timeoutMs + 60_000;
      let doneAt: number | undefined;
      for (;;) {
        const current = this.jobs.get(name, this.options.namespace);
        const conditions = current?.status?.conditions ?? [];
        const done = conditions.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
        const pod = this.pods.list(this.options.namespace).find((p) => p.metadata?.labels?.[LABEL_BUILD] === run.buildGuid);
        const terminated = pod?.status?.containerStatuses?.[0]?.state?.terminated;
        // Finished, and the log stream of its container ended (so the outcome line has been read).
        if (done) doneAt ??= Date.now();
        // Should the log stream break, a finished Job is not waited on for long.
        if (done && (!pod?.metadata?.uid || listener.ended.has(pod.metadata.uid) || Date.now() - doneAt! > 5_000)) {
          return { exitCode: terminated?.exitCode ?? null, ...(done.type === 'Failed' ? { reason: done.message ?? done.reason ?? 'the staging Job failed' } : {}) };
        }
        if (Date.now() > deadline || this.closed) return { exitCode: null, reason: 'staging did not finish in time' };
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      this.stagingLines.delete(run.buildGuid);
      await this.batch.deleteNamespacedJob({ name, namespace: this.options.namespace, propagationPolicy: 'Background' }).catch(() => undefined);
    }
  }

  taskStatus(id: string): TaskStatus | undefined {
    const job = this.jobs.get(jobName(id), this.options.namespace);
    if (job) return taskStatus(id, job, this.taskPod(id));
    return this.taskResults.get(id);
  }

  onChange(listener: (event: ChangeEvent) => void): () => void {
    return this.changeListeners.add(listener);
  }

  onLog(listener: (line: LogLine) => void): () => void {
    return this.logListeners.add(listener);
  }

  /** Stops watching the cluster; pods and Jobs keep running (another Kiln, or this one restarted, reads them again). */
  async shutdown(): Promise<void> {
    this.closed = true;
    for (const stop of this.streams.values()) stop?.();
    this.streams.clear();
    await Promise.all([this.pods.stop(), this.jobs.stop()]);
  }

  // ---- internals

  private watch<T extends k8s.KubernetesObject>(informer: Informer<T>, onObject: (obj: T) => void): void {
    informer.on('add', onObject);
    informer.on('update', onObject);
    informer.on('delete', onObject);
    informer.on('error', () => {
      // The watch broke (API server restart, expired resource version): list and watch again.
      if (!this.closed) setTimeout(() => void informer.start().catch(() => undefined), 1000).unref();
    });
  }

  private settings(blobKey: string) {
    return { namespace: this.options.namespace, stackImage: this.options.stackImage, dropletUrl: this.options.blobUrl(blobKey, DROPLET_URL_TTL_SECONDS), dropletBlobKey: blobKey };
  }

  private withDropletUrl(spec: k8s.V1PodSpec, url: string): void {
    for (const c of spec.initContainers ?? []) {
      if (c.name !== DROPLET_INIT_CONTAINER) continue;
      c.env = (c.env ?? []).map((e) => (e.name === 'KILN_DROPLET_URL' ? { name: e.name, value: url } : e));
    }
  }

  private async createPod(pod: k8s.V1Pod): Promise<void> {
    try {
      await this.core.createNamespacedPod({ namespace: this.options.namespace, body: pod });
    } catch (err) {
      // Another pass (or another Kiln before a restart) already made it.
      if (!hasCode(err, 409)) throw err;
    }
  }

  /** Deletes that pod (its uid as precondition: never a newer pod of the same name), gracefully. */
  private async deletePod(name: string, graceMs: number, uid?: string): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({
        name,
        namespace: this.options.namespace,
        gracePeriodSeconds: Math.ceil(graceMs / 1000),
        ...(uid ? { body: { preconditions: { uid } } } : {}),
      });
    } catch (err) {
      // 404: gone already; 409: the name belongs to a newer pod now.
      if (!hasCode(err, 404, 409)) throw err;
    }
  }

  private podOf(id: string): k8s.V1Pod | undefined {
    for (const pod of this.pods.list(this.options.namespace)) if (pod.metadata?.annotations?.[ANNOTATION_INSTANCE] === id) return pod;
    return undefined;
  }

  private taskPod(id: string): k8s.V1Pod | undefined {
    return this.pods.list(this.options.namespace).find((p) => p.metadata?.labels?.[LABEL_TASK] === id);
  }

  /** Waits until the informer no longer has the pod (the kubelet finished stopping it), up to `timeoutMs`. */
  private async waitGone(name: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pods.get(name, this.options.namespace) && Date.now() < deadline && !this.closed) await new Promise((r) => setTimeout(r, POLL_MS));
  }

  private async podMetrics(name: string): Promise<{ cpu: number; memBytes: number } | undefined> {
    if (!(await this.metricsServed())) return undefined;
    try {
      const m = (await this.custom.getNamespacedCustomObject({ group: 'metrics.k8s.io', version: 'v1beta1', namespace: this.options.namespace, plural: 'pods', name })) as {
        containers?: Array<{ name: string; usage?: { cpu?: string; memory?: string } }>;
      };
      let cpu = 0;
      let memBytes = 0;
      for (const c of m.containers ?? []) {
        cpu += parseCpu(c.usage?.cpu ?? '0');
        memBytes += parseBytes(c.usage?.memory ?? '0');
      }
      // CF reports CPU as a fraction of one core, as metrics-server does.
      return { cpu, memBytes };
    } catch {
      // No sample for this pod yet (or the metrics API failed): zeros this time.
      return undefined;
    }
  }

  /** Whether the cluster serves the metrics API (metrics-server), asked through discovery every 5 minutes. */
  private async metricsServed(): Promise<boolean> {
    if (this.metricsCheckedAt !== undefined && Date.now() - this.metricsCheckedAt < 5 * 60_000) return this.metricsAvailable ?? false;
    this.metricsCheckedAt = Date.now();
    try {
      const groups = await this.kc.makeApiClient(k8s.ApisApi).getAPIVersions();
      this.metricsAvailable = groups.groups.some((g) => g.name === 'metrics.k8s.io');
    } catch {
      this.metricsAvailable = false;
    }
    return this.metricsAvailable;
  }

  private podChanged(pod: k8s.V1Pod): void {
    const md = pod.metadata;
    if (!md) return;
    const appGuid = md.labels?.[LABEL_APP] ?? '';
    const instance = md.annotations?.[ANNOTATION_INSTANCE];
    const task = md.labels?.[LABEL_TASK];
    if (!this.closed) this.followLogs(pod);
    if (instance) {
      this.tellExit(pod);
      this.changeListeners.emit({ kind: 'instance', id: instance, appGuid });
    } else if (task) {
      this.changeListeners.emit({ kind: 'task', id: task, appGuid });
    }
  }

  private jobChanged(job: k8s.V1Job): void {
    const id = job.metadata?.labels?.[LABEL_TASK];
    if (!id) return;
    const pod = this.taskPod(id);
    const status = taskStatus(id, job, pod);
    // Kept beyond the Job's life (TTL, cancel), so the controller still reads the result after the Job is gone.
    if (status.state !== 'RUNNING' || !this.taskResults.has(id) || this.taskResults.get(id)?.state === 'RUNNING') {
      if (!(this.taskResults.get(id)?.failureReason === TASK_CANCELLED_REASON)) this.taskResults.set(id, status);
    }
    if (status.state !== 'RUNNING' && job.metadata?.name && !job.metadata.deletionTimestamp) this.collectJob(job.metadata.name);
    this.changeListeners.emit({ kind: 'task', id, appGuid: job.metadata?.labels?.[LABEL_APP] ?? '' });
  }

  /**
   * Deletes a finished task's Job (and its pod) a while after Kiln has read its result, so finished tasks do not
   * outlive their app (the Job's TTL is the backstop should Kiln be down meanwhile).
   */
  private collectJob(name: string): void {
    if (this.collecting.has(name)) return;
    this.collecting.add(name);
    const timer = setTimeout(() => {
      void this.batch
        .deleteNamespacedJob({ name, namespace: this.options.namespace, propagationPolicy: 'Background' })
        .catch(() => undefined)
        .finally(() => this.collecting.delete(name));
    }, this.options.finishedJobKeepMs ?? FINISHED_JOB_KEEP_MS);
    timer.unref();
  }

  /** CELL lines as Diego writes them when an incarnation ends. */
  private tellExit(pod: k8s.V1Pod): void {
    const main = pod.status?.containerStatuses?.find((c) => c.name === MAIN_CONTAINER);
    const terminated = main?.lastState?.terminated ?? main?.state?.terminated;
    if (!terminated?.finishedAt) return;
    const key = `${pod.metadata?.uid}/${new Date(terminated.finishedAt).getTime()}`;
    if (this.toldExits.has(key)) return;
    this.toldExits.add(key);
    if (new Date(terminated.finishedAt).getTime() < this.startedAt - 1000) return;
    const index = pod.metadata?.labels?.[LABEL_INDEX] ?? '0';
    this.emitLine(pod, `CELL/${index}`, index, 'stdout', `Exit status ${terminated.exitCode}${terminated.reason === 'OOMKilled' ? ' (out of memory)' : ''}`);
  }

  /** Follows the log of every container incarnation once; lines from before this Kiln started are not replayed. */
  private followLogs(pod: k8s.V1Pod): void {
    const md = pod.metadata;
    if (!md?.name || !md.uid) return;
    const build = md.labels?.[LABEL_BUILD];
    const staging = build !== undefined ? this.stagingLines.get(build) : undefined;
    if (build !== undefined && !staging) return;
    const isTask = md.labels?.[LABEL_TASK] !== undefined;
    const index = isTask ? '0' : (md.labels?.[LABEL_INDEX] ?? '0');
    for (const status of pod.status?.containerStatuses ?? []) {
      const running = status.state?.running;
      const terminated = status.state?.terminated;
      const started = running?.startedAt ?? terminated?.startedAt;
      if (!started) continue;
      const key = `${md.uid}/${status.name}/${status.restartCount ?? 0}`;
      if (this.streams.has(key)) continue;
      this.streams.set(key, undefined);
      const source = isTask
        ? taskSource(pod)
        : status.name === MAIN_CONTAINER
          ? processSource(pod)
          : sidecarLogSource(md.annotations?.[ANNOTATION_PROCESS_TYPE] ?? 'web', sidecarName(md.annotations?.[ANNOTATION_SIDECARS], status.name));
      const sinceTime = new Date(started).getTime() < this.startedAt ? new Date(this.startedAt) : undefined;
      const line = (text: string) => (staging ? staging.onLine(text, 'stdout') : this.emitLine(pod, `${source}/${index}`, index, 'stdout', text));
      const ended = () => {
        if (staging && md.uid) staging.ended.add(md.uid);
      };
      const query = new URLSearchParams({ container: status.name, follow: 'true', ...(sinceTime ? { sinceTime: sinceTime.toISOString() } : {}) });
      this.followLog(`/api/v1/namespaces/${md.namespace ?? this.options.namespace}/pods/${md.name}/log?${query}`, line, ended)
        .then((stop) => {
          if (this.closed) stop();
          else if (this.streams.has(key)) this.streams.set(key, stop);
        })
        .catch(() => {
          this.streams.delete(key);
          ended();
        });
    }
  }

  /**
   * Follows one `pods/log` stream line by line until it ends (the container exited) or the returned function stops
   * it. Plain HTTP(S) with the kubeconfig's credentials, so a stopped stream is simply destroyed.
   */
  private async followLog(apiPath: string, onLine: (text: string) => void, onEnd: () => void): Promise<() => void> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig names no cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + apiPath);
    const opts: https.RequestOptions = { method: 'GET', hostname: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers: {} };
    await this.kc.applyToHTTPSOptions(opts);
    const secure = url.protocol === 'https:';
    if (!secure) delete opts.agent;
    const req = (secure ? https : http).request(opts, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        onEnd();
        return;
      }
      res.setEncoding('utf8');
      const lines = createInterface({ input: res, crlfDelay: Infinity });
      lines.on('line', onLine);
      lines.on('close', onEnd);
      res.on('error', () => lines.close());
    });
    req.on('error', onEnd);
    req.end();
    return () => req.destroy();
  }

  private emitLine(pod: k8s.V1Pod, sourceType: string, instance: string, stream: 'stdout' | 'stderr', text: string): void {
    this.logListeners.emit({ appGuid: pod.metadata?.labels?.[LABEL_APP] ?? '', sourceType, instance, stream, text, timestamp: Date.now() });
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('Kubernetes runtime is shut down');
  }
}

/** A sidecar's own name from the pod's annotation (container names are lowercased DNS labels). */
function sidecarName(annotation: string | undefined, container: string): string {
  try {
    const names = JSON.parse(annotation ?? '{}') as Record<string, string>;
    return names[container] ?? container.replace(/^sidecar-/, '');
  } catch {
    return container.replace(/^sidecar-/, '');
  }
}

function hasCode(err: unknown, ...codes: number[]): boolean {
  const code = (err as { code?: number; statusCode?: number })?.code ?? (err as { statusCode?: number })?.statusCode;
  return typeof code === 'number' && codes.includes(code);
}

/** Kubernetes quantities: `250m` CPU → 0.25 cores; `12345Ki` memory → bytes. */
export function parseCpu(q: string): number {
  if (q.endsWith('n')) return Number(q.slice(0, -1)) / 1e9;
  if (q.endsWith('u')) return Number(q.slice(0, -1)) / 1e6;
  if (q.endsWith('m')) return Number(q.slice(0, -1)) / 1e3;
  return Number(q) || 0;
}

export function parseBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  if (!m) return 0;
  const units: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? units[m[2]]! : 1);
}
