import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GITSOURCE_PRINCIPAL_GUID } from '../../src/domain/declared.ts';
import type { Principal } from '../../src/domain/principal.ts';
import { syncGitSource } from '../../src/gitops/git-source-sync.ts';
import { GitSourceCache } from '../../src/gitops/git-source.ts';
import { ADMIN_SCOPES } from '../../src/identity/identity-service.ts';
import { Access } from '../../src/services/access.ts';
import type { Ctx } from '../../src/services/context.ts';
import { newGuid } from '../../src/store/store.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { TestRepo } from './git-repo.ts';

/**
 * The GitSource reconciler in-process: a local bare repository with an org, a space and three apps; a commit
 * removing one prunes it; a broken file is reported and what it declared is left as it was, while the other
 * files still apply.
 */
let t: TestKiln;
let root: string;
let repo: TestRepo;
let cache: GitSourceCache;
let ctx: Ctx;
let guid: string;

// The reconciler's own principal: what it applied is declared, and CF API writes by others are refused.
const principal: Principal = { guid: GITSOURCE_PRINCIPAL_GUID, username: 'gitsource', origin: null, email: null, isClient: true, scopes: new Set(ADMIN_SCOPES) };
const app = (name: string, instances = 1) => `apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: ${name} }\nspec: { org: gito, space: dev, instances: ${instances}, env: { NAME: ${name} } }\n`;
const row = () => t.kiln.store.db.selectFrom('git_sources').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
const apps = async () => (await t.kiln.store.db.selectFrom('apps').select('name').where('status', '!=', 'deleting').orderBy('name').execute()).map((a) => a.name);

beforeAll(async () => {
  t = await createTestKiln();
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'gitsource-'));
  repo = new TestRepo(root);
  cache = new GitSourceCache({ cacheDir: path.join(root, 'cache'), allowLocal: true });
  ctx = { store: t.kiln.store, access: new Access(t.kiln.store.db, principal), principal };
  guid = newGuid();
  await t.kiln.store.write(async (tx) => {
    await tx.db.insertInto('git_sources').values({ guid, created_at: tx.now, updated_at: tx.now, name: 'demo', url: repo.url, ref: 'main', path: 'deploy' }).execute();
  });
}, 60_000);
afterAll(async () => {
  await t?.kiln.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('GitSource reconciler', () => {
  it('applies an org, a space and three apps, and records the commit', async () => {
    const commit = repo.commit({
      'README.md': 'not YAML of ours',
      'deploy/org.yaml': 'apiVersion: kiln.dev/v1alpha1\nkind: Organization\nmetadata: { name: gito }\n---\napiVersion: kiln.dev/v1alpha1\nkind: Space\nmetadata: { name: gito-dev }\nspec: { org: gito, name: dev }\n',
      'deploy/apps/a.yaml': app('a'),
      'deploy/apps/b.yaml': app('b'),
      'deploy/apps/c.yaml': app('c'),
    });
    const report = await syncGitSource(ctx, cache, await row());
    expect(report).toMatchObject({ commit, state: 'APPLIED', errors: [], pruned: [] });
    expect(await apps()).toEqual(['a', 'b', 'c']);
    expect(await row()).toMatchObject({ state: 'APPLIED', last_commit: commit, errors: '[]' });
    // Nothing new: nothing is applied again.
    expect((await syncGitSource(ctx, cache, await row())).state).toBe('UNCHANGED');
  }, 60_000);

  it('prunes an app whose file is gone from the repository', async () => {
    const commit = repo.commit({ 'deploy/apps/c.yaml': null }, 'drop c');
    const report = await syncGitSource(ctx, cache, await row());
    expect(report).toMatchObject({ commit, state: 'APPLIED', pruned: ['c'] });
    for (let i = 0; i < 100 && (await apps()).includes('c'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await apps()).toEqual(['a', 'b']);
  }, 60_000);

  it('reports a broken file in status and leaves its app alone, while the other files still apply', async () => {
    const commit = repo.commit({ 'deploy/apps/b.yaml': 'apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: b\nspec: [', 'deploy/apps/a.yaml': app('a', 2) }, 'break b, scale a');
    const report = await syncGitSource(ctx, cache, await row());
    expect(report.state).toBe('DEGRADED');
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]!.file).toBe(path.join('apps', 'b.yaml'));
    expect(report.pruned).toEqual([]);
    expect(await apps()).toEqual(['a', 'b']);
    const a = await t.kiln.store.db.selectFrom('apps').innerJoin('processes', 'processes.app_guid', 'apps.guid').select('processes.instances').where('apps.name', '=', 'a').where('processes.type', '=', 'web').executeTakeFirstOrThrow();
    expect(Number(a.instances)).toBe(2);
    const r = await row();
    expect(r).toMatchObject({ state: 'DEGRADED', last_commit: commit });
    expect(JSON.parse(r.errors)[0]).toMatchObject({ file: 'apps/b.yaml' });
  }, 60_000);

  it('reports a ref that names nothing without touching the apps', async () => {
    await t.kiln.store.write(async (tx) => {
      await tx.db.updateTable('git_sources').set({ ref: 'no-such-branch' }).where('guid', '=', guid).execute();
    });
    const report = await syncGitSource(ctx, cache, await row());
    expect(report.state).toBe('FAILED');
    expect((await row()).message).toMatch(/names no branch, tag or commit/);
    expect(await apps()).toEqual(['a', 'b']);
  }, 60_000);
});
