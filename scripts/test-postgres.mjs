// Runs the store and API suites again against PostgreSQL when KILN_TEST_DATABASE_URL is set (CI sets it; see
// .ci/run). Each test file creates and drops its own database, so the role needs CREATEDB (CI's is a superuser).
// Extra arguments are passed to vitest, e.g. `node scripts/test-postgres.mjs test/store`.
import { spawnSync } from 'node:child_process';
import pg from 'pg';

const url = process.env.KILN_TEST_DATABASE_URL;
if (!url) {
  console.log('KILN_TEST_DATABASE_URL is not set: skipping the PostgreSQL pass (CI runs it).');
  process.exit(0);
}

// Fail fast with one clear line instead of every test file timing out on a server that is not there.
const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
try {
  await probe.connect();
  const { rows } = await probe.query('select rolcreatedb or rolsuper as ok from pg_roles where rolname = current_user');
  if (!rows[0]?.ok) throw new Error('the role may not create databases (needs CREATEDB)');
} catch (err) {
  console.error(`PostgreSQL at ${url.replace(/:[^:@/]*@/, ':***@')} is not usable: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
} finally {
  await probe.end().catch(() => {});
}

const targets = process.argv.slice(2);
const r = spawnSync('npx', ['vitest', 'run', ...(targets.length ? targets : ['test/store', 'test/api'])], {
  stdio: 'inherit',
  env: { ...process.env, KILN_TEST_DIALECT: 'postgres' },
});
process.exit(r.status ?? 1);
