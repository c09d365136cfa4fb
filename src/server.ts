import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import pino, { type Logger } from 'pino';
import type { Config } from './config/config.ts';
import { createApi } from './api/app.ts';
import type { Api } from './api/context.ts';
import { jobController } from './controllers/job-controller.ts';
import { ControllerManager } from './controllers/runtime/controller.ts';
import { identityRoutes } from './identity/http.ts';
import { IdentityService } from './identity/identity-service.ts';
import { seedPlatform } from './services/bootstrap.ts';
import { JobHandlers } from './services/jobs.ts';
import { registerJobHandlers } from './services/job-handlers.ts';
import { migrateToLatest, openDatabase } from './store/db.ts';
import { Store } from './store/store.ts';

export interface Kiln {
  config: Config;
  store: Store;
  identity: IdentityService;
  controllers: ControllerManager;
  app: Api;
  log: Logger;
  /** Set when the bootstrap admin's password was generated on this start. */
  generatedAdminPassword: string | undefined;
  stop(): Promise<void>;
}

/** Wires store, identity, controllers and API together (without listening); used by main and tests. */
export async function buildKiln(config: Config, opts: { log?: Logger; startControllers?: boolean } = {}): Promise<Kiln> {
  const log = opts.log ?? pino({ level: config.logLevel });
  const handle = openDatabase(config.database);
  const applied = await migrateToLatest(handle);
  if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
  const store = new Store(handle);
  await seedPlatform(store, config);

  const identity = new IdentityService({ store, config, log });
  const { generatedAdminPassword } = await identity.init();

  const jobs = new JobHandlers();
  registerJobHandlers(jobs, store);
  const controllers = new ControllerManager(store, log);
  controllers.register(jobController(store, jobs));
  let ready = false;
  if (opts.startControllers !== false) {
    await controllers.start();
    ready = true;
  }

  const app = createApi({ config, store, log, tokens: identity, jobs, rootRoutes: [identityRoutes(identity)], ready: () => ready });
  return {
    config,
    store,
    identity,
    controllers,
    app,
    log,
    generatedAdminPassword,
    async stop() {
      ready = false;
      await controllers.stop();
      await store.close();
    },
  };
}

export interface RunningKiln extends Kiln {
  server: ServerType;
  url: string;
}

/** Builds Kiln and listens on config.host:config.port (port 0 picks a free one). */
export async function startKiln(config: Config, opts: { log?: Logger } = {}): Promise<RunningKiln> {
  const kiln = await buildKiln(config, opts);
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: kiln.app.fetch, port: config.port, hostname: config.host }, () => resolve(s));
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${host}:${port}`;
  kiln.log.info({ url }, 'Kiln is listening');
  return {
    ...kiln,
    server,
    url,
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await kiln.stop();
    },
  };
}
