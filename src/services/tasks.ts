import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { parseJsonObject } from '../domain/apps.ts';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { PROCESS_DEFAULTS, REDACTED } from '../domain/processes.ts';
import { taskQuotaErrors, type TaskDemand } from '../domain/quotas.ts';
import {
  CANCELABLE_TASK_STATES,
  cancelRefused,
  NO_DROPLET,
  taskModelErrors,
  type CreateTask,
  type TaskState,
  type UpdateTask,
} from '../domain/tasks.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { auditApp } from './apps.ts';
import { assertSpaceMutable, findVisibleApp, appScopeFor, type AppScope } from './app-scope.ts';
import type { Ctx } from './context.ts';
import { requireFeature } from './feature-flags.ts';
import { organizationQuotaOf } from './organization-quotas.ts';
import { appUsage } from './process-quotas.ts';
import { spaceQuotaOf } from './space-quotas.ts';
import { transitionTask } from '../lifecycle/tasks.ts';

/** `GET /v3/tasks`. `sequence_ids` only exists on the app-scoped list (upstream rejects it here). */
export const TASK_LIST: ListSpec = {
  filters: ['names', 'states', 'app_guids', 'space_guids', 'organization_guids'],
  labelSelector: true,
};

/** `GET /v3/apps/:guid/tasks`: the app fixes app, space and org, so those filters are unknown parameters. */
export const APP_TASK_LIST: ListSpec = {
  filters: ['names', 'states', 'sequence_ids'],
  labelSelector: true,
};

/** A task with its app and space: what presenting and authorizing it needs. */
export interface TaskScope extends AppScope {
  task: Row<'tasks'>;
}

// ---- reading ----

export async function listTasks(ctx: Ctx, params: ListParams, appGuid?: string): Promise<Page<Row<'tasks'>>> {
  const f = params.filters;
  let q = ctx.store.db
    .selectFrom('tasks')
    .innerJoin('apps', 'apps.guid', 'tasks.app_guid')
    .innerJoin('spaces', 'spaces.guid', 'apps.space_guid')
    .selectAll('tasks')
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.spaceVisible(eb, 'apps.space_guid')));
  if (appGuid !== undefined) q = q.where('tasks.app_guid', '=', appGuid);
  if (f.names) q = q.where('tasks.name', 'in', f.names);
  if (f.states) q = q.where('tasks.state', 'in', f.states as TaskState[]); // unknown states match nothing
  if (f.app_guids) q = q.where('tasks.app_guid', 'in', f.app_guids);
  if (f.space_guids) q = q.where('apps.space_guid', 'in', f.space_guids);
  if (f.organization_guids) q = q.where('spaces.organization_guid', 'in', f.organization_guids);
  if (f.sequence_ids) {
    // A value that is not a number matches no task (the column is an integer).
    const ids = f.sequence_ids.filter((s) => /^\d{1,15}$/.test(s)).map(Number);
    q = q.where('tasks.sequence_id', 'in', ids.length > 0 ? ids : [-1]);
  }
  return listPage(q, listOptions('tasks', params));
}

/** A task the caller can read, else 404 `Task not found`. */
export async function findVisibleTask(ctx: Ctx, guid: string): Promise<TaskScope> {
  const task = await ctx.store.db.selectFrom('tasks').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!task) throw notFound('Task');
  return { ...(await appScopeFor(ctx, task.app_guid, 'Task')), task };
}

/** Whether the caller sees task commands in this space (space developers and global secret readers). */
export const canSeeCommand = (ctx: Ctx, spaceGuid: string) => ctx.access.canReadSpaceSecrets(spaceGuid);

/**
 * The container user each task is shown with: the one asked for, else the droplet's default (upstream's
 * run_action_user: `root` for docker and cnb droplets, `vcap` otherwise). Keyed by task guid.
 */
export async function runUsers(ctx: Pick<Ctx, 'store'>, tasks: Array<Pick<Row<'tasks'>, 'guid' | 'droplet_guid' | 'run_user'>>) {
  const db = ctx.store.db;
  const dropletGuids = [...new Set(tasks.filter((t) => !t.run_user).map((t) => t.droplet_guid))];
  const lifecycles = new Map<string, string>();
  for (let i = 0; i < dropletGuids.length; i += 900) {
    const rows = await db
      .selectFrom('droplets')
      .select(['guid', 'lifecycle_type'])
      .where('guid', 'in', dropletGuids.slice(i, i + 900))
      .execute();
    for (const r of rows) lifecycles.set(r.guid, r.lifecycle_type);
  }
  const out = new Map<string, string>();
  for (const t of tasks) {
    const lifecycle = lifecycles.get(t.droplet_guid);
    out.set(t.guid, t.run_user ?? (lifecycle === 'docker' || lifecycle === 'cnb' ? 'root' : 'vcap'));
  }
  return out;
}

// ---- writing ----

const loadTask = (db: Kysely<Database>, guid: string) => db.selectFrom('tasks').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

/** Space developer (or admin) in a space that can be written to. */
async function requireTaskWriter(ctx: Ctx, scope: AppScope): Promise<void> {
  if (!(await ctx.access.canWriteSpace(scope.space.guid))) throw notAuthorized();
  await assertSpaceMutable(ctx, scope.space);
}

/** The `task_creation` feature flag; upstream checks it before anything else (admins bypass). */
export async function requireTaskCreation(ctx: Ctx): Promise<void> {
  if (!ctx.access.admin) await requireFeature(ctx.store.db, 'task_creation');
}

function auditTask(tx: WriteTx, ctx: Ctx, verb: 'create' | 'cancel', scope: AppScope, task: Row<'tasks'>) {
  return auditApp(tx, ctx, `task.${verb}`, scope, {
    task_guid: task.guid,
    request: { name: task.name, memory_in_mb: task.memory_in_mb, command: REDACTED },
  });
}

/**
 * Creates a RUNNING task from the app's current droplet (or the droplet asked for), if it fits the org's and space's
 * quotas (upstream's TaskModel validations); the task controller launches it.
 * A template process supplies command, memory, disk and log rate unless the request sets them.
 */
export async function createTask(ctx: Ctx, appGuid: string, input: CreateTask): Promise<{ task: Row<'tasks'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const scope = await findVisibleApp(ctx, appGuid);
  await requireTaskWriter(ctx, scope);
  if (scope.app.status === 'deleting') throw new KilnError('ResourceBeingDeleted', 'app');
  const db = ctx.store.db;

  let droplet: Row<'droplets'> | undefined;
  if (input.droplet_guid != null) {
    droplet = await db.selectFrom('droplets').selectAll().where('guid', '=', input.droplet_guid).where('app_guid', '=', scope.app.guid).executeTakeFirst();
    if (!droplet) throw notFound('Droplet');
  } else if (scope.app.droplet_guid) {
    droplet = await db.selectFrom('droplets').selectAll().where('guid', '=', scope.app.droplet_guid).executeTakeFirst();
  }
  if (!droplet) throw unprocessable(NO_DROPLET);

  let template: Row<'processes'> | undefined;
  if (input.template) {
    // Only the app's own processes: a template from another app would reveal that app's command.
    template = await db
      .selectFrom('processes')
      .selectAll()
      .where('guid', '=', input.template.processGuid)
      .where('app_guid', '=', scope.app.guid)
      .executeTakeFirst();
    if (!template) throw new KilnError('ProcessNotFound', input.template.processGuid);
  }

  const detected = template ? (parseJsonObject(droplet.process_types)[template.type] as string | undefined) : undefined;
  const command = input.command ?? template?.command ?? detected ?? '';
  const name = input.name ?? randomBytes(4).toString('hex');
  const user = input.user ?? null;
  const problems = taskModelErrors({ name, command, user });
  if (problems.length > 0) throw unprocessable(problems.join(', '));
  if (droplet.state !== 'STAGED') throw unprocessable(`Droplet must be STAGED to run a task; its state is ${droplet.state}`);

  const guid = newGuid();
  const values = {
    guid,
    app_guid: scope.app.guid,
    droplet_guid: droplet.guid,
    name,
    command,
    // Upstream answers RUNNING once Diego accepted the task; here the task controller launches RUNNING tasks it
    // has not handed to the runtime yet (`launched`).
    state: 'RUNNING' as const satisfies TaskState,
    launched: 0,
    memory_in_mb: input.memory_in_mb ?? template?.memory_in_mb ?? PROCESS_DEFAULTS.memoryInMb,
    disk_in_mb: input.disk_in_mb ?? template?.disk_in_mb ?? PROCESS_DEFAULTS.diskInMb,
    log_rate_limit: input.log_rate_limit_in_bytes_per_second ?? template?.log_rate_limit_in_bytes_per_second ?? PROCESS_DEFAULTS.logRateLimit,
    run_user: user,
    failure_reason: null,
  };
  // Two concurrent creates may pick the same next number on PostgreSQL; the unique index refuses the second.
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.store.write(async (tx) => {
        const max = await tx.db
          .selectFrom('tasks')
          .select((eb) => eb.fn.max('sequence_id').as('max'))
          .where('app_guid', '=', scope.app.guid)
          .executeTakeFirst();
        const sequence_id = Number(max?.max ?? 0) + 1;
        // Read inside the write so that concurrent creates cannot both slip under a quota.
        await assertTaskFits(tx.db, scope.space, { memoryInMb: values.memory_in_mb, logRate: values.log_rate_limit });
        await tx.insert('tasks', { ...values, sequence_id });
        const metadata = await saveMetadata(tx, 'tasks', guid, input.metadata);
        const task = await loadTask(tx.db, guid);
        await auditTask(tx, ctx, 'create', scope, task);
        return { task, metadata };
      });
    } catch (err) {
      if (attempt < 5 && isUniqueViolation(err)) continue;
      throw err;
    }
  }
}

/** Refuses a task that would not fit the org's or space's quota, in upstream's words (task_model.rb). */
async function assertTaskFits(db: Kysely<Database>, space: Pick<Row<'spaces'>, 'guid' | 'name' | 'organization_guid'>, demand: TaskDemand): Promise<void> {
  const [orgQuota, spaceQuota] = await Promise.all([organizationQuotaOf(db, space.organization_guid), spaceQuotaOf(db, space.guid)]);
  if (!orgQuota && !spaceQuota) return;
  const org = await db.selectFrom('organizations').select('name').where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
  const errors = taskQuotaErrors(
    demand,
    { quota: orgQuota, name: org.name, usage: await appUsage(db, { orgGuid: space.organization_guid }, []) },
    { quota: spaceQuota, name: space.name, usage: await appUsage(db, { spaceGuid: space.guid }, []) },
  );
  if (errors.length > 0) throw unprocessable(errors.join(', '));
}

/** Metadata only; space developers. */
export async function updateTask(ctx: Ctx, scope: TaskScope, input: UpdateTask): Promise<{ task: Row<'tasks'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  await requireTaskWriter(ctx, scope);
  return ctx.store.write(async (tx) => {
    const metadata = await saveMetadata(tx, 'tasks', scope.task.guid, input.metadata);
    return { task: await loadTask(tx.db, scope.task.guid), metadata };
  });
}

/**
 * Cancels a task: PENDING/RUNNING (or CANCELING again) → CANCELING; the task controller stops it and marks it
 * FAILED. Space developers and supporters (CONVENTIONS.md Appendix B).
 */
export async function cancelTask(ctx: Ctx, scope: TaskScope): Promise<Row<'tasks'>> {
  if (!(await ctx.access.canManageApps(scope.space.guid))) throw notAuthorized();
  await assertSpaceMutable(ctx, scope.space);
  return ctx.store.write(async (tx) => {
    if (!(await transitionTask(tx, scope.task.guid, CANCELABLE_TASK_STATES, 'CANCELING'))) {
      const current = await loadTask(tx.db, scope.task.guid);
      throw unprocessable(cancelRefused(current.state));
    }
    const task = await loadTask(tx.db, scope.task.guid);
    await auditTask(tx, ctx, 'cancel', scope, task);
    return task;
  });
}
