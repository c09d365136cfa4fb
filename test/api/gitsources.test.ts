import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestRepo } from '../gitops/git-repo.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/** `/kiln/v1/gitsources` (Kiln's own API; responses checked against docs/kiln-openapi.json by the harness client). */
let t: TestKiln;
let root: string;
let repo: TestRepo;

beforeAll(async () => {
  t = await createTestKiln({ KILN_GIT_POLL_SECONDS: '3600', KILN_GIT_ALLOW_LOCAL: 'true' });
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'gitsources-api-'));
  repo = new TestRepo(root);
  repo.commit({
    'k/all.yaml': 'apiVersion: kiln.dev/v1alpha1\nkind: Organization\nmetadata: { name: gs }\n---\napiVersion: kiln.dev/v1alpha1\nkind: Space\nmetadata: { name: gs-dev }\nspec: { org: gs, name: dev }\n',
    'k/manifest.yml': 'applications:\n- name: plain\n  instances: 1\n',
  });
});
afterAll(async () => {
  await t?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('/kiln/v1/gitsources', () => {
  it('creates a GitSource whose reconciler applies the repository and reports the commit', async () => {
    const made = await t.admin.post('/kiln/v1/gitsources', { name: 'demo', url: repo.url, ref: 'main', path: 'k', org: 'gs', space: 'dev' });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ name: 'demo', url: repo.url, ref: 'main', status: { state: 'PENDING', errors: [] } });
    await t.kiln.gitSources.syncAll();
    const got = await t.admin.get(`/kiln/v1/gitsources/${made.body.guid}`);
    expect(got.status).toBe(200);
    expect(got.body.status).toMatchObject({ state: 'APPLIED', last_commit: expect.stringMatching(/^[0-9a-f]{40}$/), errors: [] });
    expect((await t.admin.get('/v3/apps?names=plain')).body.resources).toHaveLength(1);
    expect((await t.admin.get('/kiln/v1/gitsources')).body.resources.map((r: { name: string }) => r.name)).toEqual(['demo']);
  });

  it('refuses credentials in the URL, a taken name, and anyone but an admin', async () => {
    const bad = await t.admin.post('/kiln/v1/gitsources', { name: 'x', url: 'https://u:p@git.example.invalid/r.git' });
    expect(bad.status).toBe(422);
    expect((await t.admin.post('/kiln/v1/gitsources', { name: 'demo', url: repo.url })).status).toBe(422);
    const user = await t.user();
    expect((await user.get('/kiln/v1/gitsources')).status).toBe(403);
    expect((await user.post('/kiln/v1/gitsources', { name: 'y', url: repo.url })).status).toBe(403);
  });

  it('deletes a GitSource without deleting what it applied', async () => {
    const list = (await t.admin.get('/kiln/v1/gitsources')).body.resources;
    expect((await t.admin.delete(`/kiln/v1/gitsources/${list[0].guid}`)).status).toBe(204);
    expect((await t.admin.get(`/kiln/v1/gitsources/${list[0].guid}`)).status).toBe(404);
    expect((await t.admin.get('/v3/apps?names=plain')).body.resources).toHaveLength(1);
  });
});
