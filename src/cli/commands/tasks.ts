import type { Command } from 'commander';
import { ok, printJson, state, status, table, withSpinner } from '../output.ts';
import { CliError, Session } from '../session.ts';
import { findApp } from './common.ts';
import type { Runner } from './runner.ts';

interface TaskResource {
  guid: string;
  sequence_id: number;
  name: string;
  command?: string;
  state: string;
  created_at: string;
  result?: { failure_reason?: string | null };
}

/** run-task and tasks. */
export function registerTaskCommands(program: Command, run: Runner): void {
  program
    .command('run-task')
    .description("run a one-off task with the app's droplet")
    .argument('<name>', 'app name')
    .option('-c, --command <command>', 'command to run (default: the web process command)')
    .option('--name <task>', 'task name')
    .option('-m, --memory <mb>', 'memory in megabytes')
    .option('-w, --wait', 'wait until the task finishes; fail if it fails')
    .option('--json', 'print the task as JSON')
    .action((name: string, opts: { command?: string; name?: string; memory?: string; wait?: boolean; json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const client = session.client;
        const app = await findApp(session, name);
        if (!opts.json) status(io, `Creating task for app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...`);
        const body: Record<string, unknown> = {};
        if (opts.command !== undefined) body.command = opts.command;
        if (opts.name !== undefined) body.name = opts.name;
        if (opts.memory !== undefined) {
          if (!/^\d+$/.test(opts.memory)) throw new CliError(`Invalid value for -m: '${opts.memory}'. Use megabytes, e.g. 256.`, 2);
          body.memory_in_mb = Number(opts.memory);
        }
        let task = await client.post<TaskResource>(`/v3/apps/${app.guid}/tasks`, body);
        if (opts.wait) {
          task = await withSpinner(io, `Waiting for task ${task.name} to finish...`, async () => {
            for (;;) {
              const t = await client.get<TaskResource>(`/v3/tasks/${task.guid}`);
              if (t.state === 'SUCCEEDED' || t.state === 'FAILED') return t;
              await client.sleep(500);
            }
          });
        }
        if (opts.json) return printJson(io, task);
        ok(io);
        status(io, `\nTask has been submitted successfully for execution.\ntask name:   ${task.name}\ntask id:     ${task.sequence_id}`);
        if (opts.wait) {
          status(io, `state:       ${task.state}`);
          if (task.state === 'FAILED') throw new CliError(`Task ${task.name} failed: ${task.result?.failure_reason ?? 'no reason given'}. Use 'kiln logs ${app.name} --recent' to see its output.`);
        }
      }),
    );

  program
    .command('tasks')
    .description("list an app's tasks, newest first")
    .argument('<name>', 'app name')
    .option('--json', 'print the tasks as JSON')
    .action((name: string, opts: { json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const app = await findApp(session, name);
        const tasks = await session.client.listAll<TaskResource>(`/v3/apps/${app.guid}/tasks`, { order_by: '-created_at' });
        if (opts.json) return printJson(io, tasks);
        status(io, `Getting tasks for app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...\n`);
        if (tasks.length === 0) return status(io, `No tasks found. Run one with 'kiln run-task ${app.name} --command CMD'.`);
        io.out.write(table(io, ['id', 'name', 'state', 'start time', 'command'], tasks.map((t) => [t.sequence_id, t.name, state(io, t.state), t.created_at, t.command ?? ''])));
      }),
    );
}
