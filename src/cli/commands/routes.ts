import type { Command } from 'commander';
import { ok, printJson, status, table } from '../output.ts';
import { CliError, Session } from '../session.ts';
import { findApp, findDomain, requestAndWait, type AppResource, type Named, type RouteResource } from './common.ts';
import type { Runner } from './runner.ts';

interface RouteOpts {
  hostname?: string;
  path?: string;
}

/** `/path` as CF stores it: empty, or starting with a slash. */
const normalPath = (p: string | undefined) => (!p ? '' : p.startsWith('/') ? p : `/${p}`);

async function findRoute(session: Session, domain: Named, opts: RouteOpts): Promise<RouteResource | undefined> {
  const found = await session.client.listAll<RouteResource>('/v3/routes', { domain_guids: domain.guid, hosts: opts.hostname ?? '', paths: normalPath(opts.path) });
  return found[0];
}

const describeRoute = (domain: string, opts: RouteOpts) => `${opts.hostname ? `${opts.hostname}.` : ''}${domain}${normalPath(opts.path)}`;

/** routes, map-route, unmap-route. */
export function registerRouteCommands(program: Command, run: Runner): void {
  program
    .command('routes')
    .description('list the routes in the targeted space')
    .option('--json', 'print the routes as JSON')
    .action((opts: { json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const client = session.client;
        const routes = await client.listAll<RouteResource>('/v3/routes', { space_guids: space.guid, order_by: 'created_at' });
        const appGuids = [...new Set(routes.flatMap((r) => r.destinations.map((d) => d.app.guid)))];
        const apps = appGuids.length ? await client.listAll<AppResource>('/v3/apps', { guids: appGuids.join(',') }) : [];
        const domainGuids = [...new Set(routes.map((r) => r.relationships.domain.data.guid))];
        const domains = domainGuids.length ? await client.listAll<Named>('/v3/domains', { guids: domainGuids.join(',') }) : [];
        const rows = routes.map((r) => ({
          guid: r.guid,
          url: r.url,
          host: r.host,
          domain: domains.find((d) => d.guid === r.relationships.domain.data.guid)?.name ?? '',
          port: r.port,
          path: r.path,
          protocol: r.protocol,
          apps: [...new Set(r.destinations.map((d) => apps.find((a) => a.guid === d.app.guid)?.name ?? d.app.guid))],
        }));
        if (opts.json) return printJson(io, rows);
        status(io, `Getting routes for org ${org.name} / space ${space.name} as ${session.who()}...\n`);
        if (rows.length === 0) return status(io, "No routes found. Map one with 'kiln map-route APP DOMAIN --hostname HOST'.");
        io.out.write(
          table(
            io,
            ['space', 'host', 'domain', 'port', 'path', 'protocol', 'apps'],
            rows.map((r) => [space.name, r.host, r.domain, r.port ?? '', r.path, r.protocol, r.apps.join(', ')]),
          ),
        );
      }),
    );

  program
    .command('map-route')
    .description('map a route to an app, creating the route when needed')
    .argument('<app>', 'app name')
    .argument('<domain>', 'domain, e.g. apps.localhost')
    .option('--hostname <host>', 'host name (the part before the domain)')
    .option('--path <path>', 'path, e.g. /api')
    .action((appName: string, domainName: string, opts: RouteOpts) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const client = session.client;
        const app = await findApp(session, appName);
        const domain = await findDomain(client, domainName);
        const shown = describeRoute(domain.name, opts);
        let route = await findRoute(session, domain, opts);
        if (!route) {
          status(io, `Creating route ${shown} for org ${org.name} / space ${space.name} as ${session.who()}...`);
          route = await client.post<RouteResource>('/v3/routes', {
            ...(opts.hostname ? { host: opts.hostname } : {}),
            ...(opts.path ? { path: normalPath(opts.path) } : {}),
            relationships: { space: { data: { guid: space.guid } }, domain: { data: { guid: domain.guid } } },
          });
          ok(io);
        }
        status(io, `Mapping route ${shown} to app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...`);
        if (route.destinations.some((d) => d.app.guid === app.guid)) {
          status(io, `App '${app.name}' is already mapped to route '${shown}'.`);
          return ok(io);
        }
        await client.post(`/v3/routes/${route.guid}/destinations`, { destinations: [{ app: { guid: app.guid } }] });
        ok(io);
      }),
    );

  program
    .command('unmap-route')
    .description('unmap a route from an app (the route stays)')
    .argument('<app>', 'app name')
    .argument('<domain>', 'domain, e.g. apps.localhost')
    .option('--hostname <host>', 'host name (the part before the domain)')
    .option('--path <path>', 'path, e.g. /api')
    .action((appName: string, domainName: string, opts: RouteOpts) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { org, space } = session.requireSpace();
        const client = session.client;
        const app = await findApp(session, appName);
        const domain = await findDomain(client, domainName);
        const shown = describeRoute(domain.name, opts);
        status(io, `Removing route ${shown} from app ${app.name} in org ${org.name} / space ${space.name} as ${session.who()}...`);
        const route = await findRoute(session, domain, opts);
        if (!route) throw new CliError(`Route '${shown}' does not exist. Use 'kiln routes' to list routes.`);
        const destinations = route.destinations.filter((d) => d.app.guid === app.guid);
        if (destinations.length === 0) {
          status(io, `Route '${shown}' was not mapped to app '${app.name}'.`);
          return ok(io);
        }
        for (const d of destinations) await requestAndWait(client, 'DELETE', `/v3/routes/${route.guid}/destinations/${d.guid}`);
        ok(io);
      }),
    );
}
