import type { Logger } from 'pino';
import type { HealthCheck, InstanceSpec, InstanceStatus, Runtime } from '../runtime/runtime.ts';
import { parseJsonObject } from '../domain/apps.ts';
import { runningEnvironment, runtimeVcapApplication, vcapServices } from '../services/app-env.ts';
import type { Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { DropletCache } from './droplet-cache.ts';
import type { Reconciler } from './runtime/controller.ts';

export interface ProcessControllerDeps {
  store: Store;
  runtime: Runtime;
  droplets: DropletCache;
  log: Logger;
  /** The API's public URL, for VCAP_APPLICATION.cf_api. */
  cfApi: () => string;
  /** Takes an instance out of the routing table and waits for its in-flight requests before it is stopped. */
  drain: (instanceId: string) => Promise<void>;
}

export const instanceId = (processGuid: string, version: string, index: number) => `${processGuid}:${version}:${index}`;

function healthCheckOf(p: Row<'processes'>): HealthCheck {
  const timeoutSeconds = p.health_check_timeout ?? undefined;
  const invocationTimeoutSeconds = p.health_check_invocation_timeout ?? undefined;
  const opt = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  if (p.health_check_type === 'http') {
    return opt({
      type: 'http' as const,
      endpoint: p.health_check_endpoint ?? '/',
      timeoutSeconds,
      invocationTimeoutSeconds,
      intervalSeconds: p.health_check_interval ?? undefined,
    });
  }
  if (p.health_check_type === 'process' || p.health_check_type === 'none') return opt({ type: 'process' as const, timeoutSeconds });
  return opt({ type: 'port' as const, timeoutSeconds, invocationTimeoutSeconds });
}

/**
 * Reconciles one process: the instances the runtime runs for it must be exactly `instances` copies of the current
 * version while the app is STARTED with a staged droplet, and none otherwise. Level-triggered and idempotent: it
 * only compares the store with the runtime's observed instances, so re-running it (or running it after a crash of
 * Kiln, when the runtime starts empty) converges to the same result.
 */
export function processController(deps: ProcessControllerDeps): Reconciler {
  const { store, runtime, droplets, log } = deps;

  async function desiredSpecs(processGuid: string): Promise<InstanceSpec[]> {
    const proc = await store.db.selectFrom('processes').selectAll().where('guid', '=', processGuid).executeTakeFirst();
    if (!proc || proc.instances <= 0) return [];
    const app = await store.db.selectFrom('apps').selectAll().where('guid', '=', proc.app_guid).executeTakeFirst();
    if (!app || app.state !== 'STARTED' || app.status !== 'active' || !app.droplet_guid) return [];
    const droplet = await store.db.selectFrom('droplets').selectAll().where('guid', '=', app.droplet_guid).executeTakeFirst();
    if (!droplet || droplet.state !== 'STAGED' || !droplet.blob_key) return [];
    const command = proc.command ?? (parseJsonObject(droplet.process_types)[proc.type] as string | undefined) ?? '';
    if (!command) {
      log.warn({ process: proc.guid, type: proc.type }, 'process has no command: nothing to start');
      return [];
    }
    const space = await store.db.selectFrom('spaces').select(['guid', 'name', 'organization_guid']).where('guid', '=', app.space_guid).executeTakeFirstOrThrow();
    const org = await store.db.selectFrom('organizations').select(['guid', 'name']).where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
    const dropletDir = await droplets.ensure(droplet.guid, droplet.blob_key);
    const env: Record<string, string> = {
      ...(await runningEnvironment(store.db, app)),
      VCAP_APPLICATION: JSON.stringify(await runtimeVcapApplication(store.db, { app, space, org, cfApi: deps.cfApi() }, proc)),
      VCAP_SERVICES: JSON.stringify(await vcapServices(store.db, app.guid)),
    };
    const specs: InstanceSpec[] = [];
    for (let index = 0; index < proc.instances; index++) {
      specs.push({
        id: instanceId(proc.guid, proc.version, index),
        appGuid: app.guid,
        processGuid: proc.guid,
        processType: proc.type,
        version: proc.version,
        index,
        dropletDir,
        command,
        env,
        memoryMb: proc.memory_in_mb,
        diskMb: proc.disk_in_mb,
        healthCheck: healthCheckOf(proc),
      });
    }
    return specs;
  }

  return {
    name: 'processes',
    watches: ['processes', 'apps', 'droplets'],
    concurrency: 4,
    keyFor(change) {
      // App and droplet changes are fanned out in listKeys-style lookups; a process change names its own key.
      return change.kind === 'processes' ? change.guid : `${change.kind}:${change.guid}`;
    },
    async listKeys() {
      const desired = await store.db.selectFrom('processes').select('guid').execute();
      const running = runtime.listInstances().map((i) => i.processGuid);
      return [...new Set([...desired.map((r) => r.guid), ...running])];
    },
    async reconcile(key) {
      if (key.startsWith('apps:') || key.startsWith('droplets:')) {
        // An app or droplet change may affect every process of the app: reconcile them one by one.
        const appGuid = key.startsWith('apps:')
          ? key.slice(5)
          : (await store.db.selectFrom('droplets').select('app_guid').where('guid', '=', key.slice(9)).executeTakeFirst())?.app_guid;
        if (!appGuid) return;
        const procs = await store.db.selectFrom('processes').select('guid').where('app_guid', '=', appGuid).execute();
        const orphaned = runtime.listInstances({ appGuid }).map((i) => i.processGuid);
        for (const guid of new Set([...procs.map((p) => p.guid), ...orphaned])) await reconcileProcess(guid);
        return;
      }
      return reconcileProcess(key);
    },
  };

  async function reconcileProcess(processGuid: string): Promise<{ requeueAfterMs?: number } | void> {
    const desired = await desiredSpecs(processGuid);
    const observed = runtime.listInstances({ processGuid });
    const wanted = new Set(desired.map((s) => s.id));
    for (const spec of desired) {
      if (!observed.some((o) => o.id === spec.id)) await runtime.ensureInstance(spec);
    }
    const now = runtime.listInstances({ processGuid });
    const replacementPending = (old: InstanceStatus) =>
      // Keep an old-version instance serving until its replacement at the same index is up (or has failed).
      now.some((n) => wanted.has(n.id) && n.index === old.index && n.state === 'STARTING');
    const surplus = observed.filter((o) => !wanted.has(o.id) && o.state !== 'STOPPING');
    const keep = surplus.filter(replacementPending);
    await Promise.all(
      surplus
        .filter((o) => !keep.includes(o))
        .map(async (o) => {
          await deps.drain(o.id);
          await runtime.stopInstance(o.id);
        }),
    );
    // Runtime events wake this key as instances change state; the poll is a safety net for replacements.
    if (keep.length > 0) return { requeueAfterMs: 500 };
  }
}
