import { X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstanceIdentityCA, type IssuedCredential } from '../../src/identity/instance-identity.ts';
import { createMtlsServer } from '../../src/router/mtls-listener.ts';
import { Router } from '../../src/router/router.ts';
import { backendAt, echoBackend, listen, type TestServer } from './helpers.ts';

/**
 * The router's route policy check (gorouter's mtls_sni_check, mtls_pre_auth, mtls_route_policies_auth) over a
 * real mTLS listener: who gets through to a route on an enforcing domain, and with which status.
 */

const caller = { appGuid: 'a0000000-0000-4000-8000-000000000001', spaceGuid: 'b0000000-0000-4000-8000-000000000001', organizationGuid: 'c0000000-0000-4000-8000-000000000001' };
const stranger = { appGuid: 'a0000000-0000-4000-8000-000000000002', spaceGuid: 'b0000000-0000-4000-8000-000000000002', organizationGuid: 'c0000000-0000-4000-8000-000000000002' };

let ca: InstanceIdentityCA;
let router: Router;
let backend: TestServer;
let plain: TestServer;
let mtls: https.Server;
let mtlsPort: number;
let callerCred: IssuedCredential;
let strangerCred: IssuedCredential;
let foreignCred: IssuedCredential;

beforeAll(async () => {
  ca = await InstanceIdentityCA.open(join(mkdtempSync(join(tmpdir(), 'kiln-rp-')), 'ca'));
  const foreign = await InstanceIdentityCA.open(join(mkdtempSync(join(tmpdir(), 'kiln-rp-')), 'ca'));
  [callerCred, strangerCred, foreignCred] = await Promise.all([
    ca.issue({ ...caller, instanceGuid: 'i1' }),
    ca.issue({ ...stranger, instanceGuid: 'i2' }),
    foreign.issue({ ...caller, instanceGuid: 'i3' }),
  ]);
  backend = await echoBackend('b');
  router = new Router();
  for (const host of ['app.mtls.test', 'open.mtls.test', 'plain.test']) router.table.setBackends(host, [backendAt('b', backend.port)]);
  plain = await listen(http.createServer(router.handle).on('upgrade', router.handleUpgrade));
  mtls = await createMtlsServer({ router, ca, defaultNames: ['localhost', '127.0.0.1'] });
  await new Promise<void>((resolve) => mtls.listen(0, '127.0.0.1', resolve));
  mtlsPort = (mtls.address() as AddressInfo).port;
  // RSA keys are generated here; on a loaded machine that can take seconds.
}, 60_000);
afterAll(async () => {
  mtls.closeAllConnections();
  await new Promise<void>((resolve) => mtls.close(() => resolve()));
  await plain.close();
  await backend.close();
  router.close();
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function call(host: string, cred?: IssuedCredential, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: mtlsPort, servername: host, path: '/', headers: { host, ...headers }, ca: [ca.caCertPem], agent: false, ...(cred ? { cert: cred.certPem, key: cred.keyPem } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function callPlain(host: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: plain.port, path: '/', headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

const enforce = (sources: string[]) => router.table.setAccess('app.mtls.test', { sources });

describe('a route on a domain that enforces route policies', () => {
  it('lets a caller whose app has a policy through, and tells the app who called', async () => {
    enforce([`cf:app:${caller.appGuid}`]);
    const res = await call('app.mtls.test', callerCred, { 'x-forwarded-client-cert': 'forged' });
    expect(res.status, res.text).toBe(200);
    const seen = JSON.parse(res.text).headers;
    const forwarded = new X509Certificate(Buffer.from(seen['x-forwarded-client-cert'], 'base64'));
    expect(forwarded.subject).toContain(`OU=app:${caller.appGuid}`);
    expect(seen['x-forwarded-proto']).toBe('https');
  });

  it('refuses another app with 403 and no X-Cf-Routererror, as gorouter', async () => {
    enforce([`cf:app:${caller.appGuid}`]);
    const res = await call('app.mtls.test', strangerCred);
    expect(res.status).toBe(403);
    expect(res.headers['x-cf-routererror']).toBeUndefined();
    expect(res.text).toContain(`caller app ${stranger.appGuid} not in route_policies`);
  });

  it('admits by space, by org and cf:any', async () => {
    enforce([`cf:space:${caller.spaceGuid}`]);
    expect((await call('app.mtls.test', callerCred)).status).toBe(200);
    expect((await call('app.mtls.test', strangerCred)).status).toBe(403);
    enforce([`cf:org:${caller.organizationGuid}`]);
    expect((await call('app.mtls.test', callerCred)).status).toBe(200);
    enforce(['cf:any']);
    expect((await call('app.mtls.test', strangerCred)).status).toBe(200);
  });

  it("refuses callers outside the domain's route_policies_scope before looking at the policies", async () => {
    const own = { spaceGuid: caller.spaceGuid, organizationGuid: caller.organizationGuid };
    router.table.setAccess('app.mtls.test', { sources: ['cf:any'], scope: 'space', ...own });
    expect((await call('app.mtls.test', callerCred)).status).toBe(200);
    const other = await call('app.mtls.test', strangerCred);
    expect(other.status).toBe(403);
    expect(other.text).toContain(`caller space ${stranger.spaceGuid} does not match selected backend space ${caller.spaceGuid}`);
    router.table.setAccess('app.mtls.test', { sources: ['cf:any'], scope: 'org', ...own });
    expect((await call('app.mtls.test', strangerCred)).text).toContain('does not match selected backend org');
    router.table.setAccess('app.mtls.test', { sources: ['cf:any'], scope: 'any', ...own });
    expect((await call('app.mtls.test', strangerCred)).status).toBe(200);
  });

  it('refuses everybody when the route has no policies (default deny)', async () => {
    enforce([]);
    const res = await call('app.mtls.test', callerCred);
    expect(res.status).toBe(403);
    expect(res.text).toContain('route has no route policies configured');
  });

  it('refuses a caller without a certificate, or with one of another CA, even under cf:any', async () => {
    enforce(['cf:any']);
    for (const cred of [undefined, foreignCred]) {
      const res = await call('app.mtls.test', cred);
      expect(res.status).toBe(403);
      expect(res.text).toContain('certificate does not contain CF identity OU fields');
    }
  });

  it('answers 421 Misdirected Request on the plain port, as gorouter does without mutual TLS', async () => {
    enforce(['cf:any']);
    const res = await callPlain('app.mtls.test');
    expect(res.status).toBe(421);
    expect(res.headers['x-cf-routererror']).toBeUndefined();
  });

  it('opens again when the domain stops enforcing', async () => {
    router.table.setAccess('app.mtls.test', undefined);
    expect((await callPlain('app.mtls.test')).status).toBe(200);
  });
});

describe('routes that do not enforce route policies', () => {
  it('serve any caller on both ports, with or without a certificate', async () => {
    expect((await call('open.mtls.test')).status).toBe(200);
    expect((await call('open.mtls.test', foreignCred)).status).toBe(200);
    expect((await callPlain('plain.test')).status).toBe(200);
  });

  it('still answer unknown routes 404 unknown_route on the mTLS port', async () => {
    const res = await call('nothing.mtls.test', callerCred);
    expect(res.status).toBe(404);
    expect(res.headers['x-cf-routererror']).toBe('unknown_route');
  });

  it('serve a certificate for the name the client asked for, signed by the Kiln CA', async () => {
    const cert = await new Promise<X509Certificate>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: mtlsPort, servername: 'open.mtls.test', headers: { host: 'open.mtls.test' }, ca: [ca.caCertPem], agent: false }, (res) => {
        resolve(new X509Certificate((res.socket as import('node:tls').TLSSocket).getPeerCertificate().raw));
        res.resume();
      });
      req.on('error', reject);
      req.end();
    });
    expect(cert.subjectAltName).toBe('DNS:open.mtls.test');
    expect(cert.checkIssued(new X509Certificate(ca.caCertPem))).toBe(true);
  });
});

describe('protocol upgrades to an enforcing route', () => {
  it('are refused like requests: 421 on the plain port, without X-Cf-Routererror', async () => {
    enforce(['cf:any']);
    const head = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: plain.port, path: '/', headers: { host: 'app.mtls.test', connection: 'Upgrade', upgrade: 'websocket' }, agent: false });
      req.on('response', (res) => {
        resolve(`${res.statusCode} ${res.headers['x-cf-routererror'] ?? '-'}`);
        res.resume();
      });
      req.on('upgrade', () => reject(new Error('upgraded')));
      req.on('error', reject);
      req.end();
    });
    expect(head).toBe('421 -');
  });

  it('on the mTLS port: 403 for a caller without a policy, passed through for one with', async () => {
    enforce([`cf:app:${caller.appGuid}`]);
    const upgrade = (cred: IssuedCredential) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request({
          host: '127.0.0.1',
          port: mtlsPort,
          servername: 'app.mtls.test',
          headers: { host: 'app.mtls.test', connection: 'Upgrade', upgrade: 'websocket' },
          ca: [ca.caCertPem],
          cert: cred.certPem,
          key: cred.keyPem,
          agent: false,
        });
        req.on('response', (res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
        });
        req.on('upgrade', () => reject(new Error('upgraded')));
        req.on('error', reject);
        req.end();
      });
    expect(await upgrade(strangerCred)).toBe(403);
    // The echo backend declines the upgrade and answers normally; the router relays that answer.
    expect(await upgrade(callerCred)).toBe(200);
  });
});
