import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import type { CredentialIssuer } from '../identity/instance-identity.ts';
import { KubernetesRuntime } from './kubernetes/kubernetes-runtime.ts';
import { LocalRuntime } from './local/local-runtime.ts';
import type { Identity, Sandbox } from './local/sandbox.ts';
import type { Runtime } from './runtime.ts';

/** The URL pods fetch droplets from: KILN_KUBE_RUNTIME_KILN_URL, else Kiln's own. */
export function runtimeKilnUrl(config: Config, publicUrl: string): string {
  return (config.runtime.kind === 'kubernetes' ? config.runtime.kilnUrl : undefined) ?? publicUrl;
}

/**
 * The runtime KILN_RUNTIME selects. The Kubernetes one lists what already runs in its namespace before returning,
 * so the controllers start from the cluster's state (a restarted Kiln adopts its pods rather than replacing them).
 */
export async function createRuntime(
  config: Config,
  deps: {
    sandbox: Sandbox;
    identityFor: ((appGuid: string) => Promise<Identity>) | undefined;
    /** Instance identity credentials for the local runtime (the Kubernetes one issues none yet). */
    credentials: CredentialIssuer;
    log: Logger;
    blobUrl: (blobKey: string, ttlSeconds: number) => string;
    blobUploadUrl: (blobKey: string, ttlSeconds: number) => string;
  },
): Promise<Runtime> {
  if (config.runtime.kind === 'kubernetes') {
    const { kubeconfig, namespace, stackImage, stagerCommand } = config.runtime;
    const runtime = new KubernetesRuntime({ kubeconfig, namespace, stackImage, stagerCommand, blobUrl: deps.blobUrl, blobUploadUrl: deps.blobUploadUrl });
    await runtime.start();
    deps.log.info({ namespace, stackImage }, 'running apps on Kubernetes');
    return runtime;
  }
  const constructing = performance.now();
  const runtime = new LocalRuntime({
    dataDir: config.dataDir,
    host: '127.0.0.1',
    sandbox: deps.sandbox,
    credentials: deps.credentials,
    // Only one replica (SQLite) restarting on its own data dir can adopt its instances; with PostgreSQL another
    // replica may take over, so instances die with the replica that started them (README, high availability).
    // On by default; KILN_ADOPT_INSTANCES=false makes them die with Kiln on SQLite too.
    adopt: config.database.kind === 'sqlite' && config.adoptInstances,
    ...(deps.identityFor ? { identityFor: deps.identityFor } : {}),
  });
  const ms = Math.round(performance.now() - constructing);
  if (runtime.adopted.length > 0) deps.log.info({ count: runtime.adopted.length, ms }, 'adopted instances left running by a previous Kiln process');
  if (runtime.reaped.length > 0) deps.log.warn({ count: runtime.reaped.length }, 'stopped instances left running by a previous Kiln process');
  return runtime;
}
