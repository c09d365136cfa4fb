import { Command, CommanderError } from 'commander';
import { registerAppCommands } from './commands/apps.ts';
import { registerAuthCommands } from './commands/auth.ts';
import { registerDeclarativeCommands, registerGitSourceCommands } from './commands/declarative.ts';
import { registerLogCommands } from './commands/logs.ts';
import { makeRunner } from './commands/runner.ts';
import { registerRouteCommands } from './commands/routes.ts';
import { registerTaskCommands } from './commands/tasks.ts';
import { PUSH_USAGE, runPush } from './push.ts';
import { describeError, Session, type CliIO } from './session.ts';

const SERVER_HELP = `
Server commands:
  serve                 start the API, router and controllers (what 'npm start' runs)
  migrate               bring the database schema up to date and exit

Client commands use the login saved by 'kiln login' in ~/.kiln/config.json; $KILN_API overrides its API URL.
Server settings come from the environment (PORT, KILN_DATA_DIR, DATABASE_URL, ...): see README.md.`;

/**
 * The `kiln` client commands, named and flagged like the cf CLI's so habits carry over. Resolves to the exit
 * code: 0, 1 when a command failed, 2 for a usage mistake.
 */
export async function runClientCommand(argv: string[], io: CliIO): Promise<number> {
  let exitCode = 0;
  const run = makeRunner(io, (code) => {
    exitCode = code;
  });
  const program = new Command('kiln')
    .description('Kiln: a Cloud Foundry V3 platform. Push and run apps.')
    .usage('<command> [options]')
    .showHelpAfterError("(run 'kiln help' for the list of commands)")
    .showSuggestionAfterError(true)
    .configureOutput({ writeOut: (s) => io.out.write(s), writeErr: (s) => io.err.write(s) })
    .addHelpText('after', SERVER_HELP)
    .exitOverride();

  registerAuthCommands(program, run);
  registerAppCommands(program, run);
  program
    .command('push')
    .description("push an app directory like 'cf push': upload, stage, start, print the URL ('kiln push --help')")
    .argument('[args...]')
    .allowUnknownOption(true)
    .helpOption(false)
    .action((args: string[]) =>
      run(async () => {
        // Push keeps its own flags (shared with its unit tests); here it only gets the saved login and target.
        const explicitLogin = args.includes('--username') || args.includes('--password') || !!io.env.KILN_TOKEN;
        let saved = {};
        if (!args.includes('-h') && !args.includes('--help')) {
          const session = await Session.open(io, undefined, { autoLogin: !explicitLogin && !args.includes('--api') });
          const { config } = session;
          saved = { api: config.api, token: explicitLogin ? undefined : config.accessToken, org: config.org?.name, space: config.space?.name };
          const code = await runPush(args, { out: io.out, err: io.err, ...(config.accessToken && !explicitLogin ? { fetch: session.fetch } : {}) }, saved);
          exitCode = code;
          return;
        }
        io.out.write(`${PUSH_USAGE}\n`);
      }),
    );
  registerRouteCommands(program, run);
  registerLogCommands(program, run);
  registerTaskCommands(program, run);
  registerGitSourceCommands(program, run);
  registerDeclarativeCommands(program, run, (code) => {
    exitCode = code;
  });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return 0;
      return 2;
    }
    io.err.write(`${describeError(err, undefined)}\n`);
    return 1;
  }
  return exitCode;
}
