// Runs the store and API suites again against PostgreSQL when KILN_TEST_DATABASE_URL is set (CI sets it).
import { spawnSync } from 'node:child_process';

if (!process.env.KILN_TEST_DATABASE_URL) {
  console.log('KILN_TEST_DATABASE_URL is not set: skipping the PostgreSQL pass (CI runs it).');
  process.exit(0);
}
const r = spawnSync('npx', ['vitest', 'run', 'test/store', 'test/api'], {
  stdio: 'inherit',
  env: { ...process.env, KILN_TEST_DIALECT: 'postgres' },
});
process.exit(r.status ?? 1);
