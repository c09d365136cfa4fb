import type { Logger } from 'pino';
import { canaryInstances, isActive } from '../domain/deployments.ts';
import { processGuidOfInstance, type InstanceStatus, type Runtime } from '../runtime/runtime.ts';
import { canarySteps, finalizeCanceled, finalizeDeployed, transition } from '../services/deployments.ts';
import type { Row, RowUpdate } from '../store/schema.ts';
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
 * Drives deployments (CONVENTIONS.md §17.5, §18) as a level-triggered state machine over the store and the
 * runtime's observed instances. It only moves the counts in the deployment row — how many new-version and
 * old-version instances of the rolled process may run — and the process controller makes the runtime match them:
 *
 * - DEPLOYING / PREPAUSED: allow new instances up to `max_in_flight` beyond those RUNNING (towards the target, or
 *   the canary step's count); once new ones RUNNING are in the router, lower the old count by as many. Reaching
 *   the target finalizes (DEPLOYED); reaching a canary step pauses (PAUSED) until `continue`.
 * - CANCELING: the old count goes back to the original; once those RUNNING are routed the process returns to the
 *   old version (the process controller removes the new instances) and the deployment is CANCELED.
 *
 * Every decision is recomputed from the row and what runs now, so a crash at any point (the local runtime starts
 * empty after a Kiln restart, the process controller recreates both sides from the row) only delays completion.
 */
export function deploymentController(deps: DeploymentControllerDeps): Reconciler {
  const { store, runtime } = deps;
  const pollMs = deps.pollMs ?? 250;

  async function activeFor(column: 'app_guid' | 'process_guid', guid: string): Promise<string[]> {
    const rows = await store.db.selectFrom('deployments').select('guid').where(column, '=', guid).where('status_value', '=', 'ACTIVE').execute();
    return rows.map((r) => r.guid);
  }

  return {
    name: DEPLOYMENT_CONTROLLER,
    watches: {
      deployments: self,
      apps: (c) => activeFor('app_guid', c.guid),
      processes: (c) => activeFor('process_guid', c.guid),
    },
    runtimeEvents: { instance: (e) => activeFor('process_guid', processGuidOfInstance(e.id)) },
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

  /** One pass over one deployment; returns a poll delay while it is still moving. */
  async function step(guid: string): Promise<number | undefined> {
    const d = await store.db.selectFrom('deployments').selectAll().where('guid', '=', guid).executeTakeFirst();
    if (!d || !isActive(d.state)) return undefined;
    const app = await store.db.selectFrom('apps').selectAll().where('guid', '=', d.app_guid).executeTakeFirst();
    const proc = await store.db.selectFrom('processes').select('guid').where('guid', '=', d.process_guid).executeTakeFirst();
    if (!app || !proc || app.status !== 'active') {
      await write(d, (tx, row) => finalizeCanceled(tx, row));
      return undefined;
    }
    if (app.state !== 'STARTED') {
      // A stopped app runs nothing: there is nothing left to roll, the new version is what it starts with.
      await write(d, (tx, row) => (row.state === 'CANCELING' ? finalizeCanceled(tx, row) : finalizeDeployed(tx, row)));
      return undefined;
    }
    const observed = runtime.listInstances({ processGuid: d.process_guid });
    const of = (version: string | null) => observed.filter((i) => i.version === version && i.state !== 'STOPPING');
    const running = (list: InstanceStatus[]) => list.filter((i) => i.state === 'RUNNING').length;
    const fresh = of(d.new_version);
    const newRunning = running(fresh);
    const crashed = fresh.find((i) => i.state === 'CRASHED');
    const health: RowUpdate<'deployments'> = crashed
      ? { error: `Instance ${crashed.index} of the new version crashed: ${crashed.lastExit?.reason ?? 'unknown'}` }
      : { error: null };

    if (d.state === 'PAUSED') return undefined;

    if (d.state === 'CANCELING') {
      const oldRunning = running(of(d.old_version));
      if (oldRunning > 0) await deps.routed();
      if (oldRunning >= d.original_instances || !d.old_version) {
        await write(d, (tx, row) => finalizeCanceled(tx, row));
        return undefined;
      }
      if (d.old_instances !== d.original_instances) await write(d, (tx, row) => tx.update('deployments', row.guid, row.generation, { old_instances: d.original_instances }));
      return pollMs;
    }

    // DEPLOYING or PREPAUSED.
    const goal = d.state === 'PREPAUSED' ? Math.min(d.target_instances, canaryInstances(d.target_instances, canarySteps(d), d.canary_step)) : d.target_instances;
    if (newRunning > 0) await deps.routed();
    const newInstances = Math.max(d.new_instances, Math.min(goal, newRunning + d.max_in_flight));
    const oldInstances = Math.min(d.old_instances, Math.max(0, d.original_instances - newRunning));
    const healthy = !crashed ? { last_healthy_at: new Date().toISOString() } : {};
    if (newRunning >= goal) {
      if (d.state === 'PREPAUSED') {
        await write(d, (tx, row) => transition(tx, row, 'PAUSED', { new_instances: newInstances, old_instances: oldInstances, ...health, ...healthy }));
      } else {
        await write(d, (tx, row) => finalizeDeployed(tx, row));
      }
      return undefined;
    }
    if (newInstances !== d.new_instances || oldInstances !== d.old_instances || (health.error ?? null) !== d.error) {
      await write(d, (tx, row) =>
        tx.update('deployments', row.guid, row.generation, { new_instances: newInstances, old_instances: oldInstances, ...health, ...healthy }),
      );
    }
    return pollMs;
  }

  /**
   * Applies a change to the row as it was read; an API write in between (cancel, continue, supersede) makes the
   * update fail on its generation, and the queue retries with fresh state.
   */
  async function write(d: Row<'deployments'>, fn: (tx: Parameters<Parameters<Store['write']>[0]>[0], row: Row<'deployments'>) => Promise<void>): Promise<void> {
    await store.write((tx) => fn(tx, d));
  }
}
