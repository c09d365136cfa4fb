import type { Context } from 'hono';
import { CreateTaskSchema, UpdateTaskSchema } from '../../domain/tasks.ts';
import type { Metadata } from '../../domain/metadata.ts';
import { findVisibleApp } from '../../services/app-scope.ts';
import * as tasks from '../../services/tasks.ts';
import { metadataOf, metadataOfMany } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentTask } from '../presenters/task.ts';

export function registerTasks(app: Api, deps: AppDeps): void {
  async function renderOne(c: Context<Env>, task: Row<'tasks'>, showCommand: boolean, status: 200 | 202, metadata?: Metadata) {
    const users = await tasks.runUsers(deps, [task]);
    const md = metadata ?? (await metadataOf(deps, 'tasks', task.guid));
    return c.json(presentTask(task, md, { showCommand, user: users.get(task.guid)! }, c.var.linker), status);
  }

  async function renderList(c: Context<Env>, params: ReturnType<typeof listParams>, page: { rows: Array<Row<'tasks'>>; total: number }, showCommand: boolean) {
    const users = await tasks.runUsers(deps, page.rows);
    const metadata = await metadataOfMany(deps, 'tasks', page.rows.map((t) => t.guid));
    return c.json({
      pagination: pagination(c.var.linker, c.req.path, params, page.total),
      resources: page.rows.map((t) => presentTask(t, metadata.get(t.guid), { showCommand, user: users.get(t.guid)! }, c.get('linker'))),
    });
  }

  // Upstream never shows commands in the global list, not even to admins; app-scoped lists show them to secret readers.
  app.get('/v3/tasks', async (c) => {
    const params = listParams(c, tasks.TASK_LIST);
    return renderList(c, params, await tasks.listTasks(ctxOf(c, deps), params), false);
  });

  app.get('/v3/apps/:guid/tasks', async (c) => {
    const params = listParams(c, tasks.APP_TASK_LIST);
    const ctx = ctxOf(c, deps);
    const scope = await findVisibleApp(ctx, c.req.param('guid'));
    const page = await tasks.listTasks(ctx, params, scope.app.guid);
    return renderList(c, params, page, await tasks.canSeeCommand(ctx, scope.space.guid));
  });

  app.post('/v3/apps/:guid/tasks', async (c) => {
    const ctx = ctxOf(c, deps);
    await tasks.requireTaskCreation(ctx);
    const input = await readJson(c, CreateTaskSchema);
    const { task, metadata } = await tasks.createTask(ctx, c.req.param('guid'), input);
    return renderOne(c, task, true, 202, metadata);
  });

  app.get('/v3/tasks/:guid', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    const scope = await tasks.findVisibleTask(ctx, c.req.param('guid'));
    return renderOne(c, scope.task, await tasks.canSeeCommand(ctx, scope.space.guid), 200);
  });

  app.patch('/v3/tasks/:guid', async (c) => {
    const input = await readJson(c, UpdateTaskSchema);
    const ctx = ctxOf(c, deps);
    const scope = await tasks.findVisibleTask(ctx, c.req.param('guid'));
    const { task, metadata } = await tasks.updateTask(ctx, scope, input);
    return renderOne(c, task, await tasks.canSeeCommand(ctx, scope.space.guid), 200, metadata);
  });

  const cancel = async (c: Context<Env>) => {
    const ctx = ctxOf(c, deps);
    const scope = await tasks.findVisibleTask(ctx, c.req.param('guid')!);
    const task = await tasks.cancelTask(ctx, scope);
    // Space supporters may cancel but not read commands.
    return renderOne(c, task, await tasks.canSeeCommand(ctx, scope.space.guid), 202);
  };
  app.post('/v3/tasks/:guid/actions/cancel', cancel);
  // The deprecated form `cf terminate-task` still sends (OPERATIONS.md: cancelTaskShort).
  app.put('/v3/tasks/:guid/cancel', cancel);
}
