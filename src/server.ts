import { chmod, mkdir } from 'node:fs/promises';
import type http from 'node:http';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { Config } from './config/config.ts';
import { createApi } from './api/app.ts';
import type { Api } from './api/context.ts';
import { logAccess } from './api/log-access.ts';
import { blobCollector, buildController, buildpackCacheCollector } from './controllers/build-controller.ts';
import { bindingFilesController } from './controllers/binding-files-controller.ts';
import { deploymentController } from './controllers/deployment-controller.ts';
import { DropletCache } from './controllers/droplet-cache.ts';
import { dropletCollector } from './controllers/droplet-collector.ts';
import { rowCountCompactor } from './controllers/row-count-compactor.ts';
import { jobController } from './controllers/job-controller.ts';
import { brokerOperationController } from './controllers/broker-operation-controller.ts';
import { backupOperationController } from './controllers/backup-operation-controller.ts';
import { registerBackupJobs } from './services/service-backups.ts';
import { registerPlanDefinitionJobs } from './services/plan-definitions.ts';
import { observedFromRuntime } from './controllers/observed-instances.ts';
import { processController } from './controllers/process-controller.ts';
import { RoutingController } from './controllers/routing-controller.ts';
import { taskController } from './controllers/task-controller.ts';
import { ControllerManager } from './controllers/runtime/controller.ts';
import { identityRoutes } from './identity/http.ts';
import { GitDeployer } from './gitops/git-apps.ts';
import { credentialRegistry } from './gitops/credentials.ts';
import { GitSourceSync } from './gitops/git-source-sync.ts';
import { ADMIN_SCOPES } from './identity/identity-service.ts';
import { Access } from './services/access.ts';
import { KubeSync } from './kube/kube-sync.ts';
import { GITSOURCE_PRINCIPAL_GUID } from './domain/declared.ts';
import { IdentityService } from './identity/identity-service.ts';
import { LazyInstanceIdentityCA } from './identity/instance-identity.ts';
import { apiLogLine } from './logs/api-log.ts';
import { logCacheRoutes } from './logs/log-cache-api.ts';
import { LogStore } from './logs/log-store.ts';
import { rtrAccessLogger } from './router/access-log.ts';
import { apiHostsOf, platformNamesOf } from './router/api-hosts.ts';
import { createFrontDoorServer } from './router/front-door.ts';
import { createMtlsServer, listenMtls } from './router/mtls-listener.ts';
import { Router } from './router/router.ts';
import { NOT_ISOLATED_WARNING, resolveSandbox } from './runtime/local/sandbox.ts';
import { createRuntime, runtimeKilnUrl } from './runtime/create-runtime.ts';
import type { Runtime } from './runtime/runtime.ts';
import { bitsFor } from './lifecycle/blobs.ts';
import { stagingBuildpacks, sweepBuildpackBits } from './services/buildpacks.ts';
import { AUDIT_EVENT, type CommittedAudit } from './lifecycle/audit.ts';
import { recordAppUsage } from './services/app-usage-events.ts';
import { seedPlatform } from './services/bootstrap.ts';
import { createDefaultTarget } from './services/default-target.ts';
import { JobHandlers } from './lifecycle/jobs.ts';
import { sandboxIdentity } from './services/sandbox-identity.ts';
import { registerJobHandlers } from './services/job-handlers.ts';
import { migrateToLatest, openDatabase } from './store/db.ts';
import { ChangeNotifier } from './ha/change-notifier.ts';
import { LeaseLeader, PostgresLeader, SingleReplica, type ElectorCallbacks, type LeaderElector } from './ha/leader-election.ts';
import { claimSqliteFile } from './ha/single-replica.ts';
import { adoptDataDirKeys } from './ha/shared-dir.ts';
import { InstancePublisher, leaderOrPublished, listenInstances, PublishedInstances, type InstanceView } from './ha/instance-snapshot.ts';
import { loadKubeConfig } from './kube/kube-client.ts';
import { Gauge, Registry } from 'prom-client';
import fs from 'node:fs';
import { loadOrCreateSecretBox, type SecretBox } from './store/secret-box.ts';
import { Store } from './store/store.ts';
import { rewrapSecrets, sealEnvVarColumns } from './store/rewrap-secrets.ts';

export interface Kiln {
  config: Config;
  /** Signs instance identity credentials and the router's mTLS certificates (route policies); opened on first use. */
  identityCa: LazyInstanceIdentityCA;
  store: Store;
  identity: IdentityService;
  controllers: ControllerManager;
  runtime: Runtime;
  router: Router;
  /** Seals stored secrets (registry credentials) with KILN_ENCRYPTION_KEY or the data dir's generated key. */
  secrets: SecretBox;
  logs: LogStore;
  /** The GitSource reconciler (/kiln/v1/gitsources). */
  gitSources: GitSourceSync;
  app: Api;
  /** The API's public URL once listening (used for VCAP_APPLICATION.cf_api). */
  publicUrl: string;
  log: Logger;
  /** Set when the bootstrap admin's password was generated on this start. */
  generatedAdminPassword: string | undefined;
  /** Decides whether this replica runs the controllers (always, with SQLite). */
  elector: LeaderElector | undefined;
  stop(): Promise<void>;
}

export interface BuildOptions {
  log?: Logger;
  startControllers?: boolean;
  disabledControllers?: readonly string[];
  /**
   * Called after a replica that led lost the leadership and stopped its controllers and its instances; it never
   * campaigns again (`kiln serve` exits so that its supervisor starts a fresh follower).
   */
  onLeadershipLost?: (reason: string) => void;
}

/** Wires store, identity, controllers and API together (without listening); used by main and tests. */
export async function buildKiln(config: Config, opts: BuildOptions = {}): Promise<Kiln> {
  const log = opts.log ?? pino({ level: config.logLevel });
  // KILN_SANDBOX=bwrap without bubblewrap refuses to start here, before anything is opened.
  const sandbox = resolveSandbox(config.sandbox);
  const isRoot = process.getuid?.() === 0;
  if (sandbox.kind === 'none') log.warn({ KILN_SANDBOX: config.sandbox }, `WARNING: ${NOT_ISOLATED_WARNING}`);
  if (isRoot) await restrictDataDir(config.dataDir);
  // SQLite: exactly one replica. A second one against the same file refuses to start, naming the first.
  const releaseSqlite =
    config.database.kind === 'sqlite' && config.database.file !== ':memory:' && opts.startControllers !== false
      ? (fs.mkdirSync(path.dirname(config.database.file), { recursive: true }), claimSqliteFile(config.database.file))
      : undefined;
  adoptDataDirKeys(config.dataDir, config.sharedDir, log);
  const handle = openDatabase(config.database, { onIdleError: (err) => log.warn({ err }, 'an idle database connection was closed') });
  const applied = await migrateToLatest(handle);
  if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
  const store = new Store(handle);
  // App usage events are recorded by every write that touches processes or apps (services/app-usage-events.ts).
  store.beforeCommit.push(recordAppUsage);
  // In the shared dir: every replica must seal and open secrets with the same key.
  const secrets = await loadOrCreateSecretBox(config.sharedDir, config.encryptionKey, config.previousEncryptionKeys);
  store.secrets = secrets;
  if (config.previousEncryptionKeys) {
    const resealed = await rewrapSecrets(store);
    if (resealed > 0) log.info({ resealed }, 'secrets re-sealed under the current encryption key');
  }
  // App environment variables stored before they were sealed are sealed now (store/env-vars.ts).
  const sealedEnv = config.previousEncryptionKeys ? 0 : await sealEnvVarColumns(store);
  if (sealedEnv > 0) log.info({ sealed: sealedEnv }, 'app environment variables sealed at rest');
  await seedPlatform(store, config);

  const identity = new IdentityService({ store, config, log });
  const { generatedAdminPassword, createdAdmin } = await identity.init();
  if (createdAdmin && config.defaultTarget) {
    const made = await createDefaultTarget(store, createdAdmin, config.defaultTarget);
    log.info({ org: config.defaultTarget.org, space: config.defaultTarget.space, ...made }, 'created the default org and space');
  }

  const logs = new LogStore();
  // One blobstore per data dir, shared by the API, staging and the runtime's droplet cache.
  const bits = await bitsFor(config);
  const identityFor = sandbox.kind === 'bwrap' && sandbox.setprivPath ? (appGuid: string) => sandboxIdentity(store, appGuid) : undefined;
  // Outside every sandbox's binds: apps get their own credentials, never the CA's key.
  const identityCa = new LazyInstanceIdentityCA(path.join(config.sharedDir, 'instance-identity'), {
    lifetimeMs: config.instanceIdentityTtlSeconds * 1000,
  });
  let publicUrl = `http://${config.systemDomain}:${config.port}`;
  const runtime = await createRuntime(config, {
    sandbox,
    identityFor,
    credentials: identityCa,
    log,
    blobUrl: (key, ttl) => `${runtimeKilnUrl(config, publicUrl)}${bits.urls.sign(key, ttl)}`,
    blobUploadUrl: (key, ttl) => `${runtimeKilnUrl(config, publicUrl)}${bits.urls.signUpload(key, ttl)}`,
  });
  runtime.onLog((line) => {
    // The runtime's source type carries the index (APP/PROC/WEB/0); log-cache keeps it in instance_id.
    const slash = line.sourceType.lastIndexOf('/');
    const indexed = slash > 0 && /^\d+$/.test(line.sourceType.slice(slash + 1));
    logs.append({
      sourceId: line.appGuid,
      sourceType: indexed ? line.sourceType.slice(0, slash) : line.sourceType,
      instanceId: indexed ? line.sourceType.slice(slash + 1) : line.instance,
      type: line.stream === 'stderr' ? 'ERR' : 'OUT',
      payload: line.text,
    });
  });
  store.events.on(AUDIT_EVENT, (e: CommittedAudit) => {
    const line = apiLogLine(e);
    if (line) logs.append({ sourceId: e.target.guid, sourceType: 'API', instanceId: '0', type: 'OUT', payload: line });
  });
  const router = new Router({
    responseTimeoutMs: config.routerTimeoutSeconds * 1000,
    onAccess: rtrAccessLogger(logs),
  });
  // Several replicas (PostgreSQL): a follower reads the leader's published instances for stats and routing.
  const several = config.database.kind === 'postgres' && opts.startControllers !== false;
  const published = several ? new PublishedInstances(store, log, () => void routing.schedule()) : undefined;
  let publisher: InstancePublisher | undefined;
  const view: InstanceView = published ? leaderOrPublished(runtime, published, () => elector?.isLeader() ?? false) : runtime;
  const routing = new RoutingController(store, view, router, log);
  const droplets = new DropletCache(path.join(config.dataDir, 'droplets'), bits.blobstore);

  // The Runtime contract's optional image inspection, which the local runtime does not offer.
  const imageRuntime: Runtime = runtime;
  const jobs = new JobHandlers();
  const brokerSettings = { timeoutMs: config.brokerTimeoutSeconds * 1000, pollIntervalMs: config.brokerPollIntervalSeconds * 1000 };
  const brokerOps = registerJobHandlers(jobs, store, platformNamesOf(config), brokerSettings);
  // Kiln's OSBAPI extensions (issue 15): instance backups and plan definitions.
  const backupOps = registerBackupJobs(jobs, store, brokerSettings);
  registerPlanDefinitionJobs(jobs, store, brokerSettings);
  // On PostgreSQL every replica's commits are announced by NOTIFY, so the feed is only polled as a fallback.
  const controllers = new ControllerManager(store, log, {
    disabled: opts.disabledControllers ?? [],
    runtime,
    ...(config.database.kind === 'postgres' ? { pollIntervalMs: 10_000 } : {}),
  });
  // Routing fills this replica's own router table, so on PostgreSQL (several replicas) it runs on every replica,
  // leader or not, beside the leader's controllers; with SQLite the one replica runs it with the others.
  const everywhere =
    config.database.kind === 'postgres' && opts.startControllers !== false
      ? new ControllerManager(store, log, { disabled: opts.disabledControllers ?? [], runtime, metrics: controllers.metrics, pollIntervalMs: 10_000 })
      : undefined;
  (everywhere ?? controllers).register(routing.reconciler());
  if (everywhere) controllers.settleWith(everywhere);
  controllers.register(jobController(store, jobs));
  controllers.register(brokerOperationController(store, brokerOps));
  controllers.register(backupOperationController(store, backupOps));
  controllers.register(
    buildController(store, bits, logs, config, {
      resolveBuildpacks: (names, stack) => stagingBuildpacks(store.db, bits, names, stack),
      detectionCandidates: (stack) => stagingBuildpacks(store.db, bits, undefined, stack),
      sandbox,
      ...(identityFor ? { identityFor } : {}),
      secrets,
      // Runtimes that run container images let docker builds stage.
      ...(imageRuntime.inspectImage ? { inspectImage: (pull) => imageRuntime.inspectImage!(pull) } : {}),
      // Runtimes that run workloads elsewhere stage there too (Kubernetes: a Job).
      ...(runtime.runStaging ? { runStaging: runtime.runStaging.bind(runtime) } : {}),
    }),
  );
  await sweepBuildpackBits({ store }, bits);
  controllers.register(blobCollector(store, bits));
  controllers.register(buildpackCacheCollector(store, bits));
  controllers.register(
    processController({
      store,
      runtime,
      droplets,
      log,
      cfApi: () => publicUrl,
      drain: (id) => {
        const drained = routing.drain(id);
        publisher?.soon();
        return drained;
      },
    }),
  );
  controllers.register(deploymentController({ store, runtime, log, routed: () => routing.schedule() }));
  controllers.register(taskController({ store, runtime, droplets, log, cfApi: () => publicUrl }));
  controllers.register(bindingFilesController({ store, runtime, log }));
  controllers.register(dropletCollector({ store, runtime, droplets, log }));
  if (store.dialect === 'postgres') controllers.register(rowCountCompactor({ store, log }));
  let ready = false;
  // The Kubernetes front door (KILN_KUBECONFIG): custom resources → desired state, Kiln → their status.
  const git = new GitDeployer({ bits, cacheDir: path.join(config.dataDir, 'git'), pollMs: config.gitPollMs, allowLocal: config.gitAllowLocal, log });
  // GitSources (/kiln/v1/gitsources): repositories of YAML kept applied, with prune; acts as an admin principal.
  const gitPrincipal = { guid: GITSOURCE_PRINCIPAL_GUID, username: 'gitsource', origin: null, email: null, isClient: true, scopes: new Set(ADMIN_SCOPES) };
  const gitSources = new GitSourceSync({
    ctx: { store, access: new Access(store.db, gitPrincipal), principal: gitPrincipal },
    cache: git.cache,
    pollMs: config.gitPollMs,
    log,
    credentials: credentialRegistry(config.gitCredentialsFile),
  });
  const kube =
    config.kube && opts.startControllers !== false ? new KubeSync({ store, log, runtime, git, gitCredentials: credentialRegistry(config.gitCredentialsFile), ...config.kube }) : undefined;
  const leaderMetrics = new Registry();
  const leaderGauge = new Gauge({ name: 'kiln_leader', help: '1 on the replica running the controllers, else 0', registers: [leaderMetrics] });
  leaderGauge.set(0);
  let stopping = false;
  const callbacks: ElectorCallbacks = {
    onElected: async () => {
      await controllers.start();
      await kube?.start();
      gitSources.start();
      if (several) {
        publisher = new InstancePublisher({ store, runtime, replicaId: config.leader.replicaId, isDraining: (id) => routing.isDraining(id), log });
        await publisher.start();
      }
      leaderGauge.set(1);
    },
    onLost: async (reason) => {
      leaderGauge.set(0);
      await publisher?.stop();
      await kube?.stop();
      gitSources.stop();
      await controllers.stop();
      if (stopping) return;
      // A demoted replica's instances would run beside the ones the new leader starts (the local runtime's
      // instances are this process's children): they go with the leadership.
      await runtime.shutdown();
      opts.onLeadershipLost?.(reason);
    },
  };
  let elector: LeaderElector | undefined;
  let notifier: ChangeNotifier | undefined;
  let stopListening: (() => Promise<void>) | undefined;
  if (opts.startControllers !== false) {
    if (config.database.kind === 'sqlite') {
      elector = new SingleReplica(config.leader.replicaId, callbacks);
      await elector.start();
    } else {
      notifier = new ChangeNotifier(config.database.url, store, log);
      await notifier.start();
      stopListening = await listenInstances(
        config.database.url,
        {
          published: () => {
            if (!elector?.isLeader()) void published?.reload();
          },
          // A follower's API asked to restart an instance (terminate): only the leader's runtime can.
          restart: (id) => {
            if (elector?.isLeader()) runtime.restartInstance(id).catch((err: unknown) => log.warn({ err, id }, 'restarting an instance failed'));
          },
        },
        log,
      );
      await everywhere?.start();
      elector = electorFor(config, log, callbacks);
      // Resolves after the first attempt: a lone replica runs its controllers before buildKiln returns.
      await elector.start();
    }
    ready = true;
  }

  const app = createApi({
    config,
    store,
    log,
    tokens: identity,
    jobs,
    rootRoutes: [identityRoutes(identity), logCacheRoutes(logs, logAccess(store, identity))],
    ready: () => ready,
    isolation: {
      sandbox: sandbox.kind,
      ...(sandbox.kind === 'bwrap' ? { separate_uids: identityFor !== undefined } : { warning: NOT_ISOLATED_WARNING }),
    },
    observed: observedFromRuntime(view),
    metrics: [controllers.metrics.registry, leaderMetrics],
    ...(elector ? { leadership: leadershipOf(config.leader.replicaId, elector) } : {}),
    bits,
    secrets,
    logs,
    passwordLogin: async (username, password) => (await identity.passwordGrant(username, password)).access_token,
  });
  await routing.schedule();
  return {
    config,
    identityCa,
    store,
    identity,
    controllers,
    runtime,
    router,
    secrets,
    logs,
    app,
    log,
    get publicUrl() {
      return publicUrl;
    },
    set publicUrl(url: string) {
      publicUrl = url;
    },
    generatedAdminPassword,
    elector,
    gitSources,
    async stop() {
      ready = false;
      stopping = true;
      // Stops the controllers (if leading) before the claim is released.
      await elector?.stop();
      await notifier?.stop();
      await stopListening?.();
      await everywhere?.stop();
      await kube?.stop();
      gitSources.stop();
      await controllers.stop();
      await runtime.shutdown();
      router.close();
      await store.close();
      releaseSqlite?.();
    },
  };
}

/** A Lease when asked for, or by default when Kiln talks to a cluster (KILN_KUBECONFIG); else the advisory lock. */
function electorFor(config: Config, log: Logger, callbacks: ElectorCallbacks): LeaderElector {
  const timing = { leaseMs: config.leader.leaseMs, renewDeadlineMs: config.leader.renewDeadlineMs, retryMs: config.leader.retryMs };
  const url = config.database.kind === 'postgres' ? config.database.url : '';
  const useLease = config.leader.election === 'lease' || (config.leader.election === 'auto' && config.kube !== undefined);
  if (useLease) {
    const kubeconfig = loadKubeConfig(config.kube?.kubeconfig ?? 'in-cluster');
    const namespace = config.leader.leaseNamespace ?? inClusterNamespace() ?? config.kube?.namespace ?? 'default';
    return new LeaseLeader({ kubeconfig, namespace, name: config.leader.leaseName, replicaId: config.leader.replicaId, timing, log, ...callbacks });
  }
  return new PostgresLeader({ url, replicaId: config.leader.replicaId, timing, log, ...callbacks });
}

function inClusterNamespace(): string | undefined {
  try {
    return fs.readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** What /readyz says about leadership: this replica, the leader, and whether they are the same. */
function leadershipOf(replica: string, elector: LeaderElector) {
  return async () => {
    const leading = elector.isLeader();
    const leader = leading ? replica : await elector.leader().catch(() => undefined);
    return { replica, leader: leader ?? null, role: leading ? ('leader' as const) : ('follower' as const), election: elector.kind };
  };
}

/**
 * Kiln's data dir holds the signing key, the database and every app's files: nobody but Kiln's user may even
 * list it. Apps reach their own droplet only through the sandbox's bind mounts, which root sets up.
 */
async function restrictDataDir(dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
}

/** The mTLS listener's port when KILN_ROUTER_MTLS_PORT is unset (a free one when taken or when PORT is 0). */
export const DEFAULT_MTLS_PORT = 9443;

export interface RunningKiln extends Kiln {
  server: http.Server;
  url: string;
  /** The router's mTLS listener (routes that enforce route policies are reached here). */
  mtlsServer: https.Server;
  mtlsPort: number;
}

/** Builds Kiln and listens on config.host:config.port (port 0 picks a free one). */
export async function startKiln(config: Config, opts: BuildOptions = {}): Promise<RunningKiln> {
  const kiln = await buildKiln(config, opts);
  try {
    return await listenKiln(kiln, config);
  } catch (err) {
    // Its controllers already run: a Kiln that cannot listen would go on reconciling with no API (and keep the
    // process alive), so it stops before the error is reported.
    await kiln.stop().catch(() => undefined);
    throw err;
  }
}

async function listenKiln(kiln: Kiln, config: Config): Promise<RunningKiln> {
  // One port for the API and app traffic: requests whose Host is an app route go to the router.
  const server = createFrontDoorServer({
    api: { fetch: kiln.app.fetch },
    router: kiln.router,
    appsDomains: [config.appsDomain],
    apiHosts: [...apiHostsOf(config).names],
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${host}:${port}`;
  kiln.publicUrl = url;
  let mtlsServer: https.Server;
  let mtlsPort: number;
  try {
    mtlsServer = await createMtlsServer({
      router: kiln.router,
      ca: await kiln.identityCa.get(),
      defaultNames: [...new Set([config.systemDomain, `*.${config.appsDomain}`, config.appsDomain, 'localhost', '127.0.0.1'])],
    });
    const auto = config.routerMtlsPort === 'auto';
    mtlsPort = await listenMtls(mtlsServer, config.host, auto ? (config.port === 0 ? 0 : DEFAULT_MTLS_PORT) : (config.routerMtlsPort as number), auto);
  } catch (err) {
    server.closeAllConnections();
    server.close();
    throw err;
  }
  kiln.log.info({ url, mtlsUrl: `https://${host}:${mtlsPort}` }, 'Kiln is listening');
  const stopKiln = kiln.stop.bind(kiln);
  const running: RunningKiln = Object.assign(kiln, {
    server,
    url,
    mtlsServer,
    mtlsPort,
    async stop() {
      server.closeAllConnections();
      mtlsServer.closeAllConnections();
      await Promise.all([
        new Promise<void>((resolve) => server.close(() => resolve())),
        new Promise<void>((resolve) => mtlsServer.close(() => resolve())),
      ]);
      await stopKiln();
    },
  });
  return running;
}
