#!/usr/bin/env node
// Runs the TypeScript entry point through tsx, so `npx kiln …` works without a build step.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
// tsx is resolved from here, not from the caller's folder, so `kiln` works from any directory.
const tsx = import.meta.resolve('tsx');
const r = spawnSync(process.execPath, ['--import', tsx, path.join(root, 'src/main.ts'), ...process.argv.slice(2)], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
