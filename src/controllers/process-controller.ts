import type { Logger } from 'pino';
import { instanceId, processGuidOfInstance, type HealthCheck, type InstanceSpec, type InstanceStatus, type Runtime } from '../runtime/runtime.ts';
import { parseJsonObject } from '../domain/apps.ts';
import { runningEnvironment, runtimeVcapApplication, vcapServices } from '../services/app-env.ts';
import { sidecarsOfProcessType } from '../services/sidecars.ts';
import type { Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { DropletCache } from './droplet-cache.ts';
import { NotReady, TerminalError, self, standaloneContext, type ReconcileContext, type Reconciler } from './runtime/controller.ts';
import type { Condition } from '../store/conditions.ts';

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

export { instanceId };

/** Why a process cannot run what it should (recorded as its Ready condition). */
interface Blocked {
  reason: 'DropletNotStaged' | 'NoStartCommand';
  message: string;
}

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
  /** Set when some of what should run cannot be started. */
  blocked?: Blocked;
  /** The process and its app, when the process exists. */
  proc?: Row<'processes'>;
  app?: Row<'apps'>;
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

  async function specsOf(proc: Row<'processes'>, app: Row<'apps'>, launch: Launch): Promise<InstanceSpec[] | Blocked> {
    if (launch.indexes.length === 0) return [];
    const droplet = await store.db.selectFrom('droplets').selectAll().where('guid', '=', launch.dropletGuid).executeTakeFirst();
    if (!droplet || droplet.state !== 'STAGED' || !droplet.blob_key) {
      return { reason: 'DropletNotStaged', message: `droplet ${launch.dropletGuid} is not staged` };
    }
    const command = launch.command ?? (parseJsonObject(droplet.process_types)[proc.type] as string | undefined) ?? '';
    if (!command) return { reason: 'NoStartCommand', message: `process type "${proc.type}" has no command and the droplet declares none` };
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
    if (!app || app.state !== 'STARTED' || app.status !== 'active') return { specs: [], proc, ...(app ? { app } : {}) };
    let blocked: Blocked | undefined;
    const specsOrBlocked = async (launch: Launch): Promise<InstanceSpec[]> => {
      const r = await specsOf(proc, app, launch);
      if (Array.isArray(r)) return r;
      blocked ??= r;
      return [];
    };
    const d = await store.db
      .selectFrom('deployments')
      .selectAll()
      .where('process_guid', '=', proc.guid)
      .where('status_value', '=', 'ACTIVE')
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    if (d) {
      const specs = await specsOrBlocked({
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
        const old = await specsOrBlocked({
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
      return { specs, proc, app, rollout: { oldVersion: d.old_version, newVersion: d.new_version }, ...(blocked ? { blocked } : {}) };
    }
    if (proc.instances <= 0) return { specs: [], proc, app };
    if (!app.droplet_guid) return { specs: [], proc, app, blocked: { reason: 'DropletNotStaged', message: 'the app has no current droplet' } };
    const specs = await specsOrBlocked({
      version: proc.version,
      dropletGuid: app.droplet_guid,
      environmentVariables: app.environment_variables,
      command: proc.command,
      memoryMb: proc.memory_in_mb,
      diskMb: proc.disk_in_mb,
      indexes: range(0, proc.instances),
    });
    return { specs, proc, app, launch: { app, revisions: proc.type === 'web' && app.revisions_enabled === 1 }, ...(blocked ? { blocked } : {}) };
  }

  /** Processes of an app: its rows, and any the runtime still runs for it (a deleted process's instances). */
  async function processesOfApp(appGuid: string): Promise<string[]> {
    const procs = await store.db.selectFrom('processes').select('guid').where('app_guid', '=', appGuid).execute();
    const orphaned = runtime.listInstances({ appGuid }).map((i) => i.processGuid);
    return [...new Set([...procs.map((p) => p.guid), ...orphaned])];
  }

  return {
    name: 'processes',
    resource: 'process',
    watches: {
      processes: self,
      // An app or droplet change may affect every process of the app.
      apps: (c) => processesOfApp(c.guid),
      droplets: async (c) => {
        const d = await store.db.selectFrom('droplets').select('app_guid').where('guid', '=', c.guid).executeTakeFirst();
        return d ? processesOfApp(d.app_guid) : [];
      },
      deployments: async (c) => {
        const d = await store.db.selectFrom('deployments').select('process_guid').where('guid', '=', c.guid).executeTakeFirst();
        return d ? [d.process_guid] : [];
      },
    },
    runtimeEvents: { instance: (e) => [processGuidOfInstance(e.id)] },
    concurrency: 4,
    async listKeys() {
      const desiredRows = await store.db.selectFrom('processes').select('guid').execute();
      const running = runtime.listInstances().map((i) => i.processGuid);
      return [...new Set([...desiredRows.map((r) => r.guid), ...running])];
    },
    reconcile: (key, ctx) => reconcileProcess(key, ctx ?? standaloneContext(log)),
  };

  async function reconcileProcess(processGuid: string, ctx: ReconcileContext): Promise<{ requeueAfterMs?: number } | void> {
    const want = await desired(processGuid);
    const observed = runtime.listInstances({ processGuid });
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
    const requeue = keep.length > 0 ? { requeueAfterMs: 500 } : undefined;
    if (want.proc && want.app) reportStatus(ctx, want, runtime.listInstances({ processGuid }).filter((i) => wanted.has(i.id)));
    if (want.blocked?.reason === 'NoStartCommand') throw new TerminalError(want.blocked.reason, want.blocked.message);
    if (want.blocked) throw new NotReady(want.blocked.reason, want.blocked.message);
    // Runtime events wake this key as instances change state; the poll is a safety net for replacements.
    return requeue;
  }

  /**
   * The process's Ready condition (and, for web, the app's Staged and Ready): why it does or does not serve. A
   * blocked process is reported by the NotReady or TerminalError thrown after this.
   */
  function reportStatus(ctx: ReconcileContext, want: Desired, instances: InstanceStatus[]): void {
    const proc = want.proc!;
    const app = want.app!;
    let ready: Condition | undefined;
    if (app.state !== 'STARTED') ready = { type: 'Ready', status: 'False', reason: 'Stopped', message: 'the app is stopped' };
    else if (want.blocked) ready = undefined;
    else if (want.specs.length === 0) ready = { type: 'Ready', status: 'True', reason: 'NoInstancesWanted' };
    else {
      const crashed = instances.find((i) => i.state === 'CRASHED');
      const starting = instances.filter((i) => i.state === 'STARTING');
      const timeoutMs = (proc.health_check_timeout ?? 60) * 1000;
      const running = instances.filter((i) => i.state === 'RUNNING').length;
      const of = `${running}/${want.specs.length} instances running`;
      if (crashed) ready = { type: 'Ready', status: 'False', reason: 'Crashing', message: `instance ${crashed.index} crashed: ${crashed.lastExit?.reason ?? 'unknown'}; ${of}` };
      else if (starting.some((i) => Date.now() - i.since > timeoutMs)) ready = { type: 'Ready', status: 'False', reason: 'HealthCheckFailing', message: `the health check has not passed within ${timeoutMs / 1000}s; ${of}` };
      else if (running < want.specs.length) ready = { type: 'Ready', status: 'False', reason: 'Starting', message: of };
      else ready = { type: 'Ready', status: 'True', reason: 'Running', message: of };
    }
    if (ready) ctx.condition(ready);
    if (proc.type !== 'web') return;
    ctx.condition(
      app.droplet_guid ? { type: 'Staged', status: 'True', reason: 'DropletStaged' } : { type: 'Staged', status: 'False', reason: 'DropletNotStaged', message: 'stage a package and set the droplet' },
      { kind: 'app', guid: app.guid },
    );
    const appReady = ready ?? { type: 'Ready', status: 'False' as const, reason: want.blocked!.reason, message: want.blocked!.message };
    ctx.condition(appReady, { kind: 'app', guid: app.guid });
  }
}
