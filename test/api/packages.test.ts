import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobCollector } from '../../src/controllers/build-controller.ts';
import { bitsFor } from '../../src/lifecycle/blobs.ts';
import { listZip } from '../../src/staging/zip.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { appFixture, filesUnder, postMultipart, zipOf } from './bits-helpers.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

/** Incompressible but deterministic bytes (xorshift), so the zip stays as large as its content. */
function noise(n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = 2463534242;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * A zip of `count` entries of `entryBytes` zeros each, written by hand so the test never deflates the whole
 * expanded size: one deflated block of zeros is repeated under every entry (20 × 64 MiB → 1.3 MB of zip).
 */
function zeroBomb(count: number, entryBytes: number): Buffer {
  const zeros = Buffer.alloc(entryBytes);
  const data = zlib.deflateRawSync(zeros, { level: 9 });
  const crc = zlib.crc32(zeros);
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const name = Buffer.from(`zeros-${i}.bin`);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(entryBytes, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(entryBytes, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((0o100644 << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(count, 8);
  end.writeUInt16LE(count, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

const bitsBody = (appGuid: string) => ({ type: 'bits', relationships: { app: { data: { guid: appGuid } } } });
const appZip = () =>
  zipOf([
    { type: 'dir', name: 'lib/' },
    { type: 'file', name: 'Procfile', content: 'web: ./run.sh\n' },
    { type: 'file', name: 'run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
    { type: 'file', name: 'lib/data.txt', content: 'some data\n' },
  ]);

describe('creating packages', () => {
  it('creates a bits package awaiting upload, with upload and download links and an audit event', async () => {
    const { app } = await appFixture(t, 'pkg-create');
    const res = await t.admin.post('/v3/packages', bitsBody(app.guid));
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      type: 'bits',
      state: 'AWAITING_UPLOAD',
      data: { checksum: { type: 'sha256', value: null }, error: null },
      relationships: { app: { data: { guid: app.guid } } },
      metadata: { labels: {}, annotations: {} },
    });
    const self = `http://kiln.test/v3/packages/${res.body.guid}`;
    expect(res.body.links).toEqual({
      self: { href: self },
      upload: { href: `${self}/upload`, method: 'POST' },
      download: { href: `${self}/download`, method: 'GET' },
      app: { href: `http://kiln.test/v3/apps/${app.guid}` },
    });
    const events = await t.admin.get(`/v3/audit_events?target_guids=${app.guid}&types=audit.app.package.create`);
    expect(events.body.resources).toHaveLength(1);
  });

  it('records docker packages READY and never shows the registry password', async () => {
    const org = await t.org('docker-org');
    const space = await t.space('docker-space', org.guid);
    const appRes = await t.admin.post('/v3/apps', {
      name: 'docker-app',
      lifecycle: { type: 'docker', data: {} },
      relationships: { space: { data: { guid: space.guid } } },
    });
    expect(appRes.status, appRes.text).toBe(201);
    const res = await t.admin.post('/v3/packages', {
      type: 'docker',
      data: { image: 'registry.example/app:1', username: 'me', password: 's3cret' },
      relationships: { app: { data: { guid: appRes.body.guid } } },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ type: 'docker', state: 'READY', data: { image: 'registry.example/app:1', username: 'me', password: '***' } });
    expect(res.body.links.upload).toBeUndefined();
    expect(res.text).not.toContain('s3cret');
    const patched = await t.admin.patch(`/v3/packages/${res.body.guid}`, { password: 'other' });
    expect(patched.status).toBe(200);
    expect(patched.body.data.password).toBe('***');
  });

  it('rejects bad bodies with 422 and bodies naming an invisible app with 422', async () => {
    const { app } = await appFixture(t, 'pkg-bad');
    const badType = await t.admin.post('/v3/packages', { type: 'tarball', relationships: { app: { data: { guid: app.guid } } } });
    expect(badType.status).toBe(422);
    expect(badType.body.errors[0].detail).toContain("Type must be one of 'bits, docker'");
    const noRel = await t.admin.post('/v3/packages', { type: 'bits' });
    expect(noRel.status).toBe(422);
    const bitsData = await t.admin.post('/v3/packages', { ...bitsBody(app.guid), data: { image: 'x' } });
    expect(bitsData.status).toBe(422);
    const missing = await t.admin.post('/v3/packages', bitsBody('00000000-0000-4000-8000-000000000000'));
    expect(missing.status).toBe(422);
    expect(missing.body.errors[0].title).toBe('CF-UnprocessableEntity');
    const dockerForBitsApp = await t.admin.post('/v3/packages', { type: 'docker', data: { image: 'x' }, relationships: { app: { data: { guid: app.guid } } } });
    expect(dockerForBitsApp.status).toBe(422);
  });
});

describe('uploading bits', () => {
  it('stores a real zip streamed as multipart, answers READY with the sha256, and refuses a second upload', async () => {
    const { app } = await appFixture(t, 'pkg-upload');
    const pkg = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const res = await postMultipart(t, t.admin, `/v3/packages/${pkg.guid}/upload`, { resources: [], bits: await appZip() });
    expect(res.status, res.text).toBe(200);
    expect(res.body.guid).toBe(pkg.guid);
    expect(res.body.state).toBe('READY');
    expect(res.body.data.checksum.value).toMatch(/^[0-9a-f]{64}$/);

    const bits = await bitsFor(t.kiln.config);
    const row = await t.kiln.store.db.selectFrom('packages').selectAll().where('guid', '=', pkg.guid).executeTakeFirstOrThrow();
    const names = (await listZip(await bits.blobstore.localPath(row.blob_key!))).map((e) => e.name).sort();
    expect(names).toEqual(['Procfile', 'lib/', 'lib/data.txt', 'run.sh']);
    expect(filesUnder(bits.workRoot)).toEqual([]);

    const again = await postMultipart(t, t.admin, `/v3/packages/${pkg.guid}/upload`, { bits: await appZip() });
    expect(again.status).toBe(400);
    expect(again.body.errors[0].title).toBe('CF-PackageBitsAlreadyUploaded');
  });

  it('takes matched files from the resource cache when the upload has only resources', async () => {
    const { app } = await appFixture(t, 'pkg-resources');
    const first = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const content = 'cached file content\n';
    await postMultipart(t, t.admin, `/v3/packages/${first.guid}/upload`, { bits: await zipOf([{ type: 'file', name: 'a.txt', content }]) });
    const { createHash } = await import('node:crypto');
    const sha1 = createHash('sha1').update(content).digest('hex');
    const second = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const resources = [{ path: 'copied/a.txt', mode: '644', checksum: { value: sha1 }, size_in_bytes: content.length }];
    const res = await postMultipart(t, t.admin, `/v3/packages/${second.guid}/upload`, { resources });
    expect(res.status, res.text).toBe(200);
    expect(res.body.state).toBe('READY');
    const bits = await bitsFor(t.kiln.config);
    const row = await t.kiln.store.db.selectFrom('packages').selectAll().where('guid', '=', second.guid).executeTakeFirstOrThrow();
    expect((await listZip(await bits.blobstore.localPath(row.blob_key!))).map((e) => e.name)).toContain('copied/a.txt');
  });

  it('rejects an upload with neither bits nor resources, and bad resources, leaving the package awaiting upload', async () => {
    const { app } = await appFixture(t, 'pkg-empty');
    const pkg = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const empty = await t.admin.post(`/v3/packages/${pkg.guid}/upload`, {});
    expect(empty.status).toBe(422);
    expect(empty.body.errors[0].detail).toBe('Upload must include either resources or bits');
    const bad = await postMultipart(t, t.admin, `/v3/packages/${pkg.guid}/upload`, { resources: [{ path: 'x' }] });
    expect(bad.status).toBe(422);
    expect((await t.admin.get(`/v3/packages/${pkg.guid}`)).body.state).toBe('AWAITING_UPLOAD');
  });

  it('rejects a malicious zip with a 422, marks the package FAILED and writes nothing', async () => {
    const { app } = await appFixture(t, 'pkg-evil');
    const bits = await bitsFor(t.kiln.config);
    const before = filesUnder(t.kiln.config.dataDir).filter((f) => !f.endsWith('.sqlite') && !f.includes('sqlite'));
    const outside = path.join(path.dirname(t.kiln.config.dataDir), 'evil.txt');
    for (const entries of [
      [{ type: 'file' as const, name: '../evil.txt', content: 'pwned' }],
      [{ type: 'file' as const, name: '/tmp/evil.txt', content: 'pwned' }],
      [{ type: 'symlink' as const, name: 'link', target: '../../../etc/passwd' }],
    ]) {
      const pkg = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
      const res = await postMultipart(t, t.admin, `/v3/packages/${pkg.guid}/upload`, { bits: await zipOf(entries) });
      expect(res.status, res.text).toBe(422);
      expect(res.body.errors[0].detail).toMatch(/^The app upload is invalid/);
      const after = (await t.admin.get(`/v3/packages/${pkg.guid}`)).body;
      expect(after.state).toBe('FAILED');
      expect(after.data.error).toMatch(/The app upload is invalid/);
      expect(await bits.blobstore.exists(`packages/${pkg.guid}`)).toBe(false);
    }
    const broken = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const res = await postMultipart(t, t.admin, `/v3/packages/${broken.guid}/upload`, { bits: Buffer.from('this is not a zip at all') });
    expect(res.status).toBe(422);
    expect(fs.existsSync(outside)).toBe(false);
    expect(filesUnder(bits.workRoot)).toEqual([]);
    const after = filesUnder(t.kiln.config.dataDir).filter((f) => !f.includes('sqlite'));
    expect(after).toEqual(before);
  });

  it('fails a 1.3 MB zip that expands to 1.25 GiB with "Package may not be larger than 1073741824 bytes", without inflating it', async () => {
    const { app } = await appFixture(t, 'pkg-bomb');
    const bomb = zeroBomb(20, 64 * 1024 * 1024);
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
    const pkg = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const started = Date.now();
    const res = await postMultipart(t, t.admin, `/v3/packages/${pkg.guid}/upload`, { bits: bomb });
    // Inflating 1.25 GiB to disk takes far longer than reading a central directory.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(res.status, res.text).toBe(400);
    expect(res.body.errors[0]).toEqual({
      detail: 'The app package is invalid: Package may not be larger than 1073741824 bytes',
      title: 'CF-AppPackageInvalid',
      code: 150001,
    });
    const after = (await t.admin.get(`/v3/packages/${pkg.guid}`)).body;
    expect(after.state).toBe('FAILED');
    expect(after.data.error).toBe('The app package is invalid: Package may not be larger than 1073741824 bytes');
    const bits = await bitsFor(t.kiln.config);
    expect(filesUnder(bits.workRoot)).toEqual([]);
  });

  it('accepts a zip whose expanded size is within the limit, counting expanded not compressed bytes', async () => {
    const small = await createTestKiln({ KILN_MAX_PACKAGE_BYTES: String(3 * 1024 * 1024) });
    try {
      const { app } = await appFixture(small, 'pkg-limit');
      const within = (await small.admin.post('/v3/packages', bitsBody(app.guid))).body;
      const ok = await postMultipart(small, small.admin, `/v3/packages/${within.guid}/upload`, { bits: zeroBomb(2, 1024 * 1024) });
      expect(ok.status, ok.text).toBe(200);
      const over = (await small.admin.post('/v3/packages', bitsBody(app.guid))).body;
      const res = await postMultipart(small, small.admin, `/v3/packages/${over.guid}/upload`, { bits: zeroBomb(4, 1024 * 1024) });
      expect(res.status, res.text).toBe(400);
      expect(res.body.errors[0].detail).toBe(`The app package is invalid: Package may not be larger than ${3 * 1024 * 1024} bytes`);

      // Matched resources count too: 2 MiB uploaded plus 2 MiB taken from the cache (the first upload's files).
      const { createHash } = await import('node:crypto');
      const cached = Buffer.alloc(1024 * 1024);
      const withResources = (await small.admin.post('/v3/packages', bitsBody(app.guid))).body;
      const sha1 = createHash('sha1').update(cached).digest('hex');
      const resources = ['cached-1.bin', 'cached-2.bin'].map((p) => ({ path: p, mode: '644', checksum: { value: sha1 }, size_in_bytes: cached.length }));
      const combined = await postMultipart(small, small.admin, `/v3/packages/${withResources.guid}/upload`, { resources, bits: zeroBomb(2, 1024 * 1024) });
      expect(combined.status, combined.text).toBe(400);
      expect(combined.body.errors[0].detail).toBe(`The app package is invalid: Package may not be larger than ${3 * 1024 * 1024} bytes`);
    } finally {
      await small.close();
    }
  });

  it('stops reading an upload over KILN_MAX_PACKAGE_BYTES with a 422 and keeps nothing', async () => {
    const small = await createTestKiln({ KILN_MAX_PACKAGE_BYTES: '2048' });
    try {
      const { app } = await appFixture(small, 'pkg-big');
      const pkg = (await small.admin.post('/v3/packages', bitsBody(app.guid))).body;
      const big = await zipOf([{ type: 'file', name: 'big.bin', content: noise(20_000) }]);
      const res = await postMultipart(small, small.admin, `/v3/packages/${pkg.guid}/upload`, { bits: big });
      expect(res.status, res.text).toBe(422);
      expect(res.body.errors[0].detail).toContain('2048');
      expect((await small.admin.get(`/v3/packages/${pkg.guid}`)).body.state).toBe('AWAITING_UPLOAD');
      const bits = await bitsFor(small.kiln.config);
      expect(filesUnder(bits.workRoot)).toEqual([]);
      expect(filesUnder(path.join(bits.blobstore.root, 'packages'))).toEqual([]);
    } finally {
      await small.close();
    }
  });
});

describe('reading, updating, copying, downloading and deleting packages', () => {
  it('lists with filters, per app, gets one and updates metadata', async () => {
    const { app } = await appFixture(t, 'pkg-list');
    const a = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const b = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    await postMultipart(t, t.admin, `/v3/packages/${b.guid}/upload`, { bits: await appZip() });
    const ready = await t.admin.get(`/v3/packages?app_guids=${app.guid}&states=READY`);
    expect(ready.body.resources.map((p: any) => p.guid)).toEqual([b.guid]);
    const perApp = await t.admin.get(`/v3/apps/${app.guid}/packages?order_by=-created_at&types=bits`);
    expect(perApp.body.pagination.total_results).toBe(2);
    const bad = await t.admin.get('/v3/packages?bogus=1');
    expect(bad.status).toBe(400);
    const got = await t.admin.get(`/v3/packages/${a.guid}`);
    expect(got.body.guid).toBe(a.guid);
    const upd = await t.admin.patch(`/v3/packages/${a.guid}`, { metadata: { labels: { tier: 'web' } } });
    expect(upd.status).toBe(200);
    expect(upd.body.metadata.labels).toEqual({ tier: 'web' });
    const selected = await t.admin.get(`/v3/packages?label_selector=tier=web`);
    expect(selected.body.resources.map((p: any) => p.guid)).toEqual([a.guid]);
    const creds = await t.admin.patch(`/v3/packages/${a.guid}`, { username: 'x', password: 'y' });
    expect(creds.status).toBe(422);
    expect((await t.admin.get('/v3/packages/00000000-0000-4000-8000-000000000000')).body.errors[0].detail).toBe('Package not found');
  });

  it('copies a READY package to another app and downloads it through a signed redirect', async () => {
    const { app } = await appFixture(t, 'pkg-copy-src');
    const { app: dest } = await appFixture(t, 'pkg-copy-dst');
    const src = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const uploaded = (await postMultipart(t, t.admin, `/v3/packages/${src.guid}/upload`, { bits: await appZip() })).body;
    const copy = await t.admin.post(`/v3/packages?source_guid=${src.guid}`, { relationships: { app: { data: { guid: dest.guid } } } });
    expect(copy.status, copy.text).toBe(201);
    expect(copy.body).toMatchObject({ state: 'READY', relationships: { app: { data: { guid: dest.guid } } } });
    expect(copy.body.data.checksum.value).toBe(uploaded.data.checksum.value);

    const dl = await t.admin.get(`/v3/packages/${copy.body.guid}/download`);
    expect(dl.status).toBe(302);
    const location = new URL(dl.headers.get('location')!);
    const blob = await t.kiln.app.request(location.toString());
    expect(blob.status).toBe(200);
    // The download is a Response of its own; the request id must still be on it.
    expect(blob.headers.get('x-vcap-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const bytes = Buffer.from(await blob.arrayBuffer());
    expect(bytes.subarray(0, 2).toString()).toBe('PK');
    location.searchParams.set('signature', '0'.repeat(64));
    expect((await t.kiln.app.request(location.toString())).status).toBe(403);

    const notReady = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const bad = await t.admin.post(`/v3/packages?source_guid=${notReady.guid}`, { relationships: { app: { data: { guid: dest.guid } } } });
    expect(bad.status).toBe(422);
  });

  it('deletes through a job, and the collector removes the blob', async () => {
    const { app } = await appFixture(t, 'pkg-delete');
    const pkg = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    await postMultipart(t, t.admin, `/v3/packages/${pkg.guid}/upload`, { bits: await appZip() });
    const res = await t.admin.delete(`/v3/packages/${pkg.guid}`);
    expect(res.status).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    expect((await t.admin.get(`/v3/packages/${pkg.guid}`)).status).toBe(404);
    // Kiln's own blob collector may already have run; reconciling again must be harmless either way.
    const bits = await bitsFor(t.kiln.config);
    await blobCollector(t.kiln.store, bits).reconcile(`packages/${pkg.guid}`);
    expect(await bits.blobstore.exists(`packages/${pkg.guid}`)).toBe(false);
  });
});

describe('package visibility and permissions', () => {
  it('hides packages from outsiders, lets auditors read but not write, and developers upload', async () => {
    const { org, space, app } = await appFixture(t, 'pkg-roles');
    const pkg = (await t.admin.post('/v3/packages', bitsBody(app.guid))).body;
    const outsider = await t.user();
    expect((await outsider.get(`/v3/packages/${pkg.guid}`)).status).toBe(404);
    expect((await outsider.get('/v3/packages')).body.resources).toEqual([]);
    expect((await outsider.get(`/v3/apps/${app.guid}/packages`)).status).toBe(404);

    const auditor = await t.user();
    await t.grant(auditor, 'organization_user', { org: org.guid });
    await t.grant(auditor, 'space_auditor', { space: space.guid });
    expect((await auditor.get(`/v3/packages/${pkg.guid}`)).status).toBe(200);
    expect((await auditor.post('/v3/packages', bitsBody(app.guid))).status).toBe(403);
    expect((await postMultipart(t, auditor, `/v3/packages/${pkg.guid}/upload`, { bits: await appZip() })).status).toBe(403);
    expect((await auditor.get(`/v3/packages/${pkg.guid}/download`)).status).toBe(403);
    expect((await auditor.delete(`/v3/packages/${pkg.guid}`)).status).toBe(403);

    const dev = await t.user();
    await t.grant(dev, 'organization_user', { org: org.guid });
    await t.grant(dev, 'space_developer', { space: space.guid });
    const up = await postMultipart(t, dev, `/v3/packages/${pkg.guid}/upload`, { bits: await appZip() });
    expect(up.status, up.text).toBe(200);
    expect((await dev.get(`/v3/packages/${pkg.guid}/download`)).status).toBe(302);
  });
});
