/**
 * Router throughput benchmark: `npx tsx bench/router.ts`.
 *
 * Starts a trivial node http app (a child process, as app instances are) and Kiln's router behind its front door
 * (another child process, as it lives in the Kiln server, its access lines going as RTR lines into a LogStore as the
 * server sends them), then drives them: straight at the app's port, and through the router with the route's Host
 * header. When `nginx` is on PATH it also starts an nginx reverse proxy to the same app (one worker, keep-alive
 * upstream, access log to a buffered file) — what an operator would otherwise put in front — and reports Kiln's
 * router as a ratio of it, measured in the same run.
 *
 * The load comes from `wrk` when it is on PATH (one thread, as the reference measurements), else from autocannon
 * (in this process, which costs CPU on a small machine: prefer wrk). Both references are Debian packages used by
 * this benchmark only, not by Kiln or its tests:
 *
 *   apt-get install -y nginx wrk
 *
 * Targets run one after another, interleaved over several rounds; the ratio kiln ÷ nginx is taken within each
 * round (the closest two measurements in time) and its median is the figure to read on a shared machine. Goal:
 * kiln ≥ 0.5 × nginx req/s and kiln p99 ≤ 2 × nginx p99. It also reports the CPU time each proxy spends per
 * request (from /proc), which is far less sensitive to other load on the machine than requests/s.
 *
 * What the router's design rests on (issue 13, measured on a 2-core machine shared with other work, so read the
 * CPU per request, not the absolute req/s): proxy CPU µs per request at a fixed 4,000 req/s (autocannon
 * --overallRate, median of 4 runs) — http.request + Agent 124, the same with undici 7 Pool.dispatch 55–77 (a
 * ten-line prototype), a keep-alive pool of plain sockets with llhttp for responses 89, plus the front door's fast
 * path (request heads parsed with llhttp on the raw connection, node's http server only for what it hands over)
 * 64, after trimming per-request allocations and timers 55; nginx 25. Kiln's router and its gorouter behaviour
 * run on node's net.Socket streams, whose per-read and per-write cost (about 35 µs per proxied request in a bare
 * prototype) is the floor of this design.
 *
 * Where the tail came from (p99 2.6–4.4× nginx's before, measured with --trace-gc / --trace-gc-nvp and the
 * sampling heap profiler in the router's process): the garbage collector, not the proxying. The Set of exchanges
 * waiting for response headers kept finished exchanges reachable from promoted, obsolete hash tables, so ~2 MB
 * survived each scavenge (5–10 ms pauses, a mark-compact every ~2 s); router.ts's WaitList fixed that (~60 KB
 * survive, ~1–2 ms scavenges). The real access-log sink (every RTR line an object graph in the LogStore, a Map
 * re-insert and an object spread per line) cost ~30 µs more per request and ~40% of the throughput; log-store.ts
 * keeps lines as bytes now. V8 flags (--max-semi-space-size, --single-threaded-gc) made no difference beyond the
 * noise once survivors were small, so Kiln's start script sets none. What is left of the gap to nginx is CPU per
 * request: the CPU profile is dominated by the two socket writes per request (the loopback send runs the
 * receiver's TCP path too); the JavaScript is under a fifth of it.
 *
 * Env: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 50), BENCH_WARMUP (s, default 2),
 * BENCH_ROUNDS (default 3), BENCH_MINIMAL=1 adds a ten-line node proxy (http.request + pipe, no routing),
 * BENCH_DRIVER=autocannon forces autocannon, BENCH_NGINX_ACCESS_LOG=off turns nginx's access log off,
 * BENCH_ACCESS_LOG=format has Kiln's router only format its access lines instead of keeping them in a LogStore,
 * BENCH_ROUTER_FLAGS passes node/V8 flags to the router's process only (e.g. `--max-semi-space-size=64`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import { LogStore } from '../src/logs/log-store.ts';
import { formatAccessLog, rtrAccessLogger } from '../src/router/access-log.ts';
import { createFrontDoorServer } from '../src/router/front-door.ts';
import { Router } from '../src/router/router.ts';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const GOAL_RPS_RATIO = 0.5;
const GOAL_P99_RATIO = 2;
const ROUTE_HOST = 'bench.apps.localhost';

const APP_SOURCE = `
const http = require('node:http');
const body = Buffer.from('hello from a trivial app\\n');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65000;
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

const MIN_PROXY_SOURCE = `
const http = require('node:http');
const port = Number(process.argv[1]);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const server = http.createServer((req, res) => {
  const p = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent }, (pr) => {
    res.writeHead(pr.statusCode, pr.headers);
    pr.pipe(res);
  });
  p.on('error', () => { res.statusCode = 502; res.end(); });
  req.pipe(p);
});
server.keepAliveTimeout = 65000;
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

/**
 * Child-process mode: Kiln's front door and router alone, routing ROUTE_HOST to the given app port. Access lines
 * go where Kiln's server sends them: formatted as RTR lines into a LogStore (the app's `cf logs` buffer).
 */
async function serveRouter(appPort: number): Promise<void> {
  const logs = new LogStore();
  let formatted = 0;
  const router = new Router({
    // BENCH_ACCESS_LOG=format only formats each line (what this bench did before it used the LogStore).
    onAccess: process.env.BENCH_ACCESS_LOG === 'format' ? (entry) => void (formatted += formatAccessLog(entry).length) : rtrAccessLogger(logs),
  });
  router.table.setBackends(ROUTE_HOST, [
    { instanceId: 'bench-0', processGuid: 'bench-process', appGuid: 'bench-app', index: 0, host: '127.0.0.1', port: appPort },
  ]);
  const server = createFrontDoorServer({
    api: (_req, res) => {
      res.writeHead(404);
      res.end();
    },
    router,
    appsDomains: ['apps.localhost'],
    apiHosts: ['localhost', '127.0.0.1'],
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
  process.on('SIGTERM', () => {
    const kept = logs.read('bench-app', { limit: Number.MAX_SAFE_INTEGER, descending: false }).length;
    process.stderr.write(`router: ${kept} RTR lines kept in the app's log buffer, ${formatted} chars only formatted\n`);
    process.exit(0);
  });
}

function onPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** nginx as operators run it in front of apps: one worker, HTTP/1.1 keep-alive upstream, forwarding headers set. */
function nginxConfig(dir: string, listenPort: number, appPort: number, accessLog: boolean): string {
  return `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  ${accessLog ? `access_log ${dir}/access.log combined buffer=64k flush=1s;` : 'access_log off;'}
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 65s;
  keepalive_requests 100000;
  upstream app {
    server 127.0.0.1:${appPort};
    keepalive 128;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:${listenPort};
    server_name ${ROUTE_HOST};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Request-Start $msec;
      proxy_set_header X-Vcap-Request-Id $request_id;
    }
  }
}
`;
}

async function waitForPort(port: number, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl !== -1) resolve(buf.slice(0, nl).trim());
    });
    child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
  });
}

/** CPU ms (user + system) a process and its children that were waited for have used so far. */
function cpuMs(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      // utime and stime, in clock ticks (100/s on Linux).
      total += (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      return Number.NaN;
    }
  }
  return total;
}

/** The pids of nginx's worker processes (the master does no request work). */
function childPids(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  total: number;
}

interface Result extends Load {
  appUs: number;
  proxyUs: number;
}

/** wrk's "1.23ms" / "456.00us" / "1.02s" in ms. */
function wrkMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

function runWrk(wrk: string, url: string, host: string | undefined, duration: number): Load {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${duration}s`, '--latency', ...(host ? ['-H', `Host: ${host}`] : []), url];
  const out = execFileSync(wrk, args, { encoding: 'utf8' });
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? Number.NaN);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99: wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    errors: socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
    total: num(/(\d+) requests in/),
  };
}

async function runAutocannon(url: string, host: string | undefined, duration: number): Promise<Load> {
  const r = await autocannon({ url, connections: CONNECTIONS, duration, headers: host ? { host } : {} });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx, total: r.requests.total };
}

interface Target {
  name: string;
  url: string;
  host: string | undefined;
  /** Processes whose CPU counts as the proxy's (none for direct). */
  proxyPids: () => number[];
}

async function main(): Promise<void> {
  const children: ChildProcess[] = [];
  let nginxDir: string | undefined;
  const stopAll = (): void => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    if (nginxDir) fs.rmSync(nginxDir, { recursive: true, force: true });
  };
  process.on('exit', stopAll);
  process.on('SIGINT', () => process.exit(130));
  const start = async (args: string[]): Promise<{ child: ChildProcess; port: number }> => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    return { child, port: Number(await firstLine(child)) };
  };
  const wrk = process.env.BENCH_DRIVER === 'autocannon' ? undefined : onPath('wrk');
  const nginx = onPath('nginx');
  try {
    const app = await start(['-e', APP_SOURCE]);
    const routerFlags = (process.env.BENCH_ROUTER_FLAGS ?? '').split(/\s+/).filter(Boolean);
    const router = await start([...routerFlags, '--import', 'tsx', fileURLToPath(import.meta.url), 'serve-router', String(app.port)]);
    const targets: Target[] = [
      { name: 'direct to app', url: `http://127.0.0.1:${app.port}/`, host: undefined, proxyPids: () => [] },
    ];
    if (nginx) {
      nginxDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-nginx-'));
      const port = await freePort();
      const conf = path.join(nginxDir, 'nginx.conf');
      fs.writeFileSync(conf, nginxConfig(nginxDir, port, app.port, process.env.BENCH_NGINX_ACCESS_LOG !== 'off'));
      const child = spawn(nginx, ['-p', nginxDir, '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
      children.push(child);
      await waitForPort(port, 10_000);
      targets.push({ name: 'nginx', url: `http://127.0.0.1:${port}/`, host: ROUTE_HOST, proxyPids: () => childPids(child.pid!) });
    } else {
      console.log('nginx not found: no reference target (apt-get install -y nginx)');
    }
    targets.push({ name: 'kiln router', url: `http://127.0.0.1:${router.port}/`, host: ROUTE_HOST, proxyPids: () => [router.child.pid!] });
    if (process.env.BENCH_MINIMAL === '1') {
      const minimal = await start(['-e', MIN_PROXY_SOURCE, String(app.port)]);
      targets.push({ name: 'minimal proxy', url: `http://127.0.0.1:${minimal.port}/`, host: ROUTE_HOST, proxyPids: () => [minimal.child.pid!] });
    }

    const drive = (t: Target, duration: number): Promise<Load> =>
      wrk ? Promise.resolve(runWrk(wrk, t.url, t.host, duration)) : runAutocannon(t.url, t.host, duration);
    const measure = async (t: Target): Promise<Result> => {
      const proxyPids = t.proxyPids();
      const app0 = cpuMs([app.child.pid!]);
      const proxy0 = cpuMs(proxyPids);
      const load = await drive(t, DURATION);
      const n = Math.max(1, load.total);
      return {
        ...load,
        appUs: ((cpuMs([app.child.pid!]) - app0) * 1000) / n,
        proxyUs: proxyPids.length === 0 ? Number.NaN : ((cpuMs(proxyPids) - proxy0) * 1000) / n,
      };
    };

    console.log(
      `${wrk ? `wrk -t1` : 'autocannon (wrk not found: apt-get install -y wrk)'}: ${CONNECTIONS} connections, ${DURATION} s per target ` +
        `(after ${WARMUP} s warm-up), ${ROUNDS} round(s), ${os.cpus().length} CPUs`,
    );
    console.log(`load average before: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);

    const ms = (v: number): string => (v < 10 ? v.toFixed(2) : v.toFixed(1)).padStart(6);
    const row = (name: string, x: Result): string =>
      `${name.padEnd(14)} ${x.rps.toFixed(0).padStart(7)} req/s   p50 ${ms(x.p50)} ms   p99 ${ms(x.p99)} ms   ` +
      `cpu/req: app ${x.appUs.toFixed(0).padStart(3)} µs` +
      (Number.isNaN(x.proxyUs) ? '' : `, proxy ${x.proxyUs.toFixed(0).padStart(3)} µs`) +
      `   (${x.total} requests, ${x.errors} errors, ${x.non2xx} non-2xx)`;
    const rounds: Map<string, Result>[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const results = new Map<string, Result>();
      for (const t of targets) {
        await drive(t, WARMUP);
        const r = await measure(t);
        results.set(t.name, r);
        console.log(`round ${round} ${row(t.name, r)}`);
      }
      rounds.push(results);
      const k = results.get('kiln router')!;
      const n = results.get('nginx');
      const d = results.get('direct to app')!;
      console.log(
        `round ${round} kiln/direct ${(k.rps / d.rps).toFixed(2)}` +
          (n ? `   kiln/nginx ${(k.rps / n.rps).toFixed(2)}   p99 kiln/nginx ${(k.p99 / n.p99).toFixed(2)}` : '') +
          '\n',
      );
    }

    const median = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const med = (name: string, f: (r: Result) => number): number => median(rounds.map((r) => f(r.get(name)!)));
    console.log('medians over rounds:');
    for (const t of targets) {
      console.log(
        `  ${t.name.padEnd(14)} ${med(t.name, (r) => r.rps).toFixed(0).padStart(7)} req/s   p50 ${ms(med(t.name, (r) => r.p50))} ms   ` +
          `p99 ${ms(med(t.name, (r) => r.p99))} ms` +
          (t.name === 'direct to app' ? '' : `   proxy cpu/req ${med(t.name, (r) => r.proxyUs).toFixed(0)} µs`),
      );
    }
    const kd = median(rounds.map((r) => r.get('kiln router')!.rps / r.get('direct to app')!.rps));
    console.log(`\nratio kiln/direct (median of rounds): ${kd.toFixed(2)}`);
    if (nginx) {
      const rps = median(rounds.map((r) => r.get('kiln router')!.rps / r.get('nginx')!.rps));
      const p99 = median(rounds.map((r) => r.get('kiln router')!.p99 / r.get('nginx')!.p99));
      const ok = rps >= GOAL_RPS_RATIO && p99 <= GOAL_P99_RATIO;
      console.log(`ratio kiln/nginx req/s (median of rounds): ${rps.toFixed(2)} (goal >= ${GOAL_RPS_RATIO})`);
      console.log(`ratio kiln/nginx p99   (median of rounds): ${p99.toFixed(2)} (goal <= ${GOAL_P99_RATIO}) ${ok ? 'OK' : 'BELOW GOAL'}`);
    }
  } finally {
    stopAll();
  }
}

if (process.argv[2] === 'serve-router') {
  await serveRouter(Number(process.argv[3]));
} else {
  await main();
}
