import type { Command } from 'commander';
import { confirm, formatMem, formatUptime, keyValues, ok, parseSizeMb, printJson, state, status, table, withSpinner } from '../output.ts';
import { CliError, Session, type LoginFlags } from '../session.ts';
import {
  findApp,
  processStats,
  requestAndWait,
  routeUrls,
  waitUntilRunning,
  type AppResource,
  type InstanceStats,
  type ProcessResource,
  type RouteResource,
} from './common.ts';
import { deleteFromFiles, loginOptions, looksLikeDocuments } from './declarative.ts';
import type { Runner } from './runner.ts';

/** apps, app, start, stop, restart, scale, delete, env, set-env, unset-env. */
export function registerAppCommands(program: Command, run: Runner): void {
  program
    .command('apps')
    .description('list the apps in the targeted space')
    .option('--json', 'print the apps as JSON')
    .action((opts: { json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const client = session.client;
        const apps = await client.listAll<AppResource>('/v3/apps', { space_guids: space.guid, order_by: 'name' });
        const processes = apps.length ? await client.listAll<ProcessResource & { relationships: { app: { data: { guid: string } } } }>('/v3/processes', { app_guids: apps.map((a) => a.guid).join(',') }) : [];
        const routes = apps.length ? await client.listAll<RouteResource>('/v3/routes', { app_guids: apps.map((a) => a.guid).join(',') }) : [];
        const rows = [];
        for (const app of apps) {
          const procs = [];
          for (const p of processes.filter((x) => x.relationships.app.data.guid === app.guid)) {
            const running = p.instances > 0 ? (await processStats(client, p.guid)).filter((s) => s.state === 'RUNNING').length : 0;
            procs.push({ type: p.type, running, instances: p.instances });
          }
          const urls = routes.filter((r) => r.destinations.some((d) => d.app.guid === app.guid)).map((r) => r.url);
          rows.push({ name: app.name, guid: app.guid, state: app.state, processes: procs, routes: urls });
        }
        if (opts.json) return printJson(io, rows);
        status(io, `Getting apps in org ${org.name} / space ${space.name} as ${session.who()}...\n`);
        if (rows.length === 0) return status(io, "No apps found. Push one with 'kiln push DIR'.");
        io.out.write(
          table(
            io,
            ['name', 'requested state', 'processes', 'routes'],
            rows.map((r) => [r.name, state(io, r.state), r.processes.map((p) => `${p.type}:${p.running}/${p.instances}`).join(', '), r.routes.join(', ')]),
          ),
        );
      }),
    );

  program
    .command('app')
    .description("show an app's state, routes and instances (state, CPU, memory, uptime)")
    .argument('<name>', 'app name')
    .option('--json', 'print the app as JSON')
    .action((name: string, opts: { json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const client = session.client;
        const app = await findApp(session, name);
        const processes = await client.listAll<ProcessResource>(`/v3/apps/${app.guid}/processes`);
        const stats = new Map<string, InstanceStats[]>();
        for (const p of processes) stats.set(p.guid, await processStats(client, p.guid));
        const urls = await routeUrls(client, app.guid);
        const droplet = await client.get<{ created_at?: string; stack?: string | null; buildpacks?: Array<{ name?: string; buildpack_name?: string | null }> }>(`/v3/apps/${app.guid}/droplets/current`).catch(() => null);
        if (opts.json) {
          return printJson(io, {
            name: app.name,
            guid: app.guid,
            state: app.state,
            routes: urls,
            processes: processes.map((p) => ({ type: p.type, instances: p.instances, memory_in_mb: p.memory_in_mb, disk_in_mb: p.disk_in_mb, stats: stats.get(p.guid) })),
          });
        }
        status(io, `Showing health and status for app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...\n`);
        io.out.write(
          keyValues(io, [
            ['name', app.name],
            ['requested state', state(io, app.state)],
            ['routes', urls.join(', ')],
            ['last uploaded', droplet?.created_at ?? ''],
            ['stack', droplet?.stack ?? ''],
            ['buildpacks', (droplet?.buildpacks ?? []).map((b) => b.buildpack_name ?? b.name ?? '').join(', ')],
          ]),
        );
        for (const p of processes) {
          const list = stats.get(p.guid) ?? [];
          const running = list.filter((s) => s.state === 'RUNNING').length;
          io.out.write(
            `\n${keyValues(io, [
              ['type', p.type],
              ['instances', `${running}/${p.instances}`],
              ['memory usage', `${p.memory_in_mb}M`],
            ])}`,
          );
          if (list.length === 0) {
            io.out.write('There are no running instances of this process.\n');
            continue;
          }
          io.out.write(
            table(
              io,
              ['', 'state', 'uptime', 'cpu', 'memory', 'disk', 'details'],
              list.map((s) => [
                `#${s.index}`,
                state(io, s.state),
                s.state === 'RUNNING' ? formatUptime(s.uptime ?? 0) : '',
                s.usage?.cpu !== undefined ? `${(s.usage.cpu * 100).toFixed(1)}%` : '',
                s.usage?.mem !== undefined && s.mem_quota ? `${formatMem(s.usage.mem)} of ${formatMem(s.mem_quota)}` : '',
                s.usage?.disk !== undefined && s.disk_quota ? `${formatMem(s.usage.disk)} of ${formatMem(s.disk_quota)}` : '',
                s.details ?? '',
              ]),
            ),
          );
        }
      }),
    );

  for (const action of ['start', 'stop', 'restart'] as const) {
    program
      .command(action)
      .description(`${action} an app${action === 'stop' ? '' : ' and wait until its instances run'}`)
      .argument('<name>', 'app name')
      .action((name: string) =>
        run(async (io) => {
          const session = await Session.open(io);
          const { org, space } = session.requireSpace();
          const client = session.client;
          const app = await findApp(session, name);
          const verb = { start: 'Starting', stop: 'Stopping', restart: 'Restarting' }[action];
          status(io, `${verb} app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...`);
          if (action === 'start' && app.state === 'STARTED') return status(io, `\nApp ${app.name} is already started.`);
          if (action === 'stop' && app.state === 'STOPPED') return status(io, `\nApp ${app.name} is already stopped.`);
          if (action !== 'stop') {
            const droplet = await client.get(`/v3/apps/${app.guid}/droplets/current`).catch(() => null);
            if (!droplet) throw new CliError(`App '${app.name}' has not been staged yet. Use 'kiln push' to upload and stage it.`);
          }
          await client.post(`/v3/apps/${app.guid}/actions/${action}`);
          if (action === 'stop') return ok(io);
          const result = await withSpinner(io, 'Waiting for app to start...', (update) => waitUntilRunning(client, app.guid, update));
          ok(io);
          status(io, `\n${app.name}: ${result.running} of ${result.total} instances running`);
          for (const url of await routeUrls(client, app.guid)) status(io, `  ${urlFor(session.api, url)}`);
        }),
      );
  }

  program
    .command('scale')
    .description('change or show the instance count, memory and disk of the web process')
    .argument('<name>', 'app name')
    .option('-i, --instances <n>', 'number of instances')
    .option('-m, --memory <size>', 'memory per instance (e.g. 256M, 1G); restarts the app')
    .option('-k, --disk <size>', 'disk per instance (e.g. 512M, 1G); restarts the app')
    .option('--process <type>', 'process type', 'web')
    .option('-f, --force', 'do not ask before restarting')
    .action((name: string, opts: { instances?: string; memory?: string; disk?: string; process: string; force?: boolean }) =>
      run(async (io) => {
        const body: Record<string, number> = {};
        if (opts.instances !== undefined) {
          if (!/^\d+$/.test(opts.instances)) throw new CliError(`Invalid value for -i: '${opts.instances}'. Use a whole number.`, 2);
          body.instances = Number(opts.instances);
        }
        try {
          if (opts.memory !== undefined) body.memory_in_mb = parseSizeMb(opts.memory, '-m');
          if (opts.disk !== undefined) body.disk_in_mb = parseSizeMb(opts.disk, '-k');
        } catch (err) {
          throw new CliError((err as Error).message, 2);
        }
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const client = session.client;
        const app = await findApp(session, name);
        const proc = await client.get<ProcessResource>(`/v3/apps/${app.guid}/processes/${encodeURIComponent(opts.process)}`);
        if (Object.keys(body).length === 0) {
          status(io, `Showing current scale of app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...\n`);
          io.out.write(keyValues(io, [['instances', String(proc.instances)], ['memory', `${proc.memory_in_mb}M`], ['disk', `${proc.disk_in_mb}M`]]));
          return;
        }
        const restart = (body.memory_in_mb !== undefined || body.disk_in_mb !== undefined) && app.state === 'STARTED';
        if (restart && !opts.force && !(await confirm(io, 'This will cause the app to restart. Are you sure you want to scale?'))) {
          if (!process.stdin.isTTY) throw new CliError('Scaling memory or disk restarts the app: add -f to confirm.', 2);
          return status(io, 'Scale cancelled');
        }
        status(io, `Scaling app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...`);
        await client.post(`/v3/processes/${proc.guid}/actions/scale`, body);
        if (restart) {
          await client.post(`/v3/apps/${app.guid}/actions/restart`);
        }
        if (app.state === 'STARTED' && (restart || (body.instances ?? 0) > 0)) {
          const wanted = body.instances ?? proc.instances;
          await withSpinner(io, 'Waiting for instances...', async (update) => {
            const deadline = Date.now() + 5 * 60_000;
            for (;;) {
              const running = (await processStats(client, proc.guid)).filter((s) => s.state === 'RUNNING').length;
              update(`Waiting for instances... ${running} of ${wanted} running`);
              if (running >= wanted) return;
              if (Date.now() > deadline) throw new CliError(`Only ${running} of ${wanted} instances started. Use 'kiln app ${app.name}' to see why.`);
              await client.sleep(500);
            }
          });
        }
        ok(io);
      }),
    );

  loginOptions(program.command('delete'))
    .description('delete an app; or, with -f FILE|DIR (--filename), what those kiln.dev documents declare')
    .argument('[name]', 'app name')
    .option('-f, --force', 'do not ask for confirmation')
    .option('--filename <path>', 'delete the apps (then empty spaces and orgs) declared in a YAML file or directory')
    .option('-r, --delete-routes', 'also delete the routes mapped to it')
    .action((name: string | undefined, opts: { force?: boolean; deleteRoutes?: boolean; filename?: string } & LoginFlags) =>
      run(async (io) => {
        // `kiln delete -f FILE|DIR`, as kubectl: -f is cf's --force, so the argument decides (a path that exists).
        const file = opts.filename ?? (opts.force && name && looksLikeDocuments(name) ? name : undefined);
        if (file) return deleteFromFiles(io, file, opts);
        if (!name) throw new CliError("Incorrect Usage: the app name (or -f FILE|DIR) is required. See 'kiln delete --help'.", 2);
        const session = await Session.forCommand(io, opts);
        const { org, space } = session.requireSpace();
        const client = session.client;
        if (!opts.force) {
          if (!process.stdin.isTTY) throw new CliError(`Deleting needs confirmation: use 'kiln delete ${name} -f'.`, 2);
          if (!(await confirm(io, `Really delete the app ${name}?`))) return status(io, 'Delete cancelled');
        }
        status(io, `Deleting app ${name} in org ${org.name} / space ${space.name} as ${session.who()}...`);
        let app: AppResource;
        try {
          app = await findApp(session, name);
        } catch (err) {
          if (!(err instanceof CliError)) throw err;
          // Deleting what is not there is not a failure, as with cf.
          status(io, `App '${name}' does not exist.`);
          return ok(io);
        }
        const routes = opts.deleteRoutes ? await client.listAll<RouteResource>(`/v3/apps/${app.guid}/routes`) : [];
        await withSpinner(io, 'Deleting...', async () => {
          await requestAndWait(client, 'DELETE', `/v3/apps/${app.guid}`);
          for (const route of routes) await requestAndWait(client, 'DELETE', `/v3/routes/${route.guid}`);
        });
        ok(io);
      }),
    );

  program
    .command('env')
    .description("show an app's environment variables")
    .argument('<name>', 'app name')
    .option('--json', 'print the environment as JSON')
    .action((name: string, opts: { json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const app = await findApp(session, name);
        const env = await session.client.get<{
          system_env_json?: Record<string, unknown>;
          application_env_json?: Record<string, unknown>;
          environment_variables?: Record<string, unknown>;
          running_env_json?: Record<string, unknown>;
          staging_env_json?: Record<string, unknown>;
        }>(`/v3/apps/${app.guid}/env`);
        if (opts.json) return printJson(io, env);
        status(io, `Getting env variables for app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...\n`);
        const block = (title: string, value: Record<string, unknown> | undefined) => {
          io.out.write(`${title}\n`);
          const entries = Object.entries(value ?? {});
          if (entries.length === 0) io.out.write('No variables have been set\n');
          for (const [k, v] of entries) io.out.write(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v, null, 2)}\n`);
          io.out.write('\n');
        };
        block('System-Provided:', { ...env.system_env_json, ...env.application_env_json });
        block('User-Provided:', env.environment_variables);
        block('Running Environment Variable Groups:', env.running_env_json);
        block('Staging Environment Variable Groups:', env.staging_env_json);
      }),
    );

  program
    .command('set-env')
    .description("set one of an app's environment variables")
    .argument('<name>', 'app name')
    .argument('<variable>', 'variable name')
    .argument('<value>', 'value')
    .action((name: string, variable: string, value: string) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const app = await findApp(session, name);
        status(io, `Setting env variable ${variable} for app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...`);
        await session.client.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { [variable]: value } });
        ok(io);
        status(io, `TIP: Use 'kiln restart ${app.name}' to ensure your env variable changes take effect.`);
      }),
    );

  program
    .command('unset-env')
    .description("remove one of an app's environment variables")
    .argument('<name>', 'app name')
    .argument('<variable>', 'variable name')
    .action((name: string, variable: string) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const app = await findApp(session, name);
        status(io, `Removing env variable ${variable} from app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...`);
        const current = await session.client.get<{ var?: Record<string, string> }>(`/v3/apps/${app.guid}/environment_variables`);
        if (!(variable in (current.var ?? {}))) {
          status(io, `Env variable ${variable} was not set.`);
          return ok(io);
        }
        await session.client.patch(`/v3/apps/${app.guid}/environment_variables`, { var: { [variable]: null } });
        ok(io);
        status(io, `TIP: Use 'kiln restart ${app.name}' to ensure your env variable changes take effect.`);
      }),
    );
}

/** A route's URL as a browser opens it: the router listens on the API's scheme and port. */
export function urlFor(api: string, routeUrl: string): string {
  const u = new URL(api);
  const slash = routeUrl.indexOf('/');
  const host = slash === -1 ? routeUrl : routeUrl.slice(0, slash);
  return `${u.protocol}//${host}${u.port ? `:${u.port}` : ''}${slash === -1 ? '' : routeUrl.slice(slash)}`;
}
