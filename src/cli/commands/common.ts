import type { ApiClient } from '../api-client.ts';
import type { NamedRef } from '../config-store.ts';
import { CliError, type Session } from '../session.ts';

export interface Named {
  guid: string;
  name: string;
}

export interface AppResource extends Named {
  state: string;
  created_at: string;
  updated_at: string;
  lifecycle?: { type?: string; data?: { buildpacks?: string[]; stack?: string } };
}

export interface ProcessResource {
  guid: string;
  type: string;
  instances: number;
  memory_in_mb: number;
  disk_in_mb: number;
  command?: string | null;
}

export interface InstanceStats {
  index: number;
  state: string;
  uptime?: number;
  mem_quota?: number;
  disk_quota?: number;
  details?: string | null;
  usage?: { cpu?: number; mem?: number; disk?: number; time?: string };
}

export interface RouteResource {
  guid: string;
  host: string;
  path: string;
  url: string;
  protocol: string;
  port: number | null;
  destinations: Array<{ guid: string; app: { guid: string; process?: { type: string } } }>;
  relationships: { domain: { data: { guid: string } }; space: { data: { guid: string } } };
}

/** Names go into `names=` filters, where a comma separates names. */
const nameFilter = (name: string) => name.replace(/,/g, '%2C');

export async function findOrg(client: ApiClient, name: string): Promise<NamedRef> {
  const found = await client.listAll<Named>('/v3/organizations', { names: nameFilter(name) });
  if (!found[0]) throw new CliError(`Organization '${name}' not found. Use 'kiln orgs' to list the ones you can see.`);
  return { guid: found[0].guid, name: found[0].name };
}

export async function findSpace(client: ApiClient, org: NamedRef, name: string): Promise<NamedRef> {
  const found = await client.listAll<Named>('/v3/spaces', { names: nameFilter(name), organization_guids: org.guid });
  if (!found[0]) throw new CliError(`Space '${name}' not found in org '${org.name}'. Use 'kiln spaces' to list them.`);
  return { guid: found[0].guid, name: found[0].name };
}

/** The app of that name in the targeted space. */
export async function findApp(session: Session, name: string): Promise<AppResource> {
  const { space } = session.requireSpace();
  const found = await session.client.listAll<AppResource>('/v3/apps', { names: nameFilter(name), space_guids: space.guid });
  if (!found[0]) throw new CliError(`App '${name}' not found in space '${space.name}'. Use 'kiln apps' to list apps.`);
  return found[0];
}

export async function findDomain(client: ApiClient, name: string): Promise<Named> {
  const found = await client.listAll<Named>('/v3/domains', { names: nameFilter(name) });
  if (!found[0]) throw new CliError(`Domain '${name}' not found. Use 'kiln routes' to see the domains in use.`);
  return found[0];
}

export async function processStats(client: ApiClient, processGuid: string): Promise<InstanceStats[]> {
  return (await client.get<{ resources?: InstanceStats[] }>(`/v3/processes/${processGuid}/stats`)).resources ?? [];
}

/** The app's routes as the URLs they answer on (`node-hello.apps.localhost`). */
export async function routeUrls(client: ApiClient, appGuid: string): Promise<string[]> {
  return (await client.listAll<RouteResource>(`/v3/apps/${appGuid}/routes`)).map((r) => r.url);
}

/**
 * Waits as `cf start` does: until every process has at least one RUNNING instance (or none wanted), failing
 * when all instances of a process crashed or the deadline passes.
 */
export async function waitUntilRunning(
  client: ApiClient,
  appGuid: string,
  onProgress: (text: string) => void,
  timeoutMs = 5 * 60_000,
): Promise<{ running: number; total: number }> {
  const processes = await client.listAll<ProcessResource>(`/v3/apps/${appGuid}/processes`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let running = 0;
    let total = 0;
    let ready = true;
    for (const proc of processes) {
      if (proc.instances === 0) continue;
      const stats = await processStats(client, proc.guid);
      total += stats.length;
      const up = stats.filter((s) => s.state === 'RUNNING').length;
      running += up;
      if (stats.length > 0 && up > 0) continue;
      if (stats.length > 0 && stats.every((s) => s.state === 'CRASHED')) {
        const details = stats.map((s) => s.details).find((d) => d);
        throw new CliError(`Every instance of the ${proc.type} process crashed${details ? ` (${details})` : ''}. Use 'kiln logs APP --recent' to see why.`);
      }
      ready = false;
    }
    onProgress(`${running} of ${total} instances running`);
    if (ready) return { running, total };
    if (Date.now() > deadline) throw new CliError(`The app did not start within ${Math.round(timeoutMs / 1000)}s. Use 'kiln logs APP --recent' to see why.`);
    await client.sleep(500);
  }
}

/** Runs a request that may answer 202 with a job, and waits for the job. */
export async function requestAndWait(client: ApiClient, method: string, path: string, json?: unknown): Promise<void> {
  const res = await client.request(method, path, json === undefined ? {} : { json });
  if (res.status === 202) await client.awaitJob(res.headers.get('location'));
}
