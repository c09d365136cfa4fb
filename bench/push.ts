/**
 * Push benchmark: `npx tsx bench/push.ts`.
 *
 * Starts Kiln in this process (temporary data dir, SQLite, port 0, silent logs), logs in, creates an org and a
 * space, then pushes `examples/node-hello` BENCH_RUNS times (default 5) under a fresh name each time, request by
 * request as the cf CLI does when it creates the app itself (cf-cli-flows §5.4). The clock starts at
 * `POST /v3/apps` and stops at the first 200 answered through Kiln's router for `<app>.apps.localhost`.
 *
 * Phases (client side, each ends where the next begins):
 *   create   POST /v3/apps, default domain, POST /v3/routes, POST …/destinations
 *   upload   resource_matches, POST /v3/packages, zip the app (as the CLI does), multipart upload, package READY
 *   staging  POST /v3/builds … build STAGED
 *   start    PATCH current_droplet, POST start … stats report RUNNING
 *   healthy  RUNNING … first 200 through the router
 *
 * Server-side events (STG/CELL/APP log lines, runtime state changes, change-feed commits) are timestamped in the
 * same clock, so the table is followed by a median breakdown of where staging and starting spend their time.
 *
 * Then the re-push (issue 13, goal 4): the last app pushed again BENCH_RUNS times, unchanged, as `cf push` does for an
 * existing app (cf-cli-flows §5.4): resource matching (everything matches), a package whose upload carries only
 * the matched `resources`, a build, PATCH current_droplet and POST …/actions/restart; the clock runs from
 * resource matching to the first 200 the restarted instance answers through the router (target < 1.5 s).
 * BENCH_REPUSH=0 skips it.
 *
 * Polls every BENCH_POLL_MS (default 25) so polling adds little to what is measured. BENCH_APP_DIR pushes another
 * app directory instead; BENCH_TRACE=1 prints the last run's server-side timeline.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { openAsBlob } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gatherAppEntries, matchCandidates, splitByMatches, writeAppZip } from '../src/cli/zip-app.ts';
import { median, poll, sleep, startBenchKiln } from './kiln.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 25);
const TARGET_MS = 2000;
/** How often the bench itself checks whether a starting instance's port is open (BENCH_PROBE_MS). */
const PROBE_MS = Number(process.env.BENCH_PROBE_MS ?? 5);
const APP_DIR = process.env.BENCH_APP_DIR ? path.resolve(process.env.BENCH_APP_DIR) : fileURLToPath(new URL('../examples/node-hello', import.meta.url));
const PHASES = ['create', 'upload', 'staging', 'start', 'healthy'] as const;
type Phase = (typeof PHASES)[number];

const { dataDir, config, kiln, api, apiPort, token, call } = await startBenchKiln('push');
const POLLING = { everyMs: POLL_MS, timeoutMs: 60_000 };




/** GET / through the router: Kiln's port, the route's Host. A fresh connection each time, as a browser's first. */
function viaRouter(host: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ hostname: '127.0.0.1', port: apiPort, path: '/', headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

// ---- server-side timeline -------------------------------------------------------------------------------------

interface Mark {
  at: number;
  what: string;
}
let marks: Mark[] = [];
let watchedApp: string | undefined;
const mark = (what: string) => marks.push({ at: performance.now(), what });

kiln.logs.events.on('log', (e: { sourceId: string; sourceType: string; payload: string }) => {
  if (e.sourceId === watchedApp) mark(`${e.sourceType}: ${e.payload}`);
});
const probing = new Set<string>();
kiln.runtime.onChange((e) => {
  if (e.appGuid !== watchedApp || e.kind !== 'instance') return;
  const inst = kiln.runtime.listInstances({ appGuid: e.appGuid }).find((i) => i.id === e.id);
  mark(`runtime: ${inst?.state ?? 'gone'}`);
  if (inst?.state === 'STARTING' && !probing.has(inst.id)) {
    probing.add(inst.id);
    void probePort(inst.id, e.appGuid);
  }
});

/** Notes when the instance's port first accepts a connection, to tell app start-up from health-check polling. */
async function probePort(id: string, appGuid: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (watchedApp === appGuid && Date.now() < deadline) {
    // The port is allocated just after the instance turns STARTING.
    const port = kiln.runtime.listInstances({ appGuid }).find((i) => i.id === id)?.port;
    if (port === undefined) {
      await sleep(PROBE_MS);
      continue;
    }
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (open) return void mark('probe: port open');
    await sleep(PROBE_MS);
  }
}
kiln.store.events.on('changes', (changes: Array<{ kind: string; op: string }>) => {
  if (watchedApp === undefined) return;
  for (const c of changes) if (c.kind === 'builds' || c.kind === 'droplets' || c.kind === 'apps') mark(`commit: ${c.kind} ${c.op}`);
});

/** Time of the first mark matching `re` at or after `from` (ms, same clock), or NaN. */
function markAt(re: RegExp, from = 0): number {
  return marks.find((m) => m.at >= from && re.test(m.what))?.at ?? Number.NaN;
}

// ---- one push --------------------------------------------------------------------------------------------------

interface RunResult {
  appGuid: string;
  phases: Record<Phase, number>;
  total: number;
  detail: Record<string, number>;
}

async function pushOnce(spaceGuid: string, orgGuid: string, name: string): Promise<RunResult> {
  // Local work the CLI does before its first request is not part of the measured time.
  const entries = await gatherAppEntries(APP_DIR);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-zip-'));
  marks = [];
  const at: Partial<Record<Phase | 'end', number>> = {};
  const client: Record<string, number> = {};

  at.create = performance.now();
  const app = await call<{ guid: string }>('POST', '/v3/apps', { name, relationships: { space: { data: { guid: spaceGuid } } } });
  watchedApp = app.body.guid;
  const domain = await call<{ guid: string }>('GET', `/v3/organizations/${orgGuid}/domains/default`);
  const route = await call<{ guid: string }>('POST', '/v3/routes', {
    host: name,
    relationships: { space: { data: { guid: spaceGuid } }, domain: { data: { guid: domain.body.guid } } },
  });
  await call('POST', `/v3/routes/${route.body.guid}/destinations`, { destinations: [{ app: { guid: app.body.guid } }] });

  at.upload = performance.now();
  const matches = await call<{ resources: Array<{ checksum?: { value?: string } }> }>('POST', '/v3/resource_matches', {
    resources: matchCandidates(entries),
  });
  const split = splitByMatches(entries, matches.body.resources ?? []);
  const pkg = await call<{ guid: string }>('POST', '/v3/packages', { type: 'bits', relationships: { app: { data: { guid: app.body.guid } } } });
  const z0 = performance.now();
  const zipFile = path.join(scratch, 'package.zip');
  await writeAppZip(APP_DIR, split.toZip, zipFile);
  client.zip = performance.now() - z0;
  const form = new FormData();
  form.append('resources', JSON.stringify(split.matched));
  form.append('bits', await openAsBlob(zipFile, { type: 'application/octet-stream' }), 'package.zip');
  const u0 = performance.now();
  const upRes = await fetch(`${api}/v3/packages/${pkg.body.guid}/upload`, { method: 'POST', headers: { Authorization: `bearer ${token}` }, body: form });
  const uploaded = (await upRes.json()) as { state: string };
  if (upRes.status !== 200) throw new Error(`upload -> ${upRes.status}: ${JSON.stringify(uploaded)}`);
  client.uploadRequest = performance.now() - u0;
  if (uploaded.state !== 'READY') {
    await poll('package READY', async () => ((await call<{ state: string }>('GET', `/v3/packages/${pkg.body.guid}`)).body.state === 'READY' ? true : undefined), POLLING);
  }
  fs.rmSync(scratch, { recursive: true, force: true });

  at.staging = performance.now();
  const build = await call<{ guid: string }>('POST', '/v3/builds', { package: { guid: pkg.body.guid } });
  const buildPosted = performance.now();
  const staged = await poll('build STAGED', async () => {
    const b = (await call<{ state: string; error: string | null; droplet: { guid: string } | null }>('GET', `/v3/builds/${build.body.guid}`)).body;
    if (b.state === 'FAILED') throw new Error(`staging failed: ${b.error}`);
    return b.state === 'STAGED' ? b : undefined;
  }, POLLING);

  at.start = performance.now();
  await call('PATCH', `/v3/apps/${app.body.guid}/relationships/current_droplet`, { data: { guid: staged.droplet!.guid } });
  const startPosted = performance.now();
  await call('POST', `/v3/apps/${app.body.guid}/actions/start`);
  const web = (await call<{ guid: string }>('GET', `/v3/apps/${app.body.guid}/processes/web`)).body;
  await poll('instance RUNNING', async () => {
    const s = (await call<{ resources: Array<{ state: string }> }>('GET', `/v3/processes/${web.guid}/stats`)).body.resources;
    if (s.some((i) => i.state === 'CRASHED')) throw new Error('instance crashed');
    return s.length > 0 && s.every((i) => i.state === 'RUNNING') ? true : undefined;
  }, POLLING);

  at.healthy = performance.now();
  const host = `${name}.${config.appsDomain}`;
  await poll('first 200 through the router', async () => ((await viaRouter(host)) === 200 ? true : undefined), POLLING);
  at.end = performance.now();
  watchedApp = undefined;

  // Each phase ends where the next one begins; the last one at the first 200.
  const bounds = [...PHASES.map((p) => at[p]!), at.end];
  const phases = Object.fromEntries(PHASES.map((p, i) => [p, bounds[i + 1]! - bounds[i]!])) as Record<Phase, number>;

  // Server-side breakdown from the timeline (NaN when a mark is missing).
  const stgDownload = markAt(/^STG: Downloading app package/, buildPosted);
  const stgDetect = markAt(/^STG: (Detecting buildpack|Staging with)/, buildPosted);
  const stgBpOut = markAt(/^STG: -----> /, buildPosted);
  const stgUploadDroplet = markAt(/^STG: Uploading droplet/, buildPosted);
  const buildStaged = markAt(/^commit: builds update/, stgUploadDroplet);
  const appUpdate = markAt(/^commit: apps update/, startPosted);
  const cellCreate = markAt(/^CELL: .*creating container/, startPosted);
  const appLine = markAt(/^APP\/PROC\/WEB: /, startPosted);
  const portOpen = markAt(/^probe: port open/, startPosted);
  const running = markAt(/^runtime: RUNNING/, startPosted);
  const detail: Record<string, number> = {
    'client: zip the app': client.zip!,
    'client: upload request': client.uploadRequest!,
    'staging: POST build -> controller picks it up': stgDownload - buildPosted,
    'staging: extract package zip': stgDetect - stgDownload,
    'staging: cp app + detect + first supply line': stgBpOut - stgDetect,
    'staging: buildpacks + release + droplet tar': stgUploadDroplet - stgBpOut,
    'staging: store droplet + commit STAGED': buildStaged - stgUploadDroplet,
    'staging: commit -> client sees STAGED': at.start - buildStaged,
    'start: POST start commit -> CELL creating': cellCreate - appUpdate,
    'start: CELL creating -> app prints': appLine - cellCreate,
    'start: app prints -> port open': portOpen - appLine,
    'start: port open -> runtime RUNNING (health poll)': running - portOpen,
    'start: runtime RUNNING -> client sees RUNNING': at.healthy - running,
  };
  return { appGuid: app.body.guid, phases, total: at.end - at.create, detail };
}

// ---- re-push of an unchanged app -----------------------------------------------------------------------------------

const REPUSH_PHASES = ['upload', 'staging', 'restart', 'healthy'] as const;
type RepushPhase = (typeof REPUSH_PHASES)[number];
const REPUSH_TARGET_MS = 1500;

async function repushOnce(appGuid: string, name: string): Promise<{ phases: Record<RepushPhase, number>; total: number }> {
  const entries = await gatherAppEntries(APP_DIR);
  const at: Partial<Record<RepushPhase | 'end', number>> = {};
  at.upload = performance.now();
  const matches = await call<{ resources: Array<{ checksum?: { value?: string } }> }>('POST', '/v3/resource_matches', { resources: matchCandidates(entries) });
  const split = splitByMatches(entries, matches.body.resources ?? []);
  const pkg = await call<{ guid: string }>('POST', '/v3/packages', { type: 'bits', relationships: { app: { data: { guid: appGuid } } } });
  const form = new FormData();
  form.append('resources', JSON.stringify(split.matched));
  if (split.toZip.length > 0) {
    // Something did not match (the cache was emptied): upload it as the CLI would.
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-zip-'));
    const zipFile = path.join(scratch, 'package.zip');
    await writeAppZip(APP_DIR, split.toZip, zipFile);
    form.append('bits', new Blob([fs.readFileSync(zipFile)], { type: 'application/octet-stream' }), 'package.zip');
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  const upRes = await fetch(`${api}/v3/packages/${pkg.body.guid}/upload`, { method: 'POST', headers: { Authorization: `bearer ${token}` }, body: form });
  const uploaded = (await upRes.json()) as { state: string };
  if (upRes.status !== 200) throw new Error(`upload -> ${upRes.status}: ${JSON.stringify(uploaded)}`);
  if (uploaded.state !== 'READY') {
    await poll('package READY', async () => ((await call<{ state: string }>('GET', `/v3/packages/${pkg.body.guid}`)).body.state === 'READY' ? true : undefined), POLLING);
  }
  at.staging = performance.now();
  const build = await call<{ guid: string }>('POST', '/v3/builds', { package: { guid: pkg.body.guid } });
  const staged = await poll('build STAGED', async () => {
    const b = (await call<{ state: string; error: string | null; droplet: { guid: string } | null }>('GET', `/v3/builds/${build.body.guid}`)).body;
    if (b.state === 'FAILED') throw new Error(`staging failed: ${b.error}`);
    return b.state === 'STAGED' ? b : undefined;
  }, POLLING);
  at.restart = performance.now();
  await call('PATCH', `/v3/apps/${appGuid}/relationships/current_droplet`, { data: { guid: staged.droplet!.guid } });
  const restartPosted = performance.now();
  await call('POST', `/v3/apps/${appGuid}/actions/restart`);
  const web = (await call<{ guid: string }>('GET', `/v3/apps/${appGuid}/processes/web`)).body;
  // RUNNING instances of the restarted app: started after the restart (their uptime says so), not the old ones.
  await poll('restarted instance RUNNING', async () => {
    const st = (await call<{ resources: Array<{ state: string; uptime: number }> }>('GET', `/v3/processes/${web.guid}/stats`)).body.resources;
    if (st.some((i) => i.state === 'CRASHED')) throw new Error('instance crashed');
    const fresh = (i: { uptime: number }) => i.uptime <= (performance.now() - restartPosted) / 1000;
    return st.length > 0 && st.every((i) => i.state === 'RUNNING' && fresh(i)) ? true : undefined;
  }, POLLING);
  at.healthy = performance.now();
  await poll('first 200 through the router', async () => ((await viaRouter(`${name}.${config.appsDomain}`)) === 200 ? true : undefined), POLLING);
  at.end = performance.now();
  const bounds = [...REPUSH_PHASES.map((p) => at[p]!), at.end];
  const phases = Object.fromEntries(REPUSH_PHASES.map((p, i) => [p, bounds[i + 1]! - bounds[i]!])) as Record<RepushPhase, number>;
  return { phases, total: at.end - at.upload };
}

// ---- main ------------------------------------------------------------------------------------------------------

const ms = (x: number) => (Number.isNaN(x) ? '   n/a' : `${x.toFixed(0).padStart(6)}`);

try {
  const org = await call<{ guid: string }>('POST', '/v3/organizations', { name: 'bench-org' });
  const space = await call<{ guid: string }>('POST', '/v3/spaces', { name: 'bench', relationships: { organization: { data: { guid: org.body.guid } } } });
  const results: RunResult[] = [];
  let last: { guid: string; name: string } | undefined;
  console.log(`push bench: ${path.relative(process.cwd(), APP_DIR) || APP_DIR}, ${RUNS} runs, poll ${POLL_MS} ms, ${os.cpus().length} CPUs, Kiln at ${api}`);
  console.log(`load average before: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
  const header = `${'run'.padEnd(8)}${PHASES.map((p) => p.padStart(9)).join('')}${'total'.padStart(9)}  (ms)`;
  console.log(header);
  for (let i = 0; i < RUNS; i++) {
    const name = `bench-hello-${i + 1}-${Date.now().toString(36)}`;
    const r = await pushOnce(space.body.guid, org.body.guid, name);
    last = { guid: r.appGuid, name };
    results.push(r);
    console.log(`${String(i + 1).padEnd(8)}${PHASES.map((p) => ms(r.phases[p]).padStart(9)).join('')}${ms(r.total).padStart(9)}`);
  }
  const med = (f: (r: RunResult) => number) => median(results.map(f));
  console.log(`${'median'.padEnd(8)}${PHASES.map((p) => ms(med((r) => r.phases[p])).padStart(9)).join('')}${ms(med((r) => r.total)).padStart(9)}`);

  console.log('\nwhere the time goes (median over runs, ms):');
  for (const key of Object.keys(results[0]!.detail)) console.log(`  ${key.padEnd(50)} ${ms(med((r) => r.detail[key]!))}`);

  const total = med((r) => r.total);
  console.log(`\nmedian push (POST /v3/apps -> first 200 through the router): ${total.toFixed(0)} ms; target < ${TARGET_MS} ms: ${total < TARGET_MS ? 'MET' : 'NOT MET'}`);
  if (process.env.BENCH_REPUSH !== '0' && last) {
    console.log(`\nre-push of the unchanged app (${RUNS} runs):`);
    console.log(`${'run'.padEnd(8)}${REPUSH_PHASES.map((p) => p.padStart(9)).join('')}${'total'.padStart(9)}  (ms)`);
    const again: Array<{ phases: Record<RepushPhase, number>; total: number }> = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await repushOnce(last.guid, last.name);
      again.push(r);
      console.log(`${String(i + 1).padEnd(8)}${REPUSH_PHASES.map((p) => ms(r.phases[p]).padStart(9)).join('')}${ms(r.total).padStart(9)}`);
    }
    const rmed = (f: (r: (typeof again)[number]) => number) => median(again.map(f));
    console.log(`${'median'.padEnd(8)}${REPUSH_PHASES.map((p) => ms(rmed((r) => r.phases[p])).padStart(9)).join('')}${ms(rmed((r) => r.total)).padStart(9)}`);
    const rt = rmed((r) => r.total);
    console.log(`\nmedian re-push (resource matching -> first 200 from the restarted instance): ${rt.toFixed(0)} ms; target < ${REPUSH_TARGET_MS} ms: ${rt < REPUSH_TARGET_MS ? 'MET' : 'NOT MET'}`);
  }
  if (process.env.BENCH_TRACE) {
    console.log('\nlast run, server-side timeline:');
    const t0 = marks[0]?.at ?? 0;
    for (const m of marks) console.log(`  +${(m.at - t0).toFixed(0).padStart(5)} ms  ${m.what}`);
  }
} finally {
  await kiln.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
