import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { taskController } from '../../../src/controllers/task-controller.ts';
import { TASK_CANCELLED, TASK_INTERRUPTED, TASK_UNABLE_TO_RUN } from '../../../src/domain/tasks.ts';
import { reconcilerTest, type ReconcilerTest } from '../../helpers/reconciler-harness.ts';
import { appFixture, currentDroplet, noDropletFiles } from './fixtures.ts';

let r: ReconcilerTest;
beforeAll(async () => {
  r = await reconcilerTest((t, runtime) => taskController({ store: t.kiln.store, runtime, droplets: noDropletFiles, log: pino({ level: 'silent' }), cfApi: () => 'http://kiln.test' }));
});
afterAll(() => r.close());

async function newTask(name: string): Promise<{ app: string; task: string }> {
  const f = await appFixture(r.t, name);
  await currentDroplet(r.t, f.app);
  const res = await r.t.admin.post(`/v3/apps/${f.app}/tasks`, { command: 'rake db:migrate', name });
  expect(res.status, res.text).toBe(202);
  return { app: f.app, task: res.body.guid };
}

const row = (guid: string) => r.t.kiln.store.db.selectFrom('tasks').select(['state', 'failure_reason']).where('guid', '=', guid).executeTakeFirst();

describe('the task controller', () => {
  it.each([
    { exit: 0, state: 'SUCCEEDED', reason: null, condition: { status: 'True', reason: 'TaskSucceeded' } },
    { exit: 3, state: 'FAILED', reason: 'APP/TASK/exit-3: Exited with status 3', condition: { status: 'False', reason: 'TaskFailed' } },
  ])('runs a PENDING task and records how it ended (exit $exit → $state)', async ({ exit, state, reason, condition }) => {
    const { task } = await newTask(`exit-${exit}`);
    await r.settle();
    expect(await row(task)).toEqual({ state: 'RUNNING', failure_reason: null });
    expect(r.runtime.taskStatus(task)?.state).toBe('RUNNING');
    expect((await r.conditions('task', task)).Succeeded).toMatchObject({ status: 'Unknown', reason: 'TaskRunning' });

    r.runtime.finishTask(task, exit);
    await r.settle();
    expect(await row(task)).toEqual({ state, failure_reason: reason });
    expect((await r.conditions('task', task)).Succeeded).toMatchObject(condition);
  });

  it('stops a cancelled task in the runtime and fails it as cancelled', async () => {
    const { task } = await newTask('cancelled');
    await r.settle();
    expect((await r.t.admin.post(`/v3/tasks/${task}/actions/cancel`)).status).toBe(202);
    await r.settle();
    expect(await row(task)).toEqual({ state: 'FAILED', failure_reason: TASK_CANCELLED });
    expect(r.runtime.taskStatus(task)).toMatchObject({ state: 'FAILED', failureReason: 'task was cancelled' });
    expect((await r.conditions('task', task)).Succeeded).toMatchObject({ status: 'False', reason: 'TaskCancelled' });
  });

  it('fails a task the runtime refuses to run', async () => {
    r.runtime.refuseTasks = 'no room';
    try {
      const { task } = await newTask('refused');
      await r.settle();
      expect(await row(task)).toEqual({ state: 'FAILED', failure_reason: TASK_UNABLE_TO_RUN });
    } finally {
      r.runtime.refuseTasks = undefined;
    }
  });

  it('fails a RUNNING task the runtime no longer knows, as interrupted', async () => {
    const { task } = await newTask('interrupted');
    await r.settle();
    r.runtime.forgetTask(task);
    await r.manager.resync();
    await r.settle();
    expect(await row(task)).toEqual({ state: 'FAILED', failure_reason: TASK_INTERRUPTED });
  });

  it('cancels the live tasks of an app being deleted', async () => {
    const { app, task } = await newTask('app-deleting');
    await r.settle();
    await r.t.kiln.store.write(async (tx) => {
      const a = await tx.db.selectFrom('apps').select('generation').where('guid', '=', app).executeTakeFirstOrThrow();
      await tx.update('apps', app, { status: 'deleting' }, { expectedGeneration: a.generation });
    });
    await r.settle();
    expect(await row(task)).toEqual({ state: 'FAILED', failure_reason: TASK_CANCELLED });
    expect(r.runtime.taskStatus(task)?.state).toBe('FAILED');
  });

  it('removes the tasks of a deleted app, with their conditions, and stops what still runs', async () => {
    const { app, task } = await newTask('app-gone');
    await r.settle();
    await r.t.kiln.store.write(async (tx) => {
      await tx.db.deleteFrom('apps').where('guid', '=', app).execute();
      tx.changed('apps', app, 'delete');
    });
    await r.settle();
    expect(await row(task)).toBeUndefined();
    expect(r.runtime.taskStatus(task)?.state).toBe('FAILED');
    expect(await r.conditions('task', task)).toEqual({});
  });
});
