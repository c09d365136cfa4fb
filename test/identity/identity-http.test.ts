import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, createLocalJWKSet, jwtVerify, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/** The UAA endpoints are not part of the CF V3 spec, so these tests call the app directly. */
let t: TestKiln;
let adminPassword: string;

const CF_BASIC = `Basic ${Buffer.from('cf:').toString('base64')}`;

async function call(method: string, url: string, opts: { token?: string; json?: unknown; form?: Record<string, string>; basic?: string } = {}) {
  const headers: Record<string, string> = {};
  let body: string | undefined;
  if (opts.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(opts.form).toString();
  } else if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  if (opts.token) headers.authorization = `bearer ${opts.token}`;
  if (opts.basic) headers.authorization = opts.basic;
  const res = await t.kiln.app.request(`http://kiln.test${url}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  // Response bodies differ per endpoint; tests check the fields they care about.
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as any, headers: res.headers };
}

const passwordGrant = (username: string, password: string, extra: Record<string, string> = {}) =>
  call('POST', '/oauth/token', { basic: CF_BASIC, form: { grant_type: 'password', username, password, ...extra } });

beforeAll(async () => {
  adminPassword = 'admin-secret-1';
  t = await createTestKiln({ KILN_ADMIN_PASSWORD: adminPassword });
});
afterAll(() => t.close());

describe('login and tokens', () => {
  it('offers exactly the username and password prompts the cf CLI needs', async () => {
    const res = await call('GET', '/login');
    expect(res.status).toBe(200);
    expect(res.body.prompts).toEqual({ username: ['text', 'Email'], password: ['password', 'Password'] });
    expect(res.body.links.login).toBe('http://kiln.test');
  });

  it('issues a readable JWT with the claims the CLI reads, verifiable with /token_keys', async () => {
    const res = await passwordGrant('admin', adminPassword);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toMatchObject({ token_type: 'bearer', expires_in: expect.any(Number), jti: expect.any(String) });
    expect(res.body.scope.split(' ')).toEqual(expect.arrayContaining(['cloud_controller.admin', 'cloud_controller.read', 'openid']));
    const claims = decodeJwt(res.body.access_token);
    expect(claims).toMatchObject({ user_name: 'admin', origin: 'uaa', client_id: 'cf', iss: 'http://kiln.test/oauth/token' });
    expect(typeof claims.user_id).toBe('string');
    expect(claims.exp! - claims.iat!).toBe(3600);
    expect(claims.aud).toEqual(expect.arrayContaining(['cloud_controller', 'openid']));

    const keys = await call('GET', '/token_keys');
    expect(keys.body.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(keys.body.keys[0].d).toBeUndefined();
    const { payload } = await jwtVerify(res.body.access_token, createLocalJWKSet(keys.body));
    expect(payload.user_id).toBe(claims.user_id);
    expect((await call('GET', '/token_key')).body.value).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });

  it('keeps the signing key private in the data dir', () => {
    const file = path.join(t.kiln.config.dataDir, 'identity', 'signing-key.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('answers bad credentials as UAA does, and bad requests with OAuth errors', async () => {
    const wrong = await passwordGrant('admin', 'nope');
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: 'unauthorized', error_description: 'Bad credentials' });
    expect((await passwordGrant('nobody', 'x')).body.error_description).toBe('Bad credentials');
    const badClient = await call('POST', '/oauth/token', {
      basic: `Basic ${Buffer.from('cf:secret').toString('base64')}`,
      form: { grant_type: 'password', username: 'admin', password: adminPassword },
    });
    expect(badClient.status).toBe(401);
    expect(badClient.body.error).toBe('invalid_client');
    const noAuth = await call('POST', '/oauth/token', { form: { grant_type: 'password' } });
    expect(noAuth.status).toBe(401);
    const weird = await call('POST', '/oauth/token', { basic: CF_BASIC, form: { grant_type: 'implicit' } });
    expect(weird).toMatchObject({ status: 400, body: { error: 'unsupported_grant_type' } });
    const cfCannotClientCredentials = await call('POST', '/oauth/token', { basic: CF_BASIC, form: { grant_type: 'client_credentials' } });
    expect(cfCannotClientCredentials.status).toBe(401);
  });

  it('locks an account after five failed attempts', async () => {
    await t.kiln.identity.createUser({ userName: 'locky', password: 'locky-pass-1' });
    for (let i = 0; i < 5; i++) expect((await passwordGrant('locky', 'wrong')).status).toBe(401);
    const locked = await passwordGrant('locky', 'locky-pass-1');
    expect(locked.status).toBe(401);
    expect(locked.body.error_description).toBe('Your account has been locked because of too many failed attempts to login.');
  });

  it('refreshes with token_type bearer, and a password change revokes refresh tokens', async () => {
    const created = await t.kiln.identity.createUser({ userName: 'refresher', password: 'refresh-pass-1' });
    const first = await passwordGrant('refresher', 'refresh-pass-1');
    const refreshed = await call('POST', '/oauth/token', { basic: CF_BASIC, form: { grant_type: 'refresh_token', refresh_token: first.body.refresh_token } });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.token_type).toBe('bearer');
    expect(refreshed.body.refresh_token).toBeTruthy();
    expect((await t.kiln.app.request('http://kiln.test/v3/organizations', { headers: { authorization: `bearer ${refreshed.body.access_token}` } })).status).toBe(200);

    // A refresh token is not an access token.
    const misuse = await t.kiln.app.request('http://kiln.test/v3/organizations', { headers: { authorization: `bearer ${first.body.refresh_token}` } });
    expect(misuse.status).toBe(401);
    expect(((await misuse.json()) as { errors: Array<{ title: string }> }).errors[0]!.title).toBe('CF-InvalidAuthToken');

    const change = await call('PUT', `/Users/${created.id}/password`, {
      token: first.body.access_token,
      json: { oldPassword: 'refresh-pass-1', password: 'refresh-pass-2' },
    });
    expect(change.status).toBe(200);
    const revoked = await call('POST', '/oauth/token', { basic: CF_BASIC, form: { grant_type: 'refresh_token', refresh_token: first.body.refresh_token } });
    expect(revoked.status).toBe(401);
    expect(revoked.body.error).toBe('invalid_token');
    expect((await passwordGrant('refresher', 'refresh-pass-2')).status).toBe(200);
    expect((await passwordGrant('refresher', 'refresh-pass-1')).status).toBe(401);
  });

  it('rejects tampered, foreign-signed and malformed tokens on /v3 with CF-InvalidAuthToken', async () => {
    const good = (await passwordGrant('admin', adminPassword)).body.access_token as string;
    const [h, p, s] = good.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, user_name: 'mallory' })).toString('base64url')}.${s}`;
    const { privateKey } = await generateKeyPair('RS256');
    const foreign = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'RS256', kid: JSON.parse(Buffer.from(h!, 'base64url').toString()).kid }).sign(privateKey);
    for (const token of [forged, foreign, 'not-a-jwt']) {
      const res = await t.kiln.app.request('http://kiln.test/v3/organizations', { headers: { authorization: `bearer ${token}` } });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { errors: unknown[] }).errors[0]).toMatchObject({ title: 'CF-InvalidAuthToken', code: 1000 });
    }
  });
});

describe('SCIM users', () => {
  let adminToken: string;
  beforeAll(async () => {
    adminToken = (await passwordGrant('admin', adminPassword)).body.access_token;
  });

  it('lets admins create users who can then log in', async () => {
    const res = await call('POST', '/Users', {
      token: adminToken,
      json: { userName: 'carol', password: 'carol-pass-1', emails: [{ value: 'carol@example.com', primary: true }], name: { givenName: 'Carol' } },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ userName: 'carol', origin: 'uaa', active: true, emails: [{ value: 'carol@example.com', primary: true }] });
    expect(res.body.password).toBeUndefined();
    const row = await t.kiln.store.db.selectFrom('identity_users').select('password_hash').where('guid', '=', res.body.id).executeTakeFirstOrThrow();
    expect(row.password_hash).not.toContain('carol-pass-1');
    const login = await passwordGrant('carol', 'carol-pass-1');
    expect(login.status).toBe(200);
    expect(login.body.scope.split(' ')).not.toContain('cloud_controller.admin');

    const dup = await call('POST', '/Users', { token: adminToken, json: { userName: 'CAROL', password: 'x' } });
    expect(dup.status).toBe(409);
    expect(dup.body).toEqual({ error: 'scim_resource_already_exists', error_description: 'Username already in use: CAROL' });
  });

  it('validates bodies and keeps users of other origins password-less', async () => {
    expect((await call('POST', '/Users', { token: adminToken, json: { password: 'x' } })).status).toBe(400);
    expect((await call('POST', '/Users', { token: adminToken, json: { userName: 'nopass' } })).status).toBe(400);
    const ldap = await call('POST', '/Users', { token: adminToken, json: { userName: 'lara', origin: 'ldap' } });
    expect(ldap.status).toBe(201);
    expect((await passwordGrant('lara', '', { login_hint: JSON.stringify({ origin: 'ldap' }) })).status).toBe(401);
    const bad = await t.kiln.app.request('http://kiln.test/Users', {
      method: 'POST',
      headers: { authorization: `bearer ${adminToken}`, 'content-type': 'application/json' },
      body: '{nope',
    });
    expect(bad.status).toBe(400);
  });

  it('needs scim scopes: users may read only themselves', async () => {
    const dave = await t.kiln.identity.createUser({ userName: 'dave', password: 'dave-pass-1' });
    const daveToken = (await passwordGrant('dave', 'dave-pass-1')).body.access_token;
    expect((await call('POST', '/Users', { token: daveToken, json: { userName: 'eve', password: 'x' } })).status).toBe(403);
    expect((await call('GET', '/Users', { token: daveToken })).status).toBe(403);
    expect((await call('GET', `/Users/${dave.id}`, { token: daveToken })).body.userName).toBe('dave');
    expect((await call('POST', '/Users', { json: { userName: 'eve', password: 'x' } })).status).toBe(401);
    expect((await call('GET', '/Users', { token: 'garbage' })).body.error).toBe('invalid_token');
    const me = await call('GET', '/userinfo', { token: daveToken });
    expect(me.body).toMatchObject({ user_id: dave.id, user_name: 'dave', origin: 'uaa' });
  });

  it('filters and pages like UAA, and deletes', async () => {
    const list = await call('GET', `/Users?filter=${encodeURIComponent('userName eq "carol" and origin eq "uaa"')}`, { token: adminToken });
    expect(list.status).toBe(200);
    expect(list.body.totalResults).toBe(1);
    expect(list.body.resources[0].userName).toBe('carol');
    const page = await call('GET', '/Users?startIndex=2&count=1', { token: adminToken });
    expect(page.body.resources).toHaveLength(1);
    expect(page.body.totalResults).toBeGreaterThan(2);
    expect((await call('GET', '/Users?filter=bogus', { token: adminToken })).status).toBe(400);

    const carol = list.body.resources[0].id;
    expect((await call('DELETE', `/Users/${carol}`, { token: adminToken })).status).toBe(200);
    expect((await call('GET', `/Users/${carol}`, { token: adminToken })).status).toBe(404);
    expect((await passwordGrant('carol', 'carol-pass-1')).status).toBe(401);
    const self = await call('GET', '/Users?filter=userName%20eq%20%22admin%22', { token: adminToken });
    expect((await call('DELETE', `/Users/${self.body.resources[0].id}`, { token: adminToken })).status).toBe(400);
  });
});

describe('clients', () => {
  it('registers a client whose client_credentials tokens act on /v3 with its authorities', async () => {
    const adminToken = (await passwordGrant('admin', adminPassword)).body.access_token;
    const created = await call('POST', '/oauth/clients', {
      token: adminToken,
      json: { client_id: 'ci-bot', client_secret: 'bot-secret', authorized_grant_types: ['client_credentials'], authorities: ['cloud_controller.admin'] },
    });
    expect(created.status).toBe(201);
    expect(created.body).not.toHaveProperty('client_secret');
    const token = await call('POST', '/oauth/token', {
      form: { grant_type: 'client_credentials', client_id: 'ci-bot', client_secret: 'bot-secret' },
    });
    expect(token.status).toBe(200);
    const claims = decodeJwt(token.body.access_token);
    expect(claims).toMatchObject({ client_id: 'ci-bot', sub: 'ci-bot' });
    expect(claims.user_id).toBeUndefined();
    const org = await t.kiln.app.request('http://kiln.test/v3/organizations', {
      method: 'POST',
      headers: { authorization: `bearer ${token.body.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'made-by-bot' }),
    });
    expect(org.status).toBe(201);
    const wrongSecret = await call('POST', '/oauth/token', { form: { grant_type: 'client_credentials', client_id: 'ci-bot', client_secret: 'x' } });
    expect(wrongSecret.status).toBe(401);
    expect((await call('GET', '/oauth/clients/ci-bot', { token: token.body.access_token })).body.client_id).toBe('ci-bot');
    expect((await call('POST', '/oauth/clients', { token: token.body.access_token, json: { client_id: 'x', authorized_grant_types: ['client_credentials'] } })).status).toBe(403);
  });
});

describe('external issuer', () => {
  let jwksServer: http.Server;
  let external: TestKiln;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'ext-1', alg: 'RS256', use: 'sig' };
    jwksServer = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
    const port = (jwksServer.address() as AddressInfo).port;
    external = await createTestKiln({ KILN_EXTERNAL_JWKS_URL: `http://127.0.0.1:${port}/keys`, KILN_EXTERNAL_ISSUER: 'https://idp.example.com' });
  });
  afterAll(async () => {
    await external.close();
    jwksServer.close();
  });

  const externalToken = (issuer: string) =>
    new SignJWT({ sub: 'ext-user-1', preferred_username: 'erin@idp', scope: 'cloud_controller.read cloud_controller.write' })
      .setProtectedHeader({ alg: 'RS256', kid: 'ext-1' })
      .setIssuer(issuer)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);

  it('accepts tokens of the configured issuer through its JWKS, and only that issuer', async () => {
    const ok = await external.kiln.app.request('http://kiln.test/v3/organizations', {
      headers: { authorization: `bearer ${await externalToken('https://idp.example.com')}` },
    });
    expect(ok.status).toBe(200);
    const user = await external.admin.get('/v3/users/ext-user-1');
    expect(user.status).toBe(200);
    expect(user.body.username).toBe('erin@idp');
    const wrongIssuer = await external.kiln.app.request('http://kiln.test/v3/organizations', {
      headers: { authorization: `bearer ${await externalToken('https://evil.example.com')}` },
    });
    expect(wrongIssuer.status).toBe(401);
  });
});
