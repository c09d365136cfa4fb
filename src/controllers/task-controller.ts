import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { TASK_CANCELLED, TASK_INTERRUPTED, TASK_UNABLE_TO_RUN, TERMINAL_TASK_STATES } from '../domain/tasks.ts';
import type { Runtime, TaskSpec } from '../runtime/runtime.ts';
import { FDS_LIMIT, runningEnvironment, vcapApplication, vcapServices } from '../services/app-env.ts';
import { transitionTask } from '../services/tasks.ts';
import { deleteMetadata } from '../store/metadata.ts';
import type { Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { DropletCache } from './droplet-cache.ts';
import type { Reconciler } from './runtime/controller.ts';

export interface TaskControllerDeps {
  store: Store;
  runtime: Runtime;
  droplets: DropletCache;
  log: Logger;
  /** The API's public URL, for VCAP_APPLICATION.cf_api. */
  cfApi: () => string;
}

/** The reconciler's name, for `ControllerManager.enqueue` (runtime task events). */
export const TASK_CONTROLLER = 'tasks';

const APP_KEY = 'apps:';

/**
 * Drives tasks through their states (CONVENTIONS.md §17.6), comparing the store with what the runtime reports:
 *
 * - RUNNING and not yet launched (the API creates tasks RUNNING, as upstream answers once Diego accepted them; PENDING
 *   rows from before are treated alike): marked launched first, then handed to the runtime. A Kiln that dies between
 *   the two leaves a launched task the runtime never heard of, which the next rule fails — so a task runs at most
 *   once, as on Diego.
 * - RUNNING and launched: finished in the runtime → SUCCEEDED, or FAILED with the runtime's reason (exit status); unknown to the
 *   runtime → FAILED `task was interrupted by a Kiln restart` (the local runtime kills a previous run's children at
 *   start, and the start-up resync lists every non-terminal task, so none is left RUNNING).
 * - CANCELING: stopped in the runtime (if it runs there) → FAILED `task was cancelled`.
 *
 * Transitions compare-and-set the state, so an API cancel racing the controller is never lost. Tasks of an app being
 * deleted are cancelled; tasks of a deleted app are stopped and removed with their metadata.
 */
export function taskController(deps: TaskControllerDeps): Reconciler {
  const { store, runtime, droplets, log } = deps;

  const transition = (guid: string, from: string, to: 'RUNNING' | 'SUCCEEDED' | 'FAILED', reason: string | null = null) =>
    store.write((tx) => transitionTask(tx, guid, [from], to, reason));

  async function stopInRuntime(guid: string): Promise<void> {
    if (runtime.taskStatus(guid)?.state === 'RUNNING') await runtime.cancelTask(guid);
  }

  /** Claims a task for one launch (compare-and-set on its state and the flag), moving a legacy PENDING row to RUNNING. */
  async function markLaunched(task: Row<'tasks'>): Promise<boolean> {
    return store.write(async (tx) => {
      const res = await tx.db
        .updateTable('tasks')
        .set((eb) => ({ state: 'RUNNING', launched: 1, updated_at: tx.now, generation: eb('generation', '+', 1) }))
        .where('guid', '=', task.guid)
        .where('state', '=', task.state)
        .where('launched', '=', 0)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) return false;
      tx.changed('tasks', task.guid, 'update');
      return true;
    });
  }

  /** What the runtime runs for a task: its droplet, command and limits, in an environment like the app's. */
  async function specFor(task: Row<'tasks'>, app: Row<'apps'>): Promise<TaskSpec | undefined> {
    const droplet = await store.db.selectFrom('droplets').selectAll().where('guid', '=', task.droplet_guid).executeTakeFirst();
    if (!droplet || droplet.state !== 'STAGED' || !droplet.blob_key) return undefined;
    const space = await store.db.selectFrom('spaces').select(['guid', 'name', 'organization_guid']).where('guid', '=', app.space_guid).executeTakeFirstOrThrow();
    const org = await store.db.selectFrom('organizations').select(['guid', 'name']).where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
    const dropletDir = await droplets.ensure(droplet.guid, droplet.blob_key);
    // Upstream's task VCAP_APPLICATION: the app's, with the task's limits and a fresh version (no process id/type).
    const version = randomUUID();
    const vcap = {
      ...(await vcapApplication(store.db, { app, space, org, cfApi: deps.cfApi() })),
      limits: { fds: FDS_LIMIT, mem: task.memory_in_mb, disk: task.disk_in_mb },
      version,
      application_version: version,
    };
    return {
      id: task.guid,
      name: task.name,
      appGuid: app.guid,
      dropletDir,
      command: task.command,
      env: {
        ...(await runningEnvironment(store.db, app)),
        VCAP_APPLICATION: JSON.stringify(vcap),
        VCAP_SERVICES: JSON.stringify(await vcapServices(store.db, app.guid)),
      },
      memoryMb: task.memory_in_mb,
      diskMb: task.disk_in_mb,
    };
  }

  async function start(task: Row<'tasks'>): Promise<void> {
    const app = await store.db.selectFrom('apps').selectAll().where('guid', '=', task.app_guid).executeTakeFirst();
    // A missing or deleting app is handled by its `apps:` key (cancel, then clean up).
    if (!app || app.status !== 'active') return;
    let spec: TaskSpec | undefined;
    try {
      spec = await specFor(task, app);
    } catch (err) {
      log.error({ err, task: task.guid }, 'preparing the task failed');
    }
    if (!spec) {
      await transition(task.guid, task.state, 'FAILED', TASK_UNABLE_TO_RUN);
      return;
    }
    // Lost the race with a cancel: the cancel's change brings this key back as CANCELING.
    if (!(await markLaunched(task))) return;
    try {
      await runtime.runTask(spec);
    } catch (err) {
      log.error({ err, task: task.guid }, 'the runtime refused the task');
      await transition(task.guid, 'RUNNING', 'FAILED', TASK_UNABLE_TO_RUN);
    }
  }

  async function observe(task: Row<'tasks'>): Promise<void> {
    const status = runtime.taskStatus(task.guid);
    if (!status) {
      await transition(task.guid, 'RUNNING', 'FAILED', TASK_INTERRUPTED);
      return;
    }
    if (status.state === 'SUCCEEDED') await transition(task.guid, 'RUNNING', 'SUCCEEDED');
    else if (status.state === 'FAILED') {
      const reason = status.failureReason ?? `Exited with status ${status.exitCode ?? 'unknown'}`;
      await transition(task.guid, 'RUNNING', 'FAILED', reason);
    }
  }

  async function reconcileTask(guid: string): Promise<void> {
    const task = await store.db.selectFrom('tasks').selectAll().where('guid', '=', guid).executeTakeFirst();
    if (!task) {
      await stopInRuntime(guid);
      return;
    }
    switch (task.state) {
      case 'PENDING':
        return start({ ...task, launched: 0 });
      case 'RUNNING':
        return task.launched ? observe(task) : start(task);
      case 'CANCELING':
        await stopInRuntime(guid);
        await transition(guid, 'CANCELING', 'FAILED', TASK_CANCELLED);
        return;
      default:
        // Terminal: nothing may still run for it.
        await stopInRuntime(guid);
    }
  }

  async function reconcileApp(appGuid: string): Promise<void> {
    const app = await store.db.selectFrom('apps').select(['guid', 'status']).where('guid', '=', appGuid).executeTakeFirst();
    if (app && app.status !== 'deleting') return;
    const rows = await store.db.selectFrom('tasks').select(['guid', 'state']).where('app_guid', '=', appGuid).execute();
    if (app) {
      // Being deleted: cancel what is still live; each task's own key then stops and fails it.
      const live = rows.filter((r) => !(TERMINAL_TASK_STATES as readonly string[]).includes(r.state));
      if (live.length === 0) return;
      await store.write(async (tx) => {
        for (const r of live) await transitionTask(tx, r.guid, ['PENDING', 'RUNNING'], 'CANCELING');
      });
      return;
    }
    if (rows.length === 0) return;
    for (const r of rows) await stopInRuntime(r.guid);
    await store.write(async (tx) => {
      const guids = rows.map((r) => r.guid);
      await deleteMetadata(tx, 'tasks', guids);
      await tx.db.deleteFrom('tasks').where('guid', 'in', guids).execute();
      for (const g of guids) tx.changed('tasks', g, 'delete');
    });
  }

  return {
    name: TASK_CONTROLLER,
    watches: ['tasks', 'apps'],
    concurrency: 4,
    keyFor(change) {
      if (change.kind === 'tasks') return change.guid;
      // Only an app's deletion (marked, then done) concerns its tasks.
      return change.op === 'create' ? undefined : `${APP_KEY}${change.guid}`;
    },
    async listKeys() {
      const live = await store.db.selectFrom('tasks').select('guid').where('state', 'not in', [...TERMINAL_TASK_STATES]).execute();
      const orphaned = await store.db
        .selectFrom('tasks')
        .leftJoin('apps', 'apps.guid', 'tasks.app_guid')
        .select('tasks.app_guid')
        .distinct()
        .where((eb) => eb.or([eb('apps.guid', 'is', null), eb('apps.status', '=', 'deleting')]))
        .execute();
      return [...live.map((r) => r.guid), ...orphaned.map((r) => `${APP_KEY}${r.app_guid}`)];
    },
    async reconcile(key) {
      if (key.startsWith(APP_KEY)) return reconcileApp(key.slice(APP_KEY.length));
      return reconcileTask(key);
    },
  };
}
