import { ConfigError, loadConfig } from '../config/config.ts';
import { migrateToLatest, openDatabase } from '../store/db.ts';
import { startKiln } from '../server.ts';

const USAGE = `Usage: kiln <command>

Commands:
  serve     start the API, router and controllers (default)
  migrate   bring the database schema up to date and exit
  push      push an app directory to Kiln like 'cf push' (kiln push --help)

Settings come from the environment: PORT, KILN_DATA_DIR, DATABASE_URL, KILN_SYSTEM_DOMAIN,
KILN_APPS_DOMAIN, KILN_ADMIN_USER, KILN_ADMIN_PASSWORD, LOG_LEVEL (see README.md).`;

/** Runs one `kiln` command; resolves to an exit code when the command ends by itself. */
export async function runCli(argv: string[]): Promise<number | undefined> {
  const [command = 'serve'] = argv;
  // A client command: it talks to a (possibly remote) Kiln, so the server's settings do not apply to it.
  if (command === 'push') return (await import('./push.ts')).runPush(argv.slice(1));
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  switch (command) {
    case 'serve': {
      const kiln = await startKiln(config);
      if (kiln.generatedAdminPassword) {
        // Printed once, on the start that created the admin; also kept in <data dir>/initial-admin-password.
        console.log(
          `\nKiln created the admin user '${config.admin.username}' with password: ${kiln.generatedAdminPassword}\n` +
            `Log in with: cf login -a ${kiln.url} -u ${config.admin.username} -p <password>\n`,
        );
      }
      const shutdown = (signal: string) => {
        kiln.log.info({ signal }, 'shutting down');
        kiln.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
      return undefined;
    }
    case 'migrate': {
      const handle = openDatabase(config.database);
      const applied = await migrateToLatest(handle);
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date');
      await handle.db.destroy();
      return 0;
    }
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`Unknown command '${command}'.\n\n${USAGE}`);
      return 2;
  }
}
