import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { expect } from 'vitest';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { buildKiln, type Kiln } from '../../src/server.ts';
import { rowCountDrift } from '../../src/store/row-counts.ts';
import { openApiProblems } from './openapi.ts';
import type { DropletState } from '../../src/domain/droplets.ts';

export interface ApiResponse<T = any> {
  status: number;
  // Response bodies are checked field by field in tests; typing every CF resource here would duplicate them.
  body: T;
  headers: Headers;
  text: string;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** Raw body (string) instead of JSON. */
  raw?: string;
  /** Skip the openapi.json check for this call (say why at the call site). */
  skipSpec?: boolean;
}

/** A caller of the API through `app.request()`, with a fixed bearer token (or none). */
export class Client {
  constructor(
    private readonly kiln: Kiln,
    readonly token: string | undefined,
    readonly userGuid: string | undefined,
    readonly username: string | undefined,
  ) {}

  async request<T = any>(method: string, url: string, body?: unknown, opts: RequestOptions = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
    if (this.token) headers.authorization = `bearer ${this.token}`;
    const init: RequestInit = { method, headers };
    if (opts.raw !== undefined) init.body = opts.raw;
    else if (body !== undefined) init.body = JSON.stringify(body);
    const res = await this.kiln.app.request(`http://kiln.test${url}`, init);
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
    if (!opts.skipSpec) {
      const problems = openApiProblems(method, url, res.status, parsed === '' ? undefined : parsed);
      expect(problems, `${method} ${url} → ${res.status} ${text.slice(0, 500)}`).toEqual([]);
    }
    return { status: res.status, body: parsed as T, headers: res.headers, text };
  }

  get<T = any>(url: string, opts?: RequestOptions) {
    return this.request<T>('GET', url, undefined, opts);
  }
  post<T = any>(url: string, body?: unknown, opts?: RequestOptions) {
    return this.request<T>('POST', url, body, opts);
  }
  patch<T = any>(url: string, body?: unknown, opts?: RequestOptions) {
    return this.request<T>('PATCH', url, body, opts);
  }
  put<T = any>(url: string, body?: unknown, opts?: RequestOptions) {
    return this.request<T>('PUT', url, body, opts);
  }
  delete<T = any>(url: string, opts?: RequestOptions) {
    return this.request<T>('DELETE', url, undefined, opts);
  }
}

export interface TestKiln {
  kiln: Kiln;
  admin: Client;
  anonymous: Client;
  /** Creates an identity-provider user and returns a client logged in as them. */
  user(name?: string, extraScopes?: string[]): Promise<Client>;
  /** Grants a role by writing the row directly (tests of other resources need roles without the roles API). */
  grant(client: Client, type: string, target: { org?: string; space?: string }): Promise<string>;
  /** A new user who is an org user of the space's org and holds `role` in the space. */
  spaceMember(role: string, space: { guid: string; relationships: { organization: { data: { guid: string } } } }): Promise<Client>;
  /** Creates an org as admin and returns its resource. */
  org(name: string, extra?: Record<string, unknown>): Promise<any>;
  /** Creates a space as admin and returns its resource. */
  space(name: string, orgGuid: string, extra?: Record<string, unknown>): Promise<any>;
  /** Writes a droplet row as the build controller would (no bits), for tests of what uses droplets. */
  droplet(appGuid: string, processTypes?: Record<string, string>, state?: DropletState): Promise<string>;
  /** Polls a job (from a 202's Location) until it is COMPLETE or FAILED, with a deadline. */
  awaitJob(location: string | null): Promise<any>;
  close(): Promise<void>;
}

let counter = 0;

/** Creates a fresh database for one test file: in-memory SQLite, or PostgreSQL when asked. */
async function testDatabase(): Promise<{ url: string | undefined; drop: () => Promise<void> }> {
  const pgUrl = process.env.KILN_TEST_DATABASE_URL;
  if (process.env.KILN_TEST_DIALECT !== 'postgres' || !pgUrl) return { url: 'sqlite::memory:', drop: async () => {} };
  const name = `kiln_test_${process.pid}_${Date.now()}_${counter++}`;
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(pgUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export async function createTestKiln(env: Record<string, string> = {}, opts: { disabledControllers?: string[] } = {}): Promise<TestKiln> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-test-'));
  const database = await testDatabase();
  const adminPassword = env.KILN_ADMIN_PASSWORD ?? randomBytes(12).toString('hex');
  const config: Config = loadConfig({
    KILN_DATA_DIR: dataDir,
    DATABASE_URL: database.url,
    KILN_ADMIN_PASSWORD: adminPassword,
    LOG_LEVEL: 'silent',
    // API tests count and list orgs from a clean slate; the default org has its own tests.
    KILN_DEFAULT_ORG: '',
    ...env,
  });
  const kiln = await buildKiln(config, { log: pino({ level: 'silent' }), disabledControllers: opts.disabledControllers ?? [] });

  const login = async (username: string, password: string) => {
    const res = await kiln.identity.passwordGrant(username, password);
    return res.access_token;
  };
  const adminToken = await login(config.admin.username, adminPassword);
  const adminPrincipal = await kiln.identity.verifyAccessToken(adminToken);
  const admin = new Client(kiln, adminToken, adminPrincipal.guid, config.admin.username);

  return {
    kiln,
    admin,
    anonymous: new Client(kiln, undefined, undefined, undefined),
    async user(name = `user-${counter++}`, extraScopes: string[] = []) {
      const password = randomBytes(12).toString('hex');
      const created = await kiln.identity.createUser({ userName: name, password });
      if (extraScopes.length > 0) {
        const row = await kiln.store.db.selectFrom('identity_users').select('scopes').where('guid', '=', created.id).executeTakeFirstOrThrow();
        await kiln.store.db
          .updateTable('identity_users')
          .set({ scopes: `${row.scopes} ${extraScopes.join(' ')}` })
          .where('guid', '=', created.id)
          .execute();
      }
      return new Client(kiln, await login(name, password), created.id, name);
    },
    async grant(client, type, target) {
      const guid = randomUUID();
      await kiln.store.write(async (tx) => {
        await tx.insert('roles', {
          guid,
          type,
          user_guid: client.userGuid!,
          organization_guid: target.org ?? null,
          space_guid: target.space ?? null,
        });
      });
      return guid;
    },
    async spaceMember(role, space) {
      // `this` is the TestKiln being returned (its methods are only ever called on it).
      const self = this as TestKiln;
      const member = await self.user();
      await self.grant(member, 'organization_user', { org: space.relationships.organization.data.guid });
      await self.grant(member, role, { space: space.guid });
      return member;
    },
    async org(name, extra = {}) {
      const res = await admin.post('/v3/organizations', { name, ...extra });
      expect(res.status, res.text).toBe(201);
      return res.body;
    },
    async space(name, orgGuid, extra = {}) {
      const res = await admin.post('/v3/spaces', { name, relationships: { organization: { data: { guid: orgGuid } } }, ...extra });
      expect(res.status, res.text).toBe(201);
      return res.body;
    },
    async droplet(appGuid, processTypes = { web: 'node server.js' }, state = 'STAGED') {
      const guid = randomUUID();
      await kiln.store.write(async (tx) => {
        await tx.insert('droplets', {
          guid,
          app_guid: appGuid,
          package_guid: null,
          build_guid: null,
          state,
          error: null,
          process_types: JSON.stringify(processTypes),
          execution_metadata: '',
          buildpacks: JSON.stringify([{ name: 'nodejs_buildpack', detect_output: 'nodejs', buildpack_name: 'nodejs', version: '1.0.0' }]),
          stack: 'cflinuxfs4',
          image: null,
          checksum_sha256: 'a'.repeat(64),
          checksum_sha1: null,
          blob_key: null,
          size_in_bytes: null,
          source_droplet_guid: null,
        });
      });
      return guid;
    },
    async awaitJob(location) {
      expect(location, 'a 202 must carry a Location header').toBeTruthy();
      const url = new URL(location!);
      expect(url.protocol).toMatch(/^https?:$/);
      const deadline = Date.now() + 10_000;
      for (;;) {
        await kiln.controllers.settle();
        const res = await admin.get(url.pathname);
        if (res.body.state === 'COMPLETE' || res.body.state === 'FAILED') return res.body;
        if (Date.now() > deadline) throw new Error(`job ${url.pathname} still ${res.body.state}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async close() {
      // Every API test doubles as a check of the kept row counts (migration 0087): whatever it wrote, each counted
      // table's counter must still equal its rows.
      let drift: Awaited<ReturnType<typeof rowCountDrift>> = [];
      try {
        drift = await rowCountDrift(kiln.store.db);
      } finally {
        await kiln.stop();
        await database.drop();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
      if (drift.length > 0) throw new Error(`kept row counts drifted from the tables: ${JSON.stringify(drift)}`);
    },
  };
}
