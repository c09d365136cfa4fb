import type { Command } from 'commander';
import { CfApiError, NetworkError } from '../api-client.ts';
import { formatEnvelope, LogFollower } from '../log-follower.ts';
import { printJson, status } from '../output.ts';
import { CliError, Session } from '../session.ts';
import { findApp } from './common.ts';
import type { Runner } from './runner.ts';

/** logs NAME (follow) and logs NAME --recent. */
export function registerLogCommands(program: Command, run: Runner): void {
  program
    .command('logs')
    .description("follow an app's logs (Ctrl-C to stop), or print the recent ones with --recent")
    .argument('<name>', 'app name')
    .option('--recent', 'print the recent logs and exit')
    .option('--json', 'print envelopes as JSON (one per line when following)')
    .action((name: string, opts: { recent?: boolean; json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const client = session.client;
        const app = await findApp(session, name);
        const logCache = session.config.logCacheUrl ?? (await client.root()).logCache;
        if (!logCache) throw new CliError('This server does not offer a log cache, so its logs cannot be read.');
        const follower = new LogFollower(client, `${logCache.replace(/\/+$/, '')}/api/v1/read/${app.guid}`);
        const print = (e: Parameters<typeof formatEnvelope>[0]) => io.out.write(opts.json ? `${JSON.stringify(e)}\n` : `${formatEnvelope(e)}\n`);

        if (opts.recent) {
          const batch = await follower.recent();
          if (opts.json) return printJson(io, batch);
          status(io, `Retrieving logs for app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...\n`);
          for (const e of batch) print(e);
          return;
        }

        if (!opts.json) status(io, `Retrieving logs for app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...\n`);
        await follower.skipExisting();
        let stopped = false;
        let wake: () => void = () => {};
        const stop = () => {
          stopped = true;
          wake();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        let failures = 0;
        try {
          while (!stopped) {
            try {
              for (const e of await follower.poll()) print(e);
              failures = 0;
            } catch (err) {
              if (err instanceof CfApiError && err.status === 404) throw new CliError(`App '${app.name}' no longer exists.`);
              if (!(err instanceof NetworkError || (err instanceof CfApiError && err.status >= 500))) throw err;
              // A restarting server: keep trying for a while, as cf does.
              if (++failures >= 30) throw err;
              io.err.write(`warning: reading logs failed (${err.message}); retrying\n`);
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, 500);
            });
          }
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      }),
    );
}
