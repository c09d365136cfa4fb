import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../kube/apiserver/index.ts';
import { kubectlFor, mustSucceed, kubectlPath } from '../kube/kubectl.ts';
import { runKiln } from '../helpers/kiln-cli.ts';
import { pushClient, until } from '../helpers/push.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * The Kubernetes front door end to end: the real kubectl applies kiln.dev resources to the in-memory API server,
 * a real Kiln process (KILN_KUBECONFIG) makes the org, space and app, reports status back, and deletes what it
 * made when the resources are deleted. Nothing here ran against a real cluster.
 */
const repo = path.resolve(import.meta.dirname, '../..');
let apiserver: ApiServer;
let kiln: ServerProcess;
let kubectl: ReturnType<typeof kubectlFor>;
let token: string;

const call = (method: string, url: string, body?: unknown) => cliCall(method, `${kiln.url}${url}`, token, body);

const ok = (args: string[], stdin?: string): Promise<string> => mustSucceed(kubectl, args, stdin);

async function appNamed(name: string) {
  const res = await call('GET', `/v3/apps?names=${name}&include=space.organization`);
  return res.body.resources?.[0] as { guid: string; state: string } | undefined;
}

const resource = async (kind: string, name: string) => JSON.parse(await ok(['get', kind, name, '-o', 'json']));

beforeAll(async () => {
  apiserver = await startApiServer({ bookmarkIntervalMs: 1000 });
  const kubeconfig = apiserver.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-kube-')));
  kubectl = kubectlFor(kubeconfig);
  kiln = await startServerProcess({ env: { KILN_KUBECONFIG: kubeconfig, KILN_KUBE_RESYNC_SECONDS: '0.5', KILN_SANDBOX: 'none' } });
  token = (await cliLogin(kiln.url, 'admin', kiln.adminPassword)).access_token;
}, 60_000);

afterAll(async () => {
  await kiln?.stop();
  await apiserver?.close();
});

describe.skipIf(!kubectlPath())('kubectl apply → Kiln (in-memory API server, real Kiln process)', () => {
  let appGuid: string;

  it('creates the org, space and app declared by kubectl apply, and reports them in status', async () => {
    await ok(['apply', '-k', path.join(repo, 'crds')]);
    await ok(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=10s']);
    await ok(['apply', '-f', path.join(repo, 'examples/kube/hello.yaml')]);

    const app = await until('Kiln has the app', () => appNamed('hello'), 20_000);
    appGuid = app.guid;
    const orgs = await call('GET', '/v3/organizations?names=demo');
    expect(orgs.body.resources).toHaveLength(1);
    const spaces = await call('GET', `/v3/spaces?names=dev&organization_guids=${orgs.body.resources[0].guid}`);
    expect(spaces.body.resources).toHaveLength(1);
    // What Kiln made says which resource declared it.
    const labels = (await call('GET', `/v3/apps/${appGuid}`)).body.metadata;
    expect(labels.labels['kiln.dev/managed-by']).toBe('kubernetes');
    expect(labels.annotations['kiln.dev/resource']).toBe('App/default/hello');

    // The manifest was applied: instances, memory, env and the route.
    await until('web scaled to 2', async () => ((await call('GET', `/v3/apps/${appGuid}/processes/web`)).body.instances === 2 ? true : undefined), 20_000);
    const web = (await call('GET', `/v3/apps/${appGuid}/processes/web`)).body;
    expect(web.memory_in_mb).toBe(256);
    expect((await call('GET', `/v3/apps/${appGuid}/environment_variables`)).body.var).toEqual({ GREETING: 'hi' });
    const routes = (await call('GET', `/v3/apps/${appGuid}/routes`)).body.resources;
    expect(routes.map((r: { url: string }) => r.url)).toEqual(['hello.apps.localhost']);

    const status = await until(
      'status with Kiln conditions',
      async () => {
        const s = (await resource('app', 'hello')).status;
        return s?.guid === appGuid && s.conditions?.some((c: { type: string }) => c.type === 'Staged') && s.url ? s : undefined;
      },
      20_000,
    );
    expect(status).toMatchObject({ observedGeneration: 1, state: 'STOPPED', instances: '0/2', desiredInstances: 2, url: 'hello.apps.localhost' });
    const byType = Object.fromEntries(status.conditions.map((c: { type: string }) => [c.type, c]));
    expect(byType.Staged).toMatchObject({ status: 'False', reason: 'DropletNotStaged' });
    expect(byType.Synced).toMatchObject({ status: 'True', reason: 'ManifestApplied' });
    expect(byType.Ready.status).toBe('False');
    expect(byType.Running).toMatchObject({ status: 'False', reason: 'Stopped' });
    expect(byType.Deployed).toMatchObject({ status: 'False', reason: 'NoDroplet' });
    for (const c of status.conditions) expect(c.lastTransitionTime).toMatch(/Z$/);
    expect((await resource('organization', 'demo')).status).toMatchObject({ conditions: [expect.objectContaining({ type: 'Ready', status: 'True' })] });
    expect((await resource('space', 'demo-dev')).status.guid).toBe(spaces.body.resources[0].guid);

    // What the sync did is in the resource's events, as kubectl describe shows them.
    const described = await ok(['describe', 'app', 'hello']);
    expect(described).toMatch(/Normal\s+Created\s+\S+\s+kiln-kube-sync\s+generation 1 applied to hello in demo\/dev/);

    const table = await ok(['get', 'apps']);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+STATE\s+INSTANCES\s+URL\s+AGE$/);
    expect(table).toMatch(/hello\s+STOPPED\s+0\/2\s+hello\.apps\.localhost/);
  }, 90_000);

  it('applies a changed resource as a new generation', async () => {
    const changed = fs.readFileSync(path.join(repo, 'examples/kube/hello.yaml'), 'utf8').replace('instances: 2', 'instances: 3').replace('GREETING: hi', 'GREETING: hello');
    expect(await ok(['apply', '-f', '-'], changed)).toContain('app.kiln.dev/hello configured');
    await until('web scaled to 3', async () => ((await call('GET', `/v3/apps/${appGuid}/processes/web`)).body.instances === 3 ? true : undefined), 20_000);
    expect((await call('GET', `/v3/apps/${appGuid}/environment_variables`)).body.var).toEqual({ GREETING: 'hello' });
    await until('status of generation 2', async () => {
      const s = (await resource('app', 'hello')).status;
      return s.observedGeneration === 2 && s.instances === '0/3' ? true : undefined;
    });
  }, 60_000);

  it('runs once the bits arrive by kiln push, and kubectl wait sees Ready', async () => {
    // No source in the resource: the bits come by push, as README shows (kiln push of a directory with no manifest).
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-kube-home-'));
    const cli = (...args: string[]) => runKiln(args, { home, cwd: home });
    const login = await cli('login', '-a', kiln.url, '-u', 'admin', '-p', kiln.adminPassword, '-o', 'demo', '-s', 'dev');
    expect(login.code, login.stderr).toBe(0);
    const pushed = await cli('push', path.join(repo, 'examples/node-hello'), '--name', 'hello', '--no-manifest');
    expect(pushed.code, pushed.stdout + pushed.stderr).toBe(0);
    const droplet = (await call('GET', `/v3/apps/${appGuid}/droplets/current`)).body.guid;
    const waited = await kubectl(['wait', '--for=condition=Ready', 'app/hello', '--timeout=60s']);
    expect(waited.stderr).toBe('');
    expect(waited.stdout).toContain('app.kiln.dev/hello condition met');
    const s = await until('3/3 in status', async () => {
      const st = (await resource('app', 'hello')).status;
      return st.instances === '3/3' ? st : undefined;
    });
    expect(s).toMatchObject({ state: 'STARTED', droplet, readyInstances: 3 });
    const conds = Object.fromEntries(s.conditions.map((c: { type: string }) => [c.type, c]));
    expect(conds.Staged).toMatchObject({ status: 'True' });
    expect(conds.Running).toMatchObject({ status: 'True', reason: 'AllInstancesRunning', message: '3/3 web instances running' });
    expect(conds.Deployed).toMatchObject({ status: 'True' });
    const spaceGuid = (await resource('space', 'demo-dev')).status.guid;
    expect((await pushClient({ api: kiln.url, token, spaceGuid }).viaRouter('hello.apps.localhost')).status).toBe(200);
    // Nothing applies the resource again while Kiln matches it (the push changed nothing it declares).
    const applies = async () => (await call('GET', `/v3/audit_events?types=audit.app.apply_manifest&target_guids=${appGuid}&per_page=100`)).body.pagination.total_results;
    const before = await applies();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await applies()).toBe(before);
    expect((await resource('app', 'hello')).status.conditions.find((c: { type: string }) => c.type === 'Synced')).toMatchObject({ status: 'True' });
    // The push kept what the resource declared.
    expect((await call('GET', `/v3/apps/${appGuid}/environment_variables`)).body.var).toEqual({ GREETING: 'hello' });
    expect(await ok(['get', 'apps', 'hello'])).toMatch(/hello\s+STARTED\s+3\/3\s+hello\.apps\.localhost/);
  }, 120_000);

  it('leaves alone an app of the same name that the resource did not create', async () => {
    const space = (await resource('space', 'demo-dev')).status.guid;
    const pushed = await call('POST', '/v3/apps', { name: 'pushed', relationships: { space: { data: { guid: space } } } });
    expect(pushed.status).toBe(201);
    await ok(['apply', '-f', '-'], 'apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: pushed }\nspec: { org: demo, space: dev, instances: 5 }\n');
    const s = await until('AppOwnedElsewhere', async () => {
      const st = (await resource('app', 'pushed')).status;
      return st?.conditions?.find((c: { reason: string }) => c.reason === 'AppOwnedElsewhere') ? st : undefined;
    });
    expect(s.lastError).toContain('was not created by this resource');
    expect((await call('GET', `/v3/apps/${pushed.body.guid}/processes/web`)).body.instances).toBe(1);
    // Deleting that resource does not delete the app it never owned.
    await ok(['delete', 'app', 'pushed', '--timeout=20s']);
    expect((await call('GET', `/v3/apps/${pushed.body.guid}`)).status).toBe(200);
    expect((await call('DELETE', `/v3/apps/${pushed.body.guid}`)).status).toBe(202);
    await until('pushed app gone', async () => ((await call('GET', `/v3/apps/${pushed.body.guid}`)).status === 404 ? true : undefined));
  }, 60_000);

  it('kubectl delete removes the app from Kiln before the resource goes, then the space and the org', async () => {
    // kubectl delete waits for the resource to be gone, which the finalizer holds until Kiln deleted the app.
    const spaceGuid = (await resource('space', 'demo-dev')).status.guid;
    const orgGuid = (await resource('organization', 'demo')).status.guid;
    await ok(['delete', '-f', path.join(repo, 'examples/kube/hello.yaml'), '--timeout=60s']);
    expect((await call('GET', `/v3/apps/${appGuid}`)).status).toBe(404);
    expect((await call('GET', `/v3/spaces/${spaceGuid}`)).status).toBe(404);
    expect((await call('GET', `/v3/organizations/${orgGuid}`)).status).toBe(404);
  }, 90_000);
});
