import { chmodSync, mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectMemoryCgroups } from '../../src/runtime/local/cgroup.ts';
import { LocalRuntime } from '../../src/runtime/local/local-runtime.ts';
import { resolveSandbox, type Identity } from '../../src/runtime/local/sandbox.ts';
import type { InstanceSpec, LogLine, TaskSpec, TaskStatus } from '../../src/runtime/runtime.ts';
import { stage } from '../../src/staging/buildpack-runner.ts';
import { afterEachCleanup } from '../helpers/cleanup.ts';

/**
 * Apps are untrusted: with the bubblewrap sandbox a task or instance sees its own droplet, private scratch space
 * and its declared environment — never Kiln's signing key, database, environment or another app's files.
 */

/** bubblewrap installed and able to create namespaces here (CI installs it; .ci/run). */
const hasBwrap = resolveSandbox('auto').kind === 'bwrap';
const isRoot = process.getuid?.() === 0;
const CANARY = 'kiln-canary-4f1d2c';

const { cleanups, tempDir } = afterEachCleanup();

/** A data dir laid out like Kiln's, with a secret in each place an attacker would look. */
function kilnDataDir(): { dataDir: string; signingKey: string; database: string; otherDroplet: string } {
  const dataDir = tempDir('kiln-data-');
  mkdirSync(join(dataDir, 'identity'));
  const signingKey = join(dataDir, 'identity', 'signing-key.json');
  writeFileSync(signingKey, JSON.stringify({ kty: 'RSA', d: 'SECRET-SIGNING-KEY' }), { mode: 0o600 });
  const database = join(dataDir, 'kiln.sqlite');
  writeFileSync(database, 'SQLite format 3\0SECRET-DATABASE');
  const otherDroplet = join(dataDir, 'droplets', 'other-app', 'app');
  mkdirSync(otherDroplet, { recursive: true });
  writeFileSync(join(otherDroplet, 'secret.txt'), 'SECRET-OTHER-APP');
  return { dataDir, signingKey, database, otherDroplet };
}

function droplet(dataDir: string, name: string): string {
  const dir = join(dataDir, 'droplets', name);
  mkdirSync(join(dir, 'app'), { recursive: true });
  writeFileSync(join(dir, 'app', 'own.txt'), 'OWN-FILE');
  return dir;
}

const APP_IDENTITY: Identity = { uid: 201_234, gid: 201_234 };

function sandboxedRuntime(dataDir: string, extra: { livenessIntervalMs?: number } = {}) {
  const runtime = new LocalRuntime({
    dataDir,
    sandbox: resolveSandbox('bwrap'),
    // As root, apps get their own uid (the server allocates it in the store; here a fixed one).
    ...(isRoot ? { identityFor: async () => APP_IDENTITY } : {}),
    startPollMs: 20,
    livenessIntervalMs: extra.livenessIntervalMs ?? 100,
    graceMs: 2_000,
    restartDelayMs: () => 60_000,
  });
  const logs: LogLine[] = [];
  runtime.onLog((line) => logs.push(line));
  cleanups.push(() => runtime.shutdown());
  return { runtime, logs };
}

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let counter = 0;
async function runTask(runtime: LocalRuntime, dropletDir: string, command: string, overrides: Partial<TaskSpec> = {}): Promise<TaskStatus> {
  const spec: TaskSpec = {
    id: `task-${++counter}`,
    appGuid: 'app-1',
    dropletDir,
    command,
    env: { APP_VAR: 'declared' },
    memoryMb: 256,
    diskMb: 256,
    ...overrides,
  };
  await runtime.runTask(spec);
  return waitFor(`task ${spec.id} finished`, () => {
    const s = runtime.taskStatus(spec.id);
    return s && s.state !== 'RUNNING' ? s : undefined;
  });
}

/** Each probe prints `<name> READABLE` or `<name> BLOCKED`, so a typo cannot pass as "blocked" unnoticed. */
function probe(name: string, path: string): string {
  return `if cat ${JSON.stringify(path)} >/dev/null 2>&1; then echo "${name} READABLE"; else echo "${name} BLOCKED"; fi`;
}

const textOf = (logs: LogLine[]) => logs.filter((l) => l.sourceType.startsWith('APP/')).map((l) => l.text);

describe.skipIf(!hasBwrap)('sandbox: what an app can reach', () => {
  it('a task cannot read the signing key, the database, Kiln\'s environ or another app\'s droplet, but reads its own', async () => {
    const { dataDir, signingKey, database, otherDroplet } = kilnDataDir();
    const { runtime, logs } = sandboxedRuntime(dataDir);
    const command = [
      probe('key', signingKey),
      probe('relative-key', '$HOME/../../../identity/signing-key.json'),
      probe('database', database),
      probe('environ', `/proc/${process.pid}/environ`),
      probe('other-droplet', join(otherDroplet, 'secret.txt')),
      probe('own-file', '/home/vcap/app/own.txt'),
      'echo scratch > "$HOME/x" && echo scratch > /tmp/x && echo scratch > "$TMPDIR/x" && echo "scratch WRITABLE"',
      'if echo x > /home/vcap/app/new.txt 2>/dev/null; then echo "droplet WRITABLE"; else echo "droplet READONLY"; fi',
    ].join('\n');
    const status = await runTask(runtime, droplet(dataDir, 'app-1'), command);
    expect(status).toMatchObject({ state: 'SUCCEEDED' });
    const out = textOf(logs);
    expect(out).toEqual(
      expect.arrayContaining([
        'key BLOCKED',
        'relative-key BLOCKED',
        'database BLOCKED',
        'environ BLOCKED',
        'other-droplet BLOCKED',
        'own-file READABLE',
        'scratch WRITABLE',
        'droplet READONLY',
      ]),
    );
  });

  it('a task\'s environment holds what it declared and nothing of Kiln\'s', async () => {
    process.env.KILN_SANDBOX_CANARY = CANARY;
    cleanups.push(() => {
      delete process.env.KILN_SANDBOX_CANARY;
    });
    const { dataDir } = kilnDataDir();
    const { runtime, logs } = sandboxedRuntime(dataDir);
    await runTask(runtime, droplet(dataDir, 'app-1'), 'env; echo "canary in environ: $(grep -c kiln-canary /proc/*/environ 2>/dev/null | grep -vc :0)"');
    const out = textOf(logs);
    expect(out.join('\n')).not.toContain(CANARY);
    expect(out).toContain('APP_VAR=declared');
    expect(out).toContain('HOME=/home/vcap');
    expect(out).toContain('canary in environ: 0');
    // Kiln's own variables never leak (vitest sets these in every worker).
    expect(out.some((l) => l.startsWith('VITEST') || l.startsWith('NODE_OPTIONS='))).toBe(false);
  });

  it.skipIf(!isRoot)('as root, a task runs under the app\'s own unprivileged uid', async () => {
    const { dataDir } = kilnDataDir();
    const { runtime, logs } = sandboxedRuntime(dataDir);
    await runTask(runtime, droplet(dataDir, 'app-1'), 'echo "uid=$(id -u) gid=$(id -g) user=$(whoami)"');
    expect(textOf(logs)).toContain(`uid=${APP_IDENTITY.uid} gid=${APP_IDENTITY.gid} user=vcap`);
  });

  it('an instance sees only its own processes', async () => {
    const { dataDir } = kilnDataDir();
    const { runtime, logs } = sandboxedRuntime(dataDir);
    const spec: InstanceSpec = {
      id: 'proc-ps:v1:0',
      appGuid: 'app-1',
      processGuid: 'proc-ps',
      processType: 'web',
      version: 'v1',
      index: 0,
      dropletDir: droplet(dataDir, 'app-1'),
      command: 'echo "processes: $(ls /proc | grep -cE "^[0-9]+$")"; ps -e -o comm= | sed "s/^/ps: /"; exec sleep 600',
      env: {},
      memoryMb: 128,
      diskMb: 128,
      healthCheck: { type: 'process' },
    };
    await runtime.ensureInstance(spec);
    await waitFor('ps output', () => textOf(logs).some((l) => l === 'ps: ps'));
    const out = textOf(logs);
    const commands = out.filter((l) => l.startsWith('ps: ')).map((l) => l.slice(4));
    // bwrap's init, the launcher shell (and the subshell running ps), ps itself: never Kiln (node) or anything else.
    expect(commands).not.toContain('node');
    expect(new Set(commands)).toEqual(new Set(commands.filter((c) => ['bwrap', 'sh', 'ps', 'sed'].includes(c))));
    const count = Number(out.find((l) => l.startsWith('processes: '))?.slice('processes: '.length));
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThanOrEqual(5);
  });

  it('an instance logs to its own FIFOs and holds no other descriptor of Kiln: the FIFOs lead nowhere into the data dir', async () => {
    const { dataDir, signingKey } = kilnDataDir();
    const { runtime, logs } = sandboxedRuntime(dataDir);
    const logDir = '"$(dirname "$(readlink /proc/$$/fd/1)")"';
    const spec: InstanceSpec = {
      id: 'proc-fds:v1:0',
      appGuid: 'app-1',
      processGuid: 'proc-fds',
      processType: 'web',
      version: 'v1',
      index: 0,
      dropletDir: droplet(dataDir, 'app-1'),
      // What the app holds: stdin, and stdout/stderr on the FIFOs under <data>/runtime/logs (adoption is on here).
      command: [
        // ls reads the launcher shell's descriptors while the shell waits (its output file is opened in the subshell).
        '(ls -l /proc/$$/fd > /tmp/fds); sed -n "s/.* \\([0-9][0-9]*\\) -> \\(.*\\)/fd \\1 \\2/p" /tmp/fds',
        `if ls ${logDir} >/dev/null 2>&1; then echo "log dir READABLE"; else echo "log dir BLOCKED"; fi`,
        `if cat ${logDir}/../../identity/signing-key.json >/dev/null 2>&1; then echo "key via log dir READABLE"; else echo "key via log dir BLOCKED"; fi`,
        probe('key', signingKey),
        'echo done; exec sleep 600',
      ].join('; '),
      env: {},
      memoryMb: 128,
      diskMb: 128,
      healthCheck: { type: 'process' },
    };
    await runtime.ensureInstance(spec);
    await waitFor('probe output', () => textOf(logs).includes('done'));
    const out = textOf(logs);
    const fds = out.filter((l) => l.startsWith('fd '));
    const logFifos = join(dataDir, 'runtime', 'logs');
    expect(fds.find((l) => l.startsWith('fd 1 '))).toMatch(new RegExp(`^fd 1 ${logFifos}/[0-9a-f-]+\\.stdout$`));
    expect(fds.find((l) => l.startsWith('fd 2 '))).toMatch(new RegExp(`^fd 2 ${logFifos}/[0-9a-f-]+\\.stderr$`));
    // Nothing beyond 0, 1 and 2: no start gate (fd 3 is closed before the app starts), no socket or pipe of Kiln's.
    // (Descriptors this test process inherited from whoever started it pass through everything; not Kiln's.)
    const inherited = new Set(readdirSync('/proc/self/fd').map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    }));
    expect(fds.filter((l) => !/^fd [012] /.test(l) && !inherited.has(l.split(' ').slice(2).join(' ')))).toEqual([]);
    expect(out).toContain('log dir BLOCKED');
    expect(out).toContain('key via log dir BLOCKED');
    expect(out).toContain('key BLOCKED');
  });

  it('an instance over its memory limit is killed and reported as out of memory', async () => {
    const { dataDir } = kilnDataDir();
    // With kernel cgroups the kernel kills the hog; without them the liveness poll does — same report either way.
    const { runtime } = sandboxedRuntime(dataDir, { livenessIntervalMs: detectMemoryCgroups(dataDir) ? 60_000 : 100 });
    const spec: InstanceSpec = {
      id: 'proc-hog:v1:0',
      appGuid: 'app-1',
      processGuid: 'proc-hog',
      processType: 'web',
      version: 'v1',
      index: 0,
      dropletDir: droplet(dataDir, 'app-1'),
      command: `exec ${process.execPath} -e "const a = []; setInterval(() => a.push(Buffer.alloc(16 << 20, 1)), 10)"`,
      env: {},
      memoryMb: 64,
      diskMb: 64,
      healthCheck: { type: 'process' },
    };
    await runtime.ensureInstance(spec);
    const crashed = await waitFor('the hog crashed', () => {
      const s = runtime.listInstances().find((i) => i.id === spec.id);
      return s?.lastExit ? s : undefined;
    });
    expect(crashed.lastExit?.reason).toBe('APP/PROC/WEB: Exited with status 137 (out of memory)');
  });

  it('a task over its memory limit fails as out of memory', async () => {
    // The kernel's cgroup limit where Kiln can create one, the process-tree poll where not: same report.
    const { dataDir } = kilnDataDir();
    const { runtime } = sandboxedRuntime(dataDir);
    const status = await runTask(
      runtime,
      droplet(dataDir, 'app-1'),
      `exec ${process.execPath} -e "const a = []; setInterval(() => a.push(Buffer.alloc(16 << 20, 1)), 10)"`,
      { memoryMb: 64, name: 'hog' },
    );
    expect(status).toMatchObject({ state: 'FAILED', failureReason: 'APP/TASK/hog: Exited with status 137 (out of memory)' });
  });

  it('a buildpack stages in the sandbox: it writes its build dir and cache but cannot read Kiln\'s files', async () => {
    const { dataDir, signingKey, database } = kilnDataDir();
    const sandbox = resolveSandbox('bwrap');
    if (sandbox.kind !== 'bwrap') throw new Error('bwrap expected');
    const work = join(dataDir, 'staging');
    const app = join(dataDir, 'package');
    mkdirSync(app);
    writeFileSync(join(app, 'index.sh'), 'echo hi\n');
    const bp = join(dataDir, 'buildpacks', 'prober');
    mkdirSync(join(bp, 'bin'), { recursive: true });
    const script = (body: string) => `#!/bin/sh\n${body}\n`;
    writeFileSync(join(bp, 'bin', 'detect'), script('echo prober'));
    writeFileSync(
      join(bp, 'bin', 'finalize'),
      script([probe('key', signingKey), probe('database', database), 'echo built > "$1/built.txt"', 'echo cached > "$2/cache.txt"', 'echo "whoami $(id -u) $(whoami)"'].join('\n')),
    );
    writeFileSync(join(bp, 'bin', 'release'), script('echo "default_process_types: {web: sh index.sh}"'));
    for (const phase of ['detect', 'finalize', 'release']) chmodSync(join(bp, 'bin', phase), 0o755);
    const lines: string[] = [];
    const result = await stage({
      appDir: app,
      buildpacks: [{ name: 'prober', dir: bp }],
      workDir: work,
      cacheDir: join(dataDir, 'cache', 'app-1'),
      dropletPath: join(dataDir, 'droplet.tgz'),
      onOutput: (line) => lines.push(line),
      sandbox: { sandbox, ...(isRoot ? { identity: APP_IDENTITY } : {}) },
    });
    expect(result.startCommand).toBe('sh index.sh');
    expect(lines).toEqual(expect.arrayContaining(['key BLOCKED', 'database BLOCKED']));
    if (isRoot) expect(lines).toContain(`whoami ${APP_IDENTITY.uid} vcap`);
  });

  it('counts what an instance writes into its private HOME as its disk usage', async () => {
    const { dataDir } = kilnDataDir();
    const { runtime, logs } = sandboxedRuntime(dataDir);
    const spec: InstanceSpec = {
      id: 'proc-disk:v1:0',
      appGuid: 'app-1',
      processGuid: 'proc-disk',
      processType: 'web',
      version: 'v1',
      index: 0,
      dropletDir: droplet(dataDir, 'app-1'),
      command: 'head -c 3000000 /dev/zero > "$HOME/blob" && echo written; exec sleep 600',
      env: {},
      memoryMb: 128,
      diskMb: 64,
      healthCheck: { type: 'process' },
    };
    await runtime.ensureInstance(spec);
    await waitFor('the file written', () => textOf(logs).includes('written'));
    const stats = await runtime.stats(spec.id);
    expect(stats?.diskBytes).toBeGreaterThanOrEqual(3_000_000);
  });

  it('a sidecar shares its instance\'s HOME and /tmp, as in one CF container', async () => {
    const { dataDir } = kilnDataDir();
    const { runtime, logs } = sandboxedRuntime(dataDir);
    const spec: InstanceSpec = {
      id: 'proc-side:v1:0',
      appGuid: 'app-1',
      processGuid: 'proc-side',
      processType: 'web',
      version: 'v1',
      index: 0,
      dropletDir: droplet(dataDir, 'app-1'),
      command: 'echo from-main > "$HOME/shared"; echo from-main > /tmp/shared; exec sleep 600',
      env: {},
      memoryMb: 128,
      diskMb: 64,
      healthCheck: { type: 'process' },
      sidecars: [
        {
          name: 'reader',
          command: 'while [ ! -f /tmp/shared ]; do sleep 0.05; done; echo "sidecar read $(cat "$HOME/shared") $(cat /tmp/shared)"; exec sleep 600',
        },
      ],
    };
    await runtime.ensureInstance(spec);
    await waitFor('the sidecar read the files', () => textOf(logs).includes('sidecar read from-main from-main'));
  });

  it('a task cannot write a file larger than its disk quota', async () => {
    const { dataDir } = kilnDataDir();
    const { runtime, logs } = sandboxedRuntime(dataDir);
    const command = [
      'head -c 500000 /dev/zero > "$HOME/small" && echo "small written"',
      '(head -c 2000000 /dev/zero > "$HOME/big") 2>/dev/null && echo "big written" || echo "big refused"',
    ].join('; ');
    const status = await runTask(runtime, droplet(dataDir, 'app-1'), command, { diskMb: 1 });
    expect(status.state).toBe('SUCCEEDED');
    expect(textOf(logs)).toEqual(expect.arrayContaining(['small written', 'big refused']));
  });

  it('an app holds no capabilities, even when Kiln runs as root without a uid to give it', async () => {
    const { dataDir } = kilnDataDir();
    const runtime = new LocalRuntime({ dataDir, sandbox: resolveSandbox('bwrap') });
    const logs: LogLine[] = [];
    runtime.onLog((line) => logs.push(line));
    cleanups.push(() => runtime.shutdown());
    await runTask(runtime, droplet(dataDir, 'app-1'), 'grep -E "^Cap(Eff|Prm|Amb)" /proc/self/status');
    const caps = textOf(logs);
    expect(caps).toHaveLength(3);
    for (const line of caps) expect(line).toMatch(/:\s+0+$/);
  });

  it('without memory cgroups, a task over its memory limit is still stopped and reported as out of memory', async () => {
    const { dataDir } = kilnDataDir();
    const runtime = new LocalRuntime({ dataDir, sandbox: resolveSandbox('bwrap'), cgroups: false });
    cleanups.push(() => runtime.shutdown());
    const status = await runTask(
      runtime,
      droplet(dataDir, 'app-1'),
      `exec ${process.execPath} -e "const a = []; setInterval(() => a.push(Buffer.alloc(16 << 20, 1)), 10)"`,
      { memoryMb: 64, name: 'hog' },
    );
    expect(status).toMatchObject({ state: 'FAILED', failureReason: 'APP/TASK/hog: Exited with status 137 (out of memory)' });
  });
});
