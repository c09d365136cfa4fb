import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const ConfigSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(9000),
  HOST: z.string().min(1).default('0.0.0.0'),
  KILN_DATA_DIR: z.string().min(1).default('./.kiln'),
  DATABASE_URL: z
    .string()
    .refine((v) => v === '' || /^postgres(ql)?:\/\//.test(v) || /^sqlite:/.test(v), {
      message: 'must be a postgres:// URL or sqlite:<path>',
    })
    .optional(),
  KILN_SYSTEM_DOMAIN: z
    .string()
    .regex(/^[a-z0-9.-]+$/i, 'must be a DNS name')
    .default('localhost'),
  KILN_APPS_DOMAIN: z
    .string()
    .regex(/^[a-z0-9.-]+$/i, 'must be a DNS name')
    .default('apps.localhost'),
  KILN_ADMIN_USER: z.string().min(1).default('admin'),
  KILN_ADMIN_PASSWORD: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(logLevels).default('info'),
  KILN_TOKEN_TTL_SECONDS: z.coerce.number().int().min(120).default(3600),
  KILN_REFRESH_TOKEN_TTL_SECONDS: z.coerce.number().int().min(120).default(30 * 24 * 3600),
  /** Optional external identity provider whose tokens are accepted beside Kiln's own. */
  KILN_EXTERNAL_JWKS_URL: z.string().url().optional(),
  KILN_EXTERNAL_ISSUER: z.string().min(1).optional(),
  /** Largest package upload (the `bits` zip) accepted, in bytes. */
  KILN_MAX_PACKAGE_BYTES: z.coerce.number().int().min(1).default(1024 * 1024 * 1024),
  /** Largest JSON request body of the V3 API, in bytes (CC's nginx allows 1 MB outside uploads). */
  KILN_MAX_JSON_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  /** Bearer token /metrics asks for; unset leaves /metrics open (local use). */
  KILN_METRICS_TOKEN: z.string().min(16).optional(),
  /** List responses kept for repeated identical requests while the database is unchanged (0 turns it off). */
  KILN_LIST_CACHE_ENTRIES: z.coerce.number().int().min(0).max(100_000).default(500),
  /** How long the router waits for an app instance's response headers before answering 502 (gorouter's request_timeout_in_seconds). */
  KILN_ROUTER_TIMEOUT_SECONDS: z.coerce.number().int().min(1).default(900),
  /**
   * The router's mTLS listener (route policies): unset picks 9443, or a free port when 9443 is taken or PORT is 0;
   * a number binds exactly that port (0: a free one).
   */
  KILN_ROUTER_MTLS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** Lifetime of instance identity credentials (CF_INSTANCE_CERT); renewed at three quarters of it. */
  KILN_INSTANCE_IDENTITY_TTL_SECONDS: z.coerce.number().int().min(60).default(24 * 3600),
  /** Org and space made on the first start so a push needs no setup ('' turns each off). */
  KILN_DEFAULT_ORG: z.string().max(255).default('default'),
  KILN_DEFAULT_SPACE: z.string().max(255).default('dev'),
  /** How app processes are isolated: bubblewrap when installed (auto), always (bwrap, refuses to start without), never. */
  KILN_SANDBOX: z.enum(['auto', 'bwrap', 'none']).default('auto'),
  /** AES-256 key (64 hex digits or base64) sealing stored secrets; generated into the data dir when unset. */
  KILN_ENCRYPTION_KEY: z.string().min(1).optional(),
  /** The org whose spaces the Tsuru API under /tsuru presents as teams (empty: the default org's name). */
  KILN_TSURU_ORG: z.string().max(255).optional(),
  /** Kubernetes front door: a kubeconfig path, or `in-cluster`; unset leaves the CRD sync off. */
  KILN_KUBECONFIG: z.string().min(1).optional(),
  /** Watch App resources in this namespace only (default: all namespaces). */
  KILN_KUBE_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name').optional(),
  /** How often every resource's status is refreshed from Kiln's store. */
  KILN_KUBE_RESYNC_SECONDS: z.coerce.number().min(0.1).default(5),
  /** Where apps run: child processes on this machine (local) or pods on a Kubernetes cluster (kubernetes). */
  KILN_RUNTIME: z.enum(['local', 'kubernetes']).default('local'),
  /** The cluster the Kubernetes runtime runs apps on: a kubeconfig path, or `in-cluster`. */
  KILN_KUBE_RUNTIME_KUBECONFIG: z.string().min(1).default('in-cluster'),
  /** Namespace of the apps' pods and Jobs (created when missing). */
  KILN_KUBE_RUNTIME_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name').default('kiln-apps'),
  /** Base URL pods download droplets from (default: Kiln's own URL). */
  KILN_KUBE_RUNTIME_KILN_URL: z.string().url().optional(),
  /** Image of the apps' containers and droplet download on Kubernetes (the stack's root filesystem). */
  KILN_STACK_IMAGE: z.string().min(1).default('cloudfoundry/cflinuxfs4'),
  /** Command of the staging Job's container: a JSON array, or words separated by spaces. */
  KILN_KUBE_RUNTIME_STAGER_COMMAND: z.string().min(1).default('kiln stage-job'),
  KILN_GIT_POLL_SECONDS: z.coerce.number().min(0.1).default(60),
  KILN_GIT_CREDENTIALS_FILE: z.string().min(1).optional(),
  /** Allow git sources on Kiln's own machine (file:// and paths); off: a source's author could read any local repository. */
  KILN_GIT_ALLOW_LOCAL: z.enum(['true', 'false']).default('false'),
  /** A restarted Kiln on SQLite adopts the instances the previous one left running (PostgreSQL: never). */
  KILN_ADOPT_INSTANCES: z.enum(['true', 'false']).default('true'),
  /** Comma-separated older keys still accepted for reading (key rotation). */
  KILN_ENCRYPTION_KEY_PREVIOUS: z.string().min(1).optional(),
  /** How long a request to a service broker may take (CC's broker_client_timeout_seconds). */
  KILN_BROKER_TIMEOUT_SECONDS: z.coerce.number().positive().default(60),
  /** Shortest wait between last_operation polls of an async broker operation (CC's default_async_poll_interval_seconds). */
  KILN_BROKER_POLL_INTERVAL_SECONDS: z.coerce.number().positive().default(60),
  /** Where blobs, the token signing key and the generated encryption key live: shared storage when several replicas run. */
  KILN_SHARED_DIR: z.string().min(1).optional(),
  /** This replica's name in leader election (default: host name and process id). */
  KILN_REPLICA_ID: z.string().regex(/^[A-Za-z0-9._:-]{1,60}$/, 'must be 1-60 letters, digits or . _ : -').optional(),
  /** How the replica running the controllers is chosen: auto (a Lease with KILN_KUBECONFIG, else a PostgreSQL advisory lock). */
  KILN_LEADER_ELECTION: z.enum(['auto', 'postgres', 'lease']).default('auto'),
  /** How long a leader's claim lasts without renewal; a follower takes over after it. */
  KILN_LEADER_LEASE_SECONDS: z.coerce.number().min(2).default(15),
  /** A leader that could not renew for this long stops its controllers (must be shorter than the lease). */
  KILN_LEADER_RENEW_DEADLINE_SECONDS: z.coerce.number().min(1).default(10),
  /** How often a leader renews and a follower tries to acquire. */
  KILN_LEADER_RETRY_SECONDS: z.coerce.number().min(0.1).default(2),
  /** The Lease's namespace and name (KILN_LEADER_ELECTION=lease). */
  KILN_LEADER_LEASE_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name').optional(),
  KILN_LEADER_LEASE_NAME: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS name').default('kiln-controllers'),
}).refine((c) => c.KILN_LEADER_RENEW_DEADLINE_SECONDS < c.KILN_LEADER_LEASE_SECONDS, {
  message: 'KILN_LEADER_RENEW_DEADLINE_SECONDS must be shorter than KILN_LEADER_LEASE_SECONDS (fencing)',
  path: ['KILN_LEADER_RENEW_DEADLINE_SECONDS'],
});

type RawConfig = z.infer<typeof ConfigSchema>;

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  database: { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };
  systemDomain: string;
  appsDomain: string;
  admin: { username: string; password: string | undefined };
  logLevel: RawConfig['LOG_LEVEL'];
  tokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  externalIdentity: { jwksUrl: string; issuer: string | undefined } | undefined;
  maxPackageBytes: number;
  maxJsonBytes: number;
  metricsToken: string | undefined;
  listCacheEntries: number;
  routerTimeoutSeconds: number;
  /** `auto`: 9443, or a free port when that is taken or PORT is 0. */
  routerMtlsPort: number | 'auto';
  instanceIdentityTtlSeconds: number;
  /** What the first start creates; null when KILN_DEFAULT_ORG is empty. */
  defaultTarget: { org: string; space: string | null } | null;
  sandbox: RawConfig['KILN_SANDBOX'];
  /** The configured encryption key text (see src/store/secret-box.ts); undefined → `<dataDir>/encryption-key`. */
  encryptionKey: string | undefined;
  /** Name of the org whose spaces are Tsuru's teams (docs/tsuru.md). */
  tsuruOrg: string;
  /** The CRD sync controller's settings; undefined when KILN_KUBECONFIG is unset. */
  kube: { kubeconfig: string; namespace: string | undefined; resyncMs: number } | undefined;
  /** How often the branch (or tag) of a git-sourced app is fetched for a new commit. */
  gitPollMs: number;
  /** Named git credentials for GitSources (src/gitops/credentials.ts). */
  gitCredentialsFile: string | undefined;
  /** Whether git sources may name repositories on Kiln's own machine. */
  gitAllowLocal: boolean;
  /** A restarted Kiln on SQLite adopts the local instances the previous one left running (off: they die with it; default on). */
  adoptInstances: boolean;
  previousEncryptionKeys: string | undefined;
  /** Which Runtime runs apps; `kubernetes` carries the cluster settings. */
  runtime: { kind: 'local' } | { kind: 'kubernetes'; kubeconfig: string; namespace: string; kilnUrl: string | undefined; stackImage: string; stagerCommand: string[] };
  brokerTimeoutSeconds: number;
  brokerPollIntervalSeconds: number;
  /** Blobs, the identity signing key and the generated encryption key (KILN_SHARED_DIR; the data dir by default). */
  sharedDir: string;
  /** Leader election among replicas sharing a PostgreSQL database (SQLite: one replica, always the leader). */
  leader: {
    replicaId: string;
    election: RawConfig['KILN_LEADER_ELECTION'];
    leaseMs: number;
    renewDeadlineMs: number;
    retryMs: number;
    leaseNamespace: string | undefined;
    leaseName: string;
  };
}

export class ConfigError extends Error {}

/** Reads settings from an environment map; throws a ConfigError that names every invalid setting. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const relevant = Object.fromEntries(
    Object.keys(ConfigSchema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]),
  );
  const parsed = ConfigSchema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid Kiln configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  const dataDir = path.resolve(c.KILN_DATA_DIR);
  let database: Config['database'];
  if (c.DATABASE_URL && /^postgres/.test(c.DATABASE_URL)) {
    database = { kind: 'postgres', url: c.DATABASE_URL };
  } else if (c.DATABASE_URL?.startsWith('sqlite:')) {
    const file = c.DATABASE_URL.slice('sqlite:'.length);
    database = { kind: 'sqlite', file: file === ':memory:' ? file : path.resolve(file) };
  } else {
    database = { kind: 'sqlite', file: path.join(dataDir, 'kiln.sqlite') };
  }
  return {
    port: c.PORT,
    host: c.HOST,
    dataDir,
    database,
    systemDomain: c.KILN_SYSTEM_DOMAIN.toLowerCase(),
    appsDomain: c.KILN_APPS_DOMAIN.toLowerCase(),
    admin: { username: c.KILN_ADMIN_USER, password: c.KILN_ADMIN_PASSWORD },
    logLevel: c.LOG_LEVEL,
    tokenTtlSeconds: c.KILN_TOKEN_TTL_SECONDS,
    refreshTokenTtlSeconds: c.KILN_REFRESH_TOKEN_TTL_SECONDS,
    externalIdentity: c.KILN_EXTERNAL_JWKS_URL
      ? { jwksUrl: c.KILN_EXTERNAL_JWKS_URL, issuer: c.KILN_EXTERNAL_ISSUER }
      : undefined,
    maxPackageBytes: c.KILN_MAX_PACKAGE_BYTES,
    maxJsonBytes: c.KILN_MAX_JSON_BYTES,
    metricsToken: c.KILN_METRICS_TOKEN,
    listCacheEntries: c.KILN_LIST_CACHE_ENTRIES,
    routerTimeoutSeconds: c.KILN_ROUTER_TIMEOUT_SECONDS,
    routerMtlsPort: c.KILN_ROUTER_MTLS_PORT ?? 'auto',
    instanceIdentityTtlSeconds: c.KILN_INSTANCE_IDENTITY_TTL_SECONDS,
    // Empty means "none" here, not "use the default", so these read the raw values.
    defaultTarget: env.KILN_DEFAULT_ORG === '' ? null : { org: c.KILN_DEFAULT_ORG, space: env.KILN_DEFAULT_SPACE === '' ? null : c.KILN_DEFAULT_SPACE },
    sandbox: c.KILN_SANDBOX,
    encryptionKey: c.KILN_ENCRYPTION_KEY,
    tsuruOrg: c.KILN_TSURU_ORG ?? c.KILN_DEFAULT_ORG,
    kube: c.KILN_KUBECONFIG
      ? {
          kubeconfig: c.KILN_KUBECONFIG === 'in-cluster' ? 'in-cluster' : path.resolve(c.KILN_KUBECONFIG),
          namespace: c.KILN_KUBE_NAMESPACE,
          resyncMs: Math.round(c.KILN_KUBE_RESYNC_SECONDS * 1000),
        }
      : undefined,
    gitPollMs: Math.round(c.KILN_GIT_POLL_SECONDS * 1000),
    gitCredentialsFile: c.KILN_GIT_CREDENTIALS_FILE,
    gitAllowLocal: c.KILN_GIT_ALLOW_LOCAL === 'true',
    adoptInstances: c.KILN_ADOPT_INSTANCES === 'true',
    previousEncryptionKeys: c.KILN_ENCRYPTION_KEY_PREVIOUS,
    runtime:
      c.KILN_RUNTIME === 'kubernetes'
        ? {
            kind: 'kubernetes',
            kubeconfig: c.KILN_KUBE_RUNTIME_KUBECONFIG === 'in-cluster' ? 'in-cluster' : path.resolve(c.KILN_KUBE_RUNTIME_KUBECONFIG),
            namespace: c.KILN_KUBE_RUNTIME_NAMESPACE,
            kilnUrl: c.KILN_KUBE_RUNTIME_KILN_URL?.replace(/\/+$/, ''),
            stackImage: c.KILN_STACK_IMAGE,
            stagerCommand: parseCommand(c.KILN_KUBE_RUNTIME_STAGER_COMMAND),
          }
        : { kind: 'local' },
    brokerTimeoutSeconds: c.KILN_BROKER_TIMEOUT_SECONDS,
    brokerPollIntervalSeconds: c.KILN_BROKER_POLL_INTERVAL_SECONDS,
    sharedDir: c.KILN_SHARED_DIR ? path.resolve(c.KILN_SHARED_DIR) : dataDir,
    leader: {
      replicaId: c.KILN_REPLICA_ID ?? `${os.hostname().slice(0, 40)}-${process.pid}`,
      election: c.KILN_LEADER_ELECTION,
      leaseMs: Math.round(c.KILN_LEADER_LEASE_SECONDS * 1000),
      renewDeadlineMs: Math.round(c.KILN_LEADER_RENEW_DEADLINE_SECONDS * 1000),
      retryMs: Math.round(c.KILN_LEADER_RETRY_SECONDS * 1000),
      leaseNamespace: c.KILN_LEADER_LEASE_NAMESPACE,
      leaseName: c.KILN_LEADER_LEASE_NAME,
    },
  };
}

/** A command as a JSON array of strings, or words separated by whitespace. */
function parseCommand(text: string): string[] {
  if (text.trim().startsWith('[')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const parsed = z.array(z.string().min(1)).min(1).safeParse(json);
    if (!parsed.success) throw new ConfigError('Invalid Kiln configuration:\n  KILN_KUBE_RUNTIME_STAGER_COMMAND: must be a JSON array of strings');
    return parsed.data;
  }
  return text.trim().split(/\s+/);
}
