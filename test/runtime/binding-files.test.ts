import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BindingFileSet } from '../../src/runtime/local/binding-files.ts';
import { LocalRuntime } from '../../src/runtime/local/local-runtime.ts';
import { resolveSandbox, type Identity } from '../../src/runtime/local/sandbox.ts';
import type { BindingFiles, InstanceSpec, LogLine, TaskSpec } from '../../src/runtime/runtime.ts';
import { IncompatibleBindings, k8sBindingFiles } from '../../src/lifecycle/binding-files.ts';

/**
 * Service bindings as files (issue 9 §6): CC's servicebinding.io layout, the files a task or instance reads at
 * Diego's path inside the sandbox (read-only, the app's own), and updates of a running instance in place.
 */

const hasBwrap = resolveSandbox('auto').kind === 'bwrap';
const isRoot = process.getuid?.() === 0;
const APP_IDENTITY: Identity = { uid: 201_401, gid: 201_401 };
const OTHER_IDENTITY: Identity = { uid: 201_402, gid: 201_402 };
const APP = 'a1111111-1111-4111-8111-111111111111';
const OTHER = 'b2222222-2222-4222-8222-222222222222';

let dataDir: string;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'kiln-bindings-'));
});

function droplet(): string {
  const dir = join(dataDir, 'droplet');
  mkdirSync(join(dir, 'app'), { recursive: true });
  return dir;
}

const upsi = (name: string, credentials: Record<string, unknown>) => ({
  label: 'user-provided',
  name,
  tags: [],
  instance_guid: 'i-1',
  instance_name: name,
  binding_guid: 'b-1',
  binding_name: null,
  credentials,
  syslog_drain_url: null,
  volume_mounts: [],
});

function sandboxedRuntime(dir = mkdtempSync(join(tmpdir(), 'kiln-rt-'))): LocalRuntime {
  const runtime = new LocalRuntime({
    dataDir: dir,
    sandbox: resolveSandbox('bwrap'),
    ...(isRoot ? { identityFor: async (app: string) => (app === APP ? APP_IDENTITY : OTHER_IDENTITY) } : {}),
  });
  cleanups.push(() => runtime.shutdown());
  return runtime;
}

let counter = 0;
async function runTask(runtime: LocalRuntime, appGuid: string, command: string, bindingFiles?: BindingFiles): Promise<string[]> {
  const logs: LogLine[] = [];
  runtime.onLog((line) => logs.push(line));
  const spec: TaskSpec = { id: `task-${++counter}`, appGuid, dropletDir: droplet(), command, env: {}, memoryMb: 256, diskMb: 256, ...(bindingFiles ? { bindingFiles } : {}) };
  await runtime.runTask(spec);
  const deadline = Date.now() + 20_000;
  while (runtime.taskStatus(spec.id)?.state === 'RUNNING') {
    if (Date.now() > deadline) throw new Error('task did not finish');
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(runtime.taskStatus(spec.id)?.state, JSON.stringify(logs.map((l) => l.text))).toBe('SUCCEEDED');
  // Only this task's lines: an instance of the same runtime may be logging meanwhile.
  return logs.filter((l) => l.sourceType.startsWith(`APP/TASK/${spec.id}/`)).map((l) => l.text);
}

describe('the servicebinding.io layout', () => {
  it("has a file per credential, CC's dashed attribute files, type and provider, and skips empty values", () => {
    const files = k8sBindingFiles({
      'user-provided': [upsi('my-db', { uri: 'postgres://u:p@h/db', port: 5432, nested: { a: 1 }, empty: {}, none: null })],
      'fixture-db': [{ ...upsi('cache', { password: 's3cret' }), label: 'fixture-db', provider: null, plan: 'small', tags: ['x'] }],
    });
    expect(files).toEqual({
      'my-db/uri': 'postgres://u:p@h/db',
      'my-db/port': '5432',
      'my-db/nested': '{"a":1}',
      'my-db/label': 'user-provided',
      'my-db/name': 'my-db',
      'my-db/instance-guid': 'i-1',
      'my-db/instance-name': 'my-db',
      'my-db/binding-guid': 'b-1',
      'my-db/type': 'user-provided',
      'my-db/provider': 'user-provided',
      'cache/password': 's3cret',
      'cache/label': 'fixture-db',
      'cache/plan': 'small',
      'cache/name': 'cache',
      'cache/tags': '["x"]',
      'cache/instance-guid': 'i-1',
      'cache/instance-name': 'cache',
      'cache/binding-guid': 'b-1',
      'cache/type': 'fixture-db',
      'cache/provider': 'fixture-db',
    });
  });

  it('refuses names a directory or file could not have, and duplicate binding names', () => {
    expect(() => k8sBindingFiles({ 'user-provided': [upsi('My_DB', {})] })).toThrow(IncompatibleBindings);
    expect(() => k8sBindingFiles({ 'user-provided': [upsi('db', { 'Bad Key': 1 })] })).toThrow('Invalid file name: Bad Key');
    expect(() => k8sBindingFiles({ 'user-provided': [upsi('db', {}), upsi('db', {})] })).toThrow('Duplicate binding name: db');
  });
});

describe('binding files on disk', () => {
  it('are swapped atomically through ..data, and entries of removed bindings disappear', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'kiln-scratch-'));
    const set = new BindingFileSet({ kind: 'k8s', files: { 'db/password': 'one', 'db/type': 'user-provided', 'mq/url': 'amqp://x' } }, undefined);
    set.install(scratch);
    const root = join(scratch, 'service-bindings');
    expect(statSync(root).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(root, 'db', 'password'), 'utf8')).toBe('one');
    expect(statSync(join(root, 'db', 'password')).mode & 0o777).toBe(0o600);
    expect(set.update({ kind: 'k8s', files: { 'db/password': 'two', 'db/type': 'user-provided' } })).toBe(true);
    expect(readFileSync(join(root, 'db', 'password'), 'utf8')).toBe('two');
    expect(readdirSync(root).filter((e) => !e.startsWith('..')).sort()).toEqual(['db']);
    // One data version remains: the old one is removed once the link points at the new one.
    expect(readdirSync(root).filter((e) => e.startsWith('..') && e !== '..data')).toHaveLength(1);
    // The other kind would contradict the variable the process started with: refused.
    expect(set.update({ kind: 'vcap-services', files: { vcap_services: '{}' } })).toBe(false);
    expect(readFileSync(join(root, 'db', 'password'), 'utf8')).toBe('two');
  });
});

describe.skipIf(!hasBwrap)('binding files in the sandbox', () => {
  it("are read by a task at SERVICE_BINDING_ROOT, read-only, with no VCAP_SERVICES beside them", async () => {
    const runtime = sandboxedRuntime();
    const files: BindingFiles = { kind: 'k8s', files: { 'my-db/password': 'hunter2', 'my-db/type': 'user-provided' } };
    const out = await runTask(
      runtime,
      APP,
      [
        'echo "root=$SERVICE_BINDING_ROOT vcap=${VCAP_SERVICES:-unset}"',
        'echo "password=$(cat "$SERVICE_BINDING_ROOT/my-db/password")"',
        'echo "type=$(cat "$SERVICE_BINDING_ROOT/my-db/type")"',
        'if echo x > "$SERVICE_BINDING_ROOT/my-db/password" 2>/dev/null; then echo WRITABLE; else echo READONLY; fi',
      ].join('; '),
      files,
    );
    expect(out).toContain('root=/etc/cf-service-bindings vcap=unset');
    expect(out).toContain('password=hunter2');
    expect(out).toContain('type=user-provided');
    expect(out).toContain('READONLY');
    // Another app's task, started while the first one's files would exist, sees no bindings at all.
    const other = await runTask(runtime, OTHER, 'if ls /etc/cf-service-bindings >/dev/null 2>&1; then echo VISIBLE; else echo ABSENT; fi; find / -name password -path "*my-db*" 2>/dev/null | head -1; echo done');
    expect(other).toContain('ABSENT');
    expect(other.filter((l) => l.includes('my-db'))).toEqual([]);
  });

  it('change in place for a running instance, which keeps running (no restart)', async () => {
    const runtimeDir = mkdtempSync(join(tmpdir(), 'kiln-rt-'));
    const runtime = sandboxedRuntime(runtimeDir);
    const logs: string[] = [];
    runtime.onLog((l) => {
      if (l.sourceType.startsWith('APP/')) logs.push(l.text);
    });
    const spec: InstanceSpec = {
      id: `proc-1:v1:0`,
      appGuid: APP,
      processGuid: 'proc-1',
      processType: 'web',
      version: 'v1',
      index: 0,
      dropletDir: droplet(),
      command: 'while true; do echo "file=$(cat "$VCAP_SERVICES_FILE_PATH" 2>&1)"; sleep 0.1; done',
      env: {},
      memoryMb: 256,
      diskMb: 256,
      healthCheck: { type: 'process' },
      bindingFiles: { kind: 'vcap-services', files: { vcap_services: '{"user-provided":[]}' } },
    };
    await runtime.ensureInstance(spec);
    const waitFor = async (text: string) => {
      const deadline = Date.now() + 20_000;
      while (!logs.includes(text)) {
        if (Date.now() > deadline) throw new Error(`never saw ${text}: ${logs.slice(-5).join(' | ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await waitFor('file={"user-provided":[]}');
    const pid = runtime.listInstances({ processGuid: 'proc-1' })[0]!.pid;
    const rotated = '{"user-provided":[{"credentials":{"password":"rotated"}}]}';
    runtime.updateBindingFiles(APP, { kind: 'vcap-services', files: { vcap_services: rotated } });
    await waitFor(`file=${rotated}`);
    // Every read saw a whole file: the old JSON or the new one, nothing torn or missing.
    expect(logs.filter((l) => l !== 'file={"user-provided":[]}' && l !== `file=${rotated}`)).toEqual([]);
    const now = runtime.listInstances({ processGuid: 'proc-1' })[0]!;
    expect(now.pid).toBe(pid);
    expect(now.crashCount).toBe(0);
    // On the host the files are the app's alone; another app's task (running meanwhile) reaches them by no path.
    const hostDir = execFileSync('find', [runtimeDir, '-type', 'd', '-name', 'service-bindings'], { encoding: 'utf8' }).trim();
    expect(hostDir).not.toBe('');
    expect(statSync(hostDir).mode & 0o777).toBe(0o700);
    if (isRoot) expect(statSync(hostDir).uid).toBe(APP_IDENTITY.uid);
    const other = await runTask(
      runtime,
      OTHER,
      `if ls /etc/cf-service-bindings >/dev/null 2>&1; then echo VISIBLE; else echo ABSENT; fi; if cat ${JSON.stringify(join(hostDir, 'vcap_services'))} >/dev/null 2>&1; then echo HOST-READABLE; else echo HOST-BLOCKED; fi`,
    );
    expect(other).toEqual(['ABSENT', 'HOST-BLOCKED']);
    // Another app's update does not reach this instance.
    runtime.updateBindingFiles(OTHER, { kind: 'vcap-services', files: { vcap_services: '{}' } });
    const count = logs.length;
    const deadline = Date.now() + 500;
    while (Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(logs.slice(count).every((l) => l === `file=${rotated}`)).toBe(true);
  });
});
