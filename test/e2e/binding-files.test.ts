import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * File-based service bindings against the real server, its sandbox and router (issue 9 §6): an app pushed with
 * `service-binding-k8s` reads its bindings from SERVICE_BINDING_ROOT; binding, rotating a user-provided
 * instance's credentials and unbinding change the files under the running instance (the same incarnation, no restart);
 * `file-based-vcap-services` (after a restart, as a feature change needs) puts VCAP_SERVICES in a file.
 */

let server: ServerProcess;
let api: string;
let token: string;
let spaceGuid: string;
let client: ReturnType<typeof pushClient>;
const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);

beforeAll(async () => {
  server = await startServerProcess();
  api = server.url;
  token = (await cliLogin(api, 'admin', server.adminPassword)).access_token;
  const org = await call('POST', '/v3/organizations', { name: 'files-org' });
  const space = await call('POST', '/v3/spaces', { name: 'dev', relationships: { organization: { data: { guid: org.body.guid } } } });
  spaceGuid = space.body.guid;
  client = pushClient({ api, token, spaceGuid });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

interface Seen {
  boot: string;
  vcapEnv: string | null;
  root: string | null;
  file: string | null;
  bindings: Record<string, Record<string, string>> | null;
  vcapFile: string | null;
}

async function seenBy(what: string, ok: (s: Seen) => boolean): Promise<Seen> {
  return until(what, async () => {
    const r = await client.viaRouter('files.apps.localhost');
    if (r.status !== 200) return undefined;
    const s = JSON.parse(r.body) as Seen;
    return ok(s) ? s : undefined;
  }, 60_000, 100);
}

describe('service bindings as files', () => {
  let appGuid: string;
  let upsiGuid: string;
  let bindingGuid: string;
  let boot: string;

  it('cf push with features service-binding-k8s: SERVICE_BINDING_ROOT and no VCAP_SERVICES', async () => {
    appGuid = await client.push('files', path.join(FIXTURES, 'binding-files'), '  features:\n    service-binding-k8s: true\n');
    const seen = await seenBy('the app answers', () => true);
    expect(seen).toMatchObject({ vcapEnv: null, root: '/etc/cf-service-bindings', bindings: {} });
    boot = seen.boot;
  }, 120_000);

  it('a new binding reaches the running instance as files, without a restart', async () => {
    const ups = await call('POST', '/v3/service_instances', {
      type: 'user-provided',
      name: 'my-ups',
      relationships: { space: { data: { guid: spaceGuid } } },
      credentials: { username: 'u', password: 'first-pw' },
      tags: ['db'],
    });
    expect(ups.status).toBe(201);
    upsiGuid = ups.body.guid;
    const bind = await call('POST', '/v3/service_credential_bindings', {
      type: 'app',
      name: 'my-db',
      relationships: { service_instance: { data: { guid: upsiGuid } }, app: { data: { guid: appGuid } } },
    });
    expect(bind.status).toBe(201);
    bindingGuid = bind.body.guid;
    const seen = await seenBy('the binding files', (s) => s.bindings?.['my-db'] !== undefined);
    expect(seen.boot).toBe(boot);
    expect(seen.bindings!['my-db']).toMatchObject({
      username: 'u',
      password: 'first-pw',
      type: 'user-provided',
      provider: 'user-provided',
      label: 'user-provided',
      name: 'my-db',
      'binding-guid': bindingGuid,
      'binding-name': 'my-db',
      'instance-guid': upsiGuid,
      'instance-name': 'my-ups',
      tags: '["db"]',
    });
  }, 60_000);

  it('rotated credentials replace the files in place', async () => {
    expect((await call('PATCH', `/v3/service_instances/${upsiGuid}`, { credentials: { username: 'u', password: 'rotated-pw' } })).status).toBe(200);
    const seen = await seenBy('the rotated password', (s) => s.bindings?.['my-db']?.password === 'rotated-pw');
    expect(seen.boot).toBe(boot);
  }, 60_000);

  it('unbinding removes the binding directory', async () => {
    const res = await call('DELETE', `/v3/service_credential_bindings/${bindingGuid}`);
    expect([202, 204]).toContain(res.status);
    const seen = await seenBy('the binding gone', (s) => s.bindings !== null && s.bindings['my-db'] === undefined);
    expect(seen.boot).toBe(boot);
    expect(seen.bindings).toEqual({});
  }, 60_000);

  it('file-based-vcap-services after a restart: VCAP_SERVICES in a file, updated in place', async () => {
    expect((await call('PATCH', `/v3/apps/${appGuid}/features/service-binding-k8s`, { enabled: false })).status).toBe(200);
    expect((await call('PATCH', `/v3/apps/${appGuid}/features/file-based-vcap-services`, { enabled: true })).status).toBe(200);
    expect((await call('POST', `/v3/apps/${appGuid}/actions/restart`)).status).toBe(200);
    const before = await seenBy('the restarted app', (s) => s.file !== null);
    expect(before).toMatchObject({ vcapEnv: null, root: null, file: '/etc/cf-service-bindings/vcap_services' });
    expect(JSON.parse(before.vcapFile!)).toEqual({});
    const bind = await call('POST', '/v3/service_credential_bindings', {
      type: 'app',
      relationships: { service_instance: { data: { guid: upsiGuid } }, app: { data: { guid: appGuid } } },
    });
    expect(bind.status).toBe(201);
    const seen = await seenBy('VCAP_SERVICES in the file', (s) => s.vcapFile !== null && s.vcapFile.includes('rotated-pw'));
    expect(seen.boot).toBe(before.boot);
    expect(JSON.parse(seen.vcapFile!)['user-provided'][0]).toMatchObject({ name: 'my-ups', credentials: { username: 'u', password: 'rotated-pw' } });
  }, 120_000);
});
