import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InstanceIdentityCA } from '../../src/identity/instance-identity.ts';
import { InstanceCredentialFiles, renewDelayMs } from '../../src/runtime/local/credentials.ts';
import { LocalRuntime } from '../../src/runtime/local/local-runtime.ts';
import { resolveSandbox, type Identity } from '../../src/runtime/local/sandbox.ts';
import type { LogLine, TaskSpec } from '../../src/runtime/runtime.ts';

/**
 * Diego-style instance identity in the local runtime: every task and instance starts with CF_INSTANCE_CERT and
 * CF_INSTANCE_KEY naming its app, space and org; a sandbox sees them (read-only, at Diego's paths) but never
 * the CA's key; credentials are replaced before they expire.
 */

const hasBwrap = resolveSandbox('auto').kind === 'bwrap';
const isRoot = process.getuid?.() === 0;
const APP_IDENTITY: Identity = { uid: 201_345, gid: 201_345 };
const ids = { appGuid: 'a1111111-1111-4111-8111-111111111111', spaceGuid: 's2222222-2222-4222-8222-222222222222', organizationGuid: 'o3333333-3333-4333-8333-333333333333' };

let dataDir: string;
let ca: InstanceIdentityCA;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'kiln-creds-'));
  ca = await InstanceIdentityCA.open(join(dataDir, 'instance-identity'));
}, 60_000);

function droplet(name: string): string {
  const dir = join(dataDir, 'droplets', name);
  mkdirSync(join(dir, 'app'), { recursive: true });
  writeFileSync(join(dir, 'app', 'own.txt'), 'OWN-FILE');
  return dir;
}

let counter = 0;
async function runTask(runtime: LocalRuntime, command: string): Promise<string[]> {
  const logs: LogLine[] = [];
  runtime.onLog((line) => logs.push(line));
  const spec: TaskSpec = { id: `task-${++counter}`, ...ids, dropletDir: droplet('app'), command, env: {}, memoryMb: 256, diskMb: 256 };
  await runtime.runTask(spec);
  const deadline = Date.now() + 20_000;
  while (runtime.taskStatus(spec.id)?.state === 'RUNNING') {
    if (Date.now() > deadline) throw new Error('task did not finish');
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(runtime.taskStatus(spec.id)?.state, JSON.stringify(logs.map((l) => l.text))).toBe('SUCCEEDED');
  return logs.filter((l) => l.sourceType.startsWith('APP/')).map((l) => l.text);
}

const certLines = (text: string[]) => {
  const start = text.indexOf('-----BEGIN CERTIFICATE-----');
  const end = text.indexOf('-----END CERTIFICATE-----');
  return new X509Certificate(text.slice(start, end + 1).join('\n'));
};

describe('instance credentials without a sandbox', () => {
  it("give a task its own certificate and key files, naming its app, space and org", async () => {
    const runtime = new LocalRuntime({ dataDir: mkdtempSync(join(tmpdir(), 'kiln-rt-')), credentials: ca });
    cleanups.push(() => runtime.shutdown());
    const out = await runTask(runtime, 'echo "cert=$CF_INSTANCE_CERT"; echo "key=$CF_INSTANCE_KEY"; cat "$CF_INSTANCE_CERT"; test -r "$CF_INSTANCE_KEY" && echo key-readable');
    const cert = certLines(out);
    expect(cert.subject).toContain(`OU=app:${ids.appGuid}`);
    expect(cert.subject).toContain(`OU=space:${ids.spaceGuid}`);
    expect(cert.subject).toContain(`OU=organization:${ids.organizationGuid}`);
    expect(cert.checkIssued(new X509Certificate(ca.caCertPem))).toBe(true);
    expect(out).toContain('key-readable');
    expect(out.find((l) => l.startsWith('cert='))).toMatch(/credentials\/instance\.crt$/);
  });
});

describe.skipIf(!hasBwrap)('instance credentials in the sandbox', () => {
  it("are at Diego's paths, read-only, the key the app's own, and the CA's key out of reach", async () => {
    const runtime = new LocalRuntime({
      dataDir: mkdtempSync(join(tmpdir(), 'kiln-rt-')),
      sandbox: resolveSandbox('bwrap'),
      credentials: ca,
      ...(isRoot ? { identityFor: async () => APP_IDENTITY } : {}),
    });
    cleanups.push(() => runtime.shutdown());
    const caKey = join(dataDir, 'instance-identity', 'ca.key');
    const out = await runTask(
      runtime,
      [
        'echo "cert=$CF_INSTANCE_CERT key=$CF_INSTANCE_KEY system=$CF_SYSTEM_CERT_PATH"',
        'cat "$CF_INSTANCE_CERT"',
        'if head -c 10 "$CF_INSTANCE_KEY" >/dev/null 2>&1; then echo "key READABLE"; else echo "key BLOCKED"; fi',
        `if cat ${JSON.stringify(caKey)} >/dev/null 2>&1; then echo "ca-key READABLE"; else echo "ca-key BLOCKED"; fi`,
        'if echo x > "$CF_INSTANCE_KEY" 2>/dev/null; then echo "creds WRITABLE"; else echo "creds READONLY"; fi',
        'ls "$CF_SYSTEM_CERT_PATH"',
      ].join('; '),
    );
    expect(out).toContain('cert=/etc/cf-instance-credentials/instance.crt key=/etc/cf-instance-credentials/instance.key system=/etc/cf-system-certificates');
    expect(certLines(out).subject).toContain(`OU=app:${ids.appGuid}`);
    expect(out).toContain('key READABLE');
    expect(out).toContain('ca-key BLOCKED');
    expect(out).toContain('creds READONLY');
    expect(out).toContain('kiln-ca.crt');
  });
});

describe('renewal', () => {
  it('is due at three quarters of the lifetime, never sooner than a second', () => {
    const now = 1_000_000;
    expect(renewDelayMs({ notAfter: new Date(now + 86_400_000) }, 86_400_000, now)).toBe(64_800_000);
    expect(renewDelayMs({ notAfter: new Date(now - 5) }, 86_400_000, now)).toBe(1_000);
  });

  it('replaces the files with a new certificate and key in place', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-renew-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const files = await InstanceCredentialFiles.issue(ca, { ...ids, instanceGuid: 'i-1' }, undefined);
    cleanups.push(() => files.stop());
    files.install(dir);
    const before = { cert: readFileSync(join(dir, 'credentials', 'instance.crt'), 'utf8'), key: readFileSync(join(dir, 'credentials', 'instance.key'), 'utf8') };
    expect(statSync(join(dir, 'credentials', 'instance.key')).mode & 0o777).toBe(0o600);
    await files.renew();
    const cert = readFileSync(join(dir, 'credentials', 'instance.crt'), 'utf8');
    expect(cert).not.toBe(before.cert);
    expect(readFileSync(join(dir, 'credentials', 'instance.key'), 'utf8')).not.toBe(before.key);
    expect(new X509Certificate(cert).subject).toContain(`OU=app:${ids.appGuid}`);
  });
});
