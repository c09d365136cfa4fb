import fs from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import { KilnError } from '../domain/errors.ts';
import type { Principal } from '../domain/principal.ts';
import { isUniqueViolation } from '../store/errors.ts';
import type { Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { loadOrCreateSigningKey, SIGNING_ALG, type SigningKey } from './keys.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { parseScimFilter, ScimFilterError, type ScimRecord } from './scim-filter.ts';

/** An OAuth/UAA-style failure: rendered as `{"error": …, "error_description": …}` with this status. */
export class IdentityError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 422,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}

export interface TokenResponse {
  access_token: string;
  token_type: 'bearer';
  refresh_token?: string;
  expires_in: number;
  scope: string;
  jti: string;
}

/** The scopes UAA's default groups give every user. */
export const USER_SCOPES = ['openid', 'uaa.user', 'scim.me', 'password.write', 'cloud_controller.read', 'cloud_controller.write'];
/** What the bootstrap admin additionally holds. */
export const ADMIN_SCOPES = [
  ...USER_SCOPES,
  'cloud_controller.admin',
  'scim.read',
  'scim.write',
  'clients.read',
  'clients.write',
  'routing.router_groups.read',
];

/** What the `cf` client may ask for on a user's behalf (as UAA's stock `cf` client). */
const CF_CLIENT_SCOPES = [
  ...ADMIN_SCOPES,
  'cloud_controller.admin_read_only',
  'cloud_controller.global_auditor',
  'routing.router_groups.write',
  'doppler.firehose',
  // Kiln's service admin (issue 15): manages plan definitions of every broker (src/services/plan-definitions.ts).
  'kiln.service_admin',
];

/** The public client the cf CLI logs in with (`cf:` basic auth, empty secret). */
const CF_CLIENT = 'cf';
/** Audience that marks a refresh token, so one can never be presented as an access token. */
const REFRESH_AUDIENCE = 'kiln-refresh';
const LOCKOUT = { failures: 5, windowMs: 5 * 60_000 };

export const ACCOUNT_LOCKED = 'Your account has been locked because of too many failed attempts to login.';

export interface ScimUser {
  schemas: string[];
  id: string;
  userName: string;
  origin: string;
  name: { givenName?: string; familyName?: string };
  emails: Array<{ value: string; primary: boolean }>;
  active: boolean;
  verified: boolean;
  zoneId: string;
  passwordLastModified: string;
  groups: Array<{ value: string; display: string; type: 'DIRECT' }>;
  meta: { version: number; created: string; lastModified: string };
}

export interface NewUser {
  userName: string;
  password?: string | undefined;
  origin?: string | undefined;
  email?: string | undefined;
  givenName?: string | undefined;
  familyName?: string | undefined;
  active?: boolean | undefined;
  scopes?: string[] | undefined;
}

export interface NewClient {
  clientId: string;
  secret: string;
  scopes: string[];
  authorities: string[];
  grantTypes: string[];
}

type UserRow = Row<'identity_users'>;
type ClientRow = Row<'identity_clients'>;

const words = (s: string) => s.split(/\s+/).filter(Boolean);

/** UAA derives a token's audience from the resource part of its scopes (`cloud_controller.read` → `cloud_controller`). */
function audienceOf(scopes: string[]): string[] {
  return [...new Set(scopes.map((s) => s.split('.')[0]!).filter(Boolean))];
}

/**
 * Kiln's built-in UAA: users with scrypt password hashes, the `cf` client and registered clients, RS256 tokens
 * signed with a key kept in the data dir. Also verifies tokens of an optional external issuer through its JWKS.
 */
export class IdentityService {
  private key: SigningKey | undefined;
  private external: { jwks: JWTVerifyGetKey; issuer: string | undefined } | undefined;
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly deps: { store: Store; config: Config; log: Logger }) {}

  private get signing(): SigningKey {
    if (!this.key) throw new Error('IdentityService.init() has not run');
    return this.key;
  }

  get defaultIssuer(): string {
    return `http://${this.deps.config.systemDomain}/oauth/token`;
  }

  /** Loads the signing key, registers the `cf` client and makes sure the bootstrap admin exists. */
  /** `createdAdmin` is set on the start that created the bootstrap admin (the installation's first start). */
  async init(): Promise<{ generatedAdminPassword: string | undefined; createdAdmin?: { guid: string; username: string } }> {
    const { store, config } = this.deps;
    this.key = await loadOrCreateSigningKey(path.join(config.sharedDir, 'identity'));
    if (config.externalIdentity) {
      this.external = { jwks: createRemoteJWKSet(new URL(config.externalIdentity.jwksUrl)), issuer: config.externalIdentity.issuer };
    }
    await store.db
      .insertInto('identity_clients')
      .values({
        client_id: CF_CLIENT,
        secret_hash: '',
        scopes: CF_CLIENT_SCOPES.join(' '),
        authorities: 'uaa.none',
        grant_types: 'password refresh_token',
        created_at: new Date().toISOString(),
      })
      // Refreshed on every start so a newer Kiln's scope list reaches existing installations.
      .onConflict((oc) => oc.column('client_id').doUpdateSet({ scopes: CF_CLIENT_SCOPES.join(' ') }))
      .execute();

    const admin = await this.findByName(config.admin.username, 'uaa');
    if (!admin) {
      const generated = config.admin.password === undefined ? randomBytes(18).toString('base64url') : undefined;
      const created = await this.createUser({ userName: config.admin.username, password: config.admin.password ?? generated, scopes: ADMIN_SCOPES });
      if (generated) {
        const file = path.join(config.dataDir, 'initial-admin-password');
        await fs.mkdir(config.dataDir, { recursive: true });
        await fs.writeFile(file, `${generated}\n`, { mode: 0o600 });
        await fs.chmod(file, 0o600);
      }
      return { generatedAdminPassword: generated, createdAdmin: { guid: created.id, username: created.userName } };
    }
    // An operator who sets KILN_ADMIN_PASSWORD later means it: the configured password wins.
    if (config.admin.password !== undefined && !(await verifyPassword(config.admin.password, admin.password_hash))) {
      await store.db
        .updateTable('identity_users')
        .set({ password_hash: await hashPassword(config.admin.password), updated_at: new Date().toISOString() })
        .where('guid', '=', admin.guid)
        .execute();
    }
    return { generatedAdminPassword: undefined };
  }

  // ---- grants -------------------------------------------------------------------------------------------

  /** Checks a client's credentials (the `cf` client has an empty secret). */
  async authenticateClient(clientId: string, secret: string): Promise<ClientRow> {
    const client = await this.deps.store.db.selectFrom('identity_clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
    const ok = client && (client.secret_hash === '' ? secret === '' : await verifyPassword(secret, client.secret_hash));
    if (!client || !ok) throw new IdentityError(401, 'invalid_client', 'Bad credentials');
    return client;
  }

  async passwordGrant(username: string, password: string, opts: { origin?: string; client?: ClientRow; issuer?: string } = {}): Promise<TokenResponse> {
    const client = opts.client ?? (await this.authenticateClient(CF_CLIENT, ''));
    if (!words(client.grant_types).includes('password')) throw new IdentityError(401, 'invalid_client', 'Unauthorized grant type: password');
    const origin = opts.origin ?? 'uaa';
    const lockKey = `${origin}\u0000${username.toLowerCase()}`;
    if (this.isLocked(lockKey)) throw new IdentityError(401, 'unauthorized', ACCOUNT_LOCKED);
    const user = await this.findByName(username, origin);
    // Hash even for unknown users so response time does not reveal which usernames exist.
    const valid = await verifyPassword(password, user?.password_hash ?? (await this.dummyHash()));
    if (!user || !valid || user.active !== 1) {
      this.recordFailure(lockKey);
      throw new IdentityError(401, 'unauthorized', 'Bad credentials');
    }
    this.failures.delete(lockKey);
    return this.issueUserTokens(user, client, 'password', opts.issuer);
  }

  async refreshGrant(refreshToken: string, opts: { client?: ClientRow; issuer?: string } = {}): Promise<TokenResponse> {
    const client = opts.client ?? (await this.authenticateClient(CF_CLIENT, ''));
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(refreshToken, this.signing.publicKey, { audience: REFRESH_AUDIENCE, algorithms: [SIGNING_ALG] }));
    } catch {
      throw new IdentityError(401, 'invalid_token', 'Invalid refresh token.');
    }
    if (claims.cid !== client.client_id) throw new IdentityError(401, 'invalid_token', 'Invalid refresh token (client mismatch).');
    const user = claims.sub ? await this.findById(claims.sub) : undefined;
    // A changed password or a deactivated user revokes outstanding refresh tokens.
    if (!user || user.active !== 1 || claims.rev_sig !== this.revocationSignature(user)) {
      throw new IdentityError(401, 'invalid_token', 'The token expired, was revoked, or the token ID is incorrect.');
    }
    return this.issueUserTokens(user, client, 'refresh_token', opts.issuer);
  }

  async clientCredentialsGrant(client: ClientRow, opts: { issuer?: string } = {}): Promise<TokenResponse> {
    if (!words(client.grant_types).includes('client_credentials')) {
      throw new IdentityError(401, 'invalid_client', 'Unauthorized grant type: client_credentials');
    }
    const scopes = words(client.authorities);
    const jti = randomUUID().replace(/-/g, '');
    const ttl = this.deps.config.tokenTtlSeconds;
    const access = await this.sign(
      {
        jti,
        sub: client.client_id,
        authorities: scopes,
        scope: scopes,
        client_id: client.client_id,
        cid: client.client_id,
        azp: client.client_id,
        grant_type: 'client_credentials',
        zid: 'uaa',
        aud: audienceOf(scopes),
      },
      ttl,
      opts.issuer,
    );
    return { access_token: access, token_type: 'bearer', expires_in: ttl - 1, scope: scopes.join(' '), jti };
  }

  private async issueUserTokens(user: UserRow, client: ClientRow, grant: string, issuer: string | undefined): Promise<TokenResponse> {
    const { tokenTtlSeconds, refreshTokenTtlSeconds } = this.deps.config;
    // A user gets the scopes they hold that the client may ask for (UAA's intersection rule).
    const allowed = new Set(words(client.scopes));
    const scopes = words(user.scopes).filter((s) => allowed.has(s));
    const jti = randomUUID().replace(/-/g, '');
    const common = {
      sub: user.guid,
      user_id: user.guid,
      user_name: user.username,
      origin: user.origin,
      email: user.email ?? user.username,
      client_id: client.client_id,
      cid: client.client_id,
      azp: client.client_id,
      zid: 'uaa',
      rev_sig: this.revocationSignature(user),
    };
    const access = await this.sign({ ...common, jti, scope: scopes, grant_type: grant, aud: audienceOf(scopes) }, tokenTtlSeconds, issuer);
    const refresh = await this.sign({ ...common, jti: `${jti}-r`, scope: scopes, aud: [REFRESH_AUDIENCE] }, refreshTokenTtlSeconds, issuer);
    return { access_token: access, token_type: 'bearer', refresh_token: refresh, expires_in: tokenTtlSeconds - 1, scope: scopes.join(' '), jti };
  }

  private sign(claims: JWTPayload, ttlSeconds: number, issuer = this.defaultIssuer): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ ...claims, auth_time: now })
      .setProtectedHeader({ alg: SIGNING_ALG, kid: this.signing.kid, typ: 'JWT' })
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSeconds)
      .setIssuer(issuer)
      .sign(this.signing.privateKey);
  }

  /** Changes whenever the password hash changes, so refresh tokens issued before a password change stop working. */
  private revocationSignature(user: UserRow): string {
    return createHash('sha256').update(`${user.guid}:${user.password_hash}:${user.active}`).digest('hex').slice(0, 16);
  }

  private dummy: Promise<string> | undefined;
  private dummyHash(): Promise<string> {
    this.dummy ??= hashPassword(randomBytes(16).toString('hex'));
    return this.dummy;
  }

  private isLocked(key: string): boolean {
    const recent = (this.failures.get(key) ?? []).filter((t) => t > Date.now() - LOCKOUT.windowMs);
    return recent.length >= LOCKOUT.failures;
  }

  private recordFailure(key: string): void {
    const recent = (this.failures.get(key) ?? []).filter((t) => t > Date.now() - LOCKOUT.windowMs);
    recent.push(Date.now());
    this.failures.set(key, recent);
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }

  // ---- verification -------------------------------------------------------------------------------------

  /**
   * Verified tokens, until they expire: an RS256 verification costs ~0.5 ms and a trip through the crypto
   * thread pool, paid on every API request otherwise. A token's claims cannot change, so caching is safe.
   */
  private readonly verified = new Map<string, { principal: Principal; exp: number }>();

  /** Turns a bearer token into a caller: Kiln's own tokens by key id, otherwise the external issuer's. */
  async verifyAccessToken(token: string): Promise<Principal> {
    const hit = this.verified.get(token);
    if (hit && hit.exp > Date.now() / 1000) return hit.principal;
    const principal = await this.verifyUncached(token);
    if (this.verified.size >= 10_000) this.verified.delete(this.verified.keys().next().value!);
    const exp = decodeJwt(token).exp;
    if (typeof exp === 'number') this.verified.set(token, { principal, exp });
    return principal;
  }

  private async verifyUncached(token: string): Promise<Principal> {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw new KilnError('InvalidAuthToken');
    }
    let claims: JWTPayload;
    try {
      if (kid === this.signing.kid) {
        ({ payload: claims } = await jwtVerify(token, this.signing.publicKey, { algorithms: [SIGNING_ALG] }));
        const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
        if (aud.includes(REFRESH_AUDIENCE)) throw new Error('refresh token used as access token');
      } else if (this.external) {
        ({ payload: claims } = await jwtVerify(token, this.external.jwks, this.external.issuer ? { issuer: this.external.issuer } : {}));
      } else {
        throw new Error('unknown signing key');
      }
    } catch (err) {
      this.deps.log.debug({ err: String(err) }, 'token rejected');
      throw new KilnError('InvalidAuthToken');
    }
    return principalFromClaims(claims);
  }

  // ---- users (SCIM) -------------------------------------------------------------------------------------

  private findByName(username: string, origin: string): Promise<UserRow | undefined> {
    return this.deps.store.db
      .selectFrom('identity_users')
      .selectAll()
      .where((eb) => eb(eb.fn('lower', ['username']), '=', username.toLowerCase()))
      .where('origin', '=', origin)
      .executeTakeFirst();
  }

  private findById(guid: string): Promise<UserRow | undefined> {
    return this.deps.store.db.selectFrom('identity_users').selectAll().where('guid', '=', guid).executeTakeFirst();
  }

  async createUser(input: NewUser): Promise<ScimUser> {
    const origin = input.origin ?? 'uaa';
    if (origin === 'uaa' && !input.password) throw new IdentityError(400, 'invalid_password', 'Password must be provided for users of origin uaa.');
    if (await this.findByName(input.userName, origin)) {
      throw new IdentityError(409, 'scim_resource_already_exists', `Username already in use: ${input.userName}`);
    }
    const now = new Date().toISOString();
    const guid = randomUUID();
    try {
      await this.deps.store.db
        .insertInto('identity_users')
        .values({
          guid,
          created_at: now,
          updated_at: now,
          username: input.userName,
          origin,
          email: input.email ?? null,
          given_name: input.givenName ?? null,
          family_name: input.familyName ?? null,
          // Users of external origins have no password here: '' never verifies.
          password_hash: input.password ? await hashPassword(input.password) : '',
          scopes: (input.scopes ?? USER_SCOPES).join(' '),
          active: input.active === false ? 0 : 1,
        })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new IdentityError(409, 'scim_resource_already_exists', `Username already in use: ${input.userName}`);
      throw err;
    }
    return this.present((await this.findById(guid))!);
  }

  async getUser(guid: string): Promise<ScimUser> {
    const row = await this.findById(guid);
    if (!row) throw new IdentityError(404, 'scim_resource_not_found', `User ${guid} does not exist`);
    return this.present(row);
  }

  /** SCIM list with `filter`, `startIndex` (1-based) and `count`, sorted by creation. */
  async listUsers(opts: { filter?: string | undefined; startIndex?: number; count?: number }) {
    let predicate: ((r: ScimRecord) => boolean) | undefined;
    try {
      predicate = opts.filter ? parseScimFilter(opts.filter) : undefined;
    } catch (err) {
      if (err instanceof ScimFilterError) throw new IdentityError(400, 'invalid_filter', err.message);
      throw err;
    }
    const rows = await this.deps.store.db.selectFrom('identity_users').selectAll().orderBy('id').execute();
    const matching = predicate
      ? rows.filter((r) =>
          predicate({
            id: r.guid,
            username: r.username,
            origin: r.origin,
            email: r.email,
            'emails.value': r.email,
            'name.givenname': r.given_name,
            'name.familyname': r.family_name,
            active: r.active ? 'true' : 'false',
          }),
        )
      : rows;
    const startIndex = Math.max(1, opts.startIndex ?? 1);
    const count = Math.min(500, Math.max(0, opts.count ?? 100));
    const page = matching.slice(startIndex - 1, startIndex - 1 + count);
    return {
      resources: page.map((r) => this.present(r)),
      startIndex,
      itemsPerPage: count,
      totalResults: matching.length,
      schemas: ['urn:scim:schemas:core:1.0'],
    };
  }

  async deleteUser(guid: string): Promise<ScimUser> {
    const user = await this.getUser(guid);
    if (user.userName === this.deps.config.admin.username && user.origin === 'uaa') {
      throw new IdentityError(400, 'invalid_operation', 'The bootstrap admin cannot be deleted.');
    }
    await this.deps.store.db.deleteFrom('identity_users').where('guid', '=', guid).execute();
    return user;
  }

  /** Self-service changes need the old password; admins (scim.write holders) may reset without it. */
  async changePassword(guid: string, input: { password: string; oldPassword?: string | undefined }, byAdmin: boolean): Promise<void> {
    const row = await this.findById(guid);
    if (!row) throw new IdentityError(404, 'scim_resource_not_found', `User ${guid} does not exist`);
    if (!byAdmin && !(input.oldPassword !== undefined && (await verifyPassword(input.oldPassword, row.password_hash)))) {
      throw new IdentityError(401, 'unauthorized', 'Old password is incorrect');
    }
    if (input.oldPassword !== undefined && input.oldPassword === input.password) {
      throw new IdentityError(422, 'invalid_password', 'Your new password cannot be the same as the old password.');
    }
    await this.deps.store.db
      .updateTable('identity_users')
      .set({ password_hash: await hashPassword(input.password), updated_at: new Date().toISOString() })
      .where('guid', '=', guid)
      .execute();
  }

  private present(r: UserRow): ScimUser {
    return {
      schemas: ['urn:scim:schemas:core:1.0'],
      id: r.guid,
      userName: r.username,
      origin: r.origin,
      name: { ...(r.given_name ? { givenName: r.given_name } : {}), ...(r.family_name ? { familyName: r.family_name } : {}) },
      emails: [{ value: r.email ?? r.username, primary: true }],
      active: r.active === 1,
      verified: true,
      zoneId: 'uaa',
      passwordLastModified: r.updated_at,
      groups: words(r.scopes).map((s) => ({ value: s, display: s, type: 'DIRECT' as const })),
      meta: { version: 0, created: r.created_at, lastModified: r.updated_at },
    };
  }

  // ---- clients ------------------------------------------------------------------------------------------

  async createClient(input: NewClient) {
    try {
      await this.deps.store.db
        .insertInto('identity_clients')
        .values({
          client_id: input.clientId,
          secret_hash: input.secret ? await hashPassword(input.secret) : '',
          scopes: input.scopes.join(' '),
          authorities: input.authorities.join(' '),
          grant_types: input.grantTypes.join(' '),
          created_at: new Date().toISOString(),
        })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new IdentityError(409, 'invalid_client', `Client already exists: ${input.clientId}`);
      throw err;
    }
    return this.getClient(input.clientId);
  }

  async getClient(clientId: string) {
    const c = await this.deps.store.db.selectFrom('identity_clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
    if (!c) throw new IdentityError(404, 'invalid_client', `No client with requested id: ${clientId}`);
    return {
      client_id: c.client_id,
      scope: words(c.scopes),
      authorities: words(c.authorities),
      authorized_grant_types: words(c.grant_types),
      resource_ids: ['none'],
      lastModified: Date.parse(c.created_at),
    };
  }

  async deleteClient(clientId: string) {
    if (clientId === CF_CLIENT) throw new IdentityError(400, 'invalid_operation', 'The cf client cannot be deleted.');
    const client = await this.getClient(clientId);
    await this.deps.store.db.deleteFrom('identity_clients').where('client_id', '=', clientId).execute();
    return client;
  }

  /** Published verification keys (for /token_keys and external verifiers). */
  get publicKey() {
    return { jwk: this.signing.publicJwk, pem: this.signing.publicPem };
  }
}

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** Maps UAA-style claims (and plain OIDC ones for external issuers) to a Principal. */
export function principalFromClaims(claims: JWTPayload): Principal {
  const scope = claims.scope;
  const scopes = Array.isArray(scope) ? scope.map(String) : typeof scope === 'string' ? words(scope) : [];
  const userId = str(claims.user_id) ?? (str(claims.user_name) || str(claims.preferred_username) ? str(claims.sub) : null);
  if (userId) {
    return {
      guid: userId,
      username: str(claims.user_name) ?? str(claims.preferred_username) ?? str(claims.email),
      origin: str(claims.origin) ?? 'uaa',
      email: str(claims.email),
      isClient: false,
      scopes: new Set(scopes),
    };
  }
  const clientId = str(claims.client_id) ?? str(claims.azp) ?? str(claims.sub);
  if (!clientId) throw new KilnError('InvalidAuthToken');
  return { guid: clientId, username: null, origin: null, email: null, isClient: true, scopes: new Set(scopes) };
}
