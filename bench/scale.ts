/**
 * Scale benchmark: `npx tsx bench/scale.ts` (issue 13, goal 3).
 *
 * Starts Kiln as its own process (`src/main.ts serve`, temporary data dir, SQLite, the local runtime with the
 * sandbox KILN_SANDBOX picks, default `auto`), then:
 *
 *   setup    SCALE_APPS apps (default 1,000), each with a copy of one uploaded droplet whose web command is a
 *            `sleep`, health check `process`, SCALE_MEMORY_MB (default 32) of memory, one instance; all stopped.
 *   start    POST …/actions/start for every app (SCALE_CONCURRENCY requests in flight, default 16); the clock
 *            runs from the first POST until `GET /v3/processes?embed=process_instances` reports every instance
 *            RUNNING (goal < 60 s).
 *   restart  SIGKILL Kiln and start it again on the same data dir: time until the API answers (goal < 10 s) and
 *            until every instance is RUNNING again; then every instance must be adopted — the same pid (with the
 *            same /proc start time) as before the kill, and exactly SCALE_APPS app processes on the machine (none
 *            restarted, none duplicated).
 *
 * SCALE_RESTART=0 skips the restart (Kiln then ends with SIGTERM, e.g. to write a profile asked for with
 * SCALE_NODE_ARGS=--cpu-prof). Also reports the Kiln process's RSS and CPU time at each stage. The app processes are found through /proc by
 * their command line (`sleep <marker>`), so duplicates are counted whatever Kiln believes. Everything started is
 * killed at the end (SIGTERM to Kiln, then SIGKILL to any app process left).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createTarGz } from '../src/staging/tarball.ts';
import { sleep } from './kiln.ts';

const APPS = Number(process.env.SCALE_APPS ?? 1000);
const CONCURRENCY = Number(process.env.SCALE_CONCURRENCY ?? 16);
const MEMORY_MB = Number(process.env.SCALE_MEMORY_MB ?? 32);
const START_GOAL_MS = 60_000;
const API_GOAL_MS = 10_000;
const PASSWORD = 'scale-bench-password-1';
/** A sleep long enough to outlive the bench, unique so the bench finds exactly its own app processes. */
const MARKER = String(800_000 + Math.floor(Math.random() * 99_999));
const repo = fileURLToPath(new URL('..', import.meta.url));

// ---- Kiln as a child process ------------------------------------------------------------------------------------

interface Kiln {
  child: ChildProcess;
  url: string;
  startedAt: number;
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-scale-'));
const logFile = path.join(dataDir, 'kiln.log');

async function startKiln(): Promise<Kiln> {
  const startedAt = performance.now();
  const nodeArgs = process.env.SCALE_NODE_ARGS ? process.env.SCALE_NODE_ARGS.split(' ') : [];
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/main.ts', 'serve'], {
    cwd: repo,
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      KILN_DATA_DIR: dataDir,
      KILN_ADOPT_INSTANCES: 'true',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      KILN_ADMIN_PASSWORD: PASSWORD,
      DATABASE_URL: '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = fs.createWriteStream(logFile, { flags: 'a' });
  child.stderr!.pipe(log);
  const lines = readline.createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Kiln did not start; see ${logFile}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`Kiln exited ${code}; see ${logFile}`)));
    lines.on('line', (line) => {
      log.write(`${line}\n`);
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === 'Kiln is listening' && entry.url) {
        clearTimeout(timer);
        resolve(entry.url);
      }
    });
  });
  return { child, url, startedAt };
}

let kiln: Kiln | undefined;
let token = '';

async function login(url: string): Promise<string> {
  const res = await fetch(`${url}/oauth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: `Basic ${Buffer.from('cf:').toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'password', username: 'admin', password: PASSWORD }).toString(),
  });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

// Responses are CF documents of many kinds; the bench reads a few fields of each.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call(method: string, url: string, body?: unknown): Promise<any> {
  const res = await fetch(`${kiln!.url}${url}`, {
    method,
    headers: { Authorization: `bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status >= 400) throw new Error(`${method} ${url} -> ${res.status}: ${text}`);
  return text ? JSON.parse(text) : {};
}

/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

// ---- what runs on the machine ------------------------------------------------------------------------------------

interface ProcFacts {
  rssMb: number;
  cpuSeconds: number;
}

function kilnFacts(pid: number): ProcFacts {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssMb: rssKb / 1024, cpuSeconds: (Number(f[11]) + Number(f[12])) / 100 };
}

/** The bench's app processes (`sleep <marker>`), pid → start time in ticks. */
function appProcesses(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd !== `sleep\0${MARKER}\0`) continue;
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z') continue;
      out.set(Number(name), Number(f[19]));
    } catch {
      // Gone while reading.
    }
  }
  return out;
}

/** Instances the API reports, by process guid: state of each. */
async function instanceStates(): Promise<{ running: number; total: number; states: Record<string, number> }> {
  const states: Record<string, number> = {};
  let running = 0;
  let total = 0;
  for (let page = 1; ; page++) {
    const body = await call('GET', `/v3/processes?embed=process_instances&per_page=5000&page=${page}`);
    for (const p of body.resources as Array<{ process_instances?: Array<{ state: string }> }>) {
      for (const i of p.process_instances ?? []) {
        total++;
        states[i.state] = (states[i.state] ?? 0) + 1;
        if (i.state === 'RUNNING') running++;
      }
    }
    if (!body.pagination?.next) break;
  }
  return { running, total, states };
}

async function untilAllRunning(what: string, from: number, timeoutMs: number): Promise<number> {
  const deadline = from + timeoutMs;
  let last = '';
  for (;;) {
    const s = await instanceStates().catch((err: Error) => ({ running: -1, total: -1, states: { error: String(err.message).slice(0, 80) } as Record<string, number | string> }));
    const now = performance.now();
    const line = `${s.running}/${APPS} RUNNING ${JSON.stringify(s.states)}`;
    if (line !== last) {
      console.log(`  ${what} +${((now - from) / 1000).toFixed(1).padStart(5)} s  ${line}`);
      last = line;
    }
    if (s.running === APPS) return now - from;
    if (now > deadline) throw new Error(`${what}: not all RUNNING after ${timeoutMs / 1000} s (${line})`);
    await sleep(250);
  }
}

// ---- the run -----------------------------------------------------------------------------------------------------

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const facts = (f: ProcFacts) => `RSS ${f.rssMb.toFixed(0)} MB, CPU ${f.cpuSeconds.toFixed(1)} s`;

async function dropletTarball(): Promise<Blob> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-scale-droplet-'));
  fs.mkdirSync(path.join(dir, 'app'));
  fs.writeFileSync(path.join(dir, 'app', 'README'), 'an app that only sleeps\n');
  fs.writeFileSync(path.join(dir, 'staging_info.yml'), `{"detected_buildpack":"","start_command":"exec sleep ${MARKER}"}\n`);
  const out = path.join(dir, 'droplet.tgz');
  await createTarGz(dir, ['app', 'staging_info.yml'], out);
  const blob = new Blob([fs.readFileSync(out)], { type: 'application/gzip' });
  fs.rmSync(dir, { recursive: true, force: true });
  return blob;
}

async function main(): Promise<void> {
  console.log(`scale bench: ${APPS} apps × 1 instance (sleep, health check process, ${MEMORY_MB} MB), ${os.cpus().length} CPUs, ` +
    `sandbox ${process.env.KILN_SANDBOX ?? 'auto'}, data dir ${dataDir}`);
  console.log(`load average before: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
  kiln = await startKiln();
  console.log(`Kiln (pid ${kiln.child.pid}) listening after ${fmt(performance.now() - kiln.startedAt)}: ${facts(kilnFacts(kiln.child.pid!))}`);
  token = await login(kiln.url);

  // Setup: an org with room for every instance, one space, one template droplet copied to each app.
  const setup0 = performance.now();
  const quota = await call('POST', '/v3/organization_quotas', { name: `scale-${MARKER}`, apps: { total_memory_in_mb: null, total_instances: null, per_process_memory_in_mb: null } });
  const org = await call('POST', '/v3/organizations', { name: `scale-${MARKER}` });
  await call('POST', `/v3/organization_quotas/${quota.guid}/relationships/organizations`, { data: [{ guid: org.guid }] });
  const space = await call('POST', '/v3/spaces', { name: 'scale', relationships: { organization: { data: { guid: org.guid } } } });
  const template = await call('POST', '/v3/apps', { name: 'scale-template', relationships: { space: { data: { guid: space.guid } } } });
  const droplet = await call('POST', '/v3/droplets', { relationships: { app: { data: { guid: template.guid } } }, process_types: { web: `exec sleep ${MARKER}` } });
  // The template itself runs nothing.
  await call('POST', `/v3/processes/${(await call('GET', `/v3/apps/${template.guid}/processes/web`)).guid}/actions/scale`, { instances: 0 });
  const form = new FormData();
  form.append('bits', await dropletTarball(), 'droplet.tgz');
  const up = await fetch(`${kiln.url}/v3/droplets/${droplet.guid}/upload`, { method: 'POST', headers: { Authorization: `bearer ${token}` }, body: form });
  if (up.status !== 202) throw new Error(`droplet upload -> ${up.status}: ${await up.text()}`);
  for (let i = 0; (await call('GET', `/v3/droplets/${droplet.guid}`)).state !== 'STAGED'; i++) {
    if (i > 200) throw new Error('template droplet never STAGED');
    await sleep(50);
  }
  const apps: string[] = new Array(APPS);
  await pool(Array.from({ length: APPS }, (_, i) => i), CONCURRENCY, async (i) => {
    const app = await call('POST', '/v3/apps', { name: `scale-${i}`, relationships: { space: { data: { guid: space.guid } } } });
    const copy = await call('POST', `/v3/droplets?source_guid=${droplet.guid}`, { relationships: { app: { data: { guid: app.guid } } } });
    await call('PATCH', `/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: copy.guid } });
    const web = await call('GET', `/v3/apps/${app.guid}/processes/web`);
    await call('PATCH', `/v3/processes/${web.guid}`, { health_check: { type: 'process' } });
    await call('POST', `/v3/processes/${web.guid}/actions/scale`, { memory_in_mb: MEMORY_MB, disk_in_mb: 64 });
    apps[i] = app.guid;
  });
  console.log(`setup: ${APPS} apps created, droplets set, stopped, in ${fmt(performance.now() - setup0)}; Kiln ${facts(kilnFacts(kiln.child.pid!))}\n`);

  // Start every app; the clock stops when the API reports every instance RUNNING.
  console.log('start:');
  const start0 = performance.now();
  // Beside the API (whose first list answer may come late under the start burst): when the machine runs every app
  // process, seen through /proc — with health check `process` an instance is RUNNING as soon as it runs.
  let allProcsMs = Number.NaN;
  const watcher = setInterval(() => {
    if (Number.isNaN(allProcsMs) && appProcesses().size >= APPS) allProcsMs = performance.now() - start0;
  }, 250);
  let posted = 0;
  await pool(apps, CONCURRENCY, async (guid) => {
    await call('POST', `/v3/apps/${guid}/actions/start`);
    posted++;
  });
  const postedMs = performance.now() - start0;
  console.log(`  ${posted} POST start answered after ${fmt(postedMs)}`);
  const startMs = await untilAllRunning('start', start0, 10 * 60_000);
  clearInterval(watcher);
  // The API may report the last instances before the watcher's next look (it printed NaN then): one look now.
  if (Number.isNaN(allProcsMs) && appProcesses().size >= APPS) allProcsMs = performance.now() - start0;
  console.log(`  all ${APPS} app processes ran ${Number.isNaN(allProcsMs) ? `not all seen (${appProcesses().size} in /proc)` : fmt(allProcsMs)} after the first POST start (seen in /proc)`);
  const before = appProcesses();
  const atScale = kilnFacts(kiln.child.pid!);
  console.log(`all ${APPS} RUNNING ${fmt(startMs)} after the first POST start (goal < ${fmt(START_GOAL_MS)}: ${startMs < START_GOAL_MS ? 'MET' : 'NOT MET'})`);
  console.log(`app processes on the machine: ${before.size}; Kiln at ${APPS} apps: ${facts(atScale)}`);
  // A quiet period: what the steady state costs (liveness checks, resyncs).
  const quiet0 = kilnFacts(kiln.child.pid!);
  await sleep(10_000);
  const quiet1 = kilnFacts(kiln.child.pid!);
  console.log(`steady state: Kiln used ${(((quiet1.cpuSeconds - quiet0.cpuSeconds) / 10) * 100).toFixed(1)}% of a core over 10 s idle at ${APPS} instances; ${facts(quiet1)}\n`);

  if (process.env.SCALE_RESTART === '0') return;
  // SIGKILL and start again.
  console.log('restart:');
  const exited = new Promise((r) => kiln!.child.once('exit', r));
  kiln.child.kill('SIGKILL');
  await exited;
  const restart0 = performance.now();
  const restartWall = Date.now();
  kiln = await startKiln();
  const listenMs = performance.now() - restart0;
  token = await login(kiln.url);
  let apiMs = Number.NaN;
  for (;;) {
    try {
      await call('GET', '/v3/apps?per_page=1');
      apiMs = performance.now() - restart0;
      break;
    } catch {
      await sleep(50);
    }
  }
  console.log(`  Kiln (pid ${kiln.child.pid}) listening after ${fmt(listenMs)}, API answering after ${fmt(apiMs)} (goal < ${fmt(API_GOAL_MS)}: ${apiMs < API_GOAL_MS ? 'MET' : 'NOT MET'})`);
  const rerunMs = await untilAllRunning('restart', restart0, 5 * 60_000);
  // Give a late reap or restart time to show.
  await sleep(5_000);
  const after = appProcesses();
  let kept = 0;
  for (const [pid, ticks] of before) if (after.get(pid) === ticks) kept++;
  const fresh = [...after.keys()].filter((pid) => !before.has(pid)).length;
  const adopted = kept === APPS && after.size === APPS;
  console.log(`all ${APPS} RUNNING ${fmt(rerunMs)} after the restart began`);
  const adoptedLine = fs
    .readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"adopted instances left running'))
    .map((l) => JSON.parse(l) as { count: number; ms: number; time: number })
    .at(-1);
  if (adoptedLine) console.log(`  the runtime adopted ${adoptedLine.count} instances in ${adoptedLine.ms} ms, ${fmt(adoptedLine.time - restartWall)} after the new Kiln was spawned`);
  console.log(`app processes: ${before.size} before, ${after.size} after; ${kept} kept (same pid and start time), ${fresh} new, ${before.size - kept} gone`);
  console.log(`adoption (none restarted, none duplicated): ${adopted ? 'MET' : 'NOT MET'}; Kiln after restart: ${facts(kilnFacts(kiln.child.pid!))}`);
  const idle0 = kilnFacts(kiln.child.pid!);
  await sleep(10_000);
  const idle1 = kilnFacts(kiln.child.pid!);
  console.log(`steady state after the restart: Kiln used ${(((idle1.cpuSeconds - idle0.cpuSeconds) / 10) * 100).toFixed(1)}% of a core over 10 s idle; ${facts(idle1)}`);
}

try {
  await main();
} finally {
  if (kiln && kiln.child.exitCode === null && kiln.child.signalCode === null) {
    const exited = new Promise((r) => kiln!.child.once('exit', r));
    kiln.child.kill('SIGTERM');
    await Promise.race([exited, sleep(120_000)]);
  }
  for (const pid of appProcesses().keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  if (!process.env.SCALE_KEEP) fs.rmSync(dataDir, { recursive: true, force: true });
  else console.log(`kept ${dataDir}`);
}
