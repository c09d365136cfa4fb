import type { Logger } from 'pino';
import { TERMINAL_TASK_STATES } from '../domain/tasks.ts';
import type { Runtime } from '../runtime/runtime.ts';
import type { Store } from '../store/store.ts';
import type { DropletCache } from './droplet-cache.ts';
import type { Reconciler } from './runtime/controller.ts';

/** The reconciler's name, and its only key. */
export const DROPLET_COLLECTOR = 'droplet-cache';

/** What decides which extracted droplets the local runtime still needs, read from the store and the runtime. */
export interface DropletUse {
  /** Current droplets of STARTED apps (their processes run, or may be scaled up, from it). */
  startedAppDroplets: ReadonlyArray<string | null>;
  /** Both droplets of every ACTIVE deployment: the rollout runs old and new instances side by side. */
  activeDeployments: ReadonlyArray<{ droplet_guid: string; previous_droplet_guid: string | null }>;
  /** Droplets of tasks that are not finished, or that the runtime still runs. */
  liveTaskDroplets: readonly string[];
  /** Every instance the runtime has (in any state: a STOPPING or CRASHED one still uses its files). */
  instances: ReadonlyArray<{ appGuid: string; processGuid: string; version: string }>;
  /** Which droplet each known (process, version) pair was launched from. */
  versions: ReadonlyArray<{ processGuid: string; version: string; dropletGuid: string | null }>;
  /** Every droplet of each app with an instance: the fallback for an instance whose version is not known. */
  appDroplets: ReadonlyMap<string, readonly string[]>;
}

/**
 * The droplets not to remove, or undefined when that cannot be told. An instance whose version cannot be traced to
 * a droplet keeps every droplet of its app; one whose app has no droplet rows left (deleted, still stopping) stops
 * the whole pass: deleting the files of a running instance is worse than keeping a few directories a while longer.
 */
export function dropletsToKeep(use: DropletUse): Set<string> | undefined {
  const keep = new Set<string>();
  const add = (guid: string | null | undefined) => {
    if (guid) keep.add(guid);
  };
  use.startedAppDroplets.forEach(add);
  for (const d of use.activeDeployments) {
    add(d.droplet_guid);
    add(d.previous_droplet_guid);
  }
  use.liveTaskDroplets.forEach(add);
  const launchedFrom = new Map<string, Set<string>>();
  for (const v of use.versions) {
    if (!v.dropletGuid) continue;
    const key = `${v.processGuid}:${v.version}`;
    const set = launchedFrom.get(key) ?? new Set<string>();
    set.add(v.dropletGuid);
    launchedFrom.set(key, set);
  }
  for (const i of use.instances) {
    const known = launchedFrom.get(`${i.processGuid}:${i.version}`);
    const fallback = use.appDroplets.get(i.appGuid) ?? [];
    if (known) known.forEach(add);
    else if (fallback.length > 0) fallback.forEach(add);
    else return undefined;
  }
  return keep;
}

/** How recently a finished task may still be stopping in the runtime. */
const TASK_STOP_WINDOW_MS = 60 * 60 * 1000;

/** Reads what `dropletsToKeep` needs. */
export async function dropletUse(store: Store, runtime: Runtime): Promise<DropletUse> {
  const db = store.db;
  const instances = runtime.listInstances().map((i) => ({ appGuid: i.appGuid, processGuid: i.processGuid, version: i.version }));
  const processGuids = [...new Set(instances.map((i) => i.processGuid))];
  const appGuids = [...new Set(instances.map((i) => i.appGuid))];

  const startedApps = await db.selectFrom('apps').select('droplet_guid').where('state', '=', 'STARTED').execute();
  const activeDeployments = await db.selectFrom('deployments').select(['droplet_guid', 'previous_droplet_guid']).where('status_value', '=', 'ACTIVE').execute();

  const liveTasks = await db.selectFrom('tasks').select('droplet_guid').where('state', 'not in', [...TERMINAL_TASK_STATES]).execute();
  // A task row turns terminal before (cancel) or after (exit) its process goes; ask the runtime about recent ones.
  const since = new Date(Date.now() - TASK_STOP_WINDOW_MS).toISOString();
  const recentlyFinished = await db
    .selectFrom('tasks')
    .select(['guid', 'droplet_guid'])
    .where('state', 'in', [...TERMINAL_TASK_STATES])
    .where('updated_at', '>=', since)
    .execute();
  const liveTaskDroplets = [
    ...liveTasks.map((t) => t.droplet_guid),
    ...recentlyFinished.filter((t) => runtime.taskStatus(t.guid)?.state === 'RUNNING').map((t) => t.droplet_guid),
  ];

  const versions: Array<{ processGuid: string; version: string; dropletGuid: string | null }> = [];
  const appDroplets = new Map<string, string[]>();
  if (processGuids.length > 0) {
    const procs = await db
      .selectFrom('processes')
      .select(['guid', 'launched_version', 'launched_droplet_guid'])
      .where('guid', 'in', processGuids)
      .execute();
    // Only what the process controller recorded as launched: the app's current droplet may not be what runs.
    for (const p of procs) {
      if (p.launched_version) versions.push({ processGuid: p.guid, version: p.launched_version, dropletGuid: p.launched_droplet_guid });
    }
    // Deployments of any status: an instance of a superseded or finished rollout may still be draining.
    const deployments = await db
      .selectFrom('deployments')
      .select(['process_guid', 'new_version', 'droplet_guid', 'old_version', 'previous_droplet_guid'])
      .where('process_guid', 'in', processGuids)
      .execute();
    for (const d of deployments) {
      versions.push({ processGuid: d.process_guid, version: d.new_version, dropletGuid: d.droplet_guid });
      if (d.old_version) versions.push({ processGuid: d.process_guid, version: d.old_version, dropletGuid: d.previous_droplet_guid });
    }
  }
  if (appGuids.length > 0) {
    const rows = await db.selectFrom('droplets').select(['guid', 'app_guid']).where('app_guid', 'in', appGuids).execute();
    for (const r of rows) appDroplets.set(r.app_guid, [...(appDroplets.get(r.app_guid) ?? []), r.guid]);
  }
  return { startedAppDroplets: startedApps.map((a) => a.droplet_guid), activeDeployments, liveTaskDroplets, instances, versions, appDroplets };
}

export interface DropletCollectorDeps {
  store: Store;
  runtime: Runtime;
  droplets: DropletCache;
  log: Logger;
  /** Least time between two prunes; the manager's periodic resync offers one at most every resync interval. */
  intervalMs?: number;
  /** Passed to `DropletCache.prune`. */
  graceMs?: number;
}

/**
 * Removes the local runtime's extracted droplets nothing needs any more (old droplets of running apps, those of
 * stopped or deleted apps). Its one key is listed at start and by every resync, so it runs at start and then at
 * most every `intervalMs`; each pass recomputes the keep set from scratch, so a missed or failed one only delays
 * the cleanup.
 */
export function dropletCollector(deps: DropletCollectorDeps): Reconciler {
  const intervalMs = deps.intervalMs ?? 5 * 60 * 1000;
  let lastPass: number | undefined;
  return {
    name: DROPLET_COLLECTOR,
    watches: [],
    concurrency: 1,
    async listKeys() {
      return [DROPLET_COLLECTOR];
    },
    async reconcile() {
      if (lastPass !== undefined && Date.now() - lastPass < intervalMs) return;
      lastPass = Date.now();
      const keep = dropletsToKeep(await dropletUse(deps.store, deps.runtime));
      // Unknown instances are stopping (their app is gone): the next resync, once they are, tries again.
      if (!keep) {
        lastPass = undefined;
        return;
      }
      const removed = await deps.droplets.prune(keep, deps.graceMs !== undefined ? { graceMs: deps.graceMs } : {});
      if (removed.length > 0) deps.log.info({ droplets: removed }, 'removed extracted droplets no longer in use');
    },
  };
}
