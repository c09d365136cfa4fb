import { statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveSandbox } from '../../src/runtime/local/sandbox.ts';
import { FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * The attack from issue 8 against a real server: a space developer's task tries to print the token signing key,
 * the database and Kiln's own environment (the admin password lives there) into its logs. With the sandbox on it
 * sees none of them; with it off, Kiln says so in /readyz and in the staging log.
 */

/** bubblewrap installed and able to create namespaces here (CI installs it; .ci/run). */
const hasBwrap = resolveSandbox('auto').kind === 'bwrap';
const CANARY = 'kiln-e2e-canary-7c1e';

interface Envelope {
  tags: { source_type: string };
  log?: { payload: string };
}

let server: ServerProcess | undefined;
afterEach(() => server?.stop());

async function setUp(env: Record<string, string>) {
  server = await startServerProcess({ env });
  const api = server.url;
  const token = (await cliLogin(api, 'admin', server.adminPassword)).access_token;
  const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);
  const org = await call('POST', '/v3/organizations', { name: 'sbx-org' });
  const space = await call('POST', '/v3/spaces', { name: 'dev', relationships: { organization: { data: { guid: org.body.guid } } } });
  const client = pushClient({ api, token, spaceGuid: space.body.guid });
  return { server, api, call, client };
}

async function logLines(call: (m: string, u: string) => Promise<{ body: { envelopes: { batch: Envelope[] } } }>, appGuid: string, sourcePrefix: string): Promise<string[]> {
  const logs = await call('GET', `/api/v1/read/${appGuid}?envelope_types=LOG&limit=1000&start_time=-6795364578871345152`);
  return logs.body.envelopes.batch
    .filter((e) => e.tags.source_type.toUpperCase().startsWith(sourcePrefix.toUpperCase()) && e.log)
    .map((e) => Buffer.from(e.log!.payload, 'base64').toString());
}

function probe(name: string, file: string): string {
  return `if cat ${file} >/dev/null 2>&1; then echo "${name} READABLE"; else echo "${name} BLOCKED"; fi`;
}

describe.skipIf(!hasBwrap)('sandbox against a real server', () => {
  it('a task cannot read the signing key, the database or Kiln\'s environment', async () => {
    const { server, api, call, client } = await setUp({ KILN_SANDBOX: 'bwrap', KILN_SANDBOX_E2E_CANARY: CANARY });
    const ready = await fetch(`${api}/readyz`);
    expect(await ready.json()).toMatchObject({ status: 'ok', isolation: { sandbox: 'bwrap' } });
    // Run as root, Kiln keeps its data dir to itself.
    if (process.getuid?.() === 0) expect(statSync(server.dataDir).mode & 0o777).toBe(0o700);

    const appGuid = await client.push('prober', path.join(FIXTURES, 'hello'));
    const command = [
      probe('key', path.join(server.dataDir, 'identity', 'signing-key.json')),
      probe('relative-key', '$HOME/../../../identity/signing-key.json'),
      probe('database', path.join(server.dataDir, 'kiln.sqlite')),
      probe('environ', `/proc/${server.child.pid}/environ`),
      probe('own-app', '/home/vcap/app/package.json'),
      'env | grep -c kiln-e2e-canary | sed "s/^/canary vars: /"',
    ].join('; ');
    const task = await call('POST', `/v3/apps/${appGuid}/tasks`, { command, name: 'probe' });
    expect(task.status, JSON.stringify(task.body)).toBe(202);
    const done = await until('task finished', async () => {
      const t = await call('GET', `/v3/tasks/${task.body.guid}`);
      return t.body.state === 'SUCCEEDED' || t.body.state === 'FAILED' ? t.body : undefined;
    });
    expect(done.state).toBe('SUCCEEDED');
    const lines = await until('task output', async () => {
      const out = await logLines(call, appGuid, 'APP/TASK/PROBE');
      return out.some((l) => l.startsWith('canary vars: ')) ? out : undefined;
    });
    expect(lines).toEqual(
      expect.arrayContaining(['key BLOCKED', 'relative-key BLOCKED', 'database BLOCKED', 'environ BLOCKED', 'own-app READABLE', 'canary vars: 0']),
    );

    // A memory hog fails like on CF, with the out-of-memory exit as its reason (kernel cgroup or RSS poll).
    const hog = await call('POST', `/v3/apps/${appGuid}/tasks`, {
      command: 'exec node -e "const a = []; setInterval(() => a.push(Buffer.alloc(16 << 20, 1)), 10)"',
      name: 'hog',
      memory_in_mb: 64,
    });
    expect(hog.status, JSON.stringify(hog.body)).toBe(202);
    const hogDone = await until('hog finished', async () => {
      const t = await call('GET', `/v3/tasks/${hog.body.guid}`);
      return t.body.state === 'SUCCEEDED' || t.body.state === 'FAILED' ? t.body : undefined;
    });
    expect(hogDone).toMatchObject({ state: 'FAILED', result: { failure_reason: 'APP/TASK/hog: Exited with status 137 (out of memory)' } });
  }, 120_000);

  it('with KILN_SANDBOX=none, /readyz and every staging log say apps are not isolated', async () => {
    const { api, call, client } = await setUp({ KILN_SANDBOX: 'none' });
    const ready = (await (await fetch(`${api}/readyz`)).json()) as { isolation?: { sandbox: string; warning?: string } };
    expect(ready.isolation?.sandbox).toBe('none');
    expect(ready.isolation?.warning).toContain('apps are not isolated from each other or from Kiln');
    const appGuid = await client.push('unisolated', path.join(FIXTURES, 'hello'));
    const staging = await logLines(call, appGuid, 'STG');
    expect(staging.some((l) => l.includes('apps are not isolated from each other or from Kiln'))).toBe(true);
    expect(server!.output.join('\n')).toContain('apps are not isolated from each other or from Kiln');
  }, 120_000);
});
