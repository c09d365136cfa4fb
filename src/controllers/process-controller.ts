import type { Logger } from 'pino';
import { instanceId, processGuidOfInstance, type HealthCheck, type InstanceSpec, type InstanceStatus, type Runtime } from '../runtime/runtime.ts';
import { parseJsonObject } from '../domain/apps.ts';
import { runningEnvironment, runtimeVcapApplication } from '../lifecycle/app-env.ts';
import { IncompatibleBindings, serviceDelivery } from '../lifecycle/binding-files.ts';
import { sidecarsOfProcessType } from '../services/sidecars.ts';
import type { Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { forgetCrashes, recordCrashes } from './crash-events.ts';
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
}

export { instanceId };

/** Why a process cannot run what it should (recorded as its Ready condition). */
interface Blocked {
  reason: 'DropletNotStaged' | 'NoStartCommand' | 'IncompatibleBindings';
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

/** What the process controller must run for a process. */
interface Desired {
  specs: InstanceSpec[];
  /** Set when some of what should run cannot be started. */
  blocked?: Blocked;
  /** The process and its app, when the process exists (its crashes become events). */
  proc?: Row<'processes'>;
  app?: Row<'apps'>;
  /** Set when the instances run the app's current droplet and variables: recorded as launched with the first one. */
  launch?: { app: Row<'apps'> };
}

/**
 * Reconciles one process: the instances the runtime runs for it must be exactly `instances` copies of the current
 * version while the app is STARTED with a staged droplet, and none otherwise. While a deployment is active the app
 * has several web processes (the old ones and the one the deployment created; the deployment controller moves
 * their instance counts), and each runs the droplet and variables it was launched with, recorded on the row;
 * otherwise a process runs the app's current droplet and variables. Level-triggered and idempotent: it only
 * compares the store with the runtime's observed instances, so re-running it (or running it after a crash of
 * Kiln, when the runtime starts empty) converges to the same result.
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
    const dropletKey = droplet.blob_key;
    const versioned = { ...proc, version: launch.version, memory_in_mb: launch.memoryMb, disk_in_mb: launch.diskMb };
    let services: Awaited<ReturnType<typeof serviceDelivery>>;
    try {
      services = await serviceDelivery(store.db, app, store.secrets, runtime.updateBindingFiles !== undefined);
    } catch (err) {
      if (err instanceof IncompatibleBindings) return { reason: 'IncompatibleBindings', message: err.message };
      throw err;
    }
    const env: Record<string, string> = {
      ...(await runningEnvironment(store.db, { environment_variables: launch.environmentVariables }, store.secrets)),
      VCAP_APPLICATION: JSON.stringify(await runtimeVcapApplication(store.db, { app, space, org, cfApi: deps.cfApi() }, versioned)),
      ...services.env,
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
      droplet: { guid: droplet.guid, blobKey: dropletKey },
      command,
      env,
      memoryMb: launch.memoryMb,
      diskMb: launch.diskMb,
      healthCheck: healthCheckOf(proc),
      ...(sidecars.length > 0 ? { sidecars } : {}),
      spaceGuid: space.guid,
      organizationGuid: org.guid,
      ...(services.bindingFiles ? { bindingFiles: services.bindingFiles } : {}),
    }));
  }

  async function desired(processGuid: string): Promise<Desired> {
    const proc = await store.db.selectFrom('processes').selectAll().where('guid', '=', processGuid).executeTakeFirst();
    if (!proc) return { specs: [] };
    const app = await store.db.selectFrom('apps').selectAll().where('guid', '=', proc.app_guid).executeTakeFirst();
    if (!app || app.state !== 'STARTED' || app.status !== 'active') return { specs: [], proc, ...(app ? { app } : {}) };
    if (proc.instances <= 0) return { specs: [], proc, app };
    if (!app.droplet_guid) return { specs: [], proc, app, blocked: { reason: 'DropletNotStaged', message: 'the app has no current droplet' } };
    // A version runs what its first instance launched with, like a Diego LRP: `cf set-env` or a new current droplet
    // reach instances at the next restart or deployment (a new version), never through a scale-up of the running
    // one — nor through the old side of a rollout, nor the old process a canceled deployment leaves behind.
    const frozen = proc.launched_version === proc.version && proc.launched_droplet_guid !== null;
    const specs = await specsOf(proc, app, {
      version: proc.version,
      dropletGuid: frozen ? proc.launched_droplet_guid! : app.droplet_guid,
      environmentVariables: frozen ? (proc.launched_environment_variables ?? app.environment_variables) : app.environment_variables,
      command: proc.command,
      memoryMb: proc.memory_in_mb,
      diskMb: proc.disk_in_mb,
      indexes: range(0, proc.instances),
    });
    if (!Array.isArray(specs)) return { specs: [], proc, app, blocked: specs };
    return { specs, proc, app, ...(frozen ? {} : { launch: { app } }) };
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
      // A deployment's end changes which web processes keep their launch settings.
      deployments: async (c) => {
        const d = await store.db.selectFrom('deployments').select('app_guid').where('guid', '=', c.guid).executeTakeFirst();
        return d ? processesOfApp(d.app_guid) : [];
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
    if (want.proc) await recordCrashes(store, want.proc, observed);
    else await forgetCrashes(store, processGuid);
    const wanted = new Set(want.specs.map((s) => s.id));
    const missing = want.specs.filter((spec) => !observed.some((o) => o.id === spec.id));
    const launch = want.launch;
    if (missing.length > 0 && launch && !observed.some((o) => o.version === missing[0]!.version)) {
      // A version's first instance: remember what it starts with, for the old side of a later rollout.
      const { version } = missing[0]!;
      await store.write((tx) =>
        tx.updateStatus('processes', processGuid, {
          launched_version: version,
          launched_droplet_guid: launch.app.droplet_guid,
          launched_environment_variables: launch.app.environment_variables,
        }),
      );
    }
    for (const spec of missing) await runtime.ensureInstance(spec);
    const now = runtime.listInstances({ processGuid });
    // Keep an old-version instance serving until its replacement at the same index is up (or has failed).
    const replacementPending = (old: InstanceStatus) => now.some((n) => wanted.has(n.id) && n.index === old.index && n.state === 'STARTING');
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
