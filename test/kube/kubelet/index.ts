import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { SubresourceRequest } from '../apiserver/index.ts';
import { PodRunner } from './pod-runner.ts';

export interface TestKubeletOptions {
  /** A kubeconfig for the API server (the kubelet goes through the API like a real one). */
  kubeconfig: string;
  nodeName?: string;
  /** Host TCP ports pods reach at 127.0.0.1:<port> (stand-ins for cluster Services, e.g. Kiln's API). */
  hostPorts?: number[];
  /** First container restart delay (doubles per restart, as the kubelet's CrashLoopBackOff; real: 10 s). */
  restartBackoffMs?: number;
  /**
   * Publishes pods' CPU and memory as `metrics.k8s.io/v1beta1` PodMetrics every `metricsIntervalMs` (like
   * metrics-server; served here through a CRD of that group, which the kubelet creates).
   */
  metrics?: boolean;
  metricsIntervalMs?: number;
}

/**
 * A test kubelet, like kwok but it really runs things (see README.md beside it). It is also the scheduler (binds
 * every unscheduled pod to itself) and the Job controller (one pod per Job, no retries beyond backoffLimit 0).
 */
export class TestKubelet {
  readonly nodeName: string;
  /** Host ports pods can reach (see the option); may be added to before pods start. */
  readonly hostPorts: number[];
  private readonly kc = new k8s.KubeConfig();
  private readonly core: k8s.CoreV1Api;
  private readonly batch: k8s.BatchV1Api;
  private readonly runners = new Map<string, PodRunner>();
  private readonly jobPods = new Set<string>();
  private readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'kubelet-'));
  private readonly ipPrefix = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}`;
  private nextIp = 2;
  private pods: (k8s.Informer<k8s.V1Pod> & k8s.ObjectCache<k8s.V1Pod>) | undefined;
  private jobs: (k8s.Informer<k8s.V1Job> & k8s.ObjectCache<k8s.V1Job>) | undefined;
  private closed = false;
  /** Every pod this kubelet ran, by name (for tests). */
  readonly ran: string[] = [];

  constructor(private readonly opts: TestKubeletOptions) {
    this.nodeName = opts.nodeName ?? 'test-node';
    this.hostPorts = [...(opts.hostPorts ?? [])];
    this.kc.loadFromFile(opts.kubeconfig);
    this.core = this.kc.makeApiClient(k8s.CoreV1Api);
    this.batch = this.kc.makeApiClient(k8s.BatchV1Api);
  }

  async start(): Promise<void> {
    await this.core
      .createNode({ body: { metadata: { name: this.nodeName }, status: { conditions: [{ type: 'Ready', status: 'True' }] } } })
      .catch(() => undefined);
    this.pods = k8s.makeInformer(this.kc, '/api/v1/pods', () => this.core.listPodForAllNamespaces());
    this.jobs = k8s.makeInformer(this.kc, '/apis/batch/v1/jobs', () => this.batch.listJobForAllNamespaces());
    const onPod = (pod: k8s.V1Pod) => void this.podChanged(pod).catch(() => undefined);
    this.pods.on('add', onPod);
    this.pods.on('update', onPod);
    this.pods.on('delete', (pod) => {
      const runner = this.runners.get(pod.metadata?.uid ?? '');
      if (runner) void runner.terminate(0, false);
      this.runners.delete(pod.metadata?.uid ?? '');
    });
    const onJob = (job: k8s.V1Job) => void this.jobChanged(job).catch(() => undefined);
    this.jobs.on('add', onJob);
    this.jobs.on('update', onJob);
    for (const inf of [this.pods, this.jobs] as Array<k8s.Informer<k8s.KubernetesObject>>) {
      inf.on('error', () => {
        if (!this.closed) setTimeout(() => void inf.start().catch(() => undefined), 500);
      });
    }
    await Promise.all([this.pods.start(), this.jobs.start()]);
    if (this.opts.metrics) await this.startMetrics();
  }

  private metricsTimer: NodeJS.Timeout | undefined;
  private readonly cpuSamples = new Map<string, { at: number; cpuSeconds: number }>();

  private async startMetrics(): Promise<void> {
    const ext = this.kc.makeApiClient(k8s.ApiextensionsV1Api);
    await ext
      .createCustomResourceDefinition({
        body: {
          metadata: { name: 'pods.metrics.k8s.io' },
          spec: {
            group: 'metrics.k8s.io',
            scope: 'Namespaced',
            names: { kind: 'PodMetrics', plural: 'pods', singular: 'podmetrics', listKind: 'PodMetricsList' },
            versions: [{ name: 'v1beta1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } } }],
          },
        },
      })
      .catch(() => undefined);
    const custom = this.kc.makeApiClient(k8s.CustomObjectsApi);
    const tick = async () => {
      for (const runner of this.runners.values()) {
        const md = runner.pod.metadata!;
        const now = Date.now();
        const containers = runner.usage().map((u) => {
          const key = `${md.uid}/${u.name}`;
          const prev = this.cpuSamples.get(key);
          this.cpuSamples.set(key, { at: now, cpuSeconds: u.cpuSeconds });
          const cores = prev && now > prev.at ? Math.max(0, (u.cpuSeconds - prev.cpuSeconds) / ((now - prev.at) / 1000)) : 0;
          return { name: u.name, usage: { cpu: `${Math.round(cores * 1e9)}n`, memory: `${Math.round(u.memBytes / 1024)}Ki` } };
        });
        if (containers.length === 0) continue;
        const body = { apiVersion: 'metrics.k8s.io/v1beta1', kind: 'PodMetrics', metadata: { name: md.name!, namespace: md.namespace! }, timestamp: new Date(now).toISOString(), window: '1s', containers };
        const base = { group: 'metrics.k8s.io', version: 'v1beta1', namespace: md.namespace!, plural: 'pods', name: md.name! };
        await custom
          .patchNamespacedCustomObject({ ...base, body }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch))
          .catch(() => custom.createNamespacedCustomObject({ ...base, body }))
          .catch(() => undefined);
      }
      if (!this.closed) this.metricsTimer = setTimeout(() => void tick(), this.opts.metricsIntervalMs ?? 1000);
    };
    void tick();
  }

  /** Serves `pods/log` (pass to startApiServer's `subresources`). */
  serveSubresource = async (sub: SubresourceRequest, _req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    if (sub.resource !== 'pods' || sub.subresource !== 'log') return false;
    const pod = this.pods?.get(sub.name, sub.namespace);
    const runner = pod ? this.runners.get(pod.metadata?.uid ?? '') : undefined;
    const book = runner?.logOf(sub.query.get('container') ?? undefined, sub.query.get('previous') === 'true');
    if (!book) return false;
    const since = sub.query.get('sinceTime') ? new Date(sub.query.get('sinceTime')!).getTime() : 0;
    const stamps = sub.query.get('timestamps') === 'true';
    const fmt = (l: { at: Date; text: string }) => `${stamps ? `${l.at.toISOString()} ` : ''}${l.text}\n`;
    res.writeHead(200, { 'content-type': 'text/plain' });
    for (const l of book.lines) if (l.at.getTime() >= since) res.write(fmt(l));
    if (sub.query.get('follow') !== 'true' || book.done) {
      res.end();
      return true;
    }
    const stop = book.follow((l) => {
      if (l) res.write(fmt(l));
      else res.end();
    });
    res.on('close', stop);
    return true;
  };

  async stop(): Promise<void> {
    this.closed = true;
    if (this.metricsTimer) clearTimeout(this.metricsTimer);
    await Promise.all([this.pods?.stop(), this.jobs?.stop()]);
    await Promise.all([...this.runners.values()].map((r) => r.terminate(0, false)));
    this.runners.clear();
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  private async podChanged(pod: k8s.V1Pod): Promise<void> {
    if (this.closed) return;
    const md = pod.metadata!;
    if (!pod.spec?.nodeName) {
      // Scheduler: bind to this node (a real scheduler posts pods/binding; the effect is spec.nodeName).
      await this.core.patchNamespacedPod(
        { name: md.name!, namespace: md.namespace!, body: { spec: { nodeName: this.nodeName } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      return;
    }
    if (pod.spec.nodeName !== this.nodeName) return;
    let runner = this.runners.get(md.uid!);
    if (md.deletionTimestamp) {
      if (runner) void runner.terminate(md.deletionGracePeriodSeconds ?? 30);
      else await this.finalize(pod).catch(() => undefined);
      return;
    }
    if (runner) {
      runner.pod = pod;
      return;
    }
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return;
    runner = new PodRunner(pod, `${this.ipPrefix}.${this.nextIp++}`, {
      nodeName: this.nodeName,
      root: this.root,
      hostPorts: [...this.hostPorts],
      restartBackoffMs: this.opts.restartBackoffMs ?? 10_000,
      writeStatus: (p, status) => this.writeStatus(p, status),
      finalize: (p) => this.finalize(p),
    });
    this.runners.set(md.uid!, runner);
    this.ran.push(md.name!);
    await runner.run();
  }

  private async writeStatus(pod: k8s.V1Pod, status: k8s.V1PodStatus): Promise<void> {
    const md = pod.metadata!;
    await this.core.patchNamespacedPodStatus(
      { name: md.name!, namespace: md.namespace!, body: { status } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const owner = md.ownerReferences?.find((o) => o.kind === 'Job' && o.controller);
    if (owner && (status.phase === 'Succeeded' || status.phase === 'Failed')) await this.jobFinished(md.namespace!, owner.name, status);
  }

  private async finalize(pod: k8s.V1Pod): Promise<void> {
    const md = pod.metadata!;
    this.runners.delete(md.uid!);
    // The uid precondition: a stale event must never delete a newer pod of the same name.
    await this.core.deleteNamespacedPod({ name: md.name!, namespace: md.namespace!, gracePeriodSeconds: 0, body: { preconditions: { uid: md.uid! } } }).catch(() => undefined);
  }

  // ---- Job controller (one pod per Job; backoffLimit 0 semantics: the first failed pod fails the Job)

  private async jobChanged(job: k8s.V1Job): Promise<void> {
    const md = job.metadata!;
    if (md.deletionTimestamp || job.status?.startTime || this.jobPods.has(md.uid!)) return;
    this.jobPods.add(md.uid!);
    const template = job.spec!.template;
    const labels = { ...(template.metadata?.labels ?? {}), 'batch.kubernetes.io/job-name': md.name!, 'batch.kubernetes.io/controller-uid': md.uid! };
    await this.batch.patchNamespacedJobStatus(
      { name: md.name!, namespace: md.namespace!, body: { status: { startTime: new Date(), active: 1 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await this.core.createNamespacedPod({
      namespace: md.namespace!,
      body: {
        metadata: {
          name: `${md.name}-${randomBytes(3).toString('hex').slice(0, 5)}`,
          labels,
          annotations: template.metadata?.annotations ?? {},
          ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: md.name!, uid: md.uid!, controller: true, blockOwnerDeletion: true }],
        },
        spec: template.spec!,
      },
    });
  }

  private async jobFinished(namespace: string, name: string, status: k8s.V1PodStatus): Promise<void> {
    const ok = status.phase === 'Succeeded';
    const at = new Date();
    await this.batch.patchNamespacedJobStatus(
      {
        name,
        namespace,
        body: {
          status: {
            active: 0,
            ...(ok ? { succeeded: 1, completionTime: at } : { failed: 1 }),
            conditions: [
              ok
                ? { type: 'Complete', status: 'True', lastTransitionTime: at }
                : { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit', lastTransitionTime: at },
            ],
          },
        },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    ).catch(() => undefined);
  }
}
