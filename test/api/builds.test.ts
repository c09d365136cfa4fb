import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildController, type BuildController } from '../../src/controllers/build-controller.ts';
import { LogStore } from '../../src/logs/log-store.ts';
import { bitsFor } from '../../src/lifecycle/blobs.ts';
import { listTarGz } from '../../src/staging/tarball.ts';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';
import { appFixture, filesUnder, postMultipart, zipOf } from './bits-helpers.ts';
import type { FixtureEntry } from '../staging/zip-fixtures.ts';

let t: TestKiln;
let logs: LogStore;
let controller: BuildController;
beforeAll(async () => {
  // The test drives its own build controller, so Kiln's must not race it.
  t = await createTestKiln({}, { disabledControllers: ['builds'] });
  logs = new LogStore();
  controller = buildController(t.kiln.store, await bitsFor(t.kiln.config), logs, t.kiln.config);
});
afterAll(() => t.close());

const procfileApp: FixtureEntry[] = [
  { type: 'file', name: 'Procfile', content: 'web: ./run.sh\nworker: ./run.sh work\n' },
  { type: 'file', name: 'run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
];

async function readyPackage(client: Client, appGuid: string, entries: FixtureEntry[] = procfileApp) {
  const pkg = (await client.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: appGuid } } } })).body;
  const res = await postMultipart(t, client, `/v3/packages/${pkg.guid}/upload`, { resources: [], bits: await zipOf(entries) });
  expect(res.body.state, res.text).toBe('READY');
  return res.body;
}

describe('creating builds', () => {
  it('refuses packages that are not READY with the detail the cf CLI special-cases', async () => {
    const { app } = await appFixture(t, 'build-notready');
    const pkg = (await t.admin.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: app.guid } } } })).body;
    const res = await t.admin.post('/v3/builds', { package: { guid: pkg.guid } });
    expect(res.status).toBe(400);
    expect(res.body.errors[0].detail).toBe('Bad request: Cannot stage package whose state is not ready.');
    const missing = await t.admin.post('/v3/builds', { package: { guid: '00000000-0000-4000-8000-000000000000' } });
    expect(missing.status).toBe(422);
    const bad = await t.admin.post('/v3/builds', { package: { guid: pkg.guid }, staging_memory_in_mb: -1 });
    expect(bad.status).toBe(422);
  });

  it('creates a STAGING build with the app lifecycle and refuses a second one while it stages', async () => {
    const { app } = await appFixture(t, 'build-create');
    const pkg = await readyPackage(t.admin, app.guid);
    const res = await t.admin.post('/v3/builds', { package: { guid: pkg.guid }, staging_memory_in_mb: 512, metadata: { labels: { a: 'b' } } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      state: 'STAGING',
      staging_memory_in_mb: 512,
      staging_disk_in_mb: 1024,
      error: null,
      lifecycle: { type: 'buildpack', data: { buildpacks: [] } },
      package: { guid: pkg.guid },
      droplet: null,
      created_by: { guid: t.admin.userGuid, name: t.admin.username },
      relationships: { app: { data: { guid: app.guid } } },
      metadata: { labels: { a: 'b' } },
    });
    const second = await t.admin.post('/v3/builds', { package: { guid: pkg.guid } });
    expect(second.status).toBe(422);
    expect(second.body.errors[0].title).toBe('CF-StagingInProgress');
    expect(await controller.listKeys()).toContain(res.body.guid);
    await controller.reconcile(res.body.guid);
  });
});

describe('the build controller', () => {
  it('stages a package into a droplet with the binary buildpack, streaming STG logs', async () => {
    const { app } = await appFixture(t, 'build-stage');
    const pkg = await readyPackage(t.admin, app.guid);
    const created = (await t.admin.post('/v3/builds', { package: { guid: pkg.guid } })).body;
    await controller.reconcile(created.guid);
    const build = (await t.admin.get(`/v3/builds/${created.guid}`)).body;
    expect(build.state, build.error).toBe('STAGED');
    expect(build.droplet.guid).toBeTruthy();
    expect(build.links.droplet.href).toBe(`http://kiln.test/v3/droplets/${build.droplet.guid}`);

    const droplet = (await t.admin.get(`/v3/droplets/${build.droplet.guid}`)).body;
    expect(droplet).toMatchObject({
      state: 'STAGED',
      lifecycle: { type: 'buildpack', data: {} },
      process_types: { web: './run.sh', worker: './run.sh work' },
      relationships: { app: { data: { guid: app.guid } } },
    });
    expect(droplet.buildpacks[0]).toMatchObject({ name: 'binary_buildpack', detect_output: 'binary' });
    expect(droplet.checksum).toMatchObject({ type: 'sha256' });
    expect(droplet.links.package.href).toBe(`http://kiln.test/v3/packages/${pkg.guid}`);

    const bits = await bitsFor(t.kiln.config);
    const row = await t.kiln.store.db.selectFrom('droplets').selectAll().where('guid', '=', droplet.guid).executeTakeFirstOrThrow();
    const entries = (await listTarGz(await bits.blobstore.localPath(row.blob_key!))).map((e) => e.path.replace(/^\.\//, ''));
    expect(entries).toContain('app/run.sh');
    expect(entries).toContain('staging_info.yml');

    const lines = logs.read(app.guid, { limit: 1000, descending: false });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.sourceType === 'STG' && l.instanceId === '0')).toBe(true);
    expect(lines.map((l) => l.payload)).toContain('Uploading droplet...');
    expect(filesUnder(path.join(bits.workRoot, 'staging'))).toEqual([]);

    // Assigning the droplet works with the Apps API (the cf push sequence continues there).
    const assign = await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet.guid } });
    expect(assign.status, assign.text).toBe(200);
    const appDroplets = await t.admin.get(`/v3/apps/${app.guid}/droplets?current=true`);
    expect(appDroplets.body.resources.map((d: any) => d.guid)).toEqual([droplet.guid]);
    const pkgDroplets = await t.admin.get(`/v3/packages/${pkg.guid}/droplets?states=STAGED`);
    expect(pkgDroplets.body.resources.map((d: any) => d.guid)).toEqual([droplet.guid]);

    // Idempotent: reconciling a finished build changes nothing.
    await controller.reconcile(created.guid);
    expect(await t.kiln.store.db.selectFrom('droplets').select('guid').where('build_guid', '=', created.guid).execute()).toHaveLength(1);
  });

  it('fails a build no buildpack detects with NoAppDetectedError', async () => {
    const { app } = await appFixture(t, 'build-nodetect');
    const pkg = await readyPackage(t.admin, app.guid, [{ type: 'file', name: 'README.md', content: 'nothing to run\n' }]);
    const created = (await t.admin.post('/v3/builds', { package: { guid: pkg.guid } })).body;
    await controller.reconcile(created.guid);
    const build = (await t.admin.get(`/v3/builds/${created.guid}`)).body;
    expect(build.state).toBe('FAILED');
    expect(build.error).toBe('NoAppDetectedError - An app was not successfully detected by any available buildpack');
    expect(build.droplet).toBeNull();
    expect(logs.read(app.guid, { limit: 100, descending: true })[0]).toMatchObject({ type: 'ERR', sourceType: 'STG' });
  });

  it('fails with a StagingError for an unknown named buildpack', async () => {
    const { app } = await appFixture(t, 'build-unknown-bp');
    const pkg = await readyPackage(t.admin, app.guid);
    const created = await t.admin.post('/v3/builds', { package: { guid: pkg.guid }, lifecycle: { type: 'buildpack', data: { buildpacks: ['no_such_buildpack'] } } });
    expect(created.status, created.text).toBe(201);
    expect(created.body.lifecycle.data.buildpacks).toEqual(['no_such_buildpack']);
    await controller.reconcile(created.body.guid);
    const build = (await t.admin.get(`/v3/builds/${created.body.guid}`)).body;
    expect(build.state).toBe('FAILED');
    expect(build.error).toMatch(/^StagingError - Staging error: buildpack "no_such_buildpack" is not available/);
  });

  it('restages from scratch a build left STAGING by a crashed worker', async () => {
    const { app } = await appFixture(t, 'build-crash');
    const pkg = await readyPackage(t.admin, app.guid);
    const created = (await t.admin.post('/v3/builds', { package: { guid: pkg.guid } })).body;
    const bits = await bitsFor(t.kiln.config);
    const leftover = path.join(bits.workRoot, 'staging', created.guid, 'build', 'app');
    fs.mkdirSync(leftover, { recursive: true });
    fs.writeFileSync(path.join(leftover, 'half-written'), 'x');
    // A fresh controller stands for the restarted process: it finds the build through its resync listing.
    const restarted = buildController(t.kiln.store, bits, logs, t.kiln.config);
    expect(await restarted.listKeys()).toContain(created.guid);
    await restarted.reconcile(created.guid);
    expect((await t.admin.get(`/v3/builds/${created.guid}`)).body.state).toBe('STAGED');
    expect(fs.existsSync(path.join(bits.workRoot, 'staging', created.guid))).toBe(false);
  });
});

describe('reading and updating builds', () => {
  it('lists with filters, per app, and updates metadata; only admins (or the build state updater) set the outcome', async () => {
    const { org, space, app } = await appFixture(t, 'build-list');
    const pkg = await readyPackage(t.admin, app.guid);
    const b = (await t.admin.post('/v3/builds', { package: { guid: pkg.guid } })).body;
    expect((await t.admin.get(`/v3/builds?app_guids=${app.guid}&states=STAGING`)).body.resources.map((x: any) => x.guid)).toEqual([b.guid]);
    expect((await t.admin.get(`/v3/builds?package_guids=${pkg.guid}`)).body.pagination.total_results).toBe(1);
    expect((await t.admin.get(`/v3/apps/${app.guid}/builds?states=STAGED`)).body.resources).toEqual([]);
    expect((await t.admin.get('/v3/builds?names=x')).status).toBe(400);
    const upd = await t.admin.patch(`/v3/builds/${b.guid}`, { metadata: { annotations: { note: 'x' } } });
    expect(upd.body.metadata.annotations).toEqual({ note: 'x' });

    const dev = await t.user();
    await t.grant(dev, 'organization_user', { org: org.guid });
    await t.grant(dev, 'space_developer', { space: space.guid });
    expect((await dev.patch(`/v3/builds/${b.guid}`, { state: 'FAILED', error: 'nope' })).status).toBe(403);
    expect((await dev.patch(`/v3/builds/${b.guid}`, { metadata: { labels: { x: 'y' } } })).status).toBe(200);

    const failed = await t.admin.patch(`/v3/builds/${b.guid}`, { state: 'FAILED', error: 'StagingError - external stager gave up' });
    expect(failed.status, failed.text).toBe(200);
    expect(failed.body).toMatchObject({ state: 'FAILED', error: 'StagingError - external stager gave up' });
    expect((await t.admin.patch(`/v3/builds/${b.guid}`, { state: 'FAILED', error: 'again' })).status).toBe(422);
    expect((await t.admin.get('/v3/builds/00000000-0000-4000-8000-000000000000')).body.errors[0].detail).toBe('Build not found');
  });

  it('hides builds from outsiders and lets supporters create builds but not auditors', async () => {
    const { org, space, app } = await appFixture(t, 'build-roles');
    const pkg = await readyPackage(t.admin, app.guid);
    const outsider = await t.user();
    expect((await outsider.get('/v3/builds')).body.resources).toEqual([]);
    expect((await outsider.post('/v3/builds', { package: { guid: pkg.guid } })).status).toBe(422);
    const auditor = await t.user();
    await t.grant(auditor, 'organization_user', { org: org.guid });
    await t.grant(auditor, 'space_auditor', { space: space.guid });
    expect((await auditor.post('/v3/builds', { package: { guid: pkg.guid } })).status).toBe(403);
    const supporter = await t.user();
    await t.grant(supporter, 'organization_user', { org: org.guid });
    await t.grant(supporter, 'space_supporter', { space: space.guid });
    const created = await supporter.post('/v3/builds', { package: { guid: pkg.guid } });
    expect(created.status, created.text).toBe(201);
    expect((await outsider.get(`/v3/builds/${created.body.guid}`)).status).toBe(404);
    expect((await auditor.get(`/v3/builds/${created.body.guid}`)).status).toBe(200);
    await controller.reconcile(created.body.guid);
  });
});
