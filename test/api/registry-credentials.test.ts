import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildController, type BuildController } from '../../src/controllers/build-controller.ts';
import { LogStore } from '../../src/logs/log-store.ts';
import type { ImagePull } from '../../src/runtime/runtime.ts';
import { bitsFor } from '../../src/lifecycle/blobs.ts';
import { resolveRegistryCredential } from '../../src/lifecycle/image-pull.ts';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

/**
 * Registry credentials (Kiln extension, docs/kiln-openapi.json): the five operations, read and write roles per
 * scope, write-only secrets (never in a response, an audit event or a staging log; sealed in the database), and
 * the docker lifecycle's choice of credential (space, then organization, then foundation).
 */

let t: TestKiln;
let orgA: any;
let orgB: any;
let s1: any;
let s2: any;
let sB: any;
let orgManager: Client;
let orgUser: Client;
let dev1: Client;
let manager1: Client;
let auditor1: Client;
let dev2: Client;
let outsider: Client;
let logs: LogStore;
let builds: BuildController;
const pulls: ImagePull[] = [];

const SECRETS = ['hub-password-1', 'org-password-2', 'space-token-3', 'rotated-password-4'];

beforeAll(async () => {
  t = await createTestKiln({}, { disabledControllers: ['builds'] });
  orgA = await t.org('rc-org-a');
  orgB = await t.org('rc-org-b');
  s1 = await t.space('rc-s1', orgA.guid);
  s2 = await t.space('rc-s2', orgA.guid);
  sB = await t.space('rc-sb', orgB.guid);
  orgManager = await t.user();
  await t.grant(orgManager, 'organization_manager', { org: orgA.guid });
  orgUser = await t.user();
  await t.grant(orgUser, 'organization_user', { org: orgA.guid });
  dev1 = await t.spaceMember('space_developer', s1);
  manager1 = await t.spaceMember('space_manager', s1);
  auditor1 = await t.spaceMember('space_auditor', s1);
  dev2 = await t.spaceMember('space_developer', s2);
  outsider = await t.user();
  logs = new LogStore();
  builds = buildController(t.kiln.store, await bitsFor(t.kiln.config), logs, t.kiln.config, {
    secrets: t.kiln.secrets,
    inspectImage: async (pull) => {
      pulls.push(pull);
      return { command: '/bin/serve' };
    },
  });
});
afterAll(() => t.close());

const detail = (res: { body: any }) => res.body.errors?.[0]?.detail as string | undefined;
const create = (client: Client, body: Record<string, unknown>) => client.post('/v3/registry_credentials', body);
const scoped = (kind: 'organization' | 'space', guid: string) => ({ relationships: { [kind]: { data: { guid } } } });
const noSecretIn = (text: string) => {
  for (const s of SECRETS) expect(text).not.toContain(s);
};

let hub: any;
let orgCred: any;
let spaceCred: any;

describe('creating and reading registry credentials', () => {
  it('an admin stores a foundation credential; the host is normalized and the password never shown', async () => {
    const res = await create(t.admin, { host: 'https://Index.Docker.io/', username: 'robot', password: SECRETS[0], metadata: { labels: { team: 'platform' } } });
    expect(res.status, res.text).toBe(201);
    hub = res.body;
    expect(hub).toMatchObject({
      scope: 'foundation',
      host: 'docker.io',
      username: 'robot',
      secret_type: 'password',
      relationships: { organization: { data: null }, space: { data: null } },
      metadata: { labels: { team: 'platform' }, annotations: {} },
    });
    expect(hub.links).toEqual({ self: { href: `http://kiln.test/v3/registry_credentials/${hub.guid}` } });
    noSecretIn(res.text);
  });

  it('seals the secret in the database', async () => {
    const row = await t.kiln.store.db.selectFrom('registry_credentials').selectAll().where('guid', '=', hub.guid).executeTakeFirstOrThrow();
    expect(row.secret_ciphertext).toMatch(/^v1:[0-9a-f]{8}:/);
    noSecretIn(JSON.stringify(row));
    expect(t.kiln.secrets.open(row.secret_ciphertext, row.guid)).toBe(SECRETS[0]);
    // Bound to its row: the same ciphertext does not open under another guid.
    expect(() => t.kiln.secrets.open(row.secret_ciphertext, 'another-guid')).toThrow();
  });

  it('an org manager stores one for the org; a space developer one for the space (with a token)', async () => {
    const org = await create(orgManager, { host: 'registry.example.com', username: 'org-bot', password: SECRETS[1], ...scoped('organization', orgA.guid) });
    expect(org.status, org.text).toBe(201);
    orgCred = org.body;
    expect(orgCred).toMatchObject({ scope: 'organization', relationships: { organization: { data: { guid: orgA.guid } }, space: { data: null } } });
    expect(orgCred.links.organization.href).toBe(`http://kiln.test/v3/organizations/${orgA.guid}`);
    const space = await create(dev1, { host: 'registry.example.com', token: SECRETS[2], ...scoped('space', s1.guid) });
    expect(space.status, space.text).toBe(201);
    spaceCred = space.body;
    expect(spaceCred).toMatchObject({
      scope: 'space',
      username: '',
      secret_type: 'token',
      relationships: { organization: { data: { guid: orgA.guid } }, space: { data: { guid: s1.guid } } },
    });
    noSecretIn(org.text + space.text);
  });

  it('allows one credential per host per scope', async () => {
    const res = await create(manager1, { host: 'REGISTRY.example.com', username: 'x', password: 'y', ...scoped('space', s1.guid) });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].title).toBe('CF-UniquenessError');
    expect(detail(res)).toBe("A registry credential for host 'registry.example.com' already exists in this scope.");
  });

  it('refuses writers without the scope role', async () => {
    expect((await create(orgManager, { host: 'ghcr.io', username: 'u', password: 'p' })).status).toBe(403);
    expect((await create(orgUser, { host: 'ghcr.io', username: 'u', password: 'p', ...scoped('organization', orgA.guid) })).status).toBe(403);
    expect((await create(auditor1, { host: 'ghcr.io', username: 'u', password: 'p', ...scoped('space', s1.guid) })).status).toBe(403);
    const invisible = await create(outsider, { host: 'ghcr.io', username: 'u', password: 'p', ...scoped('space', s1.guid) });
    expect(invisible.status).toBe(422);
    expect(detail(invisible)).toBe('Invalid space. Ensure that the space exists and you have access to it.');
  });

  it('validates the request', async () => {
    const badHost = await create(t.admin, { host: 'not a host/path', username: 'u', password: 'p' });
    expect(badHost.status).toBe(422);
    expect(detail(badHost)).toContain('Host must be a registry host name');
    expect((await create(t.admin, { host: 'ghcr.io', username: 'u', password: 'p', token: 't' })).status).toBe(422);
    expect((await create(t.admin, { host: 'ghcr.io', password: 'p' })).status).toBe(422);
    expect((await create(t.admin, { host: 'ghcr.io', username: 'u', password: 'p', secret: 'x' })).status).toBe(422);
    expect((await create(t.admin, { host: 'ghcr.io', username: 'u', password: 'p', relationships: { ...scoped('space', s1.guid).relationships, ...scoped('organization', orgA.guid).relationships } })).status).toBe(422);
  });

  it('shows foundation credentials to everyone, org ones to org members, space ones to space roles only', async () => {
    const seen = async (c: Client) => (await c.get('/v3/registry_credentials?order_by=created_at')).body.resources.map((r: any) => r.guid);
    expect(await seen(outsider)).toEqual([hub.guid]);
    expect(await seen(orgUser)).toEqual([hub.guid, orgCred.guid]);
    expect(await seen(dev2)).toEqual([hub.guid, orgCred.guid]);
    expect(await seen(orgManager)).toEqual([hub.guid, orgCred.guid]);
    expect(await seen(auditor1)).toEqual([hub.guid, orgCred.guid, spaceCred.guid]);
    expect(await seen(t.admin)).toEqual([hub.guid, orgCred.guid, spaceCred.guid]);
    expect((await dev2.get(`/v3/registry_credentials/${spaceCred.guid}`)).status).toBe(404);
    expect((await outsider.get(`/v3/registry_credentials/${orgCred.guid}`)).status).toBe(404);
    const got = await auditor1.get(`/v3/registry_credentials/${spaceCred.guid}`);
    expect(got.body).toEqual(spaceCred);
  });

  it('filters by host, scope, organization and space', async () => {
    const guids = async (q: string) => (await t.admin.get(`/v3/registry_credentials?${q}`)).body.resources.map((r: any) => r.guid).sort();
    expect(await guids('hosts=registry.example.com')).toEqual([orgCred.guid, spaceCred.guid].sort());
    expect(await guids('scopes=foundation')).toEqual([hub.guid]);
    expect(await guids('scopes=planet')).toEqual([]);
    expect(await guids('hosts=index.docker.io')).toEqual([hub.guid]);
    expect(await guids(`space_guids=${s1.guid}`)).toEqual([spaceCred.guid]);
    expect(await guids(`organization_guids=${orgA.guid}`)).toEqual([orgCred.guid, spaceCred.guid].sort());
    expect(await guids('label_selector=team=platform')).toEqual([hub.guid]);
    expect((await t.admin.get('/v3/registry_credentials?secret=x')).status).toBe(400);
  });
});

describe('updating and deleting', () => {
  it('replaces the secret without ever showing it, and keeps it out of audit events', async () => {
    expect((await auditor1.patch(`/v3/registry_credentials/${spaceCred.guid}`, { token: 'x' })).status).toBe(403);
    expect((await orgUser.patch(`/v3/registry_credentials/${orgCred.guid}`, { password: 'x' })).status).toBe(403);
    expect((await dev2.patch(`/v3/registry_credentials/${spaceCred.guid}`, { token: 'x' })).status).toBe(404);
    const res = await orgManager.patch(`/v3/registry_credentials/${orgCred.guid}`, { username: 'org-bot-2', password: SECRETS[3] });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ username: 'org-bot-2', secret_type: 'password', host: 'registry.example.com' });
    noSecretIn(res.text);
    expect((await orgManager.patch(`/v3/registry_credentials/${orgCred.guid}`, { host: 'other.example.com' })).status).toBe(422);
    const events = await t.admin.get('/v3/audit_events?per_page=5000');
    const ours = events.body.resources.filter((e: any) => e.type.startsWith('audit.registry_credential.'));
    expect(ours.map((e: any) => e.type)).toEqual(expect.arrayContaining(['audit.registry_credential.create', 'audit.registry_credential.update']));
    noSecretIn(events.text);
    const update = ours.find((e: any) => e.type === 'audit.registry_credential.update');
    expect(update.data.request).toEqual({ username: 'org-bot-2', password: '[PRIVATE DATA HIDDEN]' });
  });
});

describe('which credential an image pull uses', () => {
  const resolve = (image: string, space: any) =>
    resolveRegistryCredential(t.kiln.store.db, t.kiln.secrets, { image, spaceGuid: space.guid, organizationGuid: space.relationships.organization.data.guid });

  it('prefers the space, then the organization, then the foundation', async () => {
    expect(await resolve('registry.example.com/team/app:1', s1)).toMatchObject({ guid: spaceCred.guid, scope: 'space', username: '', password: SECRETS[2] });
    expect(await resolve('registry.example.com/team/app:1', s2)).toMatchObject({ guid: orgCred.guid, scope: 'organization', password: SECRETS[3] });
    expect(await resolve('registry.example.com/team/app:1', sB)).toBeUndefined();
    expect(await resolve('nginx:1.27', sB)).toMatchObject({ guid: hub.guid, scope: 'foundation', host: 'docker.io', password: SECRETS[0] });
    expect(await resolve('docker.io/library/nginx', s1)).toMatchObject({ guid: hub.guid });
    expect(await resolve('localhost:5000/app', s1)).toBeUndefined();
  });

  async function dockerBuild(space: any, data: Record<string, string>) {
    const app = await t.admin.post('/v3/apps', { name: `img-${Math.random().toString(36).slice(2, 8)}`, lifecycle: { type: 'docker', data: {} }, relationships: { space: { data: { guid: space.guid } } } });
    expect(app.status, app.text).toBe(201);
    const pkg = await t.admin.post('/v3/packages', { type: 'docker', data, relationships: { app: { data: { guid: app.body.guid } } } });
    expect(pkg.status, pkg.text).toBe(201);
    const build = await t.admin.post('/v3/builds', { package: { guid: pkg.body.guid } });
    expect(build.status, build.text).toBe(201);
    await builds.stageBuild(build.body.guid);
    const staged = await t.admin.get(`/v3/builds/${build.body.guid}`);
    return { app: app.body, build: staged.body };
  }

  it('a docker build with no credentials of its own pulls with the most specific registry credential', async () => {
    pulls.length = 0;
    const { app, build } = await dockerBuild(s1, { image: 'registry.example.com/team/app:1' });
    expect(build.state, JSON.stringify(build.error)).toBe('STAGED');
    expect(pulls).toEqual([
      { image: 'registry.example.com/team/app:1', auth: { registry: 'registry.example.com', username: '', password: SECRETS[2], source: { kind: 'registry_credential', scope: 'space', guid: spaceCred.guid } } },
    ]);
    const droplet = await t.admin.get(`/v3/droplets/${build.droplet.guid}`);
    expect(droplet.body).toMatchObject({ state: 'STAGED', image: 'registry.example.com/team/app:1', process_types: { web: '/bin/serve' } });
    const lines = logs.read(app.guid, { limit: 1000, descending: false }).map((l) => l.payload).join('\n');
    expect(lines).toContain(`space registry credential ${spaceCred.guid} for registry.example.com`);
    noSecretIn(lines);
  });

  it("a docker package's own username and password win over stored credentials", async () => {
    pulls.length = 0;
    const { build } = await dockerBuild(s1, { image: 'registry.example.com/team/app:2', username: 'mine', password: 'my-own' });
    expect(build.state).toBe('STAGED');
    expect(pulls[0]!.auth).toEqual({ registry: 'registry.example.com', username: 'mine', password: 'my-own', source: { kind: 'package' } });
  });

  it('an image on a registry without credentials is pulled anonymously', async () => {
    pulls.length = 0;
    const { build } = await dockerBuild(sB, { image: 'quay.io/org/tool' });
    expect(build.state).toBe('STAGED');
    expect(pulls).toEqual([{ image: 'quay.io/org/tool' }]);
  });
});

describe('deleting', () => {
  it('deletes with the scope role, and credentials go with their org', async () => {
    expect((await auditor1.delete(`/v3/registry_credentials/${spaceCred.guid}`)).status).toBe(403);
    expect((await manager1.delete(`/v3/registry_credentials/${spaceCred.guid}`)).status).toBe(204);
    expect((await t.admin.get(`/v3/registry_credentials/${spaceCred.guid}`)).status).toBe(404);
    const bCred = await create(t.admin, { host: 'registry.example.com', username: 'b', password: 'b', ...scoped('organization', orgB.guid) });
    expect(bCred.status).toBe(201);
    const del = await t.admin.delete(`/v3/organizations/${orgB.guid}`);
    expect(del.status).toBe(202);
    await t.awaitJob(del.headers.get('location'));
    expect((await t.admin.get(`/v3/registry_credentials/${bCred.body.guid}`)).status).toBe(404);
    expect((await outsider.delete(`/v3/registry_credentials/${hub.guid}`)).status).toBe(403);
    expect((await t.admin.delete(`/v3/registry_credentials/${hub.guid}`)).status).toBe(204);
  });
});
