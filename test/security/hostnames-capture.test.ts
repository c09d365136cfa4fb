import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { startKiln, type RunningKiln } from '../../src/server.ts';
import { backendAt, echoBackend, request, type TestServer } from '../router/helpers.ts';

/**
 * The attack of issue 8: an org manager registers a private domain that names Kiln's API (`127.0.0.1`,
 * `localhost`, the system domain, …) and maps a route on it, hoping to receive every API request — bearer
 * tokens included. Against a real listening server: the names are refused, and even a route that does sit in
 * the router table for an API host is never served.
 */
let kiln: RunningKiln;
let port: number;
let backend: TestServer;
let managerToken: string;
let orgGuid: string;
let adminToken: string;

async function api(token: string, method: string, url: string, body?: unknown, host = 'localhost') {
  const res = await request(port, {
    host: `${host}:${port}`,
    path: url,
    method,
    headers: { authorization: `bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: res.text ? JSON.parse(res.text) : undefined, headers: res.headers };
}

beforeAll(async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-hostnames-'));
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    KILN_DATA_DIR: dataDir,
    DATABASE_URL: 'sqlite::memory:',
    KILN_ADMIN_PASSWORD: 'admin-secret',
    KILN_SYSTEM_DOMAIN: 'sys.kiln.test',
    KILN_APPS_DOMAIN: 'apps.kiln.test',
    LOG_LEVEL: 'silent',
  });
  kiln = await startKiln(config, { log: pino({ level: 'silent' }) });
  port = Number(new URL(kiln.url).port);
  backend = await echoBackend('tenant-app');
  adminToken = (await kiln.identity.passwordGrant('admin', 'admin-secret')).access_token;
  const org = await api(adminToken, 'POST', '/v3/organizations', { name: 'tenant' });
  orgGuid = org.body.guid;
  const manager = await kiln.identity.createUser({ userName: 'mallory', password: 'mallory-secret' });
  expect((await api(adminToken, 'POST', '/v3/roles', { type: 'organization_manager', relationships: { user: { data: { guid: manager.id } }, organization: { data: { guid: orgGuid } } } })).status).toBe(201);
  managerToken = (await kiln.identity.passwordGrant('mallory', 'mallory-secret')).access_token;
});

afterAll(async () => {
  await backend?.close();
  await kiln?.stop();
  fs.rmSync(kiln.config.dataDir, { recursive: true, force: true });
});

const privateDomain = (name: string) => ({ name, relationships: { organization: { data: { guid: orgGuid } } } });

describe('tenants cannot capture Kiln hostnames', () => {
  it.each([
    ['127.0.0.1', 'Name must not be an IP address'],
    ['10.0.0.1', 'Name must not be an IP address'],
    ['kiln.0x7f', 'Name must not be an IP address'],
  ])('refuses the IP address %s as a domain name', async (name, detail) => {
    const res = await api(managerToken, 'POST', '/v3/domains', privateDomain(name));
    expect(res.status).toBe(422);
    expect(res.body.errors[0]).toMatchObject({ title: 'CF-UnprocessableEntity', code: 10008 });
    expect(res.body.errors[0].detail).toContain(detail);
  });

  it('refuses a bare name like localhost as a domain name', async () => {
    const res = await api(managerToken, 'POST', '/v3/domains', privateDomain('localhost'));
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toContain('Name must contain at least one "."');
  });

  it.each(['sys.kiln.test', 'SYS.kiln.test', 'api.sys.kiln.test', 'deep.under.sys.kiln.test', 'kiln.test'])(
    'refuses the private domain %s, which is or surrounds the system domain',
    async (name) => {
      const res = await api(managerToken, 'POST', '/v3/domains', privateDomain(name));
      expect(res.status).toBe(422);
      expect(res.body.errors[0]).toEqual({
        title: 'CF-UnprocessableEntity',
        code: 10008,
        detail: `The domain name "${name}" is reserved and cannot be used for org-scoped domains.`,
      });
    },
  );

  it('refuses a private domain equal to or under the shared apps domain', async () => {
    const equal = await api(managerToken, 'POST', '/v3/domains', privateDomain('apps.kiln.test'));
    expect(equal.status).toBe(422);
    expect(equal.body.errors[0].detail).toBe('The domain name "apps.kiln.test" is already in use');
    const under = await api(managerToken, 'POST', '/v3/domains', privateDomain('mine.apps.kiln.test'));
    expect(under.status).toBe(422);
    expect(under.body.errors[0].detail).toBe(
      'The domain name "mine.apps.kiln.test" cannot be created because "apps.kiln.test" is already reserved by another domain',
    );
  });

  it('refuses even the admin a shared domain named like the API', async () => {
    for (const name of ['sys.kiln.test', 'api.sys.kiln.test', 'uaa.sys.kiln.test']) {
      const res = await api(adminToken, 'POST', '/v3/domains', { name });
      expect(res.status, name).toBe(422);
      expect(res.body.errors[0].detail).toBe(`The domain name "${name}" is reserved by the platform.`);
    }
    expect((await kiln.store.db.selectFrom('domains').select('name').execute()).map((d) => d.name)).toEqual(['apps.kiln.test']);
  });

  it('refuses a route that spells an API host on a domain the admin shared', async () => {
    const shared = await api(adminToken, 'POST', '/v3/domains', { name: 'kiln.test' });
    expect(shared.status).toBe(201);
    const space = await api(adminToken, 'POST', '/v3/spaces', { name: 'dev', relationships: { organization: { data: { guid: orgGuid } } } });
    const res = await api(adminToken, 'POST', '/v3/routes', {
      host: 'sys',
      relationships: { space: { data: { guid: space.body.guid } }, domain: { data: { guid: shared.body.guid } } },
    });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toBe('Route conflicts with a reserved system route.');
  });

  it('refuses the same route when a manifest asks for it', async () => {
    const space = (await api(adminToken, 'GET', `/v3/spaces?names=dev&organization_guids=${orgGuid}`)).body.resources[0];
    const manifest = 'applications:\n- name: squatter\n  routes:\n  - route: sys.kiln.test\n';
    const applied = await request(port, {
      host: 'localhost',
      path: `/v3/spaces/${space.guid}/actions/apply_manifest`,
      method: 'POST',
      headers: { authorization: `bearer ${adminToken}`, 'content-type': 'application/x-yaml' },
      body: manifest,
    });
    expect(applied.status).toBe(202);
    const jobPath = new URL(String(applied.headers.location)).pathname;
    const deadline = Date.now() + 10_000;
    let job = (await api(adminToken, 'GET', jobPath)).body;
    while (job.state === 'PROCESSING' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      job = (await api(adminToken, 'GET', jobPath)).body;
    }
    expect(job.state).toBe('FAILED');
    expect(job.errors[0].detail).toContain('Route conflicts with a reserved system route.');
    expect(await kiln.store.db.selectFrom('routes').select('host').where('host', '=', 'sys').execute()).toEqual([]);
  });

  it('never routes an API host to an app, even when the router table has a route for it', async () => {
    // What a captured domain would have produced: routes for the API's names pointing at a tenant's app.
    const captured = ['localhost', '127.0.0.1', 'sys.kiln.test', 'api.sys.kiln.test', '*.kiln.test'];
    for (const host of captured) kiln.router.table.setBackends(host, [backendAt(`capture-${host}`, backend.port)]);
    onTestFinished(() => {
      for (const host of captured) kiln.router.table.removeRoute(host);
    });
    for (const host of ['localhost', 'LOCALHOST.', `127.0.0.1:${port}`, 'sys.kiln.test', 'Sys.Kiln.Test.:80', 'api.sys.kiln.test']) {
      const res = await request(port, { host, path: '/v3/organizations', headers: { authorization: `bearer ${adminToken}` } });
      expect(res.headers['x-backend'], host).toBeUndefined();
      expect(res.status, host).toBe(200);
      expect(JSON.parse(res.text).resources.map((o: { name: string }) => o.name)).toContain('tenant');
    }
    // The wildcard still serves hosts that are not the API's.
    expect((await request(port, { host: 'other.kiln.test', path: '/' })).headers['x-backend']).toBe('tenant-app');
  });

  it.each(['x.apps.kiln.test..', 'apps.kiln.test', 'APPS.kiln.test.', 'unknown.apps.kiln.test:8080'])(
    'answers the app-domain host %s with the router 404, never the API',
    async (host) => {
      const res = await request(port, { host, path: '/v3' });
      expect(res.status).toBe(404);
      expect(res.headers['x-cf-routererror']).toBe('unknown_route');
    },
  );
});
