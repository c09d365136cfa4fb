import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { appFixture, postMultipart, zipOf } from './bits-helpers.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

describe('POST /v3/resource_matches', () => {
  it('answers which fingerprints the cache holds, with mode as an octal string, after an upload filled it', async () => {
    const known = 'console.log("hello")\n';
    const unknown = 'never uploaded\n';
    const query = {
      resources: [
        { path: 'server.js', mode: '644', checksum: { value: sha1(known) }, size_in_bytes: known.length },
        { path: 'other.js', mode: '644', checksum: { value: sha1(unknown) }, size_in_bytes: unknown.length },
        { path: 'wrong-size.js', mode: '644', checksum: { value: sha1(known) }, size_in_bytes: known.length + 1 },
      ],
    };
    const before = await t.admin.post('/v3/resource_matches', query);
    expect(before.status, before.text).toBe(201);
    expect(before.body).toEqual({ resources: [] });

    const { app } = await appFixture(t, 'rm-app');
    const pkg = (await t.admin.post('/v3/packages', { type: 'bits', relationships: { app: { data: { guid: app.guid } } } })).body;
    await postMultipart(t, t.admin, `/v3/packages/${pkg.guid}/upload`, { resources: [], bits: await zipOf([{ type: 'file', name: 'server.js', content: known, mode: 0o755 }]) });

    const after = await t.admin.post('/v3/resource_matches', query);
    expect(after.status).toBe(201);
    expect(after.body.resources).toEqual([{ path: 'server.js', mode: '644', checksum: { value: sha1(known) }, size_in_bytes: known.length }]);

    // Any authenticated user may ask (it reveals only what they already have).
    const user = await t.user();
    expect((await user.post('/v3/resource_matches', query)).body.resources).toHaveLength(1);

    // With the resource_matching flag off nothing matches.
    expect((await t.admin.patch('/v3/feature_flags/resource_matching', { enabled: false })).status).toBe(200);
    expect((await t.admin.post('/v3/resource_matches', query)).body.resources).toEqual([]);
    await t.admin.patch('/v3/feature_flags/resource_matching', { enabled: true });
  });

  it('validates the body', async () => {
    expect((await t.admin.post('/v3/resource_matches', {})).status).toBe(422);
    expect((await t.admin.post('/v3/resource_matches', { resources: [] })).status).toBe(422);
    expect((await t.admin.post('/v3/resource_matches', { resources: [{ path: 'a', checksum: { value: 'nope' }, size_in_bytes: 1 }] })).status).toBe(422);
    expect((await t.admin.post('/v3/resource_matches', { resources: 'x' })).status).toBe(422);
    expect((await t.anonymous.post('/v3/resource_matches', { resources: [] })).status).toBe(401);
  });
});
