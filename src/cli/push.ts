import { openAsBlob } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { randomRouteHost } from '../domain/random-route.ts';
import { ApiClient, CfApiError, LoginError, NetworkError, type FetchLike } from './api-client.ts';
import { buildPushManifest, findManifest, parseInstances, parseMemoryMb, PushUsageError, type PushApp } from './manifest.ts';
import { formatBytes, formatDuration, Progress, type ProgressStream } from './progress.ts';
import { LockRefused, PUSH_LOCK_TTL_SECONDS, PushLock } from './push-lock.ts';
import { gatherAppEntries, matchCandidates, splitByMatches, writeAppZip, type AppEntry, type ResourceDescription } from './zip-app.ts';

export const PUSH_USAGE = `Usage: kiln push [DIR] [options]

Pushes the app in DIR (default: the manifest's path, or the current directory) to Kiln or any Cloud Foundry
V3 API, the way 'cf push' does: apply the manifest, upload the changed files, stage, start, print the URL.

Options:
  --name NAME            app name (required without a manifest; selects or renames a manifest app)
  -i, --instances N      number of instances of the web process
  -m, --memory SIZE      memory per instance, e.g. 256M or 1G
  -f, --manifest FILE    manifest to use (default: DIR/manifest.yml or DIR/manifest.yaml)
  --no-manifest          ignore any manifest file
  --api URL              API URL (default: $KILN_API, else the one of 'kiln login', else http://localhost:9000)
  --username USER        log in with this user (default: $KILN_USERNAME) …
  --password PASS        … and password (default: $KILN_PASSWORD); otherwise $KILN_TOKEN, else the 'kiln login' session
  -o, --org ORG          organization (default: $KILN_ORG, the 'kiln target' one, or the only one you can see)
  -s, --space SPACE      space (default: $KILN_SPACE, the 'kiln target' one, or the only one in the org)
  --lock                 hold a lock on the app while pushing (Kiln only): another client's push, scale, env
                         change or delete of the app is refused until this push ends; refused itself while
                         someone else holds the app
  --lock-ttl SECONDS     lease of that lock, renewed while the push runs (default ${PUSH_LOCK_TTL_SECONDS}); a killed push
                         frees the app after at most this long
  -h, --help             show this help`;

export interface PushOptions {
  dir: string | null;
  name: string | undefined;
  instances: number | undefined;
  memory: string | undefined;
  manifest: string | undefined;
  noManifest: boolean;
  api: string;
  username: string | undefined;
  password: string | undefined;
  token: string | undefined;
  org: string | undefined;
  space: string | undefined;
  /** Lease in seconds of the lock held around the push; undefined without `--lock`. */
  lockTtl?: number | undefined;
}

export interface PushIO {
  out: ProgressStream;
  err: { write(chunk: string): unknown };
  fetch?: FetchLike;
  sleep?: (ms: number) => Promise<void>;
  /** Poll intervals and give-up times in ms (tests shorten them). */
  timing?: Partial<PushTiming>;
}

export interface PushTiming {
  pollMs: number;
  logPollMs: number;
  stagingTimeoutMs: number;
  startupTimeoutMs: number;
}

export interface PushResult {
  appGuid: string;
  urls: string[];
}

/** What `kiln login`/`kiln target` saved: used when flags and environment leave things out. */
export interface SavedTarget {
  api?: string | undefined;
  token?: string | undefined;
  org?: string | undefined;
  space?: string | undefined;
}

/** Parses `kiln push` arguments; environment variables, then the saved login and target, fill in what flags leave out. */
export function parsePushArgs(argv: string[], env: NodeJS.ProcessEnv = process.env, saved: SavedTarget = {}): PushOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        name: { type: 'string' },
        instances: { type: 'string', short: 'i' },
        memory: { type: 'string', short: 'm' },
        manifest: { type: 'string', short: 'f' },
        'no-manifest': { type: 'boolean' },
        api: { type: 'string' },
        username: { type: 'string' },
        password: { type: 'string' },
        org: { type: 'string', short: 'o' },
        space: { type: 'string', short: 's' },
        lock: { type: 'boolean' },
        'lock-ttl': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new PushUsageError((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) return 'help';
  if (positionals.length > 1) throw new PushUsageError(`Only one app directory can be pushed at a time (got ${positionals.join(', ')}).`);
  if (v.manifest !== undefined && v['no-manifest']) throw new PushUsageError('--manifest and --no-manifest cannot be used together.');
  if (v.memory !== undefined) parseMemoryMb(v.memory);
  if (v['lock-ttl'] !== undefined && !v.lock) throw new PushUsageError('--lock-ttl needs --lock.');
  const lockTtl = v['lock-ttl'] === undefined ? PUSH_LOCK_TTL_SECONDS : Number(v['lock-ttl']);
  if (!Number.isInteger(lockTtl) || lockTtl < 1 || lockTtl > 86_400) throw new PushUsageError('--lock-ttl must be a whole number of seconds from 1 to 86400.');
  const username = v.username ?? env.KILN_USERNAME;
  const password = v.password ?? env.KILN_PASSWORD;
  if ((v.username !== undefined) !== (v.password !== undefined) && (username === undefined || password === undefined)) {
    throw new PushUsageError('--username and --password go together.');
  }
  const port = env.PORT && /^\d+$/.test(env.PORT) && env.PORT !== '0' ? env.PORT : '9000';
  const org = v.org ?? (env.KILN_ORG || undefined);
  // The saved space belongs to the saved org: it only applies when no other org is asked for.
  const savedSpace = org === undefined || org === saved.org ? saved.space : undefined;
  const ownLogin = username !== undefined && password !== undefined;
  return {
    dir: positionals[0] ?? null,
    name: v.name,
    instances: v.instances === undefined ? undefined : parseInstances(v.instances),
    memory: v.memory,
    manifest: v.manifest,
    noManifest: v['no-manifest'] === true,
    api: v.api ?? env.KILN_API ?? saved.api ?? `http://localhost:${port}`,
    username,
    password,
    token: env.KILN_TOKEN || (ownLogin ? undefined : saved.token),
    org: org ?? saved.org,
    space: v.space ?? (env.KILN_SPACE || undefined) ?? savedSpace,
    lockTtl: v.lock ? lockTtl : undefined,
  };
}

/** `kiln push …` as a command: resolves to the exit code. */
export async function runPush(argv: string[], io: PushIO = { out: process.stdout, err: process.stderr }, saved: SavedTarget = {}): Promise<number> {
  let options;
  try {
    options = parsePushArgs(argv, process.env, saved);
  } catch (err) {
    if (err instanceof PushUsageError) {
      io.err.write(`${err.message}\n\n${PUSH_USAGE}\n`);
      return 2;
    }
    throw err;
  }
  if (options === 'help') {
    io.out.write(`${PUSH_USAGE}\n`);
    return 0;
  }
  try {
    await push(options, io);
    return 0;
  } catch (err) {
    const known =
      err instanceof PushFailure || err instanceof PushUsageError || err instanceof CfApiError || err instanceof LoginError || err instanceof NetworkError || err instanceof LockRefused;
    io.err.write(`\nkiln push failed: ${known ? (err as Error).message : (err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

/** A push that cannot go on, with a message meant for the user. */
export class PushFailure extends Error {}

interface Named {
  guid: string;
  name: string;
}

interface AppResource extends Named {
  state: string;
}

interface ProcessResource {
  guid: string;
  type: string;
  instances: number;
}

interface StatsEntry {
  index: number;
  state: string;
  details?: string | null;
}

interface LogEnvelope {
  timestamp: string;
  instance_id?: string;
  tags?: Record<string, string>;
  log?: { payload?: string; type?: string };
}

const DEFAULT_TIMING: PushTiming = { pollMs: 500, logPollMs: 300, stagingTimeoutMs: 15 * 60_000, startupTimeoutMs: 5 * 60_000 };

/** Runs the cf push request flow (cf-cli-flows §5.4) for one app. */
export async function push(options: PushOptions, io: PushIO): Promise<PushResult> {
  const timing = { ...DEFAULT_TIMING, ...io.timing };
  const progress = new Progress(io.out);
  const warn = (message: string) => progress.line(`warning: ${message}`);
  const client = new ApiClient({
    api: options.api,
    token: options.token,
    ...(io.fetch ? { fetch: io.fetch } : {}),
    ...(io.sleep ? { sleep: io.sleep } : {}),
    onWarning: warn,
  });
  const sleep = client.sleep;
  const phase = async <T>(label: string, work: () => Promise<T>, detail?: (result: T) => string | undefined): Promise<T> => {
    progress.start(label);
    try {
      const result = await work();
      progress.done(detail?.(result));
      return result;
    } catch (err) {
      progress.fail();
      throw err;
    }
  };

  // Local work first, so a mistake in the manifest or an empty folder costs no request (as cf does).
  const baseDir = options.dir ?? process.cwd();
  const manifestFile = options.noManifest ? null : await findManifest(baseDir, options.manifest);
  const source = manifestFile ? { text: await fs.readFile(manifestFile, 'utf8'), file: manifestFile } : null;
  const { app: wanted, yaml } = buildPushManifest(source, { name: options.name, instances: options.instances, memory: options.memory });
  const appDir = options.dir ?? wanted.path ?? process.cwd();
  const entries = await phase(
    `Reading ${path.relative(process.cwd(), path.resolve(appDir)) || '.'}`,
    () => gatherAppEntries(appDir),
    (list) => {
      const files = list.filter((e) => e.type === 'file');
      return `${files.length} files, ${formatBytes(files.reduce((n, e) => n + e.size, 0))}${manifestFile ? `, manifest ${path.basename(manifestFile)}` : ''}`;
    },
  );
  if (!entries.some((e) => e.type !== 'directory')) throw new PushFailure(`No app files found in '${appDir}'.`);

  const root = await phase(
    `Logging in to ${client.api}`,
    async () => {
      const info = await client.root();
      if (options.username !== undefined && options.password !== undefined) {
        await client.login(info.login, options.username, options.password);
      } else if (!client.token) {
        throw new PushFailure("Not logged in. Use 'kiln login' to log in (or pass --username and --password, or set KILN_TOKEN).");
      }
      return info;
    },
    () => (options.username ? `as ${options.username}` : 'with the saved token'),
  );

  const { org, space } = await phase('Finding org and space', () => target(client, options), (t) => `${t.org.name} / ${t.space.name}`);

  const lockTtl = options.lockTtl;
  const lock =
    lockTtl === undefined
      ? undefined
      : await phase(
          `Locking ${wanted.name}`,
          async () => {
            const existing = await findApp(client, space.guid, wanted.name);
            const taken = await PushLock.take(client, { appGuid: existing?.guid, spaceGuid: space.guid, appName: wanted.name }, lockTtl, warn);
            return { taken, onSpace: existing === undefined };
          },
          (l) => `${l.onSpace ? `space ${space.name} until the app exists` : 'app'}, lease ${lockTtl}s renewed while pushing`,
        );
  try {
    const app = await phase(
      `Applying manifest for ${wanted.name}`,
      () => applyManifest(client, space, org, wanted, yaml, timing, warn),
      (a) => (a.created ? 'app created' : 'app exists'),
    );
    // A first push locked the space until the app existed; from here on only the app is held.
    if (lock?.onSpace) await lock.taken.narrowTo(app.guid, wanted.name);

    const pkg = await phase(
      'Uploading app files',
      () => upload(client, app.guid, appDir, entries, timing, warn),
      (r) => `${r.zipped} entries uploaded (${formatBytes(r.zipBytes)}), ${r.cached} files already on the server`,
    );

    const droplet = await phase(
      'Staging',
      () => stage(client, root.logCache, app.guid, pkg.guid, timing, (line) => progress.line(line)),
      (d) => `droplet ${d.guid}`,
    );

    await phase(
      'Starting',
      async () => {
        await client.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet.guid } });
        if (app.direct) await scaleDirect(client, app.guid, wanted, warn);
        try {
          await client.post(`/v3/apps/${app.guid}/actions/restart`);
        } catch (err) {
          if (!(err instanceof CfApiError && err.endpointMissing)) throw err;
          await client.post(`/v3/apps/${app.guid}/actions/start`);
        }
        return waitForInstances(client, root.logCache, app.guid, timing, (line) => progress.line(line));
      },
      (r) => `${r.running} of ${r.total} instances running`,
    );

    const urls = await appUrls(client, app.guid);
    io.out.write(`\n${wanted.name} is running (pushed in ${progress.elapsed()}).\n`);
    if (urls.length === 0) io.out.write("It has no route: map one with 'kiln map-route' to reach it.\n");
    for (const url of urls) io.out.write(`  ${url}\n`);
    return { appGuid: app.guid, urls };
  } finally {
    await lock?.taken.release();
  }
}

async function findByName<T extends Named>(client: ApiClient, collection: string, name: string, query: Record<string, string> = {}): Promise<T[]> {
  return client.listAll<T>(`/v3/${collection}`, { names: name.replace(/,/g, '%2C'), ...query });
}

function choose(kind: 'organization' | 'space', all: Named[], flag: string, envName: string, where = ''): Named {
  if (all.length === 1) return all[0]!;
  if (all.length === 0) {
    throw new PushFailure(
      kind === 'organization'
        ? "You cannot see any organization. An admin can create one with 'kiln create-org NAME', then a space in it with 'kiln create-space NAME -o ORG' (which makes the creator its developer)."
        : `There is no space${where} you can see. Create one with 'kiln create-space NAME -o ORG' (it makes you its developer), or ask an org manager.`,
    );
  }
  const names = all.map((x) => x.name).join(', ');
  throw new PushFailure(
    `You can see ${all.length} ${kind === 'organization' ? 'organizations' : 'spaces'}${where} (${names}): choose one with 'kiln target ${kind === 'organization' ? '-o' : '-s'} NAME', ${flag} NAME or ${envName}=NAME.`,
  );
}

/** The org and space to push to: flags, then KILN_ORG/KILN_SPACE, then the only one visible. */
async function target(client: ApiClient, options: PushOptions): Promise<{ org: Named; space: Named }> {
  let org: Named;
  if (options.org !== undefined) {
    const found = await findByName<Named>(client, 'organizations', options.org);
    if (found.length === 0) throw new PushFailure(`Organization '${options.org}' not found (or you are not a member of it).`);
    org = found[0]!;
  } else {
    const orgs = await client.listAll<Named>('/v3/organizations', { order_by: 'name' });
    if (orgs.length > 1 && options.space !== undefined) {
      // A space name alone may be enough to tell the org.
      const spaces = await findByName<Named & { relationships?: { organization?: { data?: { guid?: string } } } }>(client, 'spaces', options.space);
      const orgGuids = new Set(spaces.map((s) => s.relationships?.organization?.data?.guid));
      if (spaces.length === 1 && orgGuids.size === 1) {
        const owner = orgs.find((o) => orgGuids.has(o.guid));
        if (owner) return { org: owner, space: spaces[0]! };
      }
    }
    org = choose('organization', orgs, '--org', 'KILN_ORG');
  }
  if (options.space !== undefined) {
    const found = await findByName<Named>(client, 'spaces', options.space, { organization_guids: org.guid });
    if (found.length === 0) throw new PushFailure(`Space '${options.space}' not found in organization '${org.name}'.`);
    return { org, space: found[0]! };
  }
  const spaces = await client.listAll<Named>('/v3/spaces', { order_by: 'name', organization_guids: org.guid });
  return { org, space: choose('space', spaces, '--space', 'KILN_SPACE', ` in organization '${org.name}'`) };
}

interface TargetApp {
  guid: string;
  created: boolean;
  /** True when the server has no apply_manifest and push made the app and its route itself. */
  direct: boolean;
}

async function findApp(client: ApiClient, spaceGuid: string, name: string): Promise<AppResource | undefined> {
  return (await findByName<AppResource>(client, 'apps', name, { space_guids: spaceGuid }))[0];
}

/**
 * `POST /v3/spaces/:guid/actions/apply_manifest` and its job, as cf push does even without a manifest file.
 * A server without that endpoint gets the equivalent calls: create the app, set its env, map a default route.
 */
async function applyManifest(
  client: ApiClient,
  space: Named,
  org: Named,
  wanted: PushApp,
  yaml: string,
  timing: PushTiming,
  warn: (m: string) => void,
): Promise<TargetApp> {
  const before = await findApp(client, space.guid, wanted.name);
  try {
    const res = await client.request('POST', `/v3/spaces/${space.guid}/actions/apply_manifest`, { yaml });
    await client.awaitJob(res.headers.get('location'), { intervalMs: timing.pollMs });
  } catch (err) {
    if (!(err instanceof CfApiError && err.endpointMissing)) {
      if (err instanceof CfApiError) throw err;
      throw new PushFailure(`Applying the manifest failed: ${(err as Error).message}`);
    }
    warn('this server has no apply_manifest endpoint; creating the app and its route directly');
    return createDirect(client, space, org, wanted, before, warn);
  }
  const after = await findApp(client, space.guid, wanted.name);
  if (!after) throw new PushFailure(`App '${wanted.name}' not found in space '${space.name}' after applying the manifest.`);
  return { guid: after.guid, created: !before, direct: false };
}

async function createDirect(
  client: ApiClient,
  space: Named,
  org: Named,
  wanted: PushApp,
  existing: AppResource | undefined,
  warn: (m: string) => void,
): Promise<TargetApp> {
  const app =
    existing ??
    (await client.post<AppResource>('/v3/apps', {
      name: wanted.name,
      relationships: { space: { data: { guid: space.guid } } },
      ...(Object.keys(wanted.env).length > 0 ? { environment_variables: wanted.env } : {}),
    }));
  if (existing && Object.keys(wanted.env).length > 0) {
    await client.patch(`/v3/apps/${app.guid}/environment_variables`, { var: wanted.env });
  }
  if (wanted.hasRoutes) warn('the manifest\'s routes are not applied without apply_manifest; mapping the default route instead');
  if (!wanted.noRoute && (await client.listAll(`/v3/apps/${app.guid}/routes`)).length === 0) {
    const domain = await client.get<Named>(`/v3/organizations/${org.guid}/domains/default`);
    const host = wanted.randomRoute ? randomRouteHost(wanted.name) : wanted.name;
    const found = await client.listAll<{ guid: string }>('/v3/routes', { domain_guids: domain.guid, hosts: host, paths: '' });
    const route =
      found[0] ??
      (await client.post<{ guid: string }>('/v3/routes', {
        host,
        relationships: { space: { data: { guid: space.guid } }, domain: { data: { guid: domain.guid } } },
      }));
    await client.post(`/v3/routes/${route.guid}/destinations`, { destinations: [{ app: { guid: app.guid } }] });
  }
  return { guid: app.guid, created: !existing, direct: true };
}

/** Without apply_manifest, instances and memory from flags/manifest are set on the web process directly. */
async function scaleDirect(client: ApiClient, appGuid: string, wanted: PushApp, warn: (m: string) => void): Promise<void> {
  const body: Record<string, number> = {};
  if (wanted.instances !== null) body.instances = wanted.instances;
  if (wanted.memoryMb !== null) body.memory_in_mb = wanted.memoryMb;
  if (Object.keys(body).length === 0) return;
  try {
    await client.post(`/v3/apps/${appGuid}/processes/web/actions/scale`, body);
  } catch (err) {
    if (!(err instanceof CfApiError)) throw err;
    warn(`could not scale the web process: ${err.message}`);
  }
}

interface PackageResource {
  guid: string;
  state: string;
}

/** Resource matching, package creation, the multipart upload of unmatched files, then waiting for READY. */
async function upload(
  client: ApiClient,
  appGuid: string,
  appDir: string,
  entries: AppEntry[],
  timing: PushTiming,
  warn: (m: string) => void,
): Promise<PackageResource & { zipped: number; zipBytes: number; cached: number }> {
  const candidates = matchCandidates(entries);
  const matched: ResourceDescription[] = [];
  try {
    // cf sends at most 5000 fingerprints per request.
    for (let i = 0; i < candidates.length; i += 5000) {
      const res = await client.post<{ resources?: ResourceDescription[] }>('/v3/resource_matches', { resources: candidates.slice(i, i + 5000) });
      matched.push(...(res.resources ?? []));
    }
  } catch (err) {
    // Matching only saves bytes: without it, every file is uploaded.
    if (!(err instanceof CfApiError)) throw err;
    warn(`resource matching failed, uploading every file (${err.message})`);
    matched.length = 0;
  }
  const split = splitByMatches(entries, matched);

  let pkg = await client.post<PackageResource>('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: appGuid } } } });
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-push-'));
  let zipBytes = 0;
  try {
    const form = new FormData();
    form.append('resources', JSON.stringify(split.matched));
    if (split.toZip.length > 0) {
      const zipFile = path.join(scratch, 'package.zip');
      zipBytes = await writeAppZip(appDir, split.toZip, zipFile);
      const blob = await openAsBlob(zipFile, { type: 'application/octet-stream' });
      form.append('bits', blob, 'package.zip');
    }
    pkg = (await client.request<PackageResource>('POST', `/v3/packages/${pkg.guid}/upload`, { form })).body;
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
  const deadline = Date.now() + timing.stagingTimeoutMs;
  while (pkg.state !== 'READY') {
    if (pkg.state === 'FAILED' || pkg.state === 'EXPIRED') {
      const why = (pkg as { error?: string | null }).error;
      throw new PushFailure(`The package ${pkg.state === 'FAILED' ? 'failed to process' : 'expired'}${why ? `: ${why}` : ''}.`);
    }
    if (Date.now() > deadline) throw new PushFailure(`Timed out waiting for package ${pkg.guid} (still ${pkg.state}).`);
    await client.sleep(timing.pollMs);
    pkg = await client.get<PackageResource>(`/v3/packages/${pkg.guid}`);
  }
  return { ...pkg, zipped: split.toZip.length, zipBytes, cached: split.matched.length };
}

interface BuildResource {
  guid: string;
  state: string;
  error?: string | null;
  droplet?: { guid: string } | null;
}

/** Nanoseconds since the epoch as log-cache counts them. */
const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

function decodePayload(e: LogEnvelope): string {
  return Buffer.from(e.log?.payload ?? '', 'base64').toString('utf8').replace(/\r?\n$/, '');
}

/**
 * Follows an app's log-cache stream by polling `read` with a moving start_time. Log trouble never fails a
 * push (cf only warns); after five errors in a row tailing stops.
 */
class LogTail {
  private next: bigint;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private failures = 0;

  constructor(
    private readonly client: ApiClient,
    private readonly logCache: string,
    private readonly sourceId: string,
    private readonly print: (e: LogEnvelope) => void,
    private readonly intervalMs: number,
    startNs: bigint,
  ) {
    this.next = startNs;
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        await this.readOnce();
        if (this.failures >= 5) return;
        await this.client.sleep(this.intervalMs);
      }
    })();
  }

  /** Stops following, after one last read so lines written just before the end are shown. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    if (this.failures < 5) await this.readOnce();
  }

  private async readOnce(): Promise<void> {
    try {
      for (let rounds = 0; rounds < 20; rounds++) {
        const res = await this.client.get<{ envelopes?: { batch?: LogEnvelope[] } }>(
          `${this.logCache.replace(/\/+$/, '')}/api/v1/read/${this.sourceId}`,
          { envelope_types: 'LOG', start_time: this.next.toString(), limit: 1000 },
        );
        const batch = res.envelopes?.batch ?? [];
        for (const e of batch) {
          this.print(e);
          const ts = BigInt(e.timestamp);
          if (ts >= this.next) this.next = ts + 1n;
        }
        this.failures = 0;
        if (batch.length < 1000) return;
      }
    } catch {
      this.failures++;
    }
  }
}

/** Creates the build and waits for STAGED, printing STG log lines as they come. */
async function stage(
  client: ApiClient,
  logCache: string | null,
  appGuid: string,
  packageGuid: string,
  timing: PushTiming,
  line: (text: string) => void,
): Promise<{ guid: string }> {
  // A second of slack for clocks that differ a little between this machine and the server.
  const tail = logCache
    ? new LogTail(
        client,
        logCache,
        appGuid,
        (e) => {
          if (e.tags?.source_type === 'STG') line(`   ${decodePayload(e)}`);
        },
        timing.logPollMs,
        nowNs() - 1_000_000_000n,
      )
    : null;
  tail?.start();
  let build: BuildResource;
  try {
    build = await client.post<BuildResource>('/v3/builds', { package: { guid: packageGuid } });
    const deadline = Date.now() + timing.stagingTimeoutMs;
    while (build.state !== 'STAGED' && build.state !== 'FAILED') {
      if (Date.now() > deadline) throw new PushFailure(`Staging timed out after ${formatDuration(timing.stagingTimeoutMs)}.`);
      await client.sleep(timing.pollMs);
      build = await client.get<BuildResource>(`/v3/builds/${build.guid}`);
    }
  } finally {
    await tail?.stop();
  }
  if (build.state === 'FAILED') throw new PushFailure(`Staging failed: ${build.error ?? 'no reason given'}`);
  if (!build.droplet?.guid) throw new PushFailure(`Build ${build.guid} is STAGED but names no droplet.`);
  return { guid: build.droplet.guid };
}

/** The "instances running" rule of cf (cf-cli-flows §6.1), then the crash report when every instance crashed. */
async function waitForInstances(
  client: ApiClient,
  logCache: string | null,
  appGuid: string,
  timing: PushTiming,
  line: (text: string) => void,
): Promise<{ running: number; total: number }> {
  const processes = await client.listAll<ProcessResource>(`/v3/apps/${appGuid}/processes`);
  const deadline = Date.now() + timing.startupTimeoutMs;
  let lastDetails = '';
  for (;;) {
    let running = 0;
    let total = 0;
    let ready = true;
    for (const proc of processes) {
      const stats = (await client.get<{ resources?: StatsEntry[] }>(`/v3/processes/${proc.guid}/stats`)).resources ?? [];
      total += stats.length;
      const up = stats.filter((s) => s.state === 'RUNNING').length;
      running += up;
      if (stats.length === 0 || up > 0) continue;
      if (stats.every((s) => s.state === 'CRASHED')) {
        const details = stats.map((s) => s.details).find((d) => d);
        await printRecentLogs(client, logCache, appGuid, line);
        throw new PushFailure(`Every instance of the ${proc.type} process crashed${details ? ` (${details})` : ''}. Start unsuccessful.`);
      }
      const details = stats.map((s) => s.details).find((d) => d);
      if (details && details !== lastDetails) {
        line(`   ${proc.type}: ${details}`);
        lastDetails = details;
      }
      ready = false;
    }
    if (ready) return { running, total };
    if (Date.now() > deadline) {
      await printRecentLogs(client, logCache, appGuid, line);
      throw new PushFailure(`The app did not start within ${formatDuration(timing.startupTimeoutMs)}.`);
    }
    await client.sleep(timing.pollMs);
  }
}

async function printRecentLogs(client: ApiClient, logCache: string | null, appGuid: string, line: (text: string) => void): Promise<void> {
  if (!logCache) return;
  try {
    const res = await client.get<{ envelopes?: { batch?: LogEnvelope[] } }>(`${logCache.replace(/\/+$/, '')}/api/v1/read/${appGuid}`, {
      descending: 'true',
      envelope_types: 'LOG',
      limit: 40,
    });
    const batch = [...(res.envelopes?.batch ?? [])].reverse();
    if (batch.length === 0) return;
    line('Recent logs:');
    for (const e of batch) {
      const source = e.tags?.source_type ?? 'LOG';
      line(`   [${source}${e.instance_id ? `/${e.instance_id}` : ''}] ${decodePayload(e)}`);
    }
  } catch {
    line('   (the recent logs could not be read)');
  }
}

/**
 * The app's routes as URLs a browser can open. Routes live on the router, which listens on the API's port,
 * so the API's scheme and port are used (`http://node-hello.apps.localhost:9000`).
 */
async function appUrls(client: ApiClient, appGuid: string): Promise<string[]> {
  const api = new URL(client.api);
  const routes = await client.listAll<{ url?: string; protocol?: string; host?: string; path?: string }>(`/v3/apps/${appGuid}/routes`);
  return routes
    .filter((r) => typeof r.url === 'string' && r.url !== '')
    .map((r) => {
      if (r.protocol === 'tcp') return `tcp://${r.url}`;
      const slash = r.url!.indexOf('/');
      const host = slash === -1 ? r.url! : r.url!.slice(0, slash);
      const rest = slash === -1 ? '' : r.url!.slice(slash);
      return `${api.protocol}//${host}${api.port ? `:${api.port}` : ''}${rest}`;
    });
}
