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
import { deploymentController } from './controllers/deployment-controller.ts';
import { DropletCache } from './controllers/droplet-cache.ts';
import { dropletCollector } from './controllers/droplet-collector.ts';
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
import { IdentityService } from './identity/identity-service.ts';
import { LazyInstanceIdentityCA } from './identity/instance-identity.ts';
import { apiLogLine } from './logs/api-log.ts';
import { logCacheRoutes } from './logs/log-cache-api.ts';
import { LogStore } from './logs/log-store.ts';
import { formatAccessLog } from './router/access-log.ts';
import { apiHostsOf, platformNamesOf } from './router/api-hosts.ts';
import { createFrontDoorServer } from './router/front-door.ts';
import { createMtlsServer, listenMtls } from './router/mtls-listener.ts';
import { Router } from './router/router.ts';
import { LocalRuntime } from './runtime/local/local-runtime.ts';
import { NOT_ISOLATED_WARNING, resolveSandbox } from './runtime/local/sandbox.ts';
import type { Runtime } from './runtime/runtime.ts';
import { bitsFor } from './services/blobs.ts';
import { stagingBuildpacks, sweepBuildpackBits } from './services/buildpacks.ts';
import { AUDIT_EVENT, type CommittedAudit } from './services/audit.ts';
import { seedPlatform } from './services/bootstrap.ts';
import { createDefaultTarget } from './services/default-target.ts';
import { JobHandlers } from './services/jobs.ts';
import { sandboxIdentity } from './services/sandbox-identity.ts';
import { registerJobHandlers } from './services/job-handlers.ts';
import { migrateToLatest, openDatabase } from './store/db.ts';
import { loadOrCreateSecretBox, type SecretBox } from './store/secret-box.ts';
import { Store } from './store/store.ts';
import { rewrapSecrets } from './store/rewrap-secrets.ts';

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
  stop(): Promise<void>;
}

/** Wires store, identity, controllers and API together (without listening); used by main and tests. */
export async function buildKiln(
  config: Config,
  opts: { log?: Logger; startControllers?: boolean; disabledControllers?: readonly string[] } = {},
): Promise<Kiln> {
  const log = opts.log ?? pino({ level: config.logLevel });
  // KILN_SANDBOX=bwrap without bubblewrap refuses to start here, before anything is opened.
  const sandbox = resolveSandbox(config.sandbox);
  const isRoot = process.getuid?.() === 0;
  if (sandbox.kind === 'none') log.warn({ KILN_SANDBOX: config.sandbox }, `WARNING: ${NOT_ISOLATED_WARNING}`);
  if (isRoot) await restrictDataDir(config.dataDir);
  const handle = openDatabase(config.database, { onIdleError: (err) => log.warn({ err }, 'an idle database connection was closed') });
  const applied = await migrateToLatest(handle);
  if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
  const store = new Store(handle);
  const secrets = await loadOrCreateSecretBox(config.dataDir, config.encryptionKey, config.previousEncryptionKeys);
  store.secrets = secrets;
  if (config.previousEncryptionKeys) {
    const resealed = await rewrapSecrets(store);
    if (resealed > 0) log.info({ resealed }, 'secrets re-sealed under the current encryption key');
  }
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
  const identityCa = new LazyInstanceIdentityCA(path.join(config.dataDir, 'instance-identity'), {
    lifetimeMs: config.instanceIdentityTtlSeconds * 1000,
  });
  const runtime = new LocalRuntime({
    dataDir: config.dataDir,
    host: '127.0.0.1',
    sandbox,
    credentials: identityCa,
    ...(identityFor ? { identityFor } : {}),
  });
  if (runtime.reaped.length > 0) log.warn({ count: runtime.reaped.length }, 'stopped instances left running by a previous Kiln process');
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
    onAccess: (entry) => {
      if (entry.appGuid) {
        logs.append({ sourceId: entry.appGuid, sourceType: 'RTR', instanceId: String(entry.appIndex ?? 0), type: 'OUT', payload: formatAccessLog(entry) });
      }
    },
  });
  const routing = new RoutingController(store, runtime, router, log);
  const droplets = new DropletCache(path.join(config.dataDir, 'droplets'), bits.blobstore);

  // The Runtime contract's optional image inspection, which the local runtime does not offer.
  const imageRuntime: Runtime = runtime;
  const jobs = new JobHandlers();
  const brokerSettings = { timeoutMs: config.brokerTimeoutSeconds * 1000, pollIntervalMs: config.brokerPollIntervalSeconds * 1000 };
  const brokerOps = registerJobHandlers(jobs, store, platformNamesOf(config), brokerSettings);
  // Kiln's OSBAPI extensions (issue 15): instance backups and plan definitions.
  const backupOps = registerBackupJobs(jobs, store, brokerSettings);
  registerPlanDefinitionJobs(jobs, store, brokerSettings);
  const controllers = new ControllerManager(store, log, { disabled: opts.disabledControllers ?? [], runtime });
  controllers.register(routing.reconciler());
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
    }),
  );
  await sweepBuildpackBits(store.db, bits);
  controllers.register(blobCollector(store, bits));
  controllers.register(buildpackCacheCollector(store, bits));
  let publicUrl = `http://${config.systemDomain}:${config.port}`;
  controllers.register(
    processController({
      store,
      runtime,
      droplets,
      log,
      cfApi: () => publicUrl,
      drain: (id) => routing.drain(id),
    }),
  );
  controllers.register(deploymentController({ store, runtime, log, routed: () => routing.schedule() }));
  controllers.register(taskController({ store, runtime, droplets, log, cfApi: () => publicUrl }));
  controllers.register(dropletCollector({ store, runtime, droplets, log }));
  let ready = false;
  // The Kubernetes front door (KILN_KUBECONFIG): custom resources → desired state, Kiln → their status.
  const git = new GitDeployer({ bits, cacheDir: path.join(config.dataDir, 'git'), pollMs: config.gitPollMs, log });
  // GitSources (/kiln/v1/gitsources): repositories of YAML kept applied, with prune; acts as an admin principal.
  const gitPrincipal = { guid: 'kiln-gitsource', username: 'gitsource', origin: null, email: null, isClient: true, scopes: new Set(ADMIN_SCOPES) };
  const gitSources = new GitSourceSync({
    ctx: { store, access: new Access(store.db, gitPrincipal), principal: gitPrincipal },
    cache: git.cache,
    pollMs: config.gitPollMs,
    log,
    credentials: credentialRegistry(config.gitCredentialsFile),
  });
  const kube = config.kube && opts.startControllers !== false ? new KubeSync({ store, log, runtime, git, ...config.kube }) : undefined;
  if (opts.startControllers !== false) {
    await controllers.start();
    await kube?.start();
    gitSources.start();
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
    observed: observedFromRuntime(runtime),
    metrics: [controllers.metrics.registry],
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
    gitSources,
    async stop() {
      ready = false;
      await kube?.stop();
      gitSources.stop();
      await controllers.stop();
      await runtime.shutdown();
      router.close();
      await store.close();
    },
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
export async function startKiln(config: Config, opts: { log?: Logger } = {}): Promise<RunningKiln> {
  const kiln = await buildKiln(config, opts);
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
  const mtlsServer = await createMtlsServer({
    router: kiln.router,
    ca: await kiln.identityCa.get(),
    defaultNames: [...new Set([config.systemDomain, `*.${config.appsDomain}`, config.appsDomain, 'localhost', '127.0.0.1'])],
  });
  const auto = config.routerMtlsPort === 'auto';
  const mtlsPort = await listenMtls(mtlsServer, config.host, auto ? (config.port === 0 ? 0 : DEFAULT_MTLS_PORT) : (config.routerMtlsPort as number), auto);
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
