/**
 * Router throughput benchmark: `npx tsx bench/router.ts`.
 *
 * Starts a trivial node http app (a child process, as app instances are) and Kiln's router (another child
 * process, as it lives in the Kiln server, with RTR line formatting on), then drives them with autocannon from
 * this process: straight at the app's port, and through the router with the route's Host header. Prints
 * requests/s, p99 and the ratio router ÷ direct (target ≥ 0.6).
 *
 * For context it also measures a ten-line node proxy (http.request + pipe, no routing, headers, retries or logs),
 * which is the floor any router built on node's http module can reach, and the CPU time each process spends
 * per request (from /proc), which is far less sensitive to other load on the machine than requests/s.
 *
 * Env: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 50), BENCH_WARMUP (s, default 2),
 * BENCH_ROUNDS (default 2; the best round of each target is reported).
 */
import fs from 'node:fs';
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import { formatAccessLog } from '../src/router/access-log.ts';
import { Router } from '../src/router/router.ts';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const TARGET_RATIO = 0.6;
const ROUTE_HOST = 'bench.apps.localhost';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

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

/** Child-process mode: the router alone, proxying ROUTE_HOST to the given app port. */
async function serveRouter(appPort: number): Promise<void> {
  let lines = 0;
  let chars = 0;
  const router = new Router({
    onAccess: (entry) => {
      // Format every line as the real log sink would; keep a running total so the work is not optimized away.
      chars += formatAccessLog(entry).length;
      lines++;
    },
  });
  router.table.setBackends(ROUTE_HOST, [
    { instanceId: 'bench-0', processGuid: 'bench-process', appGuid: 'bench-app', index: 0, host: '127.0.0.1', port: appPort },
  ]);
  const server = http.createServer(router.handle);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
  process.on('SIGTERM', () => {
    process.stderr.write(`router: ${lines} access lines, ${chars} chars\n`);
    process.exit(0);
  });
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

/** CPU ms (user + system) a process has used so far. */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, in clock ticks (100/s on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  total: number;
  appUs: number;
  proxyUs: number;
}

async function measure(url: string, headers: Record<string, string>, duration: number, appPid?: number, proxyPid?: number): Promise<Result> {
  const app0 = cpuMs(appPid);
  const proxy0 = cpuMs(proxyPid);
  const r = await autocannon({ url, connections: CONNECTIONS, duration, headers });
  const n = Math.max(1, r.requests.total);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    total: r.requests.total,
    appUs: ((cpuMs(appPid) - app0) * 1000) / n,
    proxyUs: proxyPid === undefined ? Number.NaN : ((cpuMs(proxyPid) - proxy0) * 1000) / n,
  };
}

async function main(): Promise<void> {
  const children: ChildProcess[] = [];
  const stopAll = (): void => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  };
  process.on('exit', stopAll);
  const start = async (args: string[]): Promise<{ child: ChildProcess; port: number }> => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    return { child, port: Number(await firstLine(child)) };
  };
  try {
    const app = await start(['-e', APP_SOURCE]);
    const router = await start(['--import', 'tsx', fileURLToPath(import.meta.url), 'serve-router', String(app.port)]);
    const minimal = await start(['-e', MIN_PROXY_SOURCE, String(app.port)]);
    const targets = [
      { name: 'direct to app', url: `http://127.0.0.1:${app.port}/`, proxy: undefined },
      { name: 'through router', url: `http://127.0.0.1:${router.port}/`, proxy: router.child },
      { name: 'minimal proxy', url: `http://127.0.0.1:${minimal.port}/`, proxy: minimal.child },
    ];
    console.log(`autocannon: ${CONNECTIONS} connections, ${DURATION} s per target (after ${WARMUP} s warm-up), ${ROUNDS} round(s), best round kept`);
    console.log(`load average before: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);

    const row = (name: string, x: Result): string =>
      `${name.padEnd(16)} ${x.rps.toFixed(0).padStart(7)} req/s   p50 ${String(x.p50).padStart(3)} ms   p99 ${String(x.p99).padStart(3)} ms   ` +
      `cpu/req: app ${x.appUs.toFixed(0).padStart(3)} µs` +
      (Number.isNaN(x.proxyUs) ? '' : `, proxy ${x.proxyUs.toFixed(0).padStart(3)} µs`) +
      `   (${x.total} requests, ${x.errors} errors, ${x.non2xx} non-2xx)`;
    const best = new Map<string, Result>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        const headers: Record<string, string> = t.proxy ? { host: ROUTE_HOST } : {};
        await measure(t.url, headers, WARMUP);
        const r = await measure(t.url, headers, DURATION, app.child.pid, t.proxy?.pid);
        console.log(`round ${round} ${row(t.name, r)}`);
        const prev = best.get(t.name);
        if (!prev || r.rps > prev.rps) best.set(t.name, r);
      }
    }
    const d = best.get('direct to app')!;
    const r = best.get('through router')!;
    const m = best.get('minimal proxy')!;
    console.log('\nbest rounds:');
    for (const t of targets) console.log(`  ${row(t.name, best.get(t.name)!)}`);
    const ratio = r.rps / d.rps;
    console.log(`\nratio router/direct: ${ratio.toFixed(2)} (target >= ${TARGET_RATIO}) ${ratio >= TARGET_RATIO ? 'OK' : 'BELOW TARGET'}`);
    console.log(`ratio minimal-proxy/direct: ${(m.rps / d.rps).toFixed(2)}; router/minimal-proxy: ${(r.rps / m.rps).toFixed(2)}`);
    console.log(`p99 added by the router: ${r.p99 - d.p99} ms`);
  } finally {
    stopAll();
  }
}

if (process.argv[2] === 'serve-router') {
  await serveRouter(Number(process.argv[3]));
} else {
  await main();
}
