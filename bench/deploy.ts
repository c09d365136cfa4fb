/**
 * Rolling-deployment benchmark: `npx tsx bench/deploy.ts`.
 *
 * Starts Kiln in this process (temporary data dir, SQLite, port 0, silent logs), logs in, pushes
 * `examples/node-hello` (the dependency-free example) with 4 web instances request by request as the cf CLI does,
 * and stages a second droplet of it. Then, for max_in_flight 1 and 4, BENCH_RUNS times each (default 3), it
 * deploys the other droplet with `POST /v3/deployments` (strategy rolling) and measures the time from that request
 * to the deployment reading FINALIZED/DEPLOYED, polled every BENCH_POLL_MS (default 25).
 *
 * During each rollout a load loop (BENCH_WORKERS loops, default 4, each a fresh loopback connection per request)
 * sends `GET /` through Kiln's router for the app's route. It starts before the POST and stops when the deployment
 * is finalized, bounded by BENCH_LOAD_MS (default 120 s) and BENCH_LOAD_MAX requests (default 200 000); anything
 * but a 200 (or a connection error) counts as failed. Between runs it waits until 4 instances are RUNNING.
 * BENCH_APP_DIR deploys another app directory instead.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { openAsBlob } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gatherAppEntries, matchCandidates, splitByMatches, writeAppZip } from '../src/cli/zip-app.ts';
import { median, poll, startBenchKiln } from './kiln.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 25);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 4);
const LOAD_MS = Number(process.env.BENCH_LOAD_MS ?? 120_000);
const LOAD_MAX = Number(process.env.BENCH_LOAD_MAX ?? 200_000);
const INSTANCES = 4;
const MAX_IN_FLIGHT = [1, 4] as const;
const APP_DIR = process.env.BENCH_APP_DIR ? path.resolve(process.env.BENCH_APP_DIR) : fileURLToPath(new URL('../examples/node-hello', import.meta.url));
const APP_NAME = 'bench-roll';

const { dataDir, config, kiln, api, apiPort, token, call: callApi } = await startBenchKiln('deploy');
const POLLING = { everyMs: POLL_MS, timeoutMs: 120_000 };
const host = `${APP_NAME}.${config.appsDomain}`;

/** The body of an API call (see startBenchKiln's call). */
const call = async <T = Record<string, unknown>>(method: string, url: string, body?: unknown): Promise<T> => (await callApi<T>(method, url, body)).body;


/** GET / through the router on a fresh connection: the status, or 0 when the connection failed. */
function viaRouter(): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ hostname: '127.0.0.1', port: apiPort, path: '/', headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

interface Load {
  total: number;
  failed: number;
  statuses: Map<number, number>;
}

/** Load loops through the router until stopped, or until the time or count bound is reached. */
function loadLoop() {
  const load: Load = { total: 0, failed: 0, statuses: new Map() };
  let stopped = false;
  const started = Date.now();
  const worker = async () => {
    while (!stopped && Date.now() - started < LOAD_MS && load.total < LOAD_MAX) {
      load.total++;
      const status = await viaRouter();
      if (status !== 200) {
        load.failed++;
        load.statuses.set(status, (load.statuses.get(status) ?? 0) + 1);
      }
    }
  };
  const done = Promise.all(Array.from({ length: WORKERS }, worker));
  return {
    load,
    async stop(): Promise<Load> {
      stopped = true;
      await done;
      return load;
    },
  };
}

// ---- the push (cf-cli-flows §5.4, request by request) ----------------------------------------------------------

async function stage(appGuid: string): Promise<string> {
  const entries = await gatherAppEntries(APP_DIR);
  const matches = await call<{ resources: Array<{ checksum?: { value?: string } }> }>('POST', '/v3/resource_matches', { resources: matchCandidates(entries) });
  const split = splitByMatches(entries, matches.resources ?? []);
  const pkg = await call<{ guid: string }>('POST', '/v3/packages', { type: 'bits', relationships: { app: { data: { guid: appGuid } } } });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-zip-'));
  const zipFile = path.join(scratch, 'package.zip');
  await writeAppZip(APP_DIR, split.toZip, zipFile);
  const form = new FormData();
  form.append('resources', JSON.stringify(split.matched));
  form.append('bits', await openAsBlob(zipFile, { type: 'application/octet-stream' }), 'package.zip');
  const up = await fetch(`${api}/v3/packages/${pkg.guid}/upload`, { method: 'POST', headers: { Authorization: `bearer ${token}` }, body: form });
  if (up.status !== 200) throw new Error(`upload -> ${up.status}: ${await up.text()}`);
  fs.rmSync(scratch, { recursive: true, force: true });
  await poll('package READY', async () => ((await call<{ state: string }>('GET', `/v3/packages/${pkg.guid}`)).state === 'READY' ? true : undefined), POLLING);
  const build = await call<{ guid: string }>('POST', '/v3/builds', { package: { guid: pkg.guid } });
  const staged = await poll('build STAGED', async () => {
    const b = await call<{ state: string; error: string | null; droplet: { guid: string } | null }>('GET', `/v3/builds/${build.guid}`);
    if (b.state === 'FAILED') throw new Error(`staging failed: ${b.error}`);
    return b.state === 'STAGED' ? b : undefined;
  }, POLLING);
  return staged.droplet!.guid;
}

/** Until exactly `INSTANCES` web instances are RUNNING (old ones stopped) and the route answers 200. */
async function settled(webGuid: string): Promise<void> {
  await poll(`${INSTANCES} instances RUNNING`, async () => {
    const s = (await call<{ resources: Array<{ state: string }> }>('GET', `/v3/processes/${webGuid}/stats`)).resources;
    if (s.some((i) => i.state === 'CRASHED')) throw new Error('instance crashed');
    return s.length === INSTANCES && s.every((i) => i.state === 'RUNNING') ? true : undefined;
  }, POLLING);
  await poll('200 through the router', async () => ((await viaRouter()) === 200 ? true : undefined), POLLING);
}

// ---- one rollout -----------------------------------------------------------------------------------------------

interface RunResult {
  ms: number;
  total: number;
  failed: number;
  statuses: Map<number, number>;
}

async function rollout(appGuid: string, webGuid: string, droplet: string, maxInFlight: number): Promise<RunResult> {
  await settled(webGuid);
  const loop = loadLoop();
  const t0 = performance.now();
  const created = await call<{ guid: string }>('POST', '/v3/deployments', {
    relationships: { app: { data: { guid: appGuid } } },
    droplet: { guid: droplet },
    strategy: 'rolling',
    options: { max_in_flight: maxInFlight },
  });
  const final = await poll('deployment FINALIZED', async () => {
    const d = await call<{ status: { value: string; reason: string } }>('GET', `/v3/deployments/${created.guid}`);
    return d.status.value === 'FINALIZED' ? d : undefined;
  }, POLLING);
  const ms = performance.now() - t0;
  const load = await loop.stop();
  if (final.status.reason !== 'DEPLOYED') throw new Error(`deployment ended ${final.status.reason}`);
  return { ms, total: load.total, failed: load.failed, statuses: load.statuses };
}

// ---- main ------------------------------------------------------------------------------------------------------

const pct = (r: RunResult) => (r.total === 0 ? 0 : (100 * (r.total - r.failed)) / r.total);
const row = (label: string, run: string, ms: number, total: number, failed: number, rate: number) =>
  `${label.padEnd(18)}${run.padEnd(8)}${ms.toFixed(0).padStart(9)}${String(total).padStart(10)}${String(failed).padStart(8)}${`${rate.toFixed(3)}%`.padStart(11)}`;

try {
  const org = await call<{ guid: string }>('POST', '/v3/organizations', { name: 'bench-org' });
  const space = await call<{ guid: string }>('POST', '/v3/spaces', { name: 'bench', relationships: { organization: { data: { guid: org.guid } } } });
  const app = await call<{ guid: string }>('POST', '/v3/apps', { name: APP_NAME, relationships: { space: { data: { guid: space.guid } } } });
  const domain = await call<{ guid: string }>('GET', `/v3/organizations/${org.guid}/domains/default`);
  const route = await call<{ guid: string }>('POST', '/v3/routes', {
    host: APP_NAME,
    relationships: { space: { data: { guid: space.guid } }, domain: { data: { guid: domain.guid } } },
  });
  await call('POST', `/v3/routes/${route.guid}/destinations`, { destinations: [{ app: { guid: app.guid } }] });
  const droplets = [await stage(app.guid), await stage(app.guid)];
  await call('PATCH', `/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplets[0] } });
  await call('POST', `/v3/apps/${app.guid}/processes/web/actions/scale`, { instances: INSTANCES });
  await call('POST', `/v3/apps/${app.guid}/actions/start`);
  const web = await call<{ guid: string }>('GET', `/v3/apps/${app.guid}/processes/web`);
  await settled(web.guid);

  console.log(
    `rolling-deployment bench: ${path.relative(process.cwd(), APP_DIR) || APP_DIR}, ${INSTANCES} instances, ${RUNS} runs per setting, ` +
      `${WORKERS} load workers (new loopback connection per request), poll ${POLL_MS} ms, ${os.cpus().length} CPUs, Kiln at ${api}`,
  );
  console.log(`load average before: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
  console.log(`${'setting'.padEnd(18)}${'run'.padEnd(8)}${'time ms'.padStart(9)}${'requests'.padStart(10)}${'failed'.padStart(8)}${'success'.padStart(11)}`);

  const medians: string[] = [];
  let next = 1;
  for (const mif of MAX_IN_FLIGHT) {
    const label = `max_in_flight ${mif}`;
    const results: RunResult[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await rollout(app.guid, web.guid, droplets[next]!, mif);
      next = 1 - next;
      results.push(r);
      const extra = r.failed > 0 ? `  failures by status (0 = connection error): ${JSON.stringify([...r.statuses])}` : '';
      console.log(row(label, String(i + 1), r.ms, r.total, r.failed, pct(r)) + extra);
    }
    const med = row(label, 'median', median(results.map((r) => r.ms)), median(results.map((r) => r.total)), median(results.map((r) => r.failed)), median(results.map(pct)));
    console.log(med);
    const sent = results.reduce((n, r) => n + r.total, 0);
    const lost = results.reduce((n, r) => n + r.failed, 0);
    medians.push(`${med}   (all runs: ${lost} of ${sent} requests failed)`);
  }
  console.log('\nmedians:');
  for (const m of medians) console.log(m);
} finally {
  await kiln.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
