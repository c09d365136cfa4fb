import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { GitDeployer } from '../gitops/git-apps.ts';
import type { GitCredentials } from '../gitops/git-source.ts';
import { KUBE_SYNC_PRINCIPAL_GUID } from '../domain/declared.ts';
import type { Principal } from '../domain/principal.ts';
import { ADMIN_SCOPES } from '../identity/identity-service.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { Access } from '../services/access.ts';
import type { Ctx } from '../services/context.ts';
import type { Store } from '../store/store.ts';
import { isStale, KubeClient, loadKubeConfig, type KubeObject, type Plural } from './kube-client.ts';
import { reconcileApp, reconcileOrganization, reconcileSpace, type Outcome } from './reconcile.ts';
import { reconcileGitSource } from './reconcile-gitsource.ts';
import { reconcileRoute } from './reconcile-route.ts';
import { reconcileServiceBinding } from './reconcile-service-binding.ts';
import { reconcileServiceInstance } from './reconcile-service-instance.ts';

/**
 * The CRD sync controller: Organization, Space, App, Route, ServiceInstance and ServiceBinding resources in a
 * Kubernetes API server become desired state in Kiln's store through the same services the CF API uses
 * (createOrganization, createSpace, applyManifest, deleteApp, createRoute, createServiceInstance…), and what Kiln knows about them (guid, conditions, instances, URL) is written back
 * to their status.
 *
 * Crash safety: nothing is remembered between reconciles. The resource's `status.observedGeneration` says
 * which generation was applied; the CF app's `kiln.dev/resource` annotation says which resource owns it; a
 * finalizer on the resource keeps it until Kiln has deleted what it made. Kiln stopping (or this controller
 * being switched off) deletes nothing: only a resource's `deletionTimestamp` does.
 *
 * Events come from client-node informers; a key is reconciled by one worker at a time, repeated events
 * coalesce, and every resource is re-reconciled every `resyncMs` (that is how status follows Kiln's own
 * reconcilers, whose condition writes do not reach the change feed).
 */
export interface KubeSyncOptions {
  store: Store;
  log: Logger;
  /** A kubeconfig path, or `in-cluster`. */
  kubeconfig: string;
  /** Watch Apps in this namespace only; undefined watches all. */
  namespace?: string;
  resyncMs: number;
  runtime?: Runtime;
  /** Deploys apps whose `source.git` names a repository; without it such apps report `SourceReady=False`. */
  git?: GitDeployer;
  /** Named git credentials (KILN_GIT_CREDENTIALS_FILE) for GitSource resources' `credential`. */
  gitCredentials?: (name: string) => GitCredentials | undefined;
}

const KINDS: { plural: Plural; namespaced: boolean }[] = [
  { plural: 'organizations', namespaced: false },
  { plural: 'spaces', namespaced: false },
  { plural: 'apps', namespaced: true },
  { plural: 'routes', namespaced: true },
  { plural: 'serviceinstances', namespaced: true },
  { plural: 'servicebindings', namespaced: true },
  { plural: 'gitsources', namespaced: true },
];

/** Kinds that name others by CF name: a change to one of the left may unblock the kinds on the right. */
const DEPENDENTS: Partial<Record<Plural, Plural[]>> = {
  organizations: ['spaces', 'apps', 'routes', 'serviceinstances', 'servicebindings', 'gitsources'],
  spaces: ['apps', 'routes', 'serviceinstances', 'servicebindings', 'gitsources'],
  apps: ['routes', 'servicebindings'],
  serviceinstances: ['servicebindings'],
};

/** Store tables whose changes can change an App's status. */
const WAKES_APPS = new Set(['apps', 'processes', 'jobs', 'droplets', 'revisions', 'routes', 'route_destinations', 'deployments']);
/** Store tables whose changes can change a ServiceInstance's or ServiceBinding's status (async operations). */
const WAKES_SERVICES = new Set(['service_instances', 'service_credential_bindings', 'jobs']);

const SYNC_PRINCIPAL: Principal = {
  guid: KUBE_SYNC_PRINCIPAL_GUID,
  username: 'kube-sync',
  origin: null,
  email: null,
  isClient: true,
  scopes: new Set(ADMIN_SCOPES),
};

export class KubeSync {
  private readonly client: KubeClient;
  private readonly informers = new Map<Plural, k8s.Informer<k8s.KubernetesObject> & k8s.ObjectCache<k8s.KubernetesObject>>();
  private readonly queued = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly active = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly failures = new Map<string, number>();
  private stopped = false;
  private draining = false;
  readonly ctx: Ctx;

  constructor(private readonly opts: KubeSyncOptions) {
    this.client = new KubeClient(loadKubeConfig(opts.kubeconfig), opts.namespace);
    this.ctx = { store: opts.store, access: new Access(opts.store.db, SYNC_PRINCIPAL), principal: SYNC_PRINCIPAL };
  }

  async start(): Promise<void> {
    for (const { plural, namespaced } of KINDS) {
      const inf = this.client.informer(plural, namespaced);
      const onChange = (obj: k8s.KubernetesObject) => {
        this.enqueue(keyOf(plural, obj));
        // A new or changed org, space, app or instance may unblock the resources that name it.
        const dependents = DEPENDENTS[plural];
        if (dependents) this.enqueueAll(dependents);
      };
      inf.on('add', onChange);
      inf.on('update', onChange);
      inf.on('delete', onChange);
      // client-node stops an informer on any error but 410; it is restarted with backoff (a missing CRD or an
      // unreachable API server must not spin); a minute without errors starts the backoff over.
      let failures = 0;
      let lastFailure = 0;
      inf.on('error', (err: unknown) => {
        if (this.stopped || (err as Error).name === 'AbortError') return;
        if (Date.now() - lastFailure > 60_000) failures = 0;
        lastFailure = Date.now();
        failures++;
        const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
        if (failures === 1 || failures % 10 === 0) this.opts.log.warn({ err, plural, retryInMs: delay }, 'kube sync: list/watch failed; retrying');
        this.later(() => void inf.start().catch(() => {}), delay);
      });
      this.informers.set(plural, inf);
    }
    // Not awaited: an API server that does not answer must not hold up Kiln's start.
    for (const inf of this.informers.values()) void inf.start().catch(() => {});
    // Kiln's own writes (an apply job finishing, a scale, a droplet set) refresh App status without waiting
    // for the resync; several in a row make one pass.
    this.opts.store.events.on('changes', this.onStoreChanges);
    const resync = setInterval(() => this.enqueueAll(KINDS.map((k) => k.plural)), this.opts.resyncMs);
    resync.unref();
    this.timers.add(resync);
    this.opts.log.info({ kubeconfig: this.opts.kubeconfig, namespace: this.opts.namespace ?? '(all)' }, 'kube sync started');
  }

  private readonly onStoreChanges = (changes: { kind: string }[]) => {
    const apps = changes.some((c) => WAKES_APPS.has(c.kind));
    const services = changes.some((c) => WAKES_SERVICES.has(c.kind));
    if (apps) this.wake.add('apps');
    if (services) for (const p of ['serviceinstances', 'servicebindings'] as const) this.wake.add(p);
    if (this.wake.size === 0 || this.wakeTimer) return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      const plurals = [...this.wake];
      this.wake.clear();
      this.enqueueAll(plurals);
    }, 100);
    this.wakeTimer.unref();
  };
  private readonly wake = new Set<Plural>();
  private wakeTimer: NodeJS.Timeout | undefined;

  async stop(): Promise<void> {
    this.stopped = true;
    this.opts.store.events.off('changes', this.onStoreChanges);
    clearTimeout(this.wakeTimer);
    for (const t of this.timers) clearTimeout(t);
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    for (let i = 0; i < 200 && (this.active.size > 0 || this.draining); i++) await new Promise((r) => setTimeout(r, 10));
  }

  private later(fn: () => void, ms: number) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  private enqueueAll(plurals: Plural[]) {
    for (const p of plurals) for (const o of this.informers.get(p)?.list() ?? []) this.enqueue(keyOf(p, o));
  }

  private enqueue(key: string) {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    this.queued.add(key);
    if (!this.draining) void this.drain();
  }

  /** One worker: keys are reconciled one at a time, in the order they were queued. */
  private async drain() {
    this.draining = true;
    try {
      while (!this.stopped && this.queued.size > 0) {
        const key = this.queued.values().next().value!;
        this.queued.delete(key);
        this.active.add(key);
        try {
          const outcome = await this.reconcile(key);
          this.failures.delete(key);
          if (outcome?.requeueAfterMs) this.later(() => this.enqueue(key), outcome.requeueAfterMs);
        } catch (err) {
          const n = (this.failures.get(key) ?? 0) + 1;
          this.failures.set(key, n);
          if (!isStale(err)) this.opts.log.warn({ err, key }, 'kube sync: reconcile failed');
          this.later(() => this.enqueue(key), Math.min(30_000, 100 * 2 ** Math.min(n, 9)));
        } finally {
          this.active.delete(key);
          if (this.dirty.delete(key)) this.queued.add(key);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async reconcile(key: string): Promise<Outcome | undefined> {
    const [plural, namespace, name] = key.split('/') as [Plural, string, string];
    const obj = this.informers.get(plural)?.get(name, namespace || undefined) as KubeObject | undefined;
    if (!obj) return undefined;
    const env = { ctx: this.ctx, client: this.client, runtime: this.opts.runtime, log: this.opts.log, git: this.opts.git };
    if (plural === 'organizations') return reconcileOrganization(env, obj);
    if (plural === 'spaces') return reconcileSpace(env, obj);
    if (plural === 'routes') return reconcileRoute(env, obj);
    if (plural === 'serviceinstances') return reconcileServiceInstance(env, obj);
    if (plural === 'servicebindings') return reconcileServiceBinding(env, obj);
    if (plural === 'gitsources') return reconcileGitSource(env, obj, this.opts.gitCredentials);
    return reconcileApp(env, obj);
  }
}

const keyOf = (plural: Plural, o: k8s.KubernetesObject) => `${plural}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
