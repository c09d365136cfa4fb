import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rewrapSecrets, sealEnvVarColumns } from '../../src/store/rewrap-secrets.ts';
import { SecretBox } from '../../src/store/secret-box.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/**
 * App environment variables encrypted at rest (issue 9 §8): what `cf set-env`, app creation, manifests,
 * revisions and launches store is sealed (store/env-vars.ts); the API still answers with the values; values
 * stored in plain JSON before are sealed at start; key rotation re-seals them.
 */

let t: TestKiln;
let dbDir: string;
let space: any;
const NEEDLES = ['needle-created-5f1c', 'needle-set-env-8a2d', 'needle-manifest-3b7e'];
const KEY = randomBytes(32);

beforeAll(async () => {
  dbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-env-at-rest-'));
  t = await createTestKiln({ DATABASE_URL: `sqlite:${path.join(dbDir, 'kiln.sqlite')}`, KILN_ENCRYPTION_KEY: KEY.toString('hex') });
  const org = await t.org('env-org');
  space = await t.space('env-space', org.guid);
});
afterAll(async () => {
  await t.close();
  fs.rmSync(dbDir, { recursive: true, force: true });
});

/** Every byte SQLite keeps for the database: the main file, its write-ahead log and shared memory. */
const databaseBytes = () =>
  Buffer.concat(fs.readdirSync(dbDir).map((f) => fs.readFileSync(path.join(dbDir, f)))).toString('latin1');

describe('app environment variables at rest', () => {
  let app: string;

  it('never reach the database file in plain text, while the API shows them', async () => {
    const created = await t.admin.post('/v3/apps', { name: 'secretive', environment_variables: { CREATED: NEEDLES[0] }, relationships: { space: { data: { guid: space.guid } } } });
    expect(created.status, created.text).toBe(201);
    app = created.body.guid;
    expect((await t.admin.patch(`/v3/apps/${app}/environment_variables`, { var: { SET_ENV: NEEDLES[1] } })).status).toBe(200);
    const manifest = await t.admin.request('POST', `/v3/spaces/${space.guid}/actions/apply_manifest`, undefined, {
      headers: { 'content-type': 'application/x-yaml' },
      raw: `applications:\n- name: secretive\n  env:\n    MANIFEST: ${NEEDLES[2]}\n`,
    });
    expect(manifest.status).toBe(202);
    await t.awaitJob(manifest.headers.get('location'));
    // A start records a revision with the variables (revisions are on for new apps).
    const droplet = await t.droplet(app);
    expect((await t.admin.patch(`/v3/apps/${app}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
    expect((await t.admin.post(`/v3/apps/${app}/actions/start`)).status).toBe(200);

    const vars = await t.admin.get(`/v3/apps/${app}/environment_variables`);
    expect(vars.body.var).toEqual({ CREATED: NEEDLES[0], SET_ENV: NEEDLES[1], MANIFEST: NEEDLES[2] });
    expect((await t.admin.get(`/v3/apps/${app}/env`)).body.environment_variables).toEqual(vars.body.var);
    const revisions = await t.admin.get(`/v3/apps/${app}/revisions`);
    expect(revisions.body.resources.length).toBeGreaterThan(0);
    expect((await t.admin.get(`/v3/revisions/${revisions.body.resources.at(-1).guid}/environment_variables`)).body.var).toEqual(vars.body.var);
    const manifestText = await t.admin.get(`/v3/apps/${app}/manifest`, { skipSpec: true });
    expect(manifestText.text).toContain(NEEDLES[2]);

    const row = await t.kiln.store.db.selectFrom('apps').select('environment_variables').where('guid', '=', app).executeTakeFirstOrThrow();
    expect(row.environment_variables).toMatch(/^v1:/);
    const bytes = databaseBytes();
    for (const needle of NEEDLES) expect(bytes.includes(needle), needle).toBe(false);
  });

  it('stored in plain JSON before sealing are still read, and sealed at the next start', async () => {
    const legacy = await t.admin.post('/v3/apps', { name: 'legacy', relationships: { space: { data: { guid: space.guid } } } });
    // Written as an old Kiln did, straight to the table (before values were sealed).
    await t.kiln.store.db.updateTable('apps').set({ environment_variables: JSON.stringify({ OLD: 'plain' }) }).where('guid', '=', legacy.body.guid).execute();
    expect((await t.admin.get(`/v3/apps/${legacy.body.guid}/environment_variables`)).body.var).toEqual({ OLD: 'plain' });
    expect(await sealEnvVarColumns(t.kiln.store)).toBeGreaterThan(0);
    expect(await sealEnvVarColumns(t.kiln.store)).toBe(0);
    const row = await t.kiln.store.db.selectFrom('apps').select('environment_variables').where('guid', '=', legacy.body.guid).executeTakeFirstOrThrow();
    expect(row.environment_variables).toMatch(/^v1:/);
    expect((await t.admin.get(`/v3/apps/${legacy.body.guid}/environment_variables`)).body.var).toEqual({ OLD: 'plain' });
  });

  it('are re-sealed under a new key by key rotation', async () => {
    const newKey = randomBytes(32);
    t.kiln.store.secrets = new SecretBox(newKey, [KEY]);
    expect(await rewrapSecrets(t.kiln.store)).toBeGreaterThan(0);
    const row = await t.kiln.store.db.selectFrom('apps').select('environment_variables').where('guid', '=', app).executeTakeFirstOrThrow();
    // Readable under the new key alone: the old one can be dropped.
    expect(new SecretBox(newKey).open(row.environment_variables)).toContain(NEEDLES[1]);
    expect((await t.admin.get(`/v3/apps/${app}/environment_variables`)).body.var.SET_ENV).toBe(NEEDLES[1]);
  });
});
