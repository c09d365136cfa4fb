import { ConfigError, loadConfig } from '../config/config.ts';

/** Runs one `kiln` command; resolves to an exit code when the command ends by itself. */
export async function runCli(argv: string[]): Promise<number | undefined> {
  const [command = 'serve'] = argv;
  // Everything but the server commands is a client command: it talks to a (possibly remote) Kiln, so the
  // server's settings do not apply to it.
  // The buildpack runner of a staging Job (runtime/kubernetes): no server settings, no database.
  if (command === 'stage-job') {
    const { runStageJob } = await import('../staging/stage-job.ts');
    return runStageJob();
  }
  if (command !== 'serve' && command !== 'migrate') {
    const { runClientCommand } = await import('./program.ts');
    return runClientCommand(argv, { out: process.stdout, err: process.stderr, env: process.env });
  }
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
      // Before anything starts: a descriptor inherited from whoever started Kiln would pass into every app.
      const { closeInheritedDescriptors } = await import('../runtime/local/inherited-fds.ts');
      const channel = Number(process.env.NODE_CHANNEL_FD);
      const closedFds = closeInheritedDescriptors(new Set(Number.isInteger(channel) ? [channel] : []));
      // Imported here, not at the top: a client command (most `kiln` runs) would otherwise load the whole server.
      const { startKiln } = await import('../server.ts');
      const kiln = await startKiln(config, {
        // A demoted leader has stopped its controllers and instances; it exits so that its supervisor (Kubernetes,
        // systemd) starts it again as a fresh follower, which is simpler to reason about than rejoining in place.
        onLeadershipLost: (reason) => {
          kiln.log.error({ reason }, 'leadership lost; exiting so that a fresh start rejoins as a follower');
          kiln.stop().finally(() => process.exit(1));
        },
      });
      if (closedFds.length > 0) kiln.log.warn({ fds: closedFds }, 'closed file descriptors inherited without close-on-exec (they would have reached every app)');
      if (kiln.generatedAdminPassword) {
        // Printed once, on the start that created the admin; also kept in <data dir>/initial-admin-password.
        console.log(
          `\nKiln created the admin user '${config.admin.username}' with password: ${kiln.generatedAdminPassword}\n` +
            `Log in with: npx kiln login -a ${kiln.url} -u ${config.admin.username} -p <password>   (or cf login)\n` +
            (config.defaultTarget?.space
              ? `Or, from this folder, push right away to org '${config.defaultTarget.org}' / space '${config.defaultTarget.space}': npx kiln push examples/node-hello\n`
              : ''),
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
      const { migrateToLatest, openDatabase } = await import('../store/db.ts');
      const handle = openDatabase(config.database);
      const applied = await migrateToLatest(handle);
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date');
      await handle.db.destroy();
      return 0;
    }
  }
}
