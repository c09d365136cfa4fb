import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../kube/apiserver/index.ts';
import { kubectlFor, mustSucceed, kubectlPath } from '../kube/kubectl.ts';
import { TestRepo } from '../gitops/git-repo.ts';
import { pushClient, until } from '../helpers/push.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * An App resource whose code comes from git, end to end: the real kubectl applies it to the in-memory API
 * server, a real Kiln process clones a bare repository made here (file://), packages `path`, stages, deploys,
 * and reports the commit; a new commit on the branch rolls out (rolling deployment) with no failed request
 * through the router. Nothing here ran against a real cluster or a remote git host.
 */
const repoRoot = path.resolve(import.meta.dirname, '../..');
let apiserver: ApiServer;
let kiln: ServerProcess;
let kubectl: ReturnType<typeof kubectlFor>;
let token: string;
let git: TestRepo;

const call = (method: string, url: string, body?: unknown) => cliCall(method, `${kiln.url}${url}`, token, body);
const ok = (args: string[], stdin?: string): Promise<string> => mustSucceed(kubectl, args, stdin);
const resource = async (kind: string, name: string) => JSON.parse(await ok(['get', kind, name, '-o', 'json']));
const server = (version: string) => fs.readFileSync(path.join(repoRoot, 'examples/node-hello/server.js'), 'utf8').replace('Hello from Kiln!', `Hello from Kiln ${version}!`);

beforeAll(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-git-e2e-'));
  git = new TestRepo(root);
  apiserver = await startApiServer({ bookmarkIntervalMs: 1000 });
  const kubeconfig = apiserver.writeKubeconfig(root);
  kubectl = kubectlFor(kubeconfig);
  kiln = await startServerProcess({ env: { KILN_KUBECONFIG: kubeconfig, KILN_KUBE_RESYNC_SECONDS: '0.5', KILN_GIT_POLL_SECONDS: '0.5', KILN_GIT_ALLOW_LOCAL: 'true', KILN_SANDBOX: 'none' } });
  token = (await cliLogin(kiln.url, 'admin', kiln.adminPassword)).access_token;
}, 60_000);

afterAll(async () => {
  await kiln?.stop();
  await apiserver?.close();
});

describe.skipIf(!kubectlPath())('App with source.git (in-memory API server, real Kiln process, local bare repository)', () => {
  let first: string;
  let appGuid: string;

  it('clones the repository at the branch, deploys `path`, and reports the commit', async () => {
    first = git.commit({ 'README.md': 'not part of the app\n', 'web/server.js': server('v1'), 'web/package.json': fs.readFileSync(path.join(repoRoot, 'examples/node-hello/package.json'), 'utf8') }, 'v1');
    await ok(['apply', '-k', path.join(repoRoot, 'crds')]);
    await ok(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=10s']);
    const doc = [
      'apiVersion: kiln.dev/v1alpha1\nkind: Organization\nmetadata: { name: gitorg }',
      'apiVersion: kiln.dev/v1alpha1\nkind: Space\nmetadata: { name: gitorg-dev }\nspec: { org: gitorg, name: dev }',
      `apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: fromgit }\nspec:\n  org: gitorg\n  space: dev\n  source: { git: { url: "${git.url}", ref: main, path: web } }\n  instances: 2\n  memory: 128M\n  routes: [ { route: fromgit.apps.localhost } ]\n`,
    ].join('\n---\n');
    await ok(['apply', '-f', '-'], doc);
    const waited = await kubectl(['wait', '--for=condition=Ready', 'app/fromgit', '--timeout=150s']);
    expect(waited.stdout + waited.stderr).toContain('condition met');
    const s = await until('commit in status', async () => {
      const st = (await resource('app', 'fromgit')).status;
      return st.commit === first && st.instances === '2/2' ? st : undefined;
    }, 60_000);
    appGuid = s.guid;
    const source = s.conditions.find((c: { type: string }) => c.type === 'SourceReady');
    expect(source).toMatchObject({ status: 'True', reason: 'CommitDeployed' });
    expect(source.message).toContain(first);
    const spaceGuid = (await resource('space', 'gitorg-dev')).status.guid;
    const res = await pushClient({ api: kiln.url, token, spaceGuid }).viaRouter('fromgit.apps.localhost');
    expect(res.status).toBe(200);
    expect(res.body).toContain('Hello from Kiln v1!');
    // Only `path` was packaged.
    const pkg = (await call('GET', `/v3/apps/${appGuid}/packages`)).body.resources[0];
    expect(pkg.metadata.annotations['kiln.dev/git-commit']).toBe(first);
  }, 240_000);

  it('rolls a new commit on the branch out with no failed request, and names it in the revision', async () => {
    const spaceGuid = (await resource('space', 'gitorg-dev')).status.guid;
    const client = pushClient({ api: kiln.url, token, spaceGuid });
    const second = git.commit({ 'web/server.js': server('v2') }, 'v2');
    let failed = 0;
    let served = 0;
    const failures: string[] = [];
    let last: any;
    let sawV2 = false;
    const started = Date.now();
    while (Date.now() - started < 180_000) {
      const r = await client.viaRouter('fromgit.apps.localhost').catch(() => ({ status: 0, body: '' }));
      served++;
      if (r.status !== 200) {
        failed++;
        failures.push(`${Date.now() - started}ms ${r.status} ${r.body.slice(0, 200)}`);
      }
      if (r.body.includes('v2!')) sawV2 = true;
      const st = (await resource('app', 'fromgit')).status;
      last = st;
      const deployed = st.conditions?.find((c: { type: string }) => c.type === 'Deployed');
      if (sawV2 && st.commit === second && deployed?.status === 'True' && st.instances === '2/2') break;
    }
    expect(sawV2, JSON.stringify(last)).toBe(true);
    expect(last.commit, JSON.stringify(last)).toBe(second);
    expect(failed, `${failed} of ${served} requests failed: ${failures.join(' | ')}`).toBe(0);
    // Every instance serves the new commit.
    for (let i = 0; i < 6; i++) expect((await client.viaRouter('fromgit.apps.localhost')).body).toContain('v2!');
    const revisions = (await call('GET', `/v3/apps/${appGuid}/revisions?per_page=100`)).body.resources as { version: number; description: string }[];
    const latest = revisions.sort((a, b) => b.version - a.version)[0]!;
    expect(latest.description).toContain(`Git commit ${second}`);
    const deployments = (await call('GET', `/v3/deployments?app_guids=${appGuid}&order_by=-created_at`)).body.resources;
    expect(deployments[0].strategy).toBe('rolling');
    expect(deployments[0].metadata.annotations['kiln.dev/git-commit']).toBe(second);
  }, 240_000);

  it('kubectl delete removes the app', async () => {
    await ok(['delete', 'app', 'fromgit', '--timeout=60s']);
    expect((await call('GET', `/v3/apps/${appGuid}`)).status).toBe(404);
  }, 90_000);
});
