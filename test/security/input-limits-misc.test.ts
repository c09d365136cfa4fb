import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientSafeMessage, withoutServerPaths } from '../../src/domain/client-safe.ts';
import { extractTarGz } from '../../src/staging/tarball.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { appFixture, postMultipart, zipOf } from '../api/bits-helpers.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln({ KILN_METRICS_TOKEN: 'metrics-token-0123456789' });
});
afterAll(() => t.close());

describe('/metrics', () => {
  it('asks for KILN_METRICS_TOKEN as a bearer token when it is set', async () => {
    const none = await t.kiln.app.request('http://kiln.test/metrics');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await none.json()).toEqual({ errors: [{ title: 'CF-NotAuthenticated', code: 10002, detail: 'Authentication error' }] });
    const wrong = await t.kiln.app.request('http://kiln.test/metrics', { headers: { authorization: 'Bearer metrics-token-0123456780' } });
    expect(wrong.status).toBe(401);
    // A user's CF token is not the metrics token either.
    expect((await t.kiln.app.request('http://kiln.test/metrics', { headers: { authorization: `bearer ${t.admin.token}` } })).status).toBe(401);
    const right = await t.kiln.app.request('http://kiln.test/metrics', { headers: { authorization: 'Bearer metrics-token-0123456789' } });
    expect(right.status).toBe(200);
    expect(await right.text()).toContain('kiln_http_requests_total');
  });

  it('is open when no token is configured', async () => {
    const open = await createTestKiln();
    try {
      expect((await open.kiln.app.request('http://kiln.test/metrics')).status).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe('package copy across tenants', () => {
  it("answers CC's 422 for another tenant's source package and copies nothing", async () => {
    const victim = await appFixture(t, 'copy-victim');
    const src = (await t.admin.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: victim.app.guid } } } })).body;
    const upload = await postMultipart(t, t.admin, `/v3/packages/${src.guid}/upload`, {
      bits: await zipOf([{ type: 'file', name: 'secret.txt', content: 'tenant secret\n' }]),
    });
    expect(upload.status).toBe(200);

    const attacker = await appFixture(t, 'copy-attacker');
    const dev = await t.spaceMember('space_developer', attacker.space);
    const before = await t.kiln.store.db.selectFrom('packages').select('guid').execute();
    const invalid = { title: 'CF-UnprocessableEntity', code: 10008, detail: 'Source package is invalid. Ensure it exists and you have access to it.' };
    for (const guid of [src.guid, '00000000-0000-4000-8000-000000000000']) {
      const res = await dev.post(`/v3/packages?source_guid=${guid}`, { relationships: { app: { data: { guid: attacker.app.guid } } } });
      expect(res.status).toBe(422);
      expect(res.body.errors).toEqual([invalid]);
    }
    expect(await t.kiln.store.db.selectFrom('packages').select('guid').execute()).toEqual(before);

    // A reader of the source space (not a writer) may not copy its bits out either.
    const auditor = await t.user();
    await t.grant(auditor, 'organization_user', { org: victim.org.guid });
    await t.grant(auditor, 'space_auditor', { space: victim.space.guid });
    await t.grant(auditor, 'organization_user', { org: attacker.org.guid });
    await t.grant(auditor, 'space_developer', { space: attacker.space.guid });
    const res = await auditor.post(`/v3/packages?source_guid=${src.guid}`, { relationships: { app: { data: { guid: attacker.app.guid } } } });
    expect(res.status).toBe(403);
  });
});

describe('error details', () => {
  it('reword file-system errors without the server path', async () => {
    const err = await fs.promises.open('/var/lib/kiln-secret/data/tmp/x.zip').catch((e: unknown) => e);
    const text = clientSafeMessage(err);
    expect(text).toBe('a file was not found (ENOENT)');
    expect(withoutServerPaths("cannot open '/srv/kiln/.kiln/blobs/a/b' (at /srv/x)")).toBe("cannot open '…' (at …)");
    expect(withoutServerPaths('Invalid zip archive (end of central directory record signature not found)')).toBe(
      'Invalid zip archive (end of central directory record signature not found)',
    );
  });

  it('never show the data directory in a rejected archive', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-paths-'));
    try {
      // A file that vanished under the extractor: node-tar's ENOENT names the full path.
      const missing = path.join(dir, 'droplet.tgz');
      const err = (await extractTarGz(missing, path.join(dir, 'out')).catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(Error);
      expect(err.message).toBe('The droplet upload is invalid: Invalid tarball (a file was not found (ENOENT))');
      expect(err.message).not.toContain(dir);
      expect(err.message).not.toContain(os.tmpdir());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never show the data directory when a package upload is not a zip', async () => {
    const { app } = await appFixture(t, 'paths-upload');
    const pkg = (await t.admin.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: app.guid } } } })).body;
    const res = await postMultipart(t, t.admin, `/v3/packages/${pkg.guid}/upload`, { bits: Buffer.from('PK\u0003\u0004 this is not really a zip') });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.text).not.toContain(t.kiln.config.dataDir);
    expect(res.text).not.toMatch(/\/(tmp|var|home|work)\//);
  });
});
