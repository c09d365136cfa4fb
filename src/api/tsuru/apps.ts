import type { Context } from 'hono';
import { CreateAppSchema } from '../../domain/apps.ts';
import { parseListParams } from '../../domain/list-params.ts';
import { createRouteSchema, ROUTE_LIST } from '../../domain/routes.ts';
import { platformNamesOf } from '../../router/api-hosts.ts';
import * as apps from '../../services/apps.ts';
import { type AppScope, findVisibleApp, requireAppManager } from '../../services/app-scope.ts';
import type { Ctx } from '../../services/context.ts';
import { listAuditEvents, parseAuditEventListParams } from '../../services/audit-events.ts';
import { DEPLOYMENT_LIST, listDeployments } from '../../services/deployments.ts';
import { getDefaultDomain } from '../../services/domains.ts';
import { findAppProcess, scaleProcess, terminateInstance } from '../../services/processes.ts';
import { insertDestinations } from '../../services/route-destinations.ts';
import { listRoutes, routeUri, viewsOf } from '../../services/route-reads.ts';
import { createRoute, hashRoutingEnabled } from '../../services/routes.ts';
import { loadMetadata } from '../../store/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { ctxOf, DEFAULT_PLAN, listAll, findTeam, listTeams, listTsuruApps, planByName, planForMemory, processesOf, resolveApp, tsuruOrg, unitsFor } from './mapping.ts';
import { segmentNames } from './catalog.ts';
import { serviceInstanceBinds } from './services.ts';
import { notImplemented } from './unsupported.ts';
import { followRestart, followUnits, startRollingRestart, until } from './rollout.ts';
import { jsonList, jsonStream, param, readForm, route, TsuruError, type Progress } from './wire.ts';

/**
 * Apps, their lifecycle, env and units (research/tsuru.md §6.3), each a translation onto the services behind
 * `/v3/apps`, `/v3/processes` and `/v3/deployments`. Long operations stream progress as JSON lines.
 */

/** The apps' addresses, by app guid: the routes mapped to each as `host.domain[/path]`, in one query. */
async function addressesOf(ctx: Ctx, rows: Array<Row<'apps'>>): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (rows.length === 0) return out;
  const routes = await listAll(ROUTE_LIST, { app_guids: rows.map((a) => a.guid).join(',') }, (p) => listRoutes(ctx, p));
  for (const v of await viewsOf(ctx, routes)) {
    const uri = routeUri(v.route, v.domainName);
    for (const appGuid of new Set(v.destinations.map((d) => d.app_guid))) out.set(appGuid, [...(out.get(appGuid) ?? []), uri]);
  }
  return out;
}

/** Tsuru's description and tags have no CF field: they live in the app's annotations, visible through /v3 too. */
const DESCRIPTION = 'tsuru.io/description';
const TAGS = 'tsuru.io/tags';

/** The app's pool: its space's isolation segment, else the org's default, else the shared one. */
function poolOf(space: Row<'spaces'>, org: Row<'organizations'> | undefined, segments: Map<string, string>): string {
  const guid = space.isolation_segment_guid ?? org?.default_isolation_segment_guid ?? null;
  return (guid ? segments.get(guid) : undefined) ?? 'shared';
}

export function registerTsuruApps(app: Api, deps: AppDeps): void {
  /**
   * Summaries of apps as app-list prints them (without units; the caller adds them), with their processes,
   * routes and annotations loaded in one query each whatever the number of apps.
   */
  async function summaries(ctx: Ctx, rows: Array<Row<'apps'>>, teams: Map<string, Row<'spaces'>>) {
    const org = await tsuruOrg(ctx, deps);
    const segments = await segmentNames(ctx);
    const processes = await processesOf(ctx, rows);
    const addresses = await addressesOf(ctx, rows);
    const metadata = await loadMetadata(ctx.store.db, 'apps', rows.map((r) => r.guid));
    return Promise.all(
      rows.map(async (row) => {
        const team = teams.get(row.space_guid)!;
        const own = processes.get(row.guid) ?? [];
        const { units, metrics } = await unitsFor(deps, row, own);
        const web = own.find((p) => p.type === 'web') ?? own[0];
        const uris = addresses.get(row.guid) ?? [];
        const annotations = metadata.get(row.guid)?.annotations ?? {};
        const tags = annotations[TAGS] ? annotations[TAGS].split(',').filter((t) => t !== '') : [];
        const summary = {
          name: row.name,
          platform: lifecyclePlatform(row),
          provisioner: 'kiln',
          pool: poolOf(team, org, segments),
          teamowner: team.name,
          teams: [team.name],
          plan: planForMemory(web?.memory_in_mb ?? 1024),
          cname: [] as string[],
          ip: uris[0] ?? '',
          routers: uris.map((a) => ({ name: 'kiln', type: 'kiln', opts: {}, address: a, addresses: [a] })),
          tags,
          error: row.state === 'STARTED' && units.some((u) => u.Status === 'error') ? 'some units are crashing' : '',
          description: annotations[DESCRIPTION] ?? '',
        };
        return { summary, units, metrics, processes: own };
      }),
    );
  }

  route(app, 'post', '/apps', async (c) => {
    const ctx = ctxOf(c, deps);
    const form = await readForm(c);
    const name = form.get('name') ?? '';
    if (name === '') throw new TsuruError(400, 'app name is required');
    if (name.includes(',')) throw new TsuruError(400, 'Invalid app name: it may not contain a comma.');
    const teams = await listTsuruTeamNames(ctx);
    const teamName = form.get('teamOwner') || (teams.length === 1 ? teams[0]! : undefined);
    if (!teamName) throw new TsuruError(400, teams.length === 0 ? 'You must be a member of a team (a space of the Tsuru org) to create an app.' : 'You must provide a team to execute this action (teamOwner).');
    const team = await findTeam(ctx, deps, teamName);
    const existing = await listTsuruApps(ctx, deps, [name]);
    if (existing.apps.length > 0) throw new TsuruError(409, `tsuru failed to create the app "${name}": there is already an app with this name`);
    const org = await tsuruOrg(ctx, deps);
    const segments = await segmentNames(ctx);
    const pool = form.get('pool');
    if (pool && pool !== poolOf(team, org, segments)) throw new TsuruError(400, `pool ${pool} is not the pool of team ${team.name} (Kiln places apps by space: the team's isolation segment)`);
    const plan = planByName(form.get('plan') || DEFAULT_PLAN);
    const platform = form.get('platform');
    const annotations: Record<string, string> = {};
    const description = form.get('description');
    const tags = form.all('tag').filter((t) => t !== '');
    if (description) annotations[DESCRIPTION] = description;
    if (tags.length > 0) annotations[TAGS] = tags.join(',');
    const input = CreateAppSchema.parse({
      name,
      relationships: { space: { data: { guid: team.guid } } },
      ...(Object.keys(annotations).length > 0 ? { metadata: { annotations } } : {}),
      ...(platform ? { lifecycle: { type: 'buildpack', data: { buildpacks: [platform] } } } : {}),
    });
    const { app: row } = await apps.createApp(ctx, input);
    let address: string;
    try {
      address = await sizeAndRoute(ctx, row, team, plan.memory / (1024 * 1024));
    } catch (err) {
      // Tsuru's app-create is all or nothing: an app without its address is removed again.
      await apps.deleteApp(ctx, row.guid).catch(() => undefined);
      throw err;
    }
    return c.json({ status: 'success', ip: address }, 201);
  });

  /** The plan's memory on the web process, and the default route (`cf push`'s) mapped to it; its address. */
  async function sizeAndRoute(ctx: Ctx, row: Row<'apps'>, team: Row<'spaces'>, memoryInMb: number): Promise<string> {
    const web = await findAppProcess(ctx, row.guid, 'web');
    if (memoryInMb !== web.process.memory_in_mb) await scaleProcess(ctx, web, { memory_in_mb: memoryInMb });
    const domain = await getDefaultDomain(ctx, team.organization_guid);
    const routeInput = createRouteSchema(await hashRoutingEnabled(ctx)).parse({
      host: row.name.toLowerCase(),
      relationships: { space: { data: { guid: team.guid } }, domain: { data: { guid: domain.domain.guid } } },
    });
    const made = await createRoute(ctx, routeInput, platformNamesOf(deps.config));
    await insertDestinations(ctx, made.route.guid, [{ appGuid: row.guid, processType: 'web', port: undefined, protocol: undefined, weight: null }]);
    return routeUri(made.route, domain.domain.name);
  }

  /** Names of the caller's teams. */
  async function listTsuruTeamNames(ctx: Ctx): Promise<string[]> {
    return (await listTeams(ctx, deps)).map((t) => t.name);
  }

  route(app, 'get', '/apps', async (c) => {
    const ctx = ctxOf(c, deps);
    const form = await readForm(c, { queryOnly: true });
    const { apps: rows, teams } = await listTsuruApps(ctx, deps);
    const name = form.get('name');
    const teamOwner = form.get('teamOwner');
    const platform = form.get('platform');
    const pool = form.get('pool');
    const statuses = form.all('status');
    const tags = form.all('tag');
    const wanted = rows.filter(
      (row) => (!name || row.name.includes(name)) && (!teamOwner || teams.get(row.space_guid)!.name === teamOwner) && (!platform || lifecyclePlatform(row) === platform),
    );
    const out = (await summaries(ctx, wanted, teams))
      .filter(({ summary, units }) => (!pool || summary.pool === pool) && (statuses.length === 0 || units.some((u) => statuses.includes(u.Status))) && tags.every((t) => summary.tags.includes(t)))
      .map(({ summary, units }) => (form.bool('simplified') ? summary : { ...summary, units }));
    return jsonList(c, out);
  });

  route(app, 'get', '/apps/:app', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    const [{ summary, units, metrics, processes }] = (await summaries(ctx, [scope.app], new Map([[scope.space.guid, scope.space]]))) as [Awaited<ReturnType<typeof summaries>>[number]];
    const deploys = await listDeployments(ctx, parseListParams(new URLSearchParams({ app_guids: scope.app.guid, per_page: '1' }), DEPLOYMENT_LIST));
    // Tsuru's owner is who created the app: the actor of its CF audit event (empty for callers who cannot read it).
    const created = await listAuditEvents(ctx, parseAuditEventListParams(new URLSearchParams({ types: 'audit.app.create', target_guids: scope.app.guid, per_page: '1' })));
    const owner = created.rows[0]?.actor_username || created.rows[0]?.actor_name || '';
    return c.json({
      ...summary,
      units,
      owner,
      deploys: deploys.total,
      lock: { locked: false },
      quota: { inuse: units.length, limit: -1 },
      unitsMetrics: metrics,
      serviceInstanceBinds: await serviceInstanceBinds(ctx, scope.app.guid),
      processes: processes.map((p) => ({ name: p.type, plan: planForMemory(p.memory_in_mb).name, metadata: { labels: [], annotations: [] } })),
      internalAddresses: [],
      // Where the same app lives on the CF side (`cf app` / `/v3/apps/:guid`).
      kiln: { app_guid: scope.app.guid, space_guid: scope.space.guid, state: scope.app.state },
    });
  });

  route(app, 'delete', '/apps/:app', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    await apps.deleteApp(ctx, scope.app.guid);
    return jsonStream(c, async (p) => {
      p.say(`-- removing app ${scope.app.name} --`);
      await until(
        'the app to be removed',
        async () => {
          try {
            await findVisibleApp(ctx, scope.app.guid);
            return undefined;
          } catch {
            return true;
          }
        },
        p.signal,
      );
      p.say(`-- app ${scope.app.name} removed --`);
    });
  });

  // ---- start / stop / restart ----

  route(app, 'post', '/apps/:app/restart', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    await checkProcess(ctx, scope, (await readForm(c)).get('process'));
    await requireAppManager(ctx, scope);
    const deployment = await startRollingRestart(ctx, scope);
    return jsonStream(c, (p) => followRestart(ctx, scope, deployment, p.say, p.signal));
  });

  route(app, 'post', '/apps/:app/start', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    await checkProcess(ctx, scope, (await readForm(c)).get('process'));
    const row = await apps.startApp(ctx, scope.app.guid);
    return jsonStream(c, async (p) => {
      p.say(`---- starting ${row.name} ----`);
      await followUnits(ctx, deps, { app: row, space: scope.space }, 'web', p.say, p.signal);
    });
  });

  route(app, 'post', '/apps/:app/stop', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    await checkProcess(ctx, scope, (await readForm(c)).get('process'));
    const row = await apps.stopApp(ctx, scope.app.guid);
    return jsonStream(c, async (p) => {
      p.say(`---- stopping ${row.name} ----`);
    });
  });

  // ---- env ----

  route(app, 'get', '/apps/:app/env', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    const wanted = (await readForm(c, { queryOnly: true })).all('env');
    const { vars } = await apps.getEnvironmentVariables(ctx, scope.app.guid);
    const list = Object.entries(vars)
      .filter(([name]) => wanted.length === 0 || wanted.includes(name))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, value]) => ({ name, value, public: true, alias: '', managedBy: '' }));
    // The CLI reads env-get as a JSON list; an app without variables is an empty one, not a 204.
    return c.json(list);
  });

  /**
   * Env set/unset: one PATCH of the app's variables, then Tsuru's restart by default (NoRestart skips it). Both
   * writes happen before the stream starts, so a refusal is a plain-text status; the stream follows the rollout.
   */
  async function changeEnv(c: Context<Env>, scope: AppScope, ctx: Ctx, patch: Record<string, string | null>, noRestart: boolean, what: string) {
    await apps.updateEnvironmentVariables(ctx, scope.app.guid, patch);
    const deployment = noRestart ? undefined : await startRollingRestart(ctx, await findVisibleApp(ctx, scope.app.guid));
    return jsonStream(c, async (p: Progress) => {
      p.say(`---- ${what} ----`);
      if (!noRestart) await followRestart(ctx, scope, deployment, p.say, p.signal);
    });
  }

  route(app, 'post', '/apps/:app/env', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    const form = await readForm(c);
    const envs = form.objects('Envs');
    if (envs.length === 0) throw new TsuruError(400, 'You must provide the list of environment variables');
    const patch: Record<string, string | null> = {};
    for (const e of envs) {
      if (!e.name) throw new TsuruError(400, 'Envs need a Name');
      patch[e.name] = e.value ?? '';
    }
    return changeEnv(c, scope, ctx, patch, form.bool('NoRestart'), `setting ${Object.keys(patch).length} new environment variables`);
  });

  route(app, 'delete', '/apps/:app/env', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    const form = await readForm(c);
    const names = form.all('env');
    if (names.length === 0) throw new TsuruError(400, 'You must provide the list of environment variables.');
    return changeEnv(c, scope, ctx, Object.fromEntries(names.map((n) => [n, null])), form.bool('noRestart'), `unsetting ${names.length} environment variables`);
  });

  // ---- units ----

  for (const [method, sign] of [
    ['put', 1],
    ['delete', -1],
  ] as const) {
    route(app, method, '/apps/:app/units', async (c) => {
      const ctx = ctxOf(c, deps);
      const scope = await resolveApp(ctx, deps, param(c, 'app'));
      const form = await readForm(c);
      const delta = form.int('units');
      if (delta === undefined || delta <= 0) throw new TsuruError(400, 'You must provide a valid number of units.');
      const version = form.int('version');
      if (version !== undefined && version !== 0) throw new TsuruError(501, 'Kiln runs one version per process; per-version units have no CF V3 equivalent (scale the process: POST /v3/processes/:guid/actions/scale).');
      const processType = await checkProcess(ctx, scope, form.get('process'));
      const proc = await findAppProcess(ctx, scope.app.guid, processType);
      const instances = proc.process.instances + sign * delta;
      if (instances < 0) throw new TsuruError(400, `Cannot remove ${delta} units from ${processType}: it has ${proc.process.instances}.`);
      await scaleProcess(ctx, proc, { instances });
      return jsonStream(c, async (p) => {
        p.say(`---- ${sign > 0 ? 'adding' : 'removing'} ${delta} unit${delta === 1 ? '' : 's'} ${sign > 0 ? 'to' : 'from'} ${processType} ----`);
        if (scope.app.state === 'STARTED') await followUnits(ctx, deps, scope, processType, p.say, p.signal);
      });
    });
  }

  // unit-kill ⇄ terminate one process instance (`cf restart-app-instance`); the process controller replaces it.
  route(app, 'delete', '/apps/:app/units/:unit', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    const unit = param(c, 'unit');
    if (unit === 'autoscale') notImplemented(c);
    const prefix = `${scope.app.name}-`;
    const m = unit.startsWith(prefix) ? /^(.+)-([0-9]+)$/.exec(unit.slice(prefix.length)) : null;
    if (!m) throw new TsuruError(404, `unit ${unit} not found`);
    let proc;
    try {
      proc = await findAppProcess(ctx, scope.app.guid, m[1]!);
    } catch {
      throw new TsuruError(404, `unit ${unit} not found`);
    }
    await terminateInstance(ctx, proc, Number(m[2]), deps.observed);
    return jsonStream(c, async (p) => {
      p.say(`---- unit ${unit} killed; Kiln starts a replacement ----`);
    });
  });
}

/** The process a request names (Tsuru's `process`), defaulting to `web`; 400 for one the app does not have. */
async function checkProcess(ctx: Ctx, scope: AppScope, name: string | undefined): Promise<string> {
  const type = name || 'web';
  try {
    await findAppProcess(ctx, scope.app.guid, type);
  } catch {
    throw new TsuruError(400, `process ${type} not found in app ${scope.app.name}`);
  }
  return type;
}

/** Tsuru's platform of an app: the first buildpack it asks for (platform ⇄ buildpack), else empty (detected). */
export function lifecyclePlatform(row: Row<'apps'>): string {
  try {
    const buildpacks = JSON.parse(row.lifecycle_buildpacks) as unknown;
    return Array.isArray(buildpacks) && typeof buildpacks[0] === 'string' ? buildpacks[0] : '';
  } catch {
    return '';
  }
}
