/**
 * Sandbox cost benchmark: `npx tsx bench/sandbox.ts`.
 *
 * What bubblewrap adds to starting an app process: spawns `/bin/sh -c true` and `node -e 0` BENCH_RUNS times
 * (default 30) plain and inside the sandbox Kiln would use (KILN_SANDBOX=bwrap; as root with the app-uid switch
 * through setpriv), interleaved so machine load hits both alike, and reports medians and the ratio against the
 * plain spawn measured in the same process.
 */
import { spawnSync } from 'node:child_process';
import { bwrapArgs, resolveSandbox } from '../src/runtime/local/sandbox.ts';
import { median } from './kiln.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const sandbox = resolveSandbox('bwrap');
if (sandbox.kind !== 'bwrap') throw new Error('bubblewrap is not usable here');
const identity = sandbox.setprivPath ? { uid: 299_999, gid: 299_999 } : undefined;

function sandboxed(argv: string[]): string[] {
  return bwrapArgs(sandbox as Extract<typeof sandbox, { kind: 'bwrap' }>, {
    mounts: [],
    scratch: [{ dest: '/tmp' }, { dest: '/home/vcap' }],
    cwd: '/',
    hostname: 'bench',
    ...(identity ? { identity } : {}),
    maxFileBytes: 1024 ** 3,
    argv,
  });
}

function timeMs(file: string, args: string[]): number {
  const start = performance.now();
  const r = spawnSync(file, args, { stdio: 'ignore', env: {} });
  if (r.status !== 0) throw new Error(`${file} exited ${r.status}`);
  return performance.now() - start;
}

const cases: Array<{ name: string; argv: string[] }> = [
  { name: 'sh -c true', argv: ['/bin/sh', '-c', 'true'] },
  { name: 'node -e 0', argv: [process.execPath, '-e', '0'] },
];
console.log(`sandbox bench: ${RUNS} runs each, bwrap ${sandbox.bwrapPath}${identity ? ' + setpriv (root: own uid)' : ''}\n`);
console.log('command          plain ms   sandboxed ms   added ms   ratio');
for (const c of cases) {
  const plain: number[] = [];
  const boxed: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    plain.push(timeMs(c.argv[0]!, c.argv.slice(1)));
    boxed.push(timeMs(sandbox.bwrapPath, sandboxed(c.argv)));
  }
  const p = median(plain);
  const b = median(boxed);
  console.log(`${c.name.padEnd(16)} ${p.toFixed(1).padStart(8)} ${b.toFixed(1).padStart(14)} ${(b - p).toFixed(1).padStart(10)} ${(b / p).toFixed(2).padStart(7)}`);
}
