import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { buildController, buildpackCacheCollector } from '../../../src/controllers/build-controller.ts';
import { LogStore } from '../../../src/logs/log-store.ts';
import { bitsFor } from '../../../src/lifecycle/blobs.ts';
import { reconcilerTest, type ReconcilerTest } from '../../helpers/reconciler-harness.ts';
import { postMultipart, zipOf } from '../../api/bits-helpers.ts';
import { appFixture } from './fixtures.ts';

let r: ReconcilerTest;
let cacheRoot: string;
beforeAll(async () => {
  r = await reconcilerTest(async (t) => {
    const bits = await bitsFor(t.kiln.config);
    cacheRoot = bits.buildpackCacheRoot;
    return [buildController(t.kiln.store, bits, new LogStore(), t.kiln.config), buildpackCacheCollector(t.kiln.store, bits)];
  });
});
afterAll(() => r.close());

const procfileApp = [
  { type: 'file' as const, name: 'Procfile', content: 'web: ./run.sh\n' },
  { type: 'file' as const, name: 'run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
];

async function stagingBuild(name: string, lifecycle?: unknown): Promise<{ app: string; build: string }> {
  const f = await appFixture(r.t, name);
  const pkg = (await r.t.admin.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: f.app } } } })).body;
  const up = await postMultipart(r.t, r.t.admin, `/v3/packages/${pkg.guid}/upload`, { resources: [], bits: await zipOf(procfileApp) });
  expect(up.body.state, up.text).toBe('READY');
  const res = await r.t.admin.post('/v3/builds', { package: { guid: pkg.guid }, ...(lifecycle ? { lifecycle } : {}) });
  expect(res.status, res.text).toBe(201);
  return { app: f.app, build: res.body.guid };
}

const buildRow = (guid: string) =>
  r.t.kiln.store.db.selectFrom('builds').select(['state', 'error', 'droplet_guid', 'generation', 'observed_generation']).where('guid', '=', guid).executeTakeFirstOrThrow();

describe('the build controller', () => {
  it('stages a STAGING build into a droplet and records Succeeded and the app as Staged', async () => {
    const { app, build } = await stagingBuild('stages');
    await r.settle();
    const row = await buildRow(build);
    expect(row).toMatchObject({ state: 'STAGED', error: null });
    expect(row.droplet_guid).toBeTruthy();
    expect(row.observed_generation).toBe(row.generation);
    expect((await r.conditions('build', build)).Succeeded).toMatchObject({ status: 'True', reason: 'Staged', observedGeneration: row.generation });
    expect((await r.conditions('app', app)).Staged).toMatchObject({ status: 'True', reason: 'BuildStaged' });
  });

  it.each([
    { name: 'unknown-buildpack', lifecycle: { type: 'buildpack', data: { buildpacks: ['no_such_buildpack'] } }, error: /StagingError.*no_such_buildpack/ },
    { name: 'gone-package', lifecycle: undefined, error: /StagingError.*no longer available/ },
  ])('fails a build that cannot stage ($name) and records StagingFailed with the error', async ({ name, lifecycle, error }) => {
    const { app, build } = await stagingBuild(name, lifecycle);
    if (name === 'gone-package') {
      const pkg = await r.t.kiln.store.db.selectFrom('builds').select('package_guid').where('guid', '=', build).executeTakeFirstOrThrow();
      await r.t.kiln.store.write(async (tx) => {
        await tx.db.updateTable('packages').set({ state: 'EXPIRED' }).where('guid', '=', pkg.package_guid).execute();
      });
    }
    await r.settle();
    const row = await buildRow(build);
    expect(row.state).toBe('FAILED');
    expect(row.error).toMatch(error);
    expect((await r.conditions('build', build)).Succeeded).toMatchObject({ status: 'False', reason: 'StagingFailed', message: row.error });
    expect((await r.conditions('app', app)).Staged).toMatchObject({ status: 'False', reason: 'StagingFailed' });
  });

  it('leaves a finished build as it is when a change brings it back, and observes the new generation', async () => {
    const { build } = await stagingBuild('finished');
    await r.settle();
    const before = await buildRow(build);
    const successes = await r.reconciles('builds', 'success');
    expect((await r.t.admin.patch(`/v3/builds/${build}`, { metadata: { labels: { team: 'a' } } })).status).toBe(200);
    await r.settle();
    const after = await buildRow(build);
    expect(await r.reconciles('builds', 'success')).toBeGreaterThan(successes);
    expect(after).toMatchObject({ state: 'STAGED', droplet_guid: before.droplet_guid });
    expect(after.observed_generation).toBe(after.generation);
  });
});

describe('the buildpack cache collector', () => {
  const cacheOf = (appGuid: string, ageMs = 0) => {
    const dir = path.join(cacheRoot, appGuid);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'node_modules.tgz'), 'cached');
    const at = new Date(Date.now() - ageMs);
    fs.utimesSync(dir, at, at);
    return dir;
  };

  it("removes a deleted app's cache when the change feed reports the delete", async () => {
    const f = await appFixture(r.t, 'cache-deleted');
    const dir = cacheOf(f.app);
    await r.t.kiln.store.write(async (tx) => {
      await tx.db.deleteFrom('processes').where('app_guid', '=', f.app).execute();
      await tx.db.deleteFrom('apps').where('guid', '=', f.app).execute();
      tx.changed('apps', f.app, 'delete');
    });
    await r.settle();
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('removes on resync only old caches of apps that do not exist', async () => {
    const f = await appFixture(r.t, 'cache-kept');
    const kept = cacheOf(f.app, 60 * 60_000);
    const orphan = cacheOf(randomUUID(), 60 * 60_000);
    const fresh = cacheOf(randomUUID());
    await r.manager.resync();
    await r.settle();
    expect([fs.existsSync(kept), fs.existsSync(orphan), fs.existsSync(fresh)]).toEqual([true, false, true]);
  });
});
