/**
 * One list request at a time through `app.request()` (no HTTP, no autocannon): where a list request's time goes.
 * `npx tsx bench/list-profile.ts` prints, per scenario, the mean and p99 of one request and the number and
 * time of its SQL queries; run it under `node --cpu-prof --import tsx bench/list-profile.ts` for a profile.
 * Env: as bench/api.ts (BENCH_DATABASE_URL, BENCH_SPACES), plus PROFILE_REQUESTS (default 2000 per scenario).
 */
import { seedApps, start } from './api.ts';

const REQUESTS = Number(process.env.PROFILE_REQUESTS ?? 2000);

const target = await start(false);
const { kiln, headers } = target;

// Counts and times every query that reaches the database, by wrapping the executor kysely hands queries to.
let queries = 0;
let queryMs = 0;
const bySql = new Map<string, { n: number; ms: number }>();
const VERBOSE = process.env.PROFILE_SQL === '1';
const executor = kiln.store.db.getExecutor();
const proto = Object.getPrototypeOf(executor) as { executeQuery: (...a: unknown[]) => Promise<unknown> };
const original = proto.executeQuery;
proto.executeQuery = async function (this: unknown, ...args: unknown[]) {
  queries++;
  const t = performance.now();
  try {
    return await original.apply(this, args);
  } finally {
    const ms = performance.now() - t;
    queryMs += ms;
    const text = (args[0] as { sql: string }).sql;
    const entry = bySql.get(text) ?? { n: 0, ms: 0 };
    entry.n++;
    entry.ms += ms;
    bySql.set(text, entry);
  }
};

// PROFILE_APPS=n seeds n apps in a space of their own; `{space}` in PROFILE_PATHS stands for its guid.
const appsSpace = process.env.PROFILE_APPS ? await seedApps(target, Number(process.env.PROFILE_APPS)) : '';
const paths = (process.env.PROFILE_PATHS?.replaceAll('{space}', appsSpace).split(' ') ?? [
  '/v3/spaces?per_page=50',
  '/v3/spaces?per_page=50&label_selector=env%3Dprod',
  '/v3/spaces?per_page=50&order_by=-created_at',
  '/v3/spaces?per_page=50&order_by=name',
  '/v3/spaces?per_page=50&page=150',
]);
const base = 'http://127.0.0.1';
try {
  for (const p of paths) {
    for (let i = 0; i < 200; i++) await (await kiln.app.request(base + p, { headers })).text();
    queries = 0;
    queryMs = 0;
    bySql.clear();
    const times: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const t = performance.now();
      const res = await kiln.app.request(base + p, { headers });
      await res.text();
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    console.log(
      `${p.padEnd(52)} mean ${mean.toFixed(3)} ms  p50 ${times[times.length >> 1]!.toFixed(3)}  p99 ${times[Math.floor(times.length * 0.99)]!.toFixed(3)}  ` +
        `queries/req ${(queries / REQUESTS).toFixed(1)}  sql ms/req ${(queryMs / REQUESTS).toFixed(3)}`,
    );
    if (VERBOSE) for (const [text, e] of bySql) console.log(`    ${(e.ms / e.n).toFixed(3)} ms x${(e.n / REQUESTS).toFixed(1)}  ${text.slice(0, 400)}`);
  }
} finally {
  await target.close();
}
