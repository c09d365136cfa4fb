import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { TASK_CANCELLED, TASK_INTERRUPTED, TASK_UNABLE_TO_RUN, TERMINAL_TASK_STATES, type TaskState } from '../domain/tasks.ts';
import type { Runtime, TaskSpec } from '../runtime/runtime.ts';
import { FDS_LIMIT, runningEnvironment, vcapApplication } from '../lifecycle/app-env.ts';
import { serviceDelivery } from '../lifecycle/binding-files.ts';
import { transitionTask } from '../lifecycle/tasks.ts';
import { deleteMetadata } from '../store/metadata.ts';
import type { Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { DropletCache } from './droplet-cache.ts';
import { self, standaloneContext, type ReconcileContext, type Reconciler } from './runtime/controller.ts';

export interface TaskControllerDeps {
  store: Store;
  runtime: Runtime;
  droplets: DropletCache;
  log: Logger;
  /** The API's public URL, for VCAP_APPLICATION.cf_api. */
  cfApi: () => string;
}

/** The reconciler's name. */
export const TASK_CONTROLLER = 'tasks';

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
 * deleted are cancelled; tasks of a deleted app are stopped and removed with their metadata. Each task records a
 * `Succeeded` condition once it finishes (reason `TaskSucceeded`, `TaskFailed` or `TaskCancelled`).
 */
export function taskController(deps: TaskControllerDeps): Reconciler {
  const { store, runtime, droplets, log } = deps;

  const transition = (guid: string, from: TaskState, to: 'RUNNING' | 'SUCCEEDED' | 'FAILED', reason: string | null = null) =>
    store.write((tx) => transitionTask(tx, guid, [from], to, reason));

  async function stopInRuntime(guid: string): Promise<void> {
    if (runtime.taskStatus(guid)?.state === 'RUNNING') await runtime.cancelTask(guid);
  }

  /** Claims a task for one launch (compare-and-set on its state and the flag), moving a legacy PENDING row to RUNNING. */
  async function markLaunched(task: Row<'tasks'>): Promise<boolean> {
    return store.write((tx) =>
      tx.updateStatus('tasks', task.guid, { state: 'RUNNING', launched: 1 }, { where: (eb) => eb.and([eb('state', '=', task.state), eb('launched', '=', 0)]) }),
    );
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
    // Incompatible bindings (servicebinding.io names) throw: the task fails as unable to run.
    const services = await serviceDelivery(store.db, app, store.secrets, runtime.updateBindingFiles !== undefined);
    return {
      id: task.guid,
      name: task.name,
      appGuid: app.guid,
      dropletDir,
      droplet: { guid: droplet.guid, blobKey: droplet.blob_key },
      command: task.command,
      env: {
        ...(await runningEnvironment(store.db, app, store.secrets)),
        VCAP_APPLICATION: JSON.stringify(vcap),
        ...services.env,
      },
      memoryMb: task.memory_in_mb,
      diskMb: task.disk_in_mb,
      spaceGuid: space.guid,
      organizationGuid: org.guid,
      ...(services.bindingFiles ? { bindingFiles: services.bindingFiles } : {}),
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

  async function reconcileTask(guid: string, ctx: ReconcileContext): Promise<void> {
    let task = await store.db.selectFrom('tasks').selectAll().where('guid', '=', guid).executeTakeFirst();
    if (!task) {
      await stopInRuntime(guid);
      return;
    }
    const app = await store.db.selectFrom('apps').select(['guid', 'status']).where('guid', '=', task.app_guid).executeTakeFirst();
    if (!app) {
      // The app is gone: nothing of the task may run, and its row and metadata go too.
      await stopInRuntime(guid);
      await store.write(async (tx) => {
        await deleteMetadata(tx, 'tasks', [guid]);
        await tx.delete('tasks', guid);
      });
      return;
    }
    if (app.status === 'deleting' && (task.state === 'PENDING' || task.state === 'RUNNING')) {
      // Being deleted: cancel what is still live, then stop and fail it below.
      await store.write((tx) => transitionTask(tx, guid, ['PENDING', 'RUNNING'], 'CANCELING'));
      task = await store.db.selectFrom('tasks').selectAll().where('guid', '=', guid).executeTakeFirst();
      if (!task) return;
    }
    switch (task.state) {
      case 'PENDING':
        await start({ ...task, launched: 0 });
        break;
      case 'RUNNING':
        await (task.launched ? observe(task) : start(task));
        break;
      case 'CANCELING':
        await stopInRuntime(guid);
        await transition(guid, 'CANCELING', 'FAILED', TASK_CANCELLED);
        break;
      default:
        // Terminal: nothing may still run for it.
        await stopInRuntime(guid);
    }
    const now = await store.db.selectFrom('tasks').select(['state', 'failure_reason']).where('guid', '=', guid).executeTakeFirst();
    if (now?.state === 'SUCCEEDED') ctx.condition({ type: 'Succeeded', status: 'True', reason: 'TaskSucceeded' });
    else if (now?.state === 'FAILED') {
      const cancelled = now.failure_reason === TASK_CANCELLED;
      ctx.condition({ type: 'Succeeded', status: 'False', reason: cancelled ? 'TaskCancelled' : 'TaskFailed', message: now.failure_reason ?? '' });
    } else if (now) ctx.condition({ type: 'Succeeded', status: 'Unknown', reason: now.state === 'PENDING' ? 'TaskPending' : 'TaskRunning' });
  }

  /** Tasks of an app that may need work when the app is being deleted or is gone. */
  async function tasksOfApp(appGuid: string): Promise<string[]> {
    const rows = await store.db.selectFrom('tasks').select('guid').where('app_guid', '=', appGuid).execute();
    return rows.map((r) => r.guid);
  }

  return {
    name: TASK_CONTROLLER,
    resource: 'task',
    watches: {
      tasks: self,
      // Only an app's deletion (marked, then done) concerns its tasks.
      apps: (c) => (c.op === 'create' ? [] : tasksOfApp(c.guid)),
    },
    runtimeEvents: { task: (e) => [e.id] },
    concurrency: 4,
    async listKeys() {
      const live = await store.db.selectFrom('tasks').select('guid').where('state', 'not in', [...TERMINAL_TASK_STATES]).execute();
      const orphaned = await store.db
        .selectFrom('tasks')
        .leftJoin('apps', 'apps.guid', 'tasks.app_guid')
        .select('tasks.guid')
        .where((eb) => eb.or([eb('apps.guid', 'is', null), eb('apps.status', '=', 'deleting')]))
        .execute();
      return [...new Set([...live.map((r) => r.guid), ...orphaned.map((r) => r.guid)])];
    },
    reconcile: (key, ctx) => reconcileTask(key, ctx ?? standaloneContext(log)),
  };
}
