/**
 * API throughput benchmark: `npx tsx bench/api.ts` (or `npm run bench:api`).
 *
 * Builds Kiln on a temporary SQLite file, seeds 10,000 spaces straight through the store, listens on a free
 * port and drives list endpoints with autocannon. A constant-JSON route registered on the same Hono app
 * (so it passes through the same global middleware, but no auth and no SQL) is the baseline: the ratio
 * "list req/s ÷ baseline req/s" says how much of the server's capacity a list request costs.
 *
 * Each scenario also gets a short single-connection run: with 50 connections in a closed loop, latency is
 * roughly connections ÷ throughput (Little's law), so "p99 @1" is the figure that shows one request's own cost.
 *
 * Env: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 50), BENCH_SPACES (default 10000),
 * BENCH_SERIAL_DURATION (s, default 3; 0 skips the single-connection runs), BENCH_ONLY (comma-separated names).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { serve, type ServerType } from '@hono/node-server';
import autocannon from 'autocannon';
import pino from 'pino';
import { loadConfig } from '../src/config/config.ts';
import { buildKiln, type Kiln } from '../src/server.ts';
import { newGuid } from '../src/store/store.ts';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const SPACES = Number(process.env.BENCH_SPACES ?? 10_000);
const SERIAL_DURATION = Number(process.env.BENCH_SERIAL_DURATION ?? 3);
const ORGS = 5;
const TARGET_RATIO = 0.4;
const TARGET_P99_MS = 20;
const BASELINE_PATH = '/bench/baseline';

/** Bulk-inserts orgs and spaces (with labels on some) in one store write. */
async function seed(kiln: Kiln): Promise<{ prod: number }> {
  const started = performance.now();
  let prod = 0;
  await kiln.store.write(async (tx) => {
    const orgs: string[] = [];
    for (let i = 0; i < ORGS; i++) {
      const guid = newGuid();
      orgs.push(guid);
      await tx.db
        .insertInto('organizations')
        .values({ guid, name: `bench-org-${i}`, created_at: tx.now, updated_at: tx.now, suspended: 0, status: 'active' })
        .execute();
      tx.changed('organizations', guid, 'create');
    }
    // Spread creation times over a day so ordering by created_at is not one giant tie.
    const base = Date.parse('2024-01-01T00:00:00.000Z');
    const spaces = [];
    const labels = [];
    for (let i = 0; i < SPACES; i++) {
      const guid = newGuid();
      const at = new Date(base + i * 8_000 + (i % 997)).toISOString();
      spaces.push({
        guid,
        name: `space-${String(i).padStart(5, '0')}`,
        organization_guid: orgs[i % ORGS]!,
        created_at: at,
        updated_at: at,
        status: 'active',
        allow_ssh: 1,
      });
      // A third of the spaces carry env (1 in 10 of all spaces is env=prod), some a prefixed team label.
      if (i % 3 === 0) {
        const env = i % 10 === 0 ? 'prod' : i % 2 === 0 ? 'dev' : 'stage';
        if (env === 'prod') prod++;
        labels.push({ resource_type: 'spaces', resource_guid: guid, key_prefix: '', key_name: 'env', value: env });
      } else if (i % 10 === 0) {
        prod++;
        labels.push({ resource_type: 'spaces', resource_guid: guid, key_prefix: '', key_name: 'env', value: 'prod' });
      }
      if (i % 7 === 0) {
        labels.push({ resource_type: 'spaces', resource_guid: guid, key_prefix: 'example.com', key_name: 'team', value: `t${i % 4}` });
      }
    }
    // Chunked to stay under SQLite's bound-parameter limit.
    for (let i = 0; i < spaces.length; i += 500) await tx.db.insertInto('spaces').values(spaces.slice(i, i + 500)).execute();
    for (let i = 0; i < labels.length; i += 500) await tx.db.insertInto('labels').values(labels.slice(i, i + 500)).execute();
  });
  console.log(`seeded ${ORGS} orgs, ${SPACES} spaces (${prod} env=prod) in ${(performance.now() - started).toFixed(0)} ms`);
  return { prod };
}

interface Scenario {
  name: string;
  path: string;
  /** Checks one response before the run, so a broken endpoint is not benchmarked as fast. */
  check?: (body: { pagination?: { total_results: number }; resources?: unknown[] }) => string | undefined;
}

interface Outcome {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** p99 with a single connection (no queueing behind other requests); NaN when skipped. */
  serialP99: number;
}

async function run(url: string, s: Scenario, headers: Record<string, string>): Promise<Outcome> {
  const res = await fetch(url + s.path, { headers });
  const body = (await res.json()) as Parameters<NonNullable<Scenario['check']>>[0];
  if (res.status !== 200) throw new Error(`${s.name}: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  const problem = s.check?.(body);
  if (problem) throw new Error(`${s.name}: ${problem}`);

  const r = await autocannon({ url: url + s.path, connections: CONNECTIONS, duration: DURATION, headers });
  const serial = SERIAL_DURATION > 0 ? await autocannon({ url: url + s.path, connections: 1, duration: SERIAL_DURATION, headers }) : undefined;
  return {
    serialP99: serial ? serial.latency.p99 : Number.NaN,
    name: s.name,
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-'));
  const adminPassword = randomBytes(12).toString('hex');
  const config = loadConfig({
    KILN_DATA_DIR: dataDir,
    DATABASE_URL: `sqlite:${path.join(dataDir, 'kiln.sqlite')}`,
    KILN_ADMIN_PASSWORD: adminPassword,
    LOG_LEVEL: 'silent',
  });
  const kiln = await buildKiln(config, { log: pino({ level: 'silent' }) });
  // Registered on Kiln's own app (no production hook needed): same server, same global middleware.
  kiln.app.get(BASELINE_PATH, (c) => c.json({ ok: true, kind: 'baseline' }));

  let server: ServerType | undefined;
  try {
    const { prod } = await seed(kiln);
    const token = (await kiln.identity.passwordGrant(config.admin.username, adminPassword)).access_token;
    const headers = { authorization: `bearer ${token}` };

    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: kiln.app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const fullPage = (total: number) => (b: Parameters<NonNullable<Scenario['check']>>[0]) =>
      b.pagination?.total_results !== total
        ? `total_results ${b.pagination?.total_results}, expected ${total}`
        : b.resources?.length !== Math.min(50, total)
          ? `got ${b.resources?.length} resources`
          : undefined;
    const scenarios: Scenario[] = [
      { name: 'baseline (constant JSON)', path: BASELINE_PATH },
      { name: 'GET /v3/spaces?per_page=50', path: '/v3/spaces?per_page=50', check: fullPage(SPACES) },
      { name: 'label_selector=env=prod', path: '/v3/spaces?per_page=50&label_selector=env%3Dprod', check: fullPage(prod) },
      { name: 'order_by=-created_at', path: '/v3/spaces?per_page=50&order_by=-created_at', check: fullPage(SPACES) },
      { name: 'order_by=name', path: '/v3/spaces?per_page=50&order_by=name', check: fullPage(SPACES) },
      { name: 'page=150 (deep offset)', path: '/v3/spaces?per_page=50&page=150', check: (b) => (b.resources?.length === 50 ? undefined : 'short page') },
    ];
    const only = process.env.BENCH_ONLY?.split(',');
    const selected = only ? scenarios.filter((s, i) => i === 0 || only.some((o) => s.name.includes(o))) : scenarios;

    console.log(`autocannon: ${CONNECTIONS} connections, ${DURATION} s per scenario\n`);
    const outcomes: Outcome[] = [];
    for (const s of selected) {
      const o = await run(url, s, headers);
      outcomes.push(o);
      console.log(`  done: ${s.name}`);
    }

    const baseline = outcomes[0]!.rps;
    const rows = outcomes.map((o, i) => {
      const ratio = o.rps / baseline;
      const ok = i === 0 || (ratio >= TARGET_RATIO && o.p99 < TARGET_P99_MS);
      return [
        o.name,
        o.rps.toFixed(0),
        String(o.p50),
        String(o.p99),
        Number.isNaN(o.serialP99) ? '-' : String(o.serialP99),
        i === 0 ? '1.00' : ratio.toFixed(2),
        o.non2xx + o.errors > 0 ? `${o.non2xx} non-2xx, ${o.errors} errors` : '',
        i === 0 ? '' : ok ? 'ok' : 'MISS',
      ];
    });
    const header = ['scenario', 'req/s', 'p50 ms', 'p99 ms', 'p99 @1', 'ratio', 'failures', `target ≥${TARGET_RATIO}, p99<${TARGET_P99_MS}ms`];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
    for (const r of rows) console.log(line(r));
    if (rows.some((r) => r.at(-1) === 'MISS')) process.exitCode = 1;
  } finally {
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    await kiln.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
