/**
 * Services benchmark: `npx tsx bench/services.ts`.
 *
 * Starts Kiln in this process (temporary SQLite data dir, port 0, list cache off so every request does its SQL)
 * and the fixture OSBAPI broker of the tests with BENCH_SERVICES × BENCH_PLANS_PER_SERVICE generated plans (default
 * 100 × 10 = 1,000) besides its own, all public. Then:
 *
 * 1. Marketplace: `GET /v3/service_plans?available=true&fields[service_offering.service_broker]=name,guid&
 *    include=service_offering&per_page=5000&space_guids=S` (the cf CLI's `marketplace`) as a space developer,
 *    against a constant-JSON route on the same app (the baseline of bench/api.ts), as back-to-back autocannon slice
 *    pairs; the ratio is the median of (marketplace req/s ÷ baseline req/s).
 * 2. Lifecycle: push `test/fixtures/apps/vcap` (an app that answers with its VCAP_SERVICES) once, then BENCH_RUNS
 *    times (default 5): create-service on the broker's synchronous plan → bind-service → restart → first answer
 *    through Kiln's router that lists the new instance. Median of the runs (target < 3 s).
 *
 * Env: BENCH_DURATION (s per slice, default 3), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 10).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { loadConfig } from '../src/config/config.ts';
import { startKiln } from '../src/server.ts';
import { gatherAppEntries, writeAppZip } from '../src/cli/zip-app.ts';
import { defaultCatalog, startFixtureBroker } from '../test/fixtures/broker/broker.ts';
import { median, poll } from './kiln.ts';

const DURATION = Number(process.env.BENCH_DURATION ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 100);
const PLANS_PER_SERVICE = Number(process.env.BENCH_PLANS_PER_SERVICE ?? 10);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const TARGET_MS = 3000;
const BASELINE_PATH = '/bench/baseline';
const APP_DIR = fileURLToPath(new URL('../test/fixtures/apps/vcap', import.meta.url));
const PASSWORD = 'bench-password-123';

function catalog() {
  const generated = [];
  for (let s = 0; s < SERVICES; s++) {
    const plans = [];
    for (let p = 0; p < PLANS_PER_SERVICE; p++) plans.push({ id: `gen-${s}-${p}`, name: `plan-${p}`, description: `Plan ${p} of service ${s}`, free: p % 2 === 0 });
    generated.push({ id: `gen-${s}`, name: `service-${String(s).padStart(3, '0')}`, description: `Generated service ${s}`, bindable: true, tags: ['bench'], plans });
  }
  return { services: [...defaultCatalog().services, ...generated] };
}

async function main() {
  const broker = await startFixtureBroker({ catalog: catalog() });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-services-'));
  const config = loadConfig({
    KILN_DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    KILN_ADMIN_PASSWORD: PASSWORD,
    LOG_LEVEL: 'silent',
    KILN_LIST_CACHE_ENTRIES: '0',
    KILN_DEFAULT_ORG: '',
    KILN_SANDBOX: process.env.KILN_SANDBOX,
  });
  const kiln = await startKiln(config);
  kiln.app.get(BASELINE_PATH, (c) => c.json({ ok: true, kind: 'baseline' }));
  const api = kiln.url;
  const adminToken = (await kiln.identity.passwordGrant('admin', PASSWORD)).access_token;
  const call = async (method: string, url: string, body?: unknown, token = adminToken) => {
    const res = await fetch(`${api}${url}`, {
      method,
      headers: { Authorization: `bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status >= 400) throw new Error(`${method} ${url} -> ${res.status}: ${text}`);
    // The bench reads a few fields of many CF resources.
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : {}) as any };
  };
  const job = (location: string | null) =>
    poll('job', async () => {
      const j = await call('GET', new URL(location!).pathname);
      if (j.body.state === 'FAILED') throw new Error(JSON.stringify(j.body.errors));
      return j.body.state === 'COMPLETE' ? j.body : undefined;
    }, { everyMs: 20, timeoutMs: 60_000 });

  try {
    const reg = await call('POST', '/v3/service_brokers', { name: 'bench', url: broker.url, authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } } });
    await job(reg.headers.get('location'));
    // Every plan public (straight in the store: 1,000 PATCHes would only slow the set-up).
    await kiln.store.write((tx) => tx.updateWhere('service_plans', (eb) => eb('visibility_type', '!=', 'public'), { visibility_type: 'public' }));
    const org = await call('POST', '/v3/organizations', { name: 'bench-org' });
    const space = await call('POST', '/v3/spaces', { name: 'bench-space', relationships: { organization: { data: { guid: org.body.guid } } } });
    const dev = await kiln.identity.createUser({ userName: 'bench-dev', password: PASSWORD });
    for (const [type, target] of [['organization_user', { organization: { data: { guid: org.body.guid } } }], ['space_developer', { space: { data: { guid: space.body.guid } } }]] as const) {
      await call('POST', '/v3/roles', { type, relationships: { user: { data: { guid: dev.id } }, ...target } });
    }
    const devToken = (await kiln.identity.passwordGrant('bench-dev', PASSWORD)).access_token;

    // ---- 1. marketplace ----
    const market = `/v3/service_plans?available=true&fields[service_offering.service_broker]=name,guid&include=service_offering&per_page=5000&space_guids=${space.body.guid}`;
    const check = await call('GET', market, undefined, devToken);
    const planCount = check.body.resources.length as number;
    if (planCount < SERVICES * PLANS_PER_SERVICE) throw new Error(`marketplace lists ${planCount} plans`);
    const headers = { authorization: `bearer ${devToken}` };
    const slice = async (p: string, duration = DURATION) => (await autocannon({ url: api + p, connections: CONNECTIONS, duration, headers })).requests.average;
    await slice(market, 1);
    const ratios: number[] = [];
    const rps: number[] = [];
    const base: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const b = await slice(BASELINE_PATH);
      const m = await slice(market);
      base.push(b);
      rps.push(m);
      ratios.push(m / b);
    }
    const serial = await autocannon({ url: api + market, connections: 1, duration: DURATION, headers });
    console.log(`marketplace over ${planCount} plans (${SERVICES + 3} offerings): ${median(rps).toFixed(1)} req/s vs baseline ${median(base).toFixed(0)} req/s`);
    console.log(`  ratio ${median(ratios).toFixed(4)} (median of ${ROUNDS} pairs), p99 @1 connection ${serial.latency.p99} ms, ${(check.body as object) && JSON.stringify(check.body).length} bytes`);

    // ---- 2. create-service → bind → restart → the app sees its credentials ----
    const app = await call('POST', '/v3/apps', { name: 'vcap', relationships: { space: { data: { guid: space.body.guid } } } });
    const domain = await call('GET', `/v3/organizations/${org.body.guid}/domains/default`);
    const route = await call('POST', '/v3/routes', { host: 'vcap', relationships: { space: { data: { guid: space.body.guid } }, domain: { data: { guid: domain.body.guid } } } });
    await call('POST', `/v3/routes/${route.body.guid}/destinations`, { destinations: [{ app: { guid: app.body.guid } }] });
    const pkg = await call('POST', '/v3/packages', { type: 'bits', relationships: { app: { data: { guid: app.body.guid } } } });
    const zipFile = path.join(dataDir, 'vcap.zip');
    await writeAppZip(APP_DIR, await gatherAppEntries(APP_DIR), zipFile);
    const form = new FormData();
    form.append('resources', '[]');
    form.append('bits', await fs.openAsBlob(zipFile, { type: 'application/octet-stream' }), 'package.zip');
    const up = await fetch(`${api}/v3/packages/${pkg.body.guid}/upload`, { method: 'POST', headers: { Authorization: `bearer ${adminToken}` }, body: form });
    if (up.status !== 200) throw new Error(`upload -> ${up.status}`);
    await poll('package READY', async () => ((await call('GET', `/v3/packages/${pkg.body.guid}`)).body.state === 'READY' ? true : undefined), { everyMs: 25, timeoutMs: 60_000 });
    const build = await call('POST', '/v3/builds', { package: { guid: pkg.body.guid } });
    const droplet = await poll('build STAGED', async () => {
      const b = await call('GET', `/v3/builds/${build.body.guid}`);
      if (b.body.state === 'FAILED') throw new Error(b.body.error);
      return b.body.state === 'STAGED' ? b.body.droplet.guid : undefined;
    }, { everyMs: 25, timeoutMs: 120_000 });
    await call('PATCH', `/v3/apps/${app.body.guid}/relationships/current_droplet`, { data: { guid: droplet } });
    await call('POST', `/v3/apps/${app.body.guid}/actions/start`);
    const viaRouter = () =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const { hostname, port } = new URL(api);
        const req = http.request({ hostname, port, path: '/', headers: { host: 'vcap.apps.localhost' }, agent: false }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    await poll('the app answers', async () => ((await viaRouter()).status === 200 ? true : undefined), { everyMs: 25, timeoutMs: 60_000 });

    const small = (await call('GET', '/v3/service_plans?names=small&service_offering_names=fixture-db')).body.resources[0].guid;
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const name = `db-${i}`;
      const t0 = performance.now();
      const si = await call('POST', '/v3/service_instances', { type: 'managed', name, relationships: { space: { data: { guid: space.body.guid } }, service_plan: { data: { guid: small } } } });
      await job(si.headers.get('location'));
      const inst = (await call('GET', `/v3/service_instances?names=${name}&page=1&per_page=1&space_guids=${space.body.guid}`)).body.resources[0];
      const bind = await call('POST', '/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: { data: { guid: inst.guid } }, app: { data: { guid: app.body.guid } } } });
      await job(bind.headers.get('location'));
      await call('POST', `/v3/apps/${app.body.guid}/actions/restart`);
      await poll('the app sees the binding', async () => {
        const r = await viaRouter().catch(() => undefined);
        if (!r || r.status !== 200) return undefined;
        const v = JSON.parse(r.body) as Record<string, Array<{ name: string; credentials: { password?: string } }>> | null;
        return v?.['fixture-db']?.some((e) => e.name === name && e.credentials.password) ? true : undefined;
      }, { everyMs: 10, timeoutMs: 60_000 });
      times.push(performance.now() - t0);
    }
    const med = median(times);
    console.log(`create-service → bind → restart → app sees credentials: ${times.map((t) => t.toFixed(0)).join(', ')} ms; median ${med.toFixed(0)} ms (target < ${TARGET_MS} ms: ${med < TARGET_MS ? 'met' : 'NOT met'})`);
  } finally {
    await kiln.stop();
    await broker.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
