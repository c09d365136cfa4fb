import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitDeployer } from '../../src/gitops/git-apps.ts';
import { KubeSync } from '../../src/kube/kube-sync.ts';
import { bitsFor } from '../../src/lifecycle/blobs.ts';
import { TestRepo } from '../gitops/git-repo.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { startApiServer, type ApiServer } from './apiserver/index.ts';
import { kubectlFor, mustSucceed, kubectlPath } from './kubectl.ts';
import { until } from '../helpers/until.ts';

/**
 * A GitSource custom resource (kubectl → in-memory API server → KubeSync in a test Kiln) pointing at a local bare
 * repository: the apps in it are applied, the commit and per-file errors show in status, a commit that removes an
 * app prunes it, and deleting the resource deletes nothing it applied (as the /kiln/v1/gitsources API).
 */
let apiserver: ApiServer;
let t: TestKiln;
let sync: KubeSync;
let kubectl: ReturnType<typeof kubectlFor>;
let root: string;
let repo: TestRepo;


const ok = (args: string[], stdin?: string): Promise<string> => mustSucceed(kubectl, args, stdin);
const status = async () => JSON.parse(await ok(['get', 'gitsource', 'shop', '-o', 'json'])).status ?? {};
const app = (name: string) => `apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: ${name} }\nspec: { org: gorg, space: dev, env: { NAME: ${name} } }\n`;
const apps = async () => (await t.kiln.store.db.selectFrom('apps').select('name').where('status', '!=', 'deleting').orderBy('name').execute()).map((a) => a.name);

beforeAll(async () => {
  apiserver = await startApiServer({ bookmarkIntervalMs: 1000 });
  const kubeconfig = apiserver.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'kube-git-')));
  kubectl = kubectlFor(kubeconfig);
  t = await createTestKiln();
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'kube-gitsource-'));
  repo = new TestRepo(root);
  const git = new GitDeployer({ bits: await bitsFor(t.kiln.config), cacheDir: path.join(root, 'cache'), pollMs: 200, allowLocal: true, log: pino({ level: 'silent' }) });
  sync = new KubeSync({ store: t.kiln.store, log: pino({ level: 'silent' }), kubeconfig, resyncMs: 300, runtime: t.kiln.runtime, git });
}, 60_000);

afterAll(async () => {
  await sync?.stop();
  await t?.kiln.stop();
  await apiserver?.close();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe.skipIf(!kubectlPath())('GitSource resources', () => {
  it('apply a local bare repository: apps in Kiln, the commit in status, kubectl wait sees Ready', async () => {
    await ok(['apply', '-k', path.resolve(import.meta.dirname, '../../crds')]);
    await ok(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=10s']);
    void sync.start();
    const commit = repo.commit({
      'deploy/org.yaml': 'apiVersion: kiln.dev/v1alpha1\nkind: Organization\nmetadata: { name: gorg }\n---\napiVersion: kiln.dev/v1alpha1\nkind: Space\nmetadata: { name: gorg-dev }\nspec: { org: gorg, name: dev }\n',
      'deploy/a.yaml': app('a'),
      'deploy/b.yaml': app('b'),
      'deploy/c.yaml': app('c'),
    });
    await ok(['apply', '-f', '-'], `apiVersion: kiln.dev/v1alpha1\nkind: GitSource\nmetadata: { name: shop }\nspec: { url: "${repo.url}", ref: main, path: deploy }\n`);
    const waited = await kubectl(['wait', '--for=condition=Ready', 'gitsource/shop', '--timeout=30s']);
    expect(waited.code, waited.stderr).toBe(0);
    expect(await apps()).toEqual(['a', 'b', 'c']);
    const s = await status();
    expect(s).toMatchObject({ observedGeneration: 1, commit, state: 'APPLIED', errors: [], message: `commit ${commit} applied` });
    expect(s.applied.sort()).toEqual(['gorg/dev/a', 'gorg/dev/b', 'gorg/dev/c']);
    expect(await ok(['get', 'kgit'])).toMatch(new RegExp(`shop\\s+file://\\S+\\s+main\\s+${commit}\\s+APPLIED\\s+True`));
  }, 90_000);

  it('a broken file is reported per file, an app removed from the repository is pruned, the others stay', async () => {
    const commit = repo.commit({ 'deploy/c.yaml': null, 'deploy/b.yaml': 'apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: b\nspec: [' });
    const s = await until('the new commit in status', async () => {
      const st = await status();
      return st.commit === commit ? st : undefined;
    });
    expect(s.state).toBe('DEGRADED');
    expect(s.errors).toEqual([expect.objectContaining({ file: 'b.yaml' })]);
    expect(s.pruned).toEqual(['c']);
    // A commit with files in error is applied again at each poll; the later passes prune nothing, and the status
    // still says what applying this commit pruned.
    const again = await until('the commit applied again', async () => {
      const st = await status();
      return st.lastAppliedAt !== s.lastAppliedAt ? st : undefined;
    });
    expect(again).toMatchObject({ commit, state: 'DEGRADED', pruned: ['c'] });
    expect(s.conditions[0]).toMatchObject({ type: 'Ready', status: 'False', reason: 'FilesInError' });
    // b came from a file that is broken now: left as it was.
    expect(await apps()).toEqual(['a', 'b']);
  }, 60_000);

  it('an unreadable repository is a failed sync; deleting the resource deletes nothing it applied', async () => {
    await ok(['patch', 'gitsource', 'shop', '--type=merge', '-p', JSON.stringify({ spec: { url: `file://${root}/nothing.git` } })]);
    const s = await until('FAILED', async () => {
      const st = await status();
      return st.observedGeneration === 2 && st.state === 'FAILED' ? st : undefined;
    });
    expect(s.conditions[0]).toMatchObject({ status: 'False', reason: 'SyncFailed' });
    expect(s.errors[0].file).toBe('');
    // While the source exists, what it applied is declared: the CF API refuses to delete it.
    const a = (await t.admin.get('/v3/apps?names=a')).body.resources[0];
    expect(a.metadata.labels['kiln.dev/managed-by']).toBe('gitsource');
    const refused = await t.admin.delete(`/v3/apps/${a.guid}`);
    expect(refused.status).toBe(422);
    expect(refused.body.errors[0].detail).toBe("App 'a' is managed by GitSource default/shop (file a.yaml); change the repository instead");
    await ok(['delete', 'gitsource', 'shop', '--timeout=20s']);
    expect(await apps()).toEqual(['a', 'b']);
    // Gone, it declares nothing: its apps are ordinary CF apps.
    expect((await t.admin.get(`/v3/apps/${a.guid}`)).body.metadata.labels['kiln.dev/managed-by']).toBeUndefined();
    expect((await t.admin.delete(`/v3/apps/${a.guid}`)).status).toBe(202);
  }, 60_000);
});
