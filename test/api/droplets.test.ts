import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bitsFor } from '../../src/lifecycle/blobs.ts';
import { createTarGz } from '../../src/staging/tarball.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { tempDir } from '../staging/zip-fixtures.ts';
import { appFixture, filesUnder, postMultipart } from './bits-helpers.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

const rel = (appGuid: string) => ({ relationships: { app: { data: { guid: appGuid } } } });

/** A droplet tarball as staging produces one (app/, staging_info.yml), optionally with a planted symlink. */
async function dropletTgz(opts: { evilLink?: boolean } = {}): Promise<Buffer> {
  const dir = tempDir('kiln-droplet-test-');
  fs.mkdirSync(path.join(dir, 'app'));
  fs.writeFileSync(path.join(dir, 'app', 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'staging_info.yml'), '{"detected_buildpack":"","start_command":"./run.sh"}\n');
  if (opts.evilLink) fs.symlinkSync('/etc/passwd', path.join(dir, 'app', 'passwd'));
  const out = path.join(dir, 'droplet.tgz');
  await createTarGz(dir, ['app', 'staging_info.yml'], out);
  const buf = fs.readFileSync(out);
  fs.rmSync(dir, { recursive: true, force: true });
  return buf;
}

async function stagedDroplet(appGuid: string) {
  const created = (await t.admin.post('/v3/droplets', { ...rel(appGuid), process_types: { web: './run.sh' } })).body;
  const res = await postMultipart(t, t.admin, `/v3/droplets/${created.guid}/upload`, { bits: await dropletTgz(), filename: 'droplet.tgz' });
  expect(res.status, res.text).toBe(202);
  return res.body;
}

describe('creating and uploading droplets', () => {
  it('creates a droplet awaiting upload, stores the uploaded tarball (202 + job) and refuses a second upload', async () => {
    const { app } = await appFixture(t, 'drop-upload');
    const res = await t.admin.post('/v3/droplets', { ...rel(app.guid), process_types: { web: './run.sh' } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ state: 'AWAITING_UPLOAD', process_types: { web: './run.sh' }, lifecycle: { type: 'buildpack', data: {} } });
    expect(res.body.links.upload).toEqual({ href: `http://kiln.test/v3/droplets/${res.body.guid}/upload`, method: 'POST' });
    expect(res.body.links.download).toBeUndefined();

    const up = await postMultipart(t, t.admin, `/v3/droplets/${res.body.guid}/upload`, { bits: await dropletTgz(), filename: 'droplet.tgz' });
    expect(up.status, up.text).toBe(202);
    expect(up.body.state).toBe('STAGED');
    expect(up.body.checksum).toMatchObject({ type: 'sha256' });
    expect((await t.awaitJob(up.headers.get('location'))).state).toBe('COMPLETE');
    const again = await postMultipart(t, t.admin, `/v3/droplets/${res.body.guid}/upload`, { bits: await dropletTgz() });
    expect(again.status).toBe(422);
    expect(again.body.errors[0].detail).toBe('Droplet may be uploaded only once. Create a new droplet to upload bits.');
  });

  it('rejects a droplet with a link out of its root or garbage with 422, storing nothing', async () => {
    const { app } = await appFixture(t, 'drop-evil');
    const bits = await bitsFor(t.kiln.config);
    for (const bytes of [await dropletTgz({ evilLink: true }), Buffer.from('not a tarball')]) {
      const created = (await t.admin.post('/v3/droplets', rel(app.guid))).body;
      const res = await postMultipart(t, t.admin, `/v3/droplets/${created.guid}/upload`, { bits: bytes });
      expect(res.status, res.text).toBe(422);
      expect(res.body.errors[0].detail).toMatch(/^The droplet upload is invalid/);
      const after = (await t.admin.get(`/v3/droplets/${created.guid}`)).body;
      expect(after.state).toBe('FAILED');
      expect(await bits.blobstore.exists(`droplets/${created.guid}`)).toBe(false);
    }
    expect(filesUnder(bits.workRoot)).toEqual([]);
  });

  it('validates create bodies', async () => {
    const { app } = await appFixture(t, 'drop-bad');
    expect((await t.admin.post('/v3/droplets', {})).status).toBe(422);
    expect((await t.admin.post('/v3/droplets', { ...rel(app.guid), process_types: 'web' })).status).toBe(422);
    expect((await t.admin.post('/v3/droplets', rel('00000000-0000-4000-8000-000000000000'))).status).toBe(422);
  });
});

describe('reading, copying, downloading, updating and deleting droplets', () => {
  it('lists with filters and per app, copies and downloads', async () => {
    const { app } = await appFixture(t, 'drop-list');
    const { app: other } = await appFixture(t, 'drop-list-dst');
    const staged = await stagedDroplet(app.guid);
    const waiting = (await t.admin.post('/v3/droplets', rel(app.guid))).body;
    const list = await t.admin.get(`/v3/droplets?app_guids=${app.guid}&states=STAGED`);
    expect(list.body.resources.map((d: any) => d.guid)).toEqual([staged.guid]);
    expect((await t.admin.get(`/v3/apps/${app.guid}/droplets?order_by=-created_at`)).body.resources.map((d: any) => d.guid)).toEqual([
      waiting.guid,
      staged.guid,
    ]);
    expect((await t.admin.get(`/v3/apps/${app.guid}/droplets?current=true`)).body.resources).toEqual([]);
    expect((await t.admin.get('/v3/droplets?types=x')).status).toBe(400);

    const copy = await t.admin.post(`/v3/droplets?source_guid=${staged.guid}`, rel(other.guid));
    expect(copy.status, copy.text).toBe(201);
    expect(copy.body).toMatchObject({ state: 'STAGED', process_types: { web: './run.sh' }, relationships: { app: { data: { guid: other.guid } } } });
    expect(copy.body.checksum).toEqual(staged.checksum);
    expect((await t.admin.post(`/v3/droplets?source_guid=${waiting.guid}`, rel(other.guid))).status).toBe(422);

    const dl = await t.admin.get(`/v3/droplets/${copy.body.guid}/download`);
    expect(dl.status).toBe(302);
    const blob = await t.kiln.app.request(dl.headers.get('location')!);
    expect(blob.status).toBe(200);
    expect(Buffer.from(await blob.arrayBuffer()).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect((await t.admin.get(`/v3/droplets/${waiting.guid}/download`)).status).toBe(422);
  });

  it("answers a copy across tenants as Cloud Controller does and copies nothing", async () => {
    const mine = await appFixture(t, 'drop-copy-mine');
    const theirs = await appFixture(t, 'drop-copy-theirs');
    const source = await stagedDroplet(theirs.app.guid);
    const own = await stagedDroplet(mine.app.guid);
    const dev = await t.spaceMember('space_developer', mine.space);
    const count = async () => (await t.kiln.store.db.selectFrom('droplets').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n;
    const blobs = filesUnder(t.kiln.config.dataDir).filter((f) => f.includes('droplets'));
    const before = await count();
    // droplets_controller#create_copy: a source the caller cannot read is "Droplet not found", then a destination
    // app the caller cannot read is "App not found" — both 404, as for guids that exist nowhere.
    const stolen = await dev.post(`/v3/droplets?source_guid=${source.guid}`, rel(mine.app.guid));
    expect(stolen.status).toBe(404);
    expect(stolen.body.errors[0]).toEqual({ detail: 'Droplet not found', title: 'CF-ResourceNotFound', code: 10010 });
    const planted = await dev.post(`/v3/droplets?source_guid=${own.guid}`, rel(theirs.app.guid));
    expect(planted.status).toBe(404);
    expect(planted.body.errors[0]).toEqual({ detail: 'App not found', title: 'CF-ResourceNotFound', code: 10010 });
    expect(await count()).toEqual(before);
    expect(filesUnder(t.kiln.config.dataDir).filter((f) => f.includes('droplets'))).toEqual(blobs);
  });

  it('updates metadata, refuses images on buildpack droplets, and deletes through a job (unsetting the current droplet)', async () => {
    const { app } = await appFixture(t, 'drop-update');
    const staged = await stagedDroplet(app.guid);
    const upd = await t.admin.patch(`/v3/droplets/${staged.guid}`, { metadata: { labels: { v: '1' } } });
    expect(upd.status).toBe(200);
    expect(upd.body.metadata.labels).toEqual({ v: '1' });
    expect((await t.admin.get('/v3/droplets?label_selector=v=1')).body.resources.map((d: any) => d.guid)).toEqual([staged.guid]);
    expect((await t.admin.patch(`/v3/droplets/${staged.guid}`, { image: 'x/y' })).status).toBe(422);
    expect((await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: staged.guid } })).status).toBe(200);
    const del = await t.admin.delete(`/v3/droplets/${staged.guid}`);
    expect(del.status).toBe(202);
    expect((await t.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
    const gone = await t.admin.get(`/v3/droplets/${staged.guid}`);
    expect(gone.status).toBe(404);
    expect(gone.body.errors[0].detail).toBe('Droplet not found');
    expect((await t.admin.get(`/v3/apps/${app.guid}`)).body.relationships.current_droplet.data.guid).toBeNull();
  });

  it('redacts secrets for readers without secret access and enforces roles', async () => {
    const { org, space, app } = await appFixture(t, 'drop-roles');
    const staged = await stagedDroplet(app.guid);
    const outsider = await t.user();
    expect((await outsider.get(`/v3/droplets/${staged.guid}`)).status).toBe(404);
    expect((await outsider.get('/v3/droplets')).body.resources).toEqual([]);

    const auditor = await t.user();
    await t.grant(auditor, 'organization_user', { org: org.guid });
    await t.grant(auditor, 'space_auditor', { space: space.guid });
    const seen = (await auditor.get(`/v3/droplets/${staged.guid}`)).body;
    expect(seen.process_types).toEqual({ redacted_message: '[PRIVATE DATA HIDDEN]' });
    expect(seen.execution_metadata).toBe('[PRIVATE DATA HIDDEN]');
    const listed = (await auditor.get(`/v3/apps/${app.guid}/droplets`)).body.resources[0];
    expect(listed.process_types).toEqual({ redacted_message: '[PRIVATE DATA HIDDEN IN LISTS]' });
    expect((await auditor.get(`/v3/droplets/${staged.guid}/download`)).status).toBe(302);
    expect((await auditor.post('/v3/droplets', rel(app.guid))).status).toBe(403);
    expect((await auditor.delete(`/v3/droplets/${staged.guid}`)).status).toBe(403);

    const supporter = await t.user();
    await t.grant(supporter, 'organization_user', { org: org.guid });
    await t.grant(supporter, 'space_supporter', { space: space.guid });
    expect((await supporter.get(`/v3/droplets/${staged.guid}/download`)).status).toBe(403);

    const dev = await t.user();
    await t.grant(dev, 'organization_user', { org: org.guid });
    await t.grant(dev, 'space_developer', { space: space.guid });
    expect((await dev.get(`/v3/droplets/${staged.guid}`)).body.process_types).toEqual({ web: './run.sh' });
    expect((await dev.post('/v3/droplets', rel(app.guid))).status).toBe(201);
  });
});
