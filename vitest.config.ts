import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Store tests against PostgreSQL share one database; files run in parallel but each uses its own schema.
    pool: 'forks',
    // Two files at a time even on two cores: most of the suite waits on real processes and sockets, and one worker
    // (vitest's default here, cores − 1) doubles the wall time.
    maxWorkers: 2,
  },
});
