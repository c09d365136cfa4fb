import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalRuntime } from '../../src/runtime/local/local-runtime.ts';
import { isAlive } from '../../src/runtime/local/proc.ts';
import { treeUsage } from '../../src/runtime/local/usage.ts';
import type { InstanceSpec, InstanceStatus, LogLine } from '../../src/runtime/runtime.ts';
import { afterEachCleanup } from '../helpers/cleanup.ts';

/** Sidecars in the local runtime: beside the main command, in its environment, stopped and crashed with it. */

const SERVER = join(resolve(import.meta.dirname, '../fixtures/runtime'), 'server.mjs');
const NODE = JSON.stringify(process.execPath);
const MB = 1024 * 1024;

const { cleanups, tempDir } = afterEachCleanup();

/** A droplet whose app has a sidecar script that holds 120 MB and reports its environment. */
function makeDroplet(): string {
  const dir = tempDir('kiln-sc-droplet-');
  mkdirSync(join(dir, 'app'), { recursive: true });
  writeFileSync(
    join(dir, 'app', 'sidecar.cjs'),
    [
      'const held = Buffer.alloc(120 * 1024 * 1024, 1);',
      'console.log(`side-ready ${process.env.PORT} ${process.env.GREETING} ${process.pid} ${held.length}`);',
      "process.on('SIGTERM', () => process.exit(0));",
      'setInterval(() => {}, 1000);',
    ].join('\n'),
  );
  return dir;
}

function makeRuntime() {
  const runtime = new LocalRuntime({ dataDir: tempDir('kiln-sc-data-'), startPollMs: 20, livenessIntervalMs: 100, graceMs: 2_000, restartDelayMs: () => 20 });
  const logs: LogLine[] = [];
  runtime.onLog((line) => logs.push(line));
  cleanups.push(() => runtime.shutdown());
  return { runtime, logs };
}

let counter = 0;
function spec(dropletDir: string, sidecars: InstanceSpec['sidecars']): InstanceSpec {
  const n = ++counter;
  return {
    id: `sc-proc-${n}:v1:0`,
    appGuid: 'sc-app',
    processGuid: `sc-proc-${n}`,
    processType: 'web',
    version: 'v1',
    index: 0,
    dropletDir,
    command: `exec ${NODE} ${JSON.stringify(SERVER)}`,
    env: { GREETING: 'hi' },
    memoryMb: 1024,
    diskMb: 1024,
    healthCheck: { type: 'port' },
    sidecars,
  };
}

async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const statusOf = (runtime: LocalRuntime, id: string): InstanceStatus | undefined => runtime.listInstances().find((s) => s.id === id);

describe('local runtime: sidecars', () => {
  it('runs a sidecar beside the main process, in its environment, counts its memory, and stops it with the instance', async () => {
    const { runtime, logs } = makeRuntime();
    const s = spec(makeDroplet(), [{ name: 'helper', command: `exec ${NODE} sidecar.cjs` }]);
    await runtime.ensureInstance(s);
    const running = await waitFor('RUNNING', () => {
      const st = statusOf(runtime, s.id);
      return st?.state === 'RUNNING' ? st : undefined;
    });
    const line = await waitFor('sidecar ready', () => logs.find((l) => l.text.startsWith('side-ready ')));
    expect(line).toMatchObject({ appGuid: 'sc-app', sourceType: 'APP/PROC/WEB/SIDECAR/HELPER/0', instance: '0', stream: 'stdout' });
    const [, port, greeting, pid] = line.text.split(' ');
    expect(port).toBe(String(running.port));
    expect(greeting).toBe('hi');
    const sidecarPid = Number(pid);
    expect(sidecarPid).not.toBe(running.pid);
    expect(isAlive(sidecarPid)).toBe(true);

    // The instance's memory is the main tree's plus the sidecar's (which alone holds 120 MB).
    const stats = await runtime.stats(s.id);
    expect(stats).toBeDefined();
    expect(stats!.memBytes - treeUsage(running.pid!).memBytes).toBeGreaterThan(100 * MB);

    await runtime.stopInstance(s.id);
    expect(isAlive(running.pid!)).toBe(false);
    expect(isAlive(sidecarPid)).toBe(false);
    expect(runtime.listInstances({ processGuid: s.processGuid })).toEqual([]);
  });

  it('a sidecar that exits crashes the instance, which is restarted with its sidecars', async () => {
    const { runtime, logs } = makeRuntime();
    const droplet = makeDroplet();
    const mark = join(droplet, 'exited-once');
    const flaky = `if [ ! -e ${JSON.stringify(mark)} ]; then touch ${JSON.stringify(mark)}; echo bye; exit 3; fi; echo "steady $$"; exec sleep 1000`;
    const s = spec(droplet, [{ name: 'flaky', command: flaky }]);
    await runtime.ensureInstance(s);
    const recovered = await waitFor('restarted RUNNING', () => {
      const st = statusOf(runtime, s.id);
      return st?.state === 'RUNNING' && st.crashCount === 1 ? st : undefined;
    });
    expect(existsSync(mark)).toBe(true);
    expect(recovered.lastExit?.reason).toBe('APP/PROC/WEB/SIDECAR/FLAKY: Exited with status 3');
    expect(logs.some((l) => l.sourceType === 'APP/PROC/WEB/SIDECAR/FLAKY/0' && l.text === 'bye')).toBe(true);
    const steady = await waitFor('steady sidecar', () => logs.find((l) => l.text.startsWith('steady ')));
    const sidecarPid = Number(steady.text.split(' ')[1]);
    expect(isAlive(sidecarPid)).toBe(true);

    await runtime.stopInstance(s.id);
    expect(isAlive(recovered.pid!)).toBe(false);
    expect(isAlive(sidecarPid)).toBe(false);
  });

  it('an instance without sidecars starts only its main process', async () => {
    const { runtime, logs } = makeRuntime();
    const s = spec(makeDroplet(), undefined);
    await runtime.ensureInstance(s);
    await waitFor('RUNNING', () => statusOf(runtime, s.id)?.state === 'RUNNING');
    expect(logs.some((l) => l.sourceType.includes('SIDECAR'))).toBe(false);
    await runtime.stopInstance(s.id);
  });
});
