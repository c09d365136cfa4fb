import fs from 'node:fs';
import path from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliCall, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * Starts the real server the way `npm start` does (tsx src/main.ts serve) on a free port with a temp
 * data dir, then replays the cf CLI v8 requests of cf-cli-flows.md §3–4 over HTTP: login, create-org,
 * create-space (with the CLI's own role sequence), set-org-role and set-space-role.
 */

let server: ServerProcess;
let api: string;
let dataDir: string;
let adminPassword: string;

const call = cliCall;

async function login(username: string, password: string) {
  const root = await call('GET', `${api}/`);
  const loginHref: string = root.body.links.login.href;
  const prompts = await call('GET', `${loginHref}/login`);
  expect(prompts.body.prompts).toEqual({ username: ['text', 'Email'], password: ['password', 'Password'] });
  const res = await fetch(`${loginHref}/oauth/token`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
      Authorization: `Basic ${Buffer.from('cf:').toString('base64')}`,
      Connection: 'close',
    },
    body: new URLSearchParams({ grant_type: 'password', password, username }).toString(),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { access_token: string; refresh_token: string; token_type: string };
}

beforeAll(async () => {
  server = await startServerProcess();
  ({ url: api, dataDir, adminPassword } = server);
}, 60_000);

afterAll(() => server?.stop());

describe('cf CLI v8: login → create-org → create-space → roles, against the real server', () => {
  it('prints the generated admin password once and keeps it in the data dir', () => {
    expect(adminPassword).toBeTruthy();
    const file = path.join(dataDir, 'initial-admin-password');
    expect(fs.readFileSync(file, 'utf8').trim()).toBe(adminPassword);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('walks the whole flow', async () => {
    const root = await call('GET', `${api}/`);
    expect(root.status).toBe(200);
    expect(root.body.links.cloud_controller_v3.meta.version).toMatch(/^\d+\.\d+\.\d+$/);
    for (const link of ['self', 'cloud_controller_v3', 'login', 'uaa', 'log_cache']) {
      expect(root.body.links[link].href).toMatch(/^http:\/\/127\.0\.0\.1:\d+/);
    }

    const tokens = await login('admin', adminPassword);
    expect(tokens.token_type).toBe('bearer');
    const claims = decodeJwt(tokens.access_token);
    expect(typeof claims.exp).toBe('number');
    expect(claims.user_name).toBe('admin');
    expect(typeof claims.user_id).toBe('string');
    expect(claims.origin).toBe('uaa');
    const admin = tokens.access_token;

    // cf create-org
    const org = await call('POST', `${api}/v3/organizations`, admin, { name: 'e2e-org', suspended: false });
    expect(org.status).toBe(201);
    const again = await call('POST', `${api}/v3/organizations`, admin, { name: 'e2e-org', suspended: false });
    expect(again.status).toBe(422);
    expect(again.body.errors[0].detail).toBe("Organization 'e2e-org' already exists.");

    // cf target -o
    const found = await call('GET', `${api}/v3/organizations?names=e2e-org&page=1&per_page=1`, admin);
    expect(found.body.resources[0].guid).toBe(org.body.guid);

    // a second person: the admin creates them in the identity provider (SCIM) and CC (POST /v3/users)
    const scim = await fetch(`${api}/Users`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `bearer ${admin}` },
      body: JSON.stringify({ userName: 'dev-alice', password: 'alice-secret-1', emails: [{ value: 'alice@example.com', primary: true }], origin: 'uaa' }),
    });
    expect(scim.status).toBe(201);
    const alice = (await scim.json()) as { id: string };
    const ccUser = await call('POST', `${api}/v3/users`, admin, { guid: alice.id });
    expect(ccUser.status).toBe(201);

    // cf set-org-role dev-alice e2e-org OrgManager
    const orgManager = await call('POST', `${api}/v3/roles`, admin, {
      type: 'organization_manager',
      relationships: { organization: { data: { guid: org.body.guid } }, user: { data: { username: 'dev-alice' } } },
    });
    expect(orgManager.status).toBe(201);

    // cf create-space as alice (an org manager): the CLI assigns the roles itself, in this order
    const aliceToken = (await login('dev-alice', 'alice-secret-1')).access_token;
    const space = await call('POST', `${api}/v3/spaces`, aliceToken, {
      name: 'dev',
      relationships: { organization: { data: { guid: org.body.guid } } },
    });
    expect(space.status).toBe(201);
    const roleBody = (type: string, rel: 'organization' | 'space', guid: string) => ({
      type,
      relationships: { [rel]: { data: { guid } }, user: { data: { username: 'dev-alice', origin: 'uaa' } } },
    });
    const orgUser1 = await call('POST', `${api}/v3/roles`, aliceToken, roleBody('organization_user', 'organization', org.body.guid));
    expect([201, 422]).toContain(orgUser1.status);
    const spaceManager = await call('POST', `${api}/v3/roles`, aliceToken, roleBody('space_manager', 'space', space.body.guid));
    expect(spaceManager.status).toBe(201);
    const orgUser2 = await call('POST', `${api}/v3/roles`, aliceToken, roleBody('organization_user', 'organization', org.body.guid));
    expect(orgUser2.status).toBe(422);
    expect(orgUser2.body.errors[0].detail).toMatch(/^User 'dev-alice' already has 'organization_user' role/);
    const spaceDev = await call('POST', `${api}/v3/roles`, aliceToken, roleBody('space_developer', 'space', space.body.guid));
    expect(spaceDev.status).toBe(201);

    // a duplicate space name is the 422 the CLI treats as "already exists"
    const dupSpace = await call('POST', `${api}/v3/spaces`, aliceToken, {
      name: 'dev',
      relationships: { organization: { data: { guid: org.body.guid } } },
    });
    expect(dupSpace.status).toBe(422);
    expect(dupSpace.body.errors[0].detail).toContain('Name must be unique per organization');

    // cf target -o e2e-org -s dev, as alice
    const aliceOrgs = await call('GET', `${api}/v3/organizations?order_by=name`, aliceToken);
    expect(aliceOrgs.body.resources.map((o: { name: string }) => o.name)).toEqual(['e2e-org']);
    const aliceSpace = await call('GET', `${api}/v3/spaces?names=dev&organization_guids=${org.body.guid}&page=1&per_page=1`, aliceToken);
    expect(aliceSpace.body.resources[0].guid).toBe(space.body.guid);

    // cf set-space-role bob e2e-org dev SpaceAuditor (by alice, without --origin)
    await fetch(`${api}/Users`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `bearer ${admin}` },
      body: JSON.stringify({ userName: 'bob', password: 'bob-secret-1', emails: [{ value: 'bob@example.com' }] }),
    });
    const bobOrgUser = await call('POST', `${api}/v3/roles`, aliceToken, {
      type: 'organization_user',
      relationships: { organization: { data: { guid: org.body.guid } }, user: { data: { username: 'bob' } } },
    });
    expect(bobOrgUser.status).toBe(201);
    const bobAuditor = await call('POST', `${api}/v3/roles`, aliceToken, {
      type: 'space_auditor',
      relationships: { space: { data: { guid: space.body.guid } }, user: { data: { username: 'bob' } } },
    });
    expect(bobAuditor.status).toBe(201);

    // bob can see the space but not change it
    const bob = (await login('bob', 'bob-secret-1')).access_token;
    expect((await call('GET', `${api}/v3/spaces/${space.body.guid}`, bob)).status).toBe(200);
    expect((await call('PATCH', `${api}/v3/spaces/${space.body.guid}`, bob, { name: 'x' })).status).toBe(403);

    // the refresh grant the CLI uses before a token expires
    const refreshed = await fetch(`${api}/oauth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: `Basic ${Buffer.from('cf:').toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }).toString(),
    });
    expect(refreshed.status).toBe(200);
    const r = (await refreshed.json()) as { token_type: string; access_token: string };
    expect(r.token_type).toBe('bearer');
    expect((await call('GET', `${api}/v3/organizations`, r.access_token)).status).toBe(200);

    // deleting the org is asynchronous: 202 + absolute Location, then the job completes and cascades
    const del = await call('DELETE', `${api}/v3/organizations/${org.body.guid}`, admin);
    expect(del.status).toBe(202);
    const location = del.headers.get('location')!;
    expect(location).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v3\/jobs\//);
    const deadline = Date.now() + 15_000;
    let job = await call('GET', location, admin);
    while (job.body.state === 'PROCESSING' && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      job = await call('GET', location, admin);
    }
    expect(job.body.state).toBe('COMPLETE');
    expect((await call('GET', `${api}/v3/spaces/${space.body.guid}`, admin)).status).toBe(404);
    const roles = await call('GET', `${api}/v3/roles?space_guids=${space.body.guid}`, admin);
    expect(roles.body.pagination.total_results).toBe(0);

    // health and metrics
    expect((await fetch(`${api}/healthz`)).status).toBe(200);
    expect((await fetch(`${api}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${api}/metrics`)).text()).toContain('kiln_http_requests_total');
  });
});
