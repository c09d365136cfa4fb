import type { Logger } from 'pino';
import { canaryStepTarget, isActive } from '../domain/deployments.ts';
import { processGuidOfInstance, type InstanceStatus, type Runtime } from '../runtime/runtime.ts';
import { canarySteps, deleteProcess, finalizeCanceled, finalizeDeployed, priorWebProcess, supersededProcesses, transition, webProcesses } from '../lifecycle/deployments.ts';
import type { Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { self, type Reconciler } from './runtime/controller.ts';

export interface DeploymentControllerDeps {
  store: Store;
  runtime: Runtime;
  log: Logger;
  /**
   * Resolves once the router's table reflects the runtime's current RUNNING instances: an old instance is
   * drained only after the new ones that replace it receive traffic.
   */
  routed: () => Promise<void>;
  /** How soon to look again while instances start (runtime events usually come first). */
  pollMs?: number;
}

/** The reconciler's name. */
export const DEPLOYMENT_CONTROLLER = 'deployments';

/**
 * Drives deployments (CONVENTIONS.md §17.5, §18) as upstream's deployment updater does, as a level-triggered
 * state machine over the store and the runtime's observed instances. A deployment created a new web process; this
 * controller only moves the instance counts of the app's web processes, and the process controller makes the
 * runtime match them:
 *
 * - DEPLOYING / PREPAUSED (upstream's Scale): with `routable` instances of the new process RUNNING and in the
 *   router, the old web processes (oldest first) keep `total − routable` instances, where `total` is the target
 *   count (or the canary step's canary + original); the new process grows to `routable + max_in_flight` (at most
 *   the target, or the step's canary count) while fewer than `max_in_flight` of its instances start and none
 *   crashed. Once the new process runs the whole goal, a rolling deployment finalizes (the old web processes are
 *   removed) and a canary step pauses (PAUSED) until `continue`.
 * - CANCELING: the web process the app had before (upstream's prior web process) returns to the original count;
 *   once those instances serve, the other web processes are removed and the deployment is CANCELED.
 *
 * Every decision is recomputed from the rows and what runs now, so a crash at any point (the local runtime starts
 * empty after a Kiln restart, the process controller recreates every process from its row) only delays completion.
 */
export function deploymentController(deps: DeploymentControllerDeps): Reconciler {
  const { store, runtime } = deps;
  const pollMs = deps.pollMs ?? 250;

  async function activeFor(column: 'app_guid' | 'process_guid', guid: string): Promise<string[]> {
    const rows = await store.db.selectFrom('deployments').select('guid').where(column, '=', guid).where('status_value', '=', 'ACTIVE').execute();
    return rows.map((r) => r.guid);
  }

  async function activeForProcess(processGuid: string): Promise<string[]> {
    // An instance event of an old web process matters too: the deployment names only the new one.
    const proc = await store.db.selectFrom('processes').select('app_guid').where('guid', '=', processGuid).executeTakeFirst();
    return proc ? activeFor('app_guid', proc.app_guid) : activeFor('process_guid', processGuid);
  }

  return {
    name: DEPLOYMENT_CONTROLLER,
    watches: {
      deployments: self,
      apps: (c) => activeFor('app_guid', c.guid),
      processes: (c) => activeForProcess(c.guid),
    },
    runtimeEvents: { instance: (e) => activeForProcess(processGuidOfInstance(e.id)) },
    concurrency: 4,
    async listKeys() {
      const rows = await store.db.selectFrom('deployments').select('guid').where('status_value', '=', 'ACTIVE').execute();
      return rows.map((r) => r.guid);
    },
    async reconcile(guid) {
      const r = await step(guid);
      return r !== undefined ? { requeueAfterMs: r } : undefined;
    },
  };

  function observedOf(proc: Pick<Row<'processes'>, 'guid' | 'version'>): InstanceStatus[] {
    return runtime.listInstances({ processGuid: proc.guid }).filter((i) => i.version === proc.version && i.state !== 'STOPPING');
  }

  function servingOf(proc: Pick<Row<'processes'>, 'guid' | 'version'>): number {
    return observedOf(proc).filter((i) => i.state === 'RUNNING').length;
  }

  /** One pass over one deployment; returns a poll delay while it is still moving. */
  async function step(guid: string): Promise<number | undefined> {
    const d = await store.db.selectFrom('deployments').selectAll().where('guid', '=', guid).executeTakeFirst();
    if (!d || !isActive(d.state)) return undefined;
    const app = await store.db.selectFrom('apps').selectAll().where('guid', '=', d.app_guid).executeTakeFirst();
    const deploying = await store.db.selectFrom('processes').selectAll().where('guid', '=', d.process_guid).executeTakeFirst();
    const serving = async (processGuid: string) => {
      const p = await store.db.selectFrom('processes').select(['guid', 'version']).where('guid', '=', processGuid).executeTakeFirst();
      return p ? servingOf(p) > 0 : false;
    };
    const prior = async () => {
      const webs = await webProcesses(store.db, d.app_guid);
      const running = new Set<string>();
      for (const p of webs) if (await serving(p.guid)) running.add(p.guid);
      return priorWebProcess(store.db, d, (g) => running.has(g));
    };
    if (!app || !deploying || app.status !== 'active') {
      const back = await prior();
      await write(d, (tx, row) => finalizeCanceled(tx, row, back));
      return undefined;
    }
    if (app.state !== 'STARTED') {
      // A stopped app runs nothing: there is nothing left to roll. The new process is what it starts with next time.
      if (d.state === 'CANCELING') {
        const back = await prior();
        await write(d, (tx, row) => finalizeCanceled(tx, row, back));
      } else {
        await write(d, async (tx, row) => {
          const p = await tx.db.selectFrom('processes').selectAll().where('guid', '=', row.process_guid).executeTakeFirstOrThrow();
          if (p.instances !== row.target_instances) await tx.update('processes', p.guid, { instances: row.target_instances }, { expectedGeneration: p.generation });
          await finalizeDeployed(tx, row);
        });
      }
      return undefined;
    }
    if (d.state === 'PAUSED') return undefined;

    if (d.state === 'CANCELING') {
      const back = await prior();
      if (!back) {
        await write(d, (tx, row) => finalizeCanceled(tx, row, undefined));
        return undefined;
      }
      const backServing = servingOf(back);
      if (backServing > 0) await deps.routed();
      if (backServing >= d.original_instances) {
        await write(d, (tx, row) => finalizeCanceled(tx, row, back));
        return undefined;
      }
      if (back.instances !== d.original_instances) {
        await write(d, async (tx) => {
          const p = await tx.db.selectFrom('processes').selectAll().where('guid', '=', back.guid).executeTakeFirstOrThrow();
          await tx.update('processes', p.guid, { instances: d.original_instances }, { expectedGeneration: p.generation });
        });
      }
      return pollMs;
    }

    // DEPLOYING or PREPAUSED: upstream's Scale with the rollout's (or the canary step's) counts.
    const canary = d.state === 'PREPAUSED' ? canaryStepTarget(d.original_instances, d.web_instances, canarySteps(d), d.canary_step) : undefined;
    const total = canary ? canary.canary + canary.original : d.target_instances;
    const goal = canary ? canary.canary : d.target_instances;
    const fresh = observedOf(deploying);
    const routable = fresh.filter((i) => i.state === 'RUNNING').length;
    const starting = fresh.filter((i) => i.state === 'STARTING').length;
    const crashed = fresh.find((i) => i.state === 'CRASHED');
    // Counted as routable only once the router sends them traffic: the old side shrinks after that.
    if (routable > 0) await deps.routed();

    const olds = (await webProcesses(store.db, d.app_guid)).filter((p) => p.guid !== deploying.guid);
    const oldTotal = olds.reduce((n, p) => n + p.instances, 0);
    const keepOld = Math.max(total - routable, 0);
    const canDownscale = oldTotal > keepOld;
    const canScale = starting < d.max_in_flight && !crashed && routable >= deploying.instances - d.max_in_flight;
    const finished = deploying.instances >= goal && routable >= goal;
    const error = crashed ? `Instance ${crashed.index} of the new process crashed: ${crashed.lastExit?.reason ?? 'unknown'}` : null;

    if (!canScale && !canDownscale) {
      if (error !== d.error) await write(d, (tx, row) => tx.update('deployments', row.guid, { error }, { expectedGeneration: row.generation }));
      return pollMs;
    }
    await write(d, async (tx, row) => {
      // Processes of superseded rollouts that were canceled (a paused canary) stop at once.
      const canceled = await supersededProcesses(tx.db, row.app_guid, 'CANCELED');
      // Only real moves are written: a no-op pass must not wake every watcher of the row again.
      let touched = false;
      let webs = (await webProcesses(tx.db, row.app_guid)).filter((p) => p.guid !== row.process_guid);
      for (const p of webs) {
        if (canceled.has(p.guid) && p.instances > 0) {
          await tx.update('processes', p.guid, { instances: 0 }, { expectedGeneration: p.generation });
          touched = true;
        }
      }
      webs = (await webProcesses(tx.db, row.app_guid)).filter((p) => p.guid !== row.process_guid);
      let reduce = webs.reduce((n, p) => n + p.instances, 0) - keepOld;
      const oldest = webs[0]?.guid;
      for (const p of webs) {
        if (reduce <= 0) break;
        const next = Math.max(0, p.instances - reduce);
        reduce -= p.instances - next;
        // The original web process stays (at 0) until the end; an interim one of a superseded rollout goes.
        if (next === p.instances) continue;
        if (next === 0 && p.guid !== oldest) await deleteProcess(tx, p.guid);
        else await tx.update('processes', p.guid, { instances: next }, { expectedGeneration: p.generation });
        touched = true;
      }
      const oldNow = (await webProcesses(tx.db, row.app_guid)).filter((p) => p.guid !== row.process_guid).reduce((n, p) => n + p.instances, 0);
      const proc = await tx.db.selectFrom('processes').selectAll().where('guid', '=', row.process_guid).executeTakeFirstOrThrow();
      if (finished) {
        if (canary) {
          await transition(tx, row, 'PAUSED', { new_instances: proc.instances, old_instances: oldNow, error: null, last_healthy_at: tx.now });
        } else {
          await finalizeDeployed(tx, row);
        }
        return;
      }
      let newInstances = proc.instances;
      if (canScale) {
        newInstances = Math.min(routable + row.max_in_flight, goal);
        if (newInstances !== proc.instances) {
          await tx.update('processes', proc.guid, { instances: newInstances }, { expectedGeneration: proc.generation });
          touched = true;
        }
      }
      if (!touched && newInstances === row.new_instances && oldNow === row.old_instances && error === row.error) return;
      await tx.update('deployments', row.guid, {
        new_instances: newInstances,
        old_instances: oldNow,
        error,
        ...(touched ? { last_healthy_at: tx.now } : {}),
      }, { expectedGeneration: row.generation });
    });
    return finished ? undefined : pollMs;
  }

  /**
   * Applies a change to the row as it was read; an API write in between (cancel, continue, supersede) makes the
   * update fail on its generation, and the queue retries with fresh state.
   */
  async function write(d: Row<'deployments'>, fn: (tx: Parameters<Parameters<Store['write']>[0]>[0], row: Row<'deployments'>) => Promise<unknown>): Promise<void> {
    await store.write((tx) => fn(tx, d));
  }
}
