import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { LocalRuntime, type LocalRuntimeOptions } from '../../src/runtime/local/local-runtime.ts';
import { isAlive, liveGroupMembers, readProcStat } from '../../src/runtime/local/proc.ts';
import { diegoRestartDelayMs } from '../../src/runtime/local/backoff.ts';
import { DEFAULT_PATH } from '../../src/runtime/local/environment.ts';
import type { InstanceSpec, InstanceStatus, LogLine, TaskSpec } from '../../src/runtime/runtime.ts';
import { afterEachCleanup } from '../helpers/cleanup.ts';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/runtime');
const SERVER = join(FIXTURES, 'server.mjs');
const NODE = JSON.stringify(process.execPath);

const { cleanups, tempDir } = afterEachCleanup();

/** A droplet as staging leaves it: `app/`, plus a buildpack profile.d script and an app .profile.d script. */
function makeDroplet(): string {
  const dir = tempDir('kiln-droplet-');
  mkdirSync(join(dir, 'app', '.profile.d'), { recursive: true });
  mkdirSync(join(dir, 'profile.d'));
  writeFileSync(join(dir, 'profile.d', '0_buildpack.sh'), 'export FROM_BUILDPACK_PROFILE="bp:$DEPS_DIR"\n');
  writeFileSync(join(dir, 'app', '.profile.d', 'app.sh'), 'export FROM_APP_PROFILE=app\n');
  writeFileSync(join(dir, 'app', 'payload.bin'), Buffer.alloc(100_000));
  return dir;
}

interface Harness {
  runtime: LocalRuntime;
  logs: LogLine[];
  states: Map<string, string[]>;
}

function makeRuntime(options: Partial<LocalRuntimeOptions> = {}, dataDir = tempDir('kiln-data-')): Harness {
  const runtime = new LocalRuntime({
    dataDir,
    startPollMs: 20,
    livenessIntervalMs: 100,
    graceMs: 2_000,
    restartDelayMs: () => 20,
    ...options,
  });
  const logs: LogLine[] = [];
  const states = new Map<string, string[]>();
  runtime.onLog((line) => logs.push(line));
  runtime.onChange((event) => {
    if (event.kind !== 'instance') return;
    const status = runtime.listInstances().find((s) => s.id === event.id);
    const list = states.get(event.id) ?? [];
    list.push(status?.state ?? 'GONE');
    states.set(event.id, list);
  });
  cleanups.push(() => runtime.shutdown());
  return { runtime, logs, states };
}

let counter = 0;
function instanceSpec(dropletDir: string, overrides: Partial<InstanceSpec> = {}): InstanceSpec {
  const index = overrides.index ?? 0;
  const id = `proc-${++counter}:v1:${index}`;
  return {
    id,
    appGuid: 'app-1',
    processGuid: `proc-${counter}`,
    processType: 'web',
    version: 'v1',
    index,
    dropletDir,
    command: `exec ${NODE} ${JSON.stringify(SERVER)}`,
    env: { GREETING: 'hi' },
    memoryMb: 512,
    diskMb: 1024,
    healthCheck: { type: 'port' },
    ...overrides,
  };
}

/** Polls a condition until it holds or the deadline passes (no fixed sleeps). */
async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function statusOf(runtime: LocalRuntime, id: string): InstanceStatus | undefined {
  return runtime.listInstances().find((s) => s.id === id);
}

function waitState(runtime: LocalRuntime, id: string, state: string, timeoutMs?: number): Promise<InstanceStatus> {
  return waitFor(`${id} ${state}`, () => {
    const s = statusOf(runtime, id);
    return s?.state === state ? s : undefined;
  }, timeoutMs);
}

describe('local runtime: instances', () => {
  it('starts a process gated by the port check, with the CF environment, logs and stats, and stops it', async () => {
    const { runtime, logs, states } = makeRuntime();
    const droplet = makeDroplet();
    const spec = instanceSpec(droplet, { index: 2 });
    await runtime.ensureInstance(spec);
    await runtime.ensureInstance(spec); // idempotent
    expect(runtime.listInstances({ processGuid: spec.processGuid })).toHaveLength(1);
    const running = await waitState(runtime, spec.id, 'RUNNING');
    expect(states.get(spec.id)?.[0]).toBe('STARTING');
    expect(running).toMatchObject({ appGuid: 'app-1', index: 2, host: '127.0.0.1', crashCount: 0 });
    expect(running.port).toBeGreaterThan(0);

    const env = (await (await fetch(`http://127.0.0.1:${running.port}/env`)).json()) as Record<string, string>;
    expect(env).toMatchObject({
      GREETING: 'hi',
      PORT: String(running.port),
      HOME: join(droplet, 'app'),
      CF_INSTANCE_INDEX: '2',
      INSTANCE_INDEX: '2',
      CF_INSTANCE_PORT: String(running.port),
      CF_INSTANCE_ADDR: `127.0.0.1:${running.port}`,
      MEMORY_LIMIT: '512m',
      // Built from scratch: never Kiln's own PATH.
      PATH: DEFAULT_PATH,
      FROM_BUILDPACK_PROFILE: `bp:${join(droplet, 'deps')}`,
      FROM_APP_PROFILE: 'app',
    });
    expect(env.CF_INSTANCE_GUID).toMatch(/^[0-9a-f-]{36}$/);
    expect(env.TMPDIR).toContain(join('runtime', 'tmp'));

    await waitFor('stderr line', () => logs.some((l) => l.stream === 'stderr' && l.text === 'a line on stderr'));
    expect(logs.find((l) => l.text === `listening on ${running.port}`)).toMatchObject({
      appGuid: 'app-1',
      sourceType: 'APP/PROC/WEB/2',
      instance: '2',
      stream: 'stdout',
    });

    // CPU: the first sample averages since start, the next one measures the burn in between.
    await runtime.stats(spec.id);
    await fetch(`http://127.0.0.1:${running.port}/burn?ms=300`);
    const stats = await runtime.stats(spec.id);
    expect(stats).toBeDefined();
    // The fixture spins; on a loaded machine it gets little CPU, so only require that some was measured.
    expect(stats!.cpu).toBeGreaterThan(0);
    expect(stats!.cpu).toBeLessThan(4);
    expect(stats!.memBytes).toBeGreaterThan(5 * 1024 * 1024);
    expect(stats!.memBytes).toBeLessThan(1024 * 1024 * 1024);
    expect(stats!.diskBytes).toBeGreaterThanOrEqual(100_000);
    expect(stats!.uptimeSeconds).toBeGreaterThanOrEqual(0);

    const started = Date.now();
    await runtime.stopInstance(spec.id, { graceMs: 5_000 });
    expect(Date.now() - started).toBeLessThan(4_000); // it honoured SIGTERM, no SIGKILL wait
    expect(isAlive(running.pid!)).toBe(false);
    expect(runtime.listInstances({ processGuid: spec.processGuid })).toEqual([]);
    expect(states.get(spec.id)?.slice(-2)).toEqual(['STOPPING', 'GONE']);
    await runtime.stopInstance(spec.id); // idempotent
  });

  it('gates RUNNING on an http health check', async () => {
    const { runtime, logs } = makeRuntime();
    const droplet = makeDroplet();
    const readyFile = join(droplet, 'app', 'ready');
    const spec = instanceSpec(droplet, {
      env: { READY_FILE: readyFile },
      healthCheck: { type: 'http', endpoint: '/health', invocationTimeoutSeconds: 1 },
    });
    await runtime.ensureInstance(spec);
    await waitFor('two failing health checks', () => logs.filter((l) => l.text === 'health 503').length >= 2);
    expect(statusOf(runtime, spec.id)?.state).toBe('STARTING');
    writeFileSync(readyFile, '');
    await waitState(runtime, spec.id, 'RUNNING');
    expect(logs.some((l) => l.text === 'health 200')).toBe(true);
  });

  it('reports a crash as CRASHED with the exit and restarts it', async () => {
    const { runtime, states, logs } = makeRuntime();
    const spec = instanceSpec(makeDroplet(), {
      command: 'echo booting; exit 3',
      healthCheck: { type: 'process' },
    });
    await runtime.ensureInstance(spec);
    const status = await waitFor('two crashes', () => {
      const s = statusOf(runtime, spec.id);
      return s && s.crashCount >= 2 ? s : undefined;
    });
    expect(status.lastExit).toMatchObject({ code: 3, signal: null, reason: 'APP/PROC/WEB: Exited with status 3' });
    const seen = states.get(spec.id) ?? [];
    expect(seen).toContain('CRASHED');
    expect(seen.indexOf('RUNNING', seen.indexOf('CRASHED'))).toBeGreaterThan(0); // came back after the crash
    expect(logs.filter((l) => l.text === 'booting').length).toBeGreaterThanOrEqual(2);
    expect(logs.some((l) => l.sourceType === 'CELL/0' && l.text === 'Exit status 3')).toBe(true);
  });

  it('crashes an instance that never becomes healthy, and one that stops answering once RUNNING', async () => {
    const { runtime } = makeRuntime({ maxCrashes: 1 });
    const never = instanceSpec(makeDroplet(), {
      command: `exec ${NODE} -e "setInterval(() => {}, 1000)"`,
      healthCheck: { type: 'port', timeoutSeconds: 1 },
    });
    const flaky = instanceSpec(makeDroplet());
    await Promise.all([runtime.ensureInstance(never), runtime.ensureInstance(flaky)]);

    const running = await waitState(runtime, flaky.id, 'RUNNING');
    await fetch(`http://127.0.0.1:${running.port}/unlisten`);
    const unhealthy = await waitState(runtime, flaky.id, 'CRASHED');
    expect(unhealthy.lastExit?.reason).toMatch(/^Instance became unhealthy: Failed to make TCP connection to port \d+: connection refused$/);
    expect(isAlive(running.pid!)).toBe(false);

    const crashed = await waitState(runtime, never.id, 'CRASHED', 5_000);
    expect(crashed.lastExit?.reason).toMatch(/^Instance never healthy after 1s: Failed to make TCP connection/);
    expect(crashed.lastExit?.signal).toBe('SIGKILL');
  });

  it('reports a droplet without app/ as a crash instead of throwing', async () => {
    const { runtime } = makeRuntime({ maxCrashes: 1 });
    const spec = instanceSpec(tempDir('kiln-empty-droplet-'));
    await runtime.ensureInstance(spec);
    const crashed = await waitState(runtime, spec.id, 'CRASHED');
    expect(crashed.lastExit?.reason).toMatch(/^APP\/PROC\/WEB: failed to start: droplet has no app directory/);
    expect(await runtime.stats(spec.id)).toBeUndefined();
    await runtime.stopInstance(spec.id);
    expect(statusOf(runtime, spec.id)).toBeUndefined();
  });

  it('an instance whose crash-safety record cannot be written fails to start and runs nothing', async () => {
    const dataDir = tempDir('kiln-data-');
    const { runtime } = makeRuntime({ maxCrashes: 1 }, dataDir);
    // The records directory replaced by a file: every write fails (as root, permissions would not stop it).
    const procs = join(dataDir, 'runtime', 'procs');
    rmSync(procs, { recursive: true });
    writeFileSync(procs, 'not a directory');
    const ran = join(tempDir('kiln-mark-'), 'ran');
    const spec = instanceSpec(makeDroplet(), { command: `touch ${JSON.stringify(ran)}; exec ${NODE} ${JSON.stringify(SERVER)}` });
    await runtime.ensureInstance(spec);
    const crashed = await waitState(runtime, spec.id, 'CRASHED');
    expect(crashed.lastExit?.reason).toMatch(/failed to start: cannot record the process for crash safety/);
    expect(existsSync(ran)).toBe(false);
  });

  it('restartInstance replaces the incarnation without counting a crash', async () => {
    const { runtime } = makeRuntime();
    const spec = instanceSpec(makeDroplet());
    await runtime.ensureInstance(spec);
    const first = await waitState(runtime, spec.id, 'RUNNING');
    await runtime.restartInstance(spec.id);
    expect(isAlive(first.pid!)).toBe(false);
    const second = await waitState(runtime, spec.id, 'RUNNING');
    expect(second.pid).not.toBe(first.pid);
    expect(second.crashCount).toBe(0);
    expect(second.lastExit).toBeUndefined();
    expect(await (await fetch(`http://127.0.0.1:${second.port}/`)).text()).toBe('hello from 0');
  });

  it('stop sends SIGTERM to the group, then SIGKILL after the grace period, leaving no child behind', async () => {
    const { runtime, logs } = makeRuntime();
    const spec = instanceSpec(makeDroplet(), { env: { IGNORE_TERM: '1', SPAWN_CHILD: '1' } });
    await runtime.ensureInstance(spec);
    const running = await waitState(runtime, spec.id, 'RUNNING');
    const childLine = await waitFor('child pid', () => logs.find((l) => l.text.startsWith('child pid ')));
    const childPid = Number(childLine.text.slice('child pid '.length));
    expect(isAlive(childPid)).toBe(true);
    expect(readProcStat(childPid)?.pgid).toBe(running.pid);

    const started = Date.now();
    await runtime.stopInstance(spec.id, { graceMs: 400 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(logs.some((l) => l.text === 'ignoring SIGTERM')).toBe(true);
    expect(isAlive(running.pid!)).toBe(false);
    // kill(pid, 0) alone would see zombies, which linger where init does not reap orphans.
    expect(isAlive(childPid)).toBe(false);
  });
});

describe('local runtime: tasks', () => {
  function taskSpec(dropletDir: string, name: string, command: string): TaskSpec {
    return { id: `task-${++counter}`, name, appGuid: 'app-1', dropletDir, command, env: { X: 'y' }, memoryMb: 128, diskMb: 128 };
  }

  it('runs tasks to SUCCEEDED or FAILED and cancels them', async () => {
    const { runtime, logs } = makeRuntime({ graceMs: 300 });
    const droplet = makeDroplet();
    const ok = taskSpec(droplet, 'migrate', 'echo "migrating $X $CF_INSTANCE_INDEX"');
    const bad = taskSpec(droplet, 'broken', 'exit 3');
    const slow = taskSpec(droplet, 'slow', `exec ${NODE} -e "process.on('SIGTERM', () => {}); console.log('started'); setInterval(() => {}, 1000)"`);
    await Promise.all([runtime.runTask(ok), runtime.runTask(bad), runtime.runTask(slow)]);
    expect(runtime.taskStatus(slow.id)?.state).toBe('RUNNING');

    await waitFor('tasks done', () => runtime.taskStatus(ok.id)?.state !== 'RUNNING' && runtime.taskStatus(bad.id)?.state !== 'RUNNING');
    expect(runtime.taskStatus(ok.id)).toEqual({ id: ok.id, state: 'SUCCEEDED', exitCode: 0 });
    expect(runtime.taskStatus(bad.id)).toEqual({
      id: bad.id,
      state: 'FAILED',
      exitCode: 3,
      failureReason: 'APP/TASK/broken: Exited with status 3',
    });
    expect(logs.find((l) => l.text === 'migrating y 0')).toMatchObject({ sourceType: 'APP/TASK/migrate/0', instance: '0' });

    await waitFor('slow task output', () => logs.some((l) => l.text === 'started'));
    const started = Date.now();
    await runtime.cancelTask(slow.id);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300); // ignored SIGTERM, so it took the SIGKILL
    expect(runtime.taskStatus(slow.id)).toMatchObject({ state: 'FAILED', failureReason: 'task was cancelled' });
    await runtime.cancelTask(slow.id); // idempotent
    await runtime.cancelTask(ok.id); // finished tasks stay as they were
    expect(runtime.taskStatus(ok.id)?.state).toBe('SUCCEEDED');
  });
});

describe('local runtime: crash safety', () => {
  /** Starts the fixture Kiln (one port-checked instance `orphan:v1:0`), SIGKILLs it and returns the orphan. */
  async function orphanOfDeadKiln(dataDir: string, droplet: string): Promise<{ pid: number; port: number }> {
    const { kiln, line, exited } = await kilnChild(dataDir, droplet);
    const orphan = JSON.parse(line) as { pid: number; port: number };
    cleanups.push(() => {
      try {
        process.kill(-orphan.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    kiln.kill('SIGKILL');
    await exited;
    expect(isAlive(orphan.pid)).toBe(true); // orphaned, still running
    return orphan;
  }

  /** Starts the fixture Kiln (test/fixtures/runtime/kiln-child.ts) and returns it with the first line it prints. */
  async function kilnChild(dataDir: string, droplet: string, env: Record<string, string> = {}) {
    const kiln = spawn(process.execPath, ['--import', 'tsx', join(FIXTURES, 'kiln-child.ts'), dataDir, droplet, SERVER], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    });
    const exited = new Promise((r) => kiln.once('exit', r));
    cleanups.push(() => {
      if (kiln.exitCode === null && kiln.signalCode === null) kiln.kill('SIGKILL');
    });
    const line = await new Promise<string>((resolveLine, reject) => {
      createInterface({ input: kiln.stdout! }).once('line', resolveLine);
      void exited.then(() => reject(new Error('kiln child exited before printing')));
    });
    return { kiln, line, exited };
  }

  /** An unrelated live process with a stale record of its pid (another start time): it must survive. */
  function bystanderWithStaleRecord(dataDir: string): number {
    const bystander = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' });
    cleanups.push(() => {
      try {
        process.kill(-bystander.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    writeFileSync(
      join(dataDir, 'runtime', 'procs', `${bystander.pid}.json`),
      JSON.stringify({ id: 'x', kind: 'instance', pid: bystander.pid, pgid: bystander.pid, startTicks: 1, createdAt: 0 }),
    );
    return bystander.pid!;
  }

  it('kills the process groups a dead Kiln left behind, and only those, when adoption is off', async () => {
    const dataDir = tempDir('kiln-data-');
    const { pid: appPid } = await orphanOfDeadKiln(dataDir, makeDroplet());
    const bystander = bystanderWithStaleRecord(dataDir);

    const { runtime } = makeRuntime({ adopt: false }, dataDir);
    expect(runtime.reaped.map((r) => r.pid)).toEqual([appPid]);
    expect(runtime.reaped[0]).toMatchObject({ id: 'orphan:v1:0', kind: 'instance' });
    expect(runtime.listInstances()).toEqual([]);
    await waitFor('orphan gone', () => !isAlive(appPid), 5_000);
    expect(isAlive(bystander)).toBe(true);
    expect(readdirSync(join(dataDir, 'runtime', 'procs'))).toEqual([]);
  });

  it('adopts the instances a dead Kiln left behind: same pid and port, claimed by ensureInstance, stopped like its own', async () => {
    const dataDir = tempDir('kiln-data-');
    const droplet = makeDroplet();
    const orphan = await orphanOfDeadKiln(dataDir, droplet);
    const bystander = bystanderWithStaleRecord(dataDir);

    const { runtime } = makeRuntime({}, dataDir);
    expect(runtime.reaped).toEqual([]);
    expect(runtime.adopted.map((r) => r.pid)).toEqual([orphan.pid]);
    // Listed at once, so the controllers' first resync sees it and neither starts a second one nor loses it.
    expect(runtime.listInstances()).toEqual([
      expect.objectContaining({ id: 'orphan:v1:0', appGuid: 'app-orphan', processGuid: 'proc-orphan', state: 'RUNNING', pid: orphan.pid, port: orphan.port }),
    ]);
    expect((await fetch(`http://127.0.0.1:${orphan.port}/`)).status).toBe(200);
    expect(await runtime.stats('orphan:v1:0')).toMatchObject({ memBytes: expect.any(Number) });

    // The controllers want the slot: it is claimed, not restarted.
    await runtime.ensureInstance(instanceSpec(droplet, { id: 'orphan:v1:0', appGuid: 'app-orphan', processGuid: 'proc-orphan' }));
    expect(runtime.listInstances()).toEqual([expect.objectContaining({ id: 'orphan:v1:0', state: 'RUNNING', pid: orphan.pid, port: orphan.port })]);
    expect(isAlive(bystander)).toBe(true);

    // As fast as a stop of its own child: the exit of an adopted leader (not our child, a zombie where init does
    // not reap) is looked at while the stop waits, not at the exit watcher's next tick (1 s, 5 s for a zombie).
    const t0 = Date.now();
    await runtime.stopInstance('orphan:v1:0');
    expect(Date.now() - t0).toBeLessThan(900);
    expect(isAlive(orphan.pid)).toBe(false);
    expect(runtime.listInstances()).toEqual([]);
    await waitFor('record removed', () => readdirSync(join(dataDir, 'runtime', 'procs')).length === 0, 5_000);
    // Its log FIFOs went with it (spare ones, made in batches for instances to come, may stay).
    await waitFor('log FIFOs removed', () => readdirSync(join(dataDir, 'runtime', 'logs')).every((f) => f.startsWith('spare-')), 5_000);
  });

  it('a Kiln SIGKILLed after starting a process but before recording it leaves nothing of it running', async () => {
    const dataDir = tempDir('kiln-data-');
    const droplet = makeDroplet();
    const ran = join(tempDir('kiln-mark-'), 'ran');
    // The fixture kills itself where the record would be written: the process exists, its record does not.
    const { line, exited } = await kilnChild(dataDir, droplet, { KILN_CHILD_DIE_BEFORE_RECORD: '1', KILN_CHILD_BEFORE: `touch ${JSON.stringify(ran)};` });
    const { pid } = JSON.parse(line) as { pid: number };
    cleanups.push(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    await exited;
    // Nobody could adopt or kill such a process, and the controllers would start a second copy beside it: it waits
    // at its gate for the record, sees the dead Kiln's end of the gate close, and ends before running anything.
    await waitFor('unrecorded process gone', () => !isAlive(pid) && liveGroupMembers(pid).length === 0, 5_000);
    expect(existsSync(ran)).toBe(false);
    const { runtime } = makeRuntime({}, dataDir);
    expect(runtime.adopted).toEqual([]);
    expect(runtime.reaped).toEqual([]);
    expect(runtime.listInstances()).toEqual([]);
  });

  it('an adopted instance keeps running when it logs, and its lines reach the new runtime, those written while no Kiln ran too', async () => {
    const dataDir = tempDir('kiln-data-');
    const droplet = makeDroplet();
    const orphan = await orphanOfDeadKiln(dataDir, droplet);
    // A line written while no Kiln runs: into a pipe of the dead Kiln this write failed (EPIPE) and took the app down.
    expect((await fetch(`http://127.0.0.1:${orphan.port}/health`)).status).toBe(200);
    const { runtime, logs } = makeRuntime({}, dataDir);
    expect(runtime.adopted.map((r) => r.pid)).toEqual([orphan.pid]);
    for (let i = 0; i < 2; i++) expect((await fetch(`http://127.0.0.1:${orphan.port}/health`)).status).toBe(200);
    const health = await waitFor('three health lines', () => {
      const lines = logs.filter((l) => l.text === 'health 200');
      return lines.length === 3 ? lines : undefined;
    }, 5_000);
    expect(health[0]).toMatchObject({ appGuid: 'app-orphan', sourceType: 'APP/PROC/WEB/0', stream: 'stdout' });
    expect(isAlive(orphan.pid)).toBe(true);
    expect(statusOf(runtime, 'orphan:v1:0')).toMatchObject({ state: 'RUNNING', pid: orphan.pid, crashCount: 0 });
  });

  it('notices an adopted instance exit and restarts it once claimed', async () => {
    const dataDir = tempDir('kiln-data-');
    const droplet = makeDroplet();
    const orphan = await orphanOfDeadKiln(dataDir, droplet);
    const { runtime } = makeRuntime({}, dataDir);
    process.kill(-orphan.pid, 'SIGKILL');
    await waitFor('crash noticed', () => runtime.listInstances()[0]?.state === 'CRASHED', 5_000);
    // Whichever notices first: the liveness check (100 ms here) or the exit watcher (status unknown: not our child).
    expect(runtime.listInstances()[0]?.lastExit?.reason).toMatch(/status unknown|became unhealthy/);
    // Unclaimed, it has no command to restart with; the claim restarts it.
    await runtime.ensureInstance(instanceSpec(droplet, { id: 'orphan:v1:0', appGuid: 'app-orphan', processGuid: 'proc-orphan' }));
    await waitFor('restarted', () => runtime.listInstances()[0]?.state === 'RUNNING', 10_000);
    expect(runtime.listInstances()[0]?.pid).not.toBe(orphan.pid);
    await runtime.shutdown();
  });

  it("uses Diego's restart schedule by default", () => {
    expect([1, 2, 3, 4, 5, 6, 9, 10, 50].map(diegoRestartDelayMs)).toEqual([
      0, 0, 0, 30_000, 60_000, 120_000, 960_000, 960_000, 960_000,
    ]);
  });
});
