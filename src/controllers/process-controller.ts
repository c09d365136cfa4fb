import type { Logger } from 'pino';
import type { HealthCheck, InstanceSpec, InstanceStatus, Runtime } from '../runtime/runtime.ts';
import { parseJsonObject } from '../domain/apps.ts';
import { runningEnvironment, runtimeVcapApplication, vcapServices } from '../services/app-env.ts';
import { sidecarsOfProcessType } from '../services/sidecars.ts';
import type { Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { forgetCrashes, recordCrashes } from './crash-events.ts';
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
  /**
   * Called before the first instance of a new web version of an app with revisions enabled is started (the
   * revision recorder: what is launched is what the revision describes).
   */
  onLaunch?: (appGuid: string) => Promise<unknown>;
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

/** How one version of a process is launched: its droplet, user variables, command and limits, at which indexes. */
interface Launch {
  version: string;
  dropletGuid: string;
  environmentVariables: string;
  command: string | null;
  memoryMb: number;
  diskMb: number;
  indexes: number[];
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** What the process controller must run for a process, and whether a deployment is rolling it. */
interface Desired {
  specs: InstanceSpec[];
  /** The process row, when it still exists (its crashes become events). */
  process?: Row<'processes'>;
  /** Set while a deployment rolls the process: the two versions it runs. */
  rollout?: { oldVersion: string | null; newVersion: string };
  /** Set outside rollouts: the app, and whether launching a new version records a revision. */
  launch?: { app: Row<'apps'>; revisions: boolean };
}

/**
 * Reconciles one process: the instances the runtime runs for it must be exactly `instances` copies of the current
 * version while the app is STARTED with a staged droplet, and none otherwise. While a deployment rolls the process
 * (an ACTIVE `deployments` row names it), it runs `new_instances` of the new version from the deployment's droplet
 * and `old_instances` of the old version from the previous droplet and settings the row recorded; the deployment
 * controller moves those counts. Level-triggered and idempotent: it only compares the store with the runtime's
 * observed instances, so re-running it (or running it after a crash of Kiln, when the runtime starts empty)
 * converges to the same result.
 */
export function processController(deps: ProcessControllerDeps): Reconciler {
  const { store, runtime, droplets, log } = deps;

  async function specsOf(proc: Row<'processes'>, app: Row<'apps'>, launch: Launch): Promise<InstanceSpec[]> {
    if (launch.indexes.length === 0) return [];
    const droplet = await store.db.selectFrom('droplets').selectAll().where('guid', '=', launch.dropletGuid).executeTakeFirst();
    if (!droplet || droplet.state !== 'STAGED' || !droplet.blob_key) return [];
    const command = launch.command ?? (parseJsonObject(droplet.process_types)[proc.type] as string | undefined) ?? '';
    if (!command) {
      log.warn({ process: proc.guid, type: proc.type }, 'process has no command: nothing to start');
      return [];
    }
    const space = await store.db.selectFrom('spaces').select(['guid', 'name', 'organization_guid']).where('guid', '=', app.space_guid).executeTakeFirstOrThrow();
    const org = await store.db.selectFrom('organizations').select(['guid', 'name']).where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
    const dropletDir = await droplets.ensure(droplet.guid, droplet.blob_key);
    const versioned = { ...proc, version: launch.version, memory_in_mb: launch.memoryMb, disk_in_mb: launch.diskMb };
    const env: Record<string, string> = {
      ...(await runningEnvironment(store.db, { environment_variables: launch.environmentVariables })),
      VCAP_APPLICATION: JSON.stringify(await runtimeVcapApplication(store.db, { app, space, org, cfApi: deps.cfApi() }, versioned)),
      VCAP_SERVICES: JSON.stringify(await vcapServices(store.db, app.guid)),
    };
    const sidecars = await sidecarsOfProcessType(store.db, app.guid, proc.type);
    return launch.indexes.map((index) => ({
      id: instanceId(proc.guid, launch.version, index),
      appGuid: app.guid,
      processGuid: proc.guid,
      processType: proc.type,
      version: launch.version,
      index,
      dropletDir,
      command,
      env,
      memoryMb: launch.memoryMb,
      diskMb: launch.diskMb,
      healthCheck: healthCheckOf(proc),
      ...(sidecars.length > 0 ? { sidecars } : {}),
    }));
  }

  async function desired(processGuid: string): Promise<Desired> {
    const proc = await store.db.selectFrom('processes').selectAll().where('guid', '=', processGuid).executeTakeFirst();
    if (!proc) return { specs: [] };
    const app = await store.db.selectFrom('apps').selectAll().where('guid', '=', proc.app_guid).executeTakeFirst();
    if (!app || app.state !== 'STARTED' || app.status !== 'active') return { specs: [], process: proc };
    const d = await store.db
      .selectFrom('deployments')
      .selectAll()
      .where('process_guid', '=', proc.guid)
      .where('status_value', '=', 'ACTIVE')
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    if (d) {
      const specs = await specsOf(proc, app, {
        version: d.new_version,
        dropletGuid: d.droplet_guid,
        // The deployment recorded the variables it deploys; later edits wait for the next restart or deployment.
        environmentVariables:
          proc.launched_version === d.new_version && proc.launched_environment_variables !== null ? proc.launched_environment_variables : app.environment_variables,
        command: proc.command,
        memoryMb: proc.memory_in_mb,
        diskMb: proc.disk_in_mb,
        indexes: range(0, d.new_instances),
      });
      if (d.old_version && d.previous_droplet_guid) {
        // Old instances keep the highest indexes, so each new one takes over the slot of the next old one to stop.
        const old = await specsOf(proc, app, {
          version: d.old_version,
          dropletGuid: d.previous_droplet_guid,
          environmentVariables: d.previous_environment_variables,
          command: d.previous_command,
          memoryMb: d.previous_memory_in_mb,
          diskMb: d.previous_disk_in_mb,
          indexes: range(Math.max(0, d.original_instances - d.old_instances), d.original_instances),
        });
        specs.push(...old);
      }
      return { specs, process: proc, rollout: { oldVersion: d.old_version, newVersion: d.new_version } };
    }
    if (proc.instances <= 0 || !app.droplet_guid) return { specs: [], process: proc };
    const specs = await specsOf(proc, app, {
      version: proc.version,
      dropletGuid: app.droplet_guid,
      environmentVariables: app.environment_variables,
      command: proc.command,
      memoryMb: proc.memory_in_mb,
      diskMb: proc.disk_in_mb,
      indexes: range(0, proc.instances),
    });
    return { specs, process: proc, launch: { app, revisions: proc.type === 'web' && app.revisions_enabled === 1 } };
  }

  return {
    name: 'processes',
    watches: ['processes', 'apps', 'droplets', 'deployments'],
    concurrency: 4,
    keyFor(change) {
      // App, droplet and deployment changes are fanned out to processes in reconcile; a process change names its own key.
      return change.kind === 'processes' ? change.guid : `${change.kind}:${change.guid}`;
    },
    async listKeys() {
      const desiredRows = await store.db.selectFrom('processes').select('guid').execute();
      const running = runtime.listInstances().map((i) => i.processGuid);
      return [...new Set([...desiredRows.map((r) => r.guid), ...running])];
    },
    async reconcile(key) {
      if (key.startsWith('deployments:')) {
        const d = await store.db.selectFrom('deployments').select('process_guid').where('guid', '=', key.slice(12)).executeTakeFirst();
        return d ? reconcileProcess(d.process_guid) : undefined;
      }
      if (key.startsWith('apps:') || key.startsWith('droplets:')) {
        // An app or droplet change may affect every process of the app: reconcile them one by one.
        const appGuid = key.startsWith('apps:')
          ? key.slice(5)
          : (await store.db.selectFrom('droplets').select('app_guid').where('guid', '=', key.slice(9)).executeTakeFirst())?.app_guid;
        if (!appGuid) return;
        const procs = await store.db.selectFrom('processes').select('guid').where('app_guid', '=', appGuid).execute();
        const orphaned = runtime.listInstances({ appGuid }).map((i) => i.processGuid);
        let requeue: number | undefined;
        for (const guid of new Set([...procs.map((p) => p.guid), ...orphaned])) {
          const r = await reconcileProcess(guid);
          if (r?.requeueAfterMs !== undefined) requeue = Math.min(requeue ?? r.requeueAfterMs, r.requeueAfterMs);
        }
        return requeue !== undefined ? { requeueAfterMs: requeue } : undefined;
      }
      return reconcileProcess(key);
    },
  };

  async function reconcileProcess(processGuid: string): Promise<{ requeueAfterMs?: number } | void> {
    const want = await desired(processGuid);
    const observed = runtime.listInstances({ processGuid });
    if (want.process) await recordCrashes(store, want.process, observed);
    else await forgetCrashes(store, processGuid);
    const wanted = new Set(want.specs.map((s) => s.id));
    const missing = want.specs.filter((spec) => !observed.some((o) => o.id === spec.id));
    const launch = want.launch;
    if (missing.length > 0 && launch && !observed.some((o) => o.version === missing[0]!.version)) {
      // A version's first instance: remember what it starts with, for the old side of a later rollout.
      const { version } = missing[0]!;
      await store.write(async (tx) => {
        await tx.db
          .updateTable('processes')
          .set({ launched_version: version, launched_droplet_guid: launch.app.droplet_guid, launched_environment_variables: launch.app.environment_variables })
          .where('guid', '=', processGuid)
          .execute();
      });
      if (launch.revisions && deps.onLaunch) await deps.onLaunch(launch.app.guid);
    }
    for (const spec of missing) await runtime.ensureInstance(spec);
    const now = runtime.listInstances({ processGuid });
    const serving = now.some((n) => wanted.has(n.id) && n.state === 'RUNNING');
    const replacementPending = (old: InstanceStatus) => {
      if (want.rollout) {
        // The deployment controller lowers the old side only once new instances serve, so surplus instances of
        // the two rolled versions go at once; those of a superseded rollout's old version serve until one of
        // this rollout does.
        return old.version !== want.rollout.oldVersion && old.version !== want.rollout.newVersion && !serving;
      }
      // Keep an old-version instance serving until its replacement at the same index is up (or has failed).
      return now.some((n) => wanted.has(n.id) && n.index === old.index && n.state === 'STARTING');
    };
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
