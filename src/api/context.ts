import type { Hono } from 'hono';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import type { Principal } from '../domain/principal.ts';
import type { Access } from '../services/access.ts';
import type { Ctx } from '../services/context.ts';
import type { Bits } from '../lifecycle/blobs.ts';
import type { JobHandlers } from '../lifecycle/jobs.ts';
import type { ObservedInstances } from '../lifecycle/instances.ts';
import type { SecretBox } from '../store/secret-box.ts';
import type { LogStore } from '../logs/log-store.ts';
import type { Store } from '../store/store.ts';
import type { Linker } from './cf/links.ts';

/** What the API needs from the identity provider: turning a bearer token into a caller. */
export interface TokenVerifier {
  verifyAccessToken(token: string): Promise<Principal>;
}

/** Everything route modules and services are built from. */
export interface AppDeps {
  config: Config;
  store: Store;
  log: Logger;
  tokens: TokenVerifier;
  jobs: JobHandlers;
  /** Extra routers mounted at the server root (the identity provider's UAA endpoints). */
  rootRoutes?: Hono[];
  /** Whether the controllers are running (for /readyz). */
  ready?: () => boolean;
  /** Leader election among replicas: /readyz names this replica and the leader. */
  leadership?: () => Promise<{ replica: string; leader: string | null; role: 'leader' | 'follower'; election: string }>;
  /** How apps are isolated, shown by /readyz (with a warning when they are not). */
  isolation?: { sandbox: 'bwrap' | 'none'; separate_uids?: boolean; warning?: string };
  /** The runtime's view of process instances (stats, terminate); absent → every instance reports DOWN. */
  observed?: ObservedInstances;
  /** More Prometheus registries to expose on /metrics (the controllers'). */
  metrics?: ReadonlyArray<{ metrics(): Promise<string> }>;
  /** Blobstore, resource cache and scratch space for packages/droplets; absent → created from config on first use. */
  bits?: Bits;
  /** Seals and opens stored secrets (registry credentials); required by the routes that store them. */
  secrets?: SecretBox;
  /** Recent app and staging logs (the Tsuru API's app-log and deploy output); absent → no log lines. */
  logs?: LogStore;
  /** A password login returning an access token (the Tsuru API's native login); absent → login answers 501. */
  passwordLogin?: (username: string, password: string) => Promise<string>;
}

export interface Env {
  Variables: {
    requestId: string;
    log: Logger;
    linker: Linker;
    principal: Principal;
    access: Access;
    /** The services context of an authenticated (or anonymous marketplace) caller, set by the authenticating middleware. */
    ctx: Ctx;
    /** The JSON text of a list page, left by renderList for the list cache. */
    listCacheBody: string | undefined;
    /** The route pattern of a list answered from the list cache, for metrics (the handler did not run). */
    cachedRoute: string | undefined;
  };
}

export type Api = Hono<Env>;
