import type { Context } from 'hono';
import { parseListParams, type ListSpec } from '../../domain/list-params.ts';
import * as apps from '../../services/apps.ts';
import type { AppScope } from '../../services/app-scope.ts';
import type { Ctx } from '../../services/context.ts';
import { listOrganizations } from '../../services/organizations.ts';
import { instanceReports, listProcesses, type ObservedInstance } from '../../services/processes.ts';
import { listSpaces, SPACE_LIST } from '../../services/spaces.ts';
import { APP_LIST } from '../../services/apps.ts';
import { PROCESS_LIST } from '../../services/processes.ts';
import type { Row } from '../../store/schema.ts';
import type { AppDeps, Env } from '../context.ts';
import { TsuruError, unauthenticated } from './wire.ts';

/**
 * The concept mapping of docs/tsuru.md, in one place: team ⇄ space of the designated org (KILN_TSURU_ORG),
 * app name ⇄ the app of that name among the caller's teams, unit ⇄ process instance, plan ⇄ memory preset.
 * Everything here reads through the services the CF API uses, with the caller's own access.
 */

/** The service context of a signed-in caller; tsuru answers 401 to a protected call without a valid token. */
export function ctxOf(c: Context<Env>, deps: Pick<AppDeps, 'store'>): Ctx {
  const principal = c.get('principal');
  const access = c.get('access');
  if (!principal || !access) throw unauthenticated();
  return { store: deps.store, principal, access };
}

/** Lists all rows of a CF list service (the facade answers whole lists; Tsuru has no pagination). */
export async function listAll<R>(spec: ListSpec, query: Record<string, string>, list: (params: ReturnType<typeof parseListParams>) => Promise<{ rows: R[] }>): Promise<R[]> {
  const params = parseListParams(new URLSearchParams({ per_page: '5000', ...query }), spec);
  return (await list(params)).rows;
}

/** The designated org if the caller can see it; a caller outside it has no teams and no apps. */
export async function tsuruOrg(ctx: Ctx, deps: Pick<AppDeps, 'config'>): Promise<Row<'organizations'> | undefined> {
  const orgs = await listAll({ filters: ['names'] }, { names: deps.config.tsuruOrg }, (p) => listOrganizations(ctx, p));
  return orgs[0];
}

/** Teams: the spaces of the designated org the caller can see, by name. */
export async function listTeams(ctx: Ctx, deps: Pick<AppDeps, 'config'>): Promise<Array<Row<'spaces'>>> {
  const org = await tsuruOrg(ctx, deps);
  if (!org) return [];
  return listAll(SPACE_LIST, { organization_guids: org.guid, order_by: 'name' }, (p) => listSpaces(ctx, p));
}

/** The team (space) named `name`, or 404 as for anything the caller cannot see. */
export async function findTeam(ctx: Ctx, deps: Pick<AppDeps, 'config'>, name: string): Promise<Row<'spaces'>> {
  const team = (await listTeams(ctx, deps)).find((t) => t.name === name);
  if (!team) throw new TsuruError(404, `Team ${name} not found.`);
  return team;
}

/** Apps of the caller's teams, optionally by name. */
export async function listTsuruApps(ctx: Ctx, deps: Pick<AppDeps, 'config'>, names?: string[]): Promise<{ apps: Array<Row<'apps'>>; teams: Map<string, Row<'spaces'>> }> {
  const org = await tsuruOrg(ctx, deps);
  if (!org) return { apps: [], teams: new Map() };
  const query: Record<string, string> = { organization_guids: org.guid, order_by: 'name' };
  if (names) query.names = names.join(',');
  const rows = await listAll(APP_LIST, query, (p) => apps.listApps(ctx, p));
  const teams = new Map((await listTeams(ctx, deps)).map((t) => [t.guid, t]));
  return { apps: rows.filter((a) => teams.has(a.space_guid)), teams };
}

/**
 * The app called `name` among the caller's teams. Tsuru's names are global and CF's are per space, so two
 * teams holding the same name is an ambiguity the caller must resolve through the CF API (409).
 */
export async function resolveApp(ctx: Ctx, deps: Pick<AppDeps, 'config'>, name: string): Promise<AppScope> {
  // The CF names filter is comma-separated; Tsuru names never hold a comma.
  if (name.includes(',')) throw new TsuruError(404, `App ${name} not found.`);
  const { apps: found, teams } = await listTsuruApps(ctx, deps, [name]);
  if (found.length === 0) throw new TsuruError(404, `App ${name} not found.`);
  if (found.length > 1) {
    const where = found.map((a) => teams.get(a.space_guid)?.name ?? '').sort().join(', ');
    throw new TsuruError(409, `App name ${name} is ambiguous: teams ${where} each have one; use the CF API (/v3/apps?names=${name}) to address one of them.`);
  }
  return { app: found[0]!, space: teams.get(found[0]!.space_guid)! };
}

// ---- units ----

/** Tsuru unit status from a CF instance state. */
export function unitStatus(state: ObservedInstance['state']): string {
  switch (state) {
    case 'RUNNING':
      return 'started';
    case 'STARTING':
      return 'starting';
    case 'CRASHED':
      return 'error';
    case 'STOPPING':
      return 'stopping';
    default:
      return 'stopped';
  }
}

/** A unit's name: `<app>-<process>-<index>` (Tsuru's are pod names; Kiln's instances are numbered). */
export const unitName = (app: string, process: string, index: number) => `${app}-${process}-${index}`;

export interface Unit {
  ID: string;
  Name: string;
  AppName: string;
  ProcessName: string;
  Type: string;
  IP: string;
  Status: string;
  StatusReason: string;
  Ready: boolean;
  Restarts: number;
  Routable: boolean;
  Version: number;
  HostAddr: string;
  HostPort: string;
  Address: { Scheme: string; Host: string } | null;
  Addresses: Array<{ Scheme: string; Host: string }>;
  CreatedAt: string | null;
}

/** Per-unit usage as app-info prints it: Kubernetes quantities (CPU in millicores, memory in bytes). */
export interface UnitMetrics {
  ID: string;
  CPU: string;
  Memory: string;
}

/** The processes of some apps in one query, by app guid, oldest first. */
export async function processesOf(ctx: Ctx, rows: Array<Row<'apps'>>): Promise<Map<string, Array<Row<'processes'>>>> {
  const out = new Map<string, Array<Row<'processes'>>>();
  if (rows.length === 0) return out;
  const processes = await listAll(PROCESS_LIST, { app_guids: rows.map((a) => a.guid).join(','), order_by: 'created_at' }, (p) => listProcesses(ctx, p));
  for (const p of processes) out.set(p.app_guid, [...(out.get(p.app_guid) ?? []), p]);
  return out;
}

/** Units of an app whose processes are loaded: every desired index (a missing instance is a stopped unit). */
export async function unitsFor(deps: Pick<AppDeps, 'observed'>, app: Row<'apps'>, processes: Array<Row<'processes'>>): Promise<{ units: Unit[]; metrics: UnitMetrics[] }> {
  const units: Unit[] = [];
  const metrics: UnitMetrics[] = [];
  for (const p of processes) {
    // A stopped app has no desired instances, whatever the process's count says.
    const observed = await instanceReports(deps.observed, p);
    for (const o of observed) {
      if (app.state !== 'STARTED' && o.state === 'DOWN') continue;
      const name = unitName(app.name, p.type, o.index);
      const host = o.host ?? '';
      const port = o.ports?.[0]?.external;
      const address = host && port !== undefined ? { Scheme: 'http', Host: `${host}:${port}` } : null;
      units.push({
        ID: name,
        Name: name,
        AppName: app.name,
        ProcessName: p.type,
        Type: app.lifecycle_type,
        IP: host,
        Status: unitStatus(o.state),
        StatusReason: o.details ?? '',
        Ready: o.state === 'RUNNING',
        Restarts: 0,
        Routable: p.type === 'web',
        Version: 0,
        HostAddr: host,
        HostPort: port === undefined ? '' : String(port),
        Address: address,
        Addresses: address ? [address] : [],
        CreatedAt: o.uptime !== undefined ? new Date(Date.now() - o.uptime * 1000).toISOString() : null,
      });
      if (o.usage) metrics.push({ ID: name, CPU: `${Math.round(o.usage.cpu * 1000)}m`, Memory: String(o.usage.mem) });
    }
  }
  return { units, metrics };
}

// ---- plans ----

/** Tsuru plans are memory presets here; a process sized otherwise shows a plan named after its size. */
export interface Plan {
  name: string;
  memory: number;
  cpumilli: number;
  default: boolean;
  override: { memory: null; cpumilli: null };
}

const MB = 1024 * 1024;
const PRESETS: Array<[string, number]> = [
  ['small', 256],
  ['medium', 512],
  ['large', 1024],
  ['xlarge', 2048],
];
/** Kiln's default process size (1024 MB) is the default plan, so an app made without a plan has it. */
export const DEFAULT_PLAN = 'large';

export const plans = (): Plan[] =>
  PRESETS.map(([name, mb]) => ({ name, memory: mb * MB, cpumilli: 0, default: name === DEFAULT_PLAN, override: { memory: null, cpumilli: null } }));

export function planByName(name: string): Plan {
  const plan = plans().find((p) => p.name === name);
  if (!plan) throw new TsuruError(400, `plan ${name} not found; plans are ${PRESETS.map(([n]) => n).join(', ')}`);
  return plan;
}

export function planForMemory(memoryInMb: number): Plan {
  return plans().find((p) => p.memory === memoryInMb * MB) ?? { name: `${memoryInMb}M`, memory: memoryInMb * MB, cpumilli: 0, default: false, override: { memory: null, cpumilli: null } };
}
