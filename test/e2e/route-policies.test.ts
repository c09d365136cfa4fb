import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * Route policies end to end (issue 12 item 17): three pushed apps, a domain that enforces route policies, B's
 * route on it with the policy cf:app:<A>. A reaches B through the router's mTLS listener with its own instance
 * identity (CF_INSTANCE_CERT/KEY); C, whose certificate is just as valid, is refused 403; the plain port answers
 * 421; and once the policy is deleted A is refused too.
 */

let server: ServerProcess;
let api: string;
let token: string;
let mtlsPort: number;
let client: ReturnType<typeof pushClient>;
const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);
const B_HOST = 'b.mtls.test';

beforeAll(async () => {
  server = await startServerProcess();
  api = server.url;
  const listening = server.output.map((l) => (l.startsWith('{') ? (JSON.parse(l) as { msg?: string; mtlsUrl?: string }) : {})).find((e) => e.msg === 'Kiln is listening');
  mtlsPort = Number(new URL(listening!.mtlsUrl!).port);
  token = (await cliLogin(api, 'admin', server.adminPassword)).access_token;
  const org = await call('POST', '/v3/organizations', { name: 'rp-org' });
  const space = await call('POST', '/v3/spaces', { name: 'dev', relationships: { organization: { data: { guid: org.body.guid } } } });
  client = pushClient({ api, token, spaceGuid: space.body.guid });
}, 60_000);

afterAll(() => server?.stop());

/** Asks caller app `name` (through the plain router port) to call B's route through the mTLS listener. */
async function callThrough(name: string): Promise<{ status: number; routerError: string | null; body: string }> {
  const res = await client.viaRouter(`${name}.apps.localhost`, `/call?host=${B_HOST}&port=${mtlsPort}`);
  expect(res.status, res.body).toBe(200);
  return JSON.parse(res.body);
}

describe('route policies with the local runtime and the mTLS router listener', () => {
  it('admits the app a policy names, refuses others, and refuses it too once the policy is gone', async () => {
    const dir = path.join(FIXTURES, 'mtls-caller');
    const [a, b, c] = await Promise.all([client.push('rp-a', dir), client.push('rp-b', dir), client.push('rp-c', dir)]);

    const domain = await call('POST', '/v3/domains', { name: 'mtls.test', enforce_route_policies: true });
    expect(domain.status, JSON.stringify(domain.body)).toBe(201);
    const spaceGuid = (await call('GET', `/v3/apps/${b}`)).body.relationships.space.data.guid;
    const route = await call('POST', '/v3/routes', { host: 'b', relationships: { domain: { data: { guid: domain.body.guid } }, space: { data: { guid: spaceGuid } } } });
    expect(route.status).toBe(201);
    expect((await call('POST', `/v3/routes/${route.body.guid}/destinations`, { destinations: [{ app: { guid: b } }] })).status).toBe(200);
    const policy = await call('POST', '/v3/route_policies', { source: `cf:app:${a}`, relationships: { route: { data: { guid: route.body.guid } } } });
    expect(policy.status, JSON.stringify(policy.body)).toBe(201);

    // A reaches B with its instance identity; B sees who called in X-Forwarded-Client-Cert.
    const admitted = await until('A reaches B', async () => {
      const r = await callThrough('rp-a');
      return r.status === 200 ? r : undefined;
    });
    const seen = JSON.parse(admitted.body) as { app: string; xfcc: string };
    expect(seen.app).toBe('rp-b');
    const caller = new X509Certificate(Buffer.from(seen.xfcc, 'base64'));
    expect(caller.subject).toContain(`OU=app:${a}`);
    expect(caller.subject).toContain(`OU=space:${spaceGuid}`);

    // C has a valid instance certificate too, but no policy names it.
    const refused = await callThrough('rp-c');
    expect(refused.status).toBe(403);
    expect(refused.routerError).toBeNull();
    expect(refused.body).toContain(`caller app ${c} not in route_policies`);

    // Without mutual TLS (the plain port) the enforcing route is misdirected, as on gorouter.
    expect((await client.viaRouter(B_HOST)).status).toBe(421);

    // Removing the policy refuses A as well (the route now has none: default deny).
    expect((await call('DELETE', `/v3/route_policies/${policy.body.guid}`)).status).toBe(204);
    const afterDelete = await until('A refused', async () => {
      const r = await callThrough('rp-a');
      return r.status === 403 ? r : undefined;
    });
    expect(afterDelete.body).toContain('route has no route policies configured');
  }, 240_000);
});
