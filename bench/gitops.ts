/**
 * Git source benchmark: `npx tsx bench/gitops.ts`.
 *
 * Starts the in-memory Kubernetes API server (test/kube/apiserver) and Kiln in this process (temporary data dir,
 * SQLite, port 0, KILN_SANDBOX from the environment) with the CRD sync on and the git poll interval set low, makes
 * a bare repository holding examples/node-hello under `web/`, and creates an Organization, a Space and an App with
 * `source.git` (2 instances). Once v0 serves, it pushes BENCH_RUNS commits (default 3), each changing the greeting,
 * and measures from the push to every instance serving it: the deployment DEPLOYED and BENCH_CONSECUTIVE (default
 * 10) requests in a row through the router answering with the new version. Phases, from Kiln's store:
 *   fetch: push → the package row (the poll noticed the commit, fetched and checked it out);
 *   stage: package → deployment created (zip, upload, staging);
 *   roll:  deployment created → every instance serving the new commit.
 * Env: BENCH_RUNS, BENCH_POLL_SECONDS (default 0.2), BENCH_CONSECUTIVE. Nothing here ran against a real cluster.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { generatedCrds } from '../src/kube/crds.ts';
import { startKiln } from '../src/server.ts';
import { startApiServer } from '../test/kube/apiserver/index.ts';
import { median, poll } from './kiln.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const POLL_SECONDS = process.env.BENCH_POLL_SECONDS ?? '0.2';
const CONSECUTIVE = Number(process.env.BENCH_CONSECUTIVE ?? 10);
const repoRoot = path.resolve(import.meta.dirname, '..');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-gitops-'));
const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@kiln.invalid', ...args], { cwd, encoding: 'utf8' }).trim();
const bare = path.join(dir, 'origin.git');
const work = path.join(dir, 'work');
git(dir, 'init', '--quiet', '--bare', '--initial-branch=main', bare);
git(dir, 'init', '--quiet', '--initial-branch=main', work);
const serverJs = fs.readFileSync(path.join(repoRoot, 'examples/node-hello/server.js'), 'utf8');
function commit(version: string): string {
  fs.mkdirSync(path.join(work, 'web'), { recursive: true });
  fs.copyFileSync(path.join(repoRoot, 'examples/node-hello/package.json'), path.join(work, 'web/package.json'));
  fs.writeFileSync(path.join(work, 'web/server.js'), serverJs.replace('Hello from Kiln!', `Hello from Kiln ${version}!`));
  git(work, 'add', '-A');
  git(work, 'commit', '--quiet', '-m', version);
  git(work, 'push', '--quiet', bare, 'HEAD:refs/heads/main');
  return git(work, 'rev-parse', 'HEAD');
}

const apiserver = await startApiServer();
const kubeconfig = apiserver.writeKubeconfig(dir);
const crdType = apiserver.storage.type('apiextensions.k8s.io', 'customresourcedefinitions')!;
for (const crd of generatedCrds().values()) apiserver.storage.create(crdType, undefined, crd);
const type = (plural: string) => apiserver.storage.type('kiln.dev', plural)!;

const kiln = await startKiln(
  loadConfig({
    KILN_DATA_DIR: path.join(dir, 'data'),
    PORT: '0',
    HOST: '127.0.0.1',
    KILN_ADMIN_PASSWORD: 'bench-password-123',
    LOG_LEVEL: 'silent',
    KILN_SANDBOX: process.env.KILN_SANDBOX,
    KILN_KUBECONFIG: kubeconfig,
    KILN_KUBE_RESYNC_SECONDS: '0.5',
    KILN_GIT_POLL_SECONDS: POLL_SECONDS,
    KILN_GIT_ALLOW_LOCAL: 'true',
  }),
);
const { port } = new URL(kiln.url);
function viaRouter(): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.request({ hostname: '127.0.0.1', port, path: '/', headers: { host: 'bench.apps.localhost' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}

const db = kiln.store.db;
try {
  commit('v0');
  apiserver.storage.create(type('organizations'), undefined, { apiVersion: 'kiln.dev/v1alpha1', kind: 'Organization', metadata: { name: 'bench' } });
  apiserver.storage.create(type('spaces'), undefined, { apiVersion: 'kiln.dev/v1alpha1', kind: 'Space', metadata: { name: 'bench-dev' }, spec: { org: 'bench', name: 'dev' } });
  apiserver.storage.create(type('apps'), 'default', {
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'App',
    metadata: { name: 'bench' },
    spec: { org: 'bench', space: 'dev', instances: 2, memory: '128M', routes: [{ route: 'bench.apps.localhost' }], source: { git: { url: `file://${bare}`, ref: 'main', path: 'web' } } },
  });
  const t00 = performance.now();
  await poll('v0 serving', async () => ((await viaRouter()).body.includes('v0!') ? true : undefined), { everyMs: 50, timeoutMs: 300_000 });
  console.log(`first deploy (clone, stage, start): ${(performance.now() - t00).toFixed(0)} ms`);
  const app = await db.selectFrom('apps').select('guid').where('name', '=', 'bench').executeTakeFirstOrThrow();

  const totals: number[] = [];
  const phases = { fetch: [] as number[], stage: [] as number[], roll: [] as number[] };
  for (let run = 1; run <= RUNS; run++) {
    const version = `v${run}`;
    const startIso = new Date().toISOString();
    const sha = commit(version);
    const t0 = Date.now();
    const pkg = await poll('package', async () => db.selectFrom('packages').select('created_at').where('app_guid', '=', app.guid).where('created_at', '>', startIso).executeTakeFirst(), { everyMs: 10, timeoutMs: 120_000 });
    const dep = await poll('deployment', async () => db.selectFrom('deployments').select(['guid', 'created_at']).where('app_guid', '=', app.guid).where('created_at', '>', startIso).executeTakeFirst(), { everyMs: 10, timeoutMs: 300_000 });
    let streak = 0;
    await poll(
      'every instance serving',
      async () => {
        const d = await db.selectFrom('deployments').select('state').where('guid', '=', dep.guid).executeTakeFirstOrThrow();
        const r = await viaRouter();
        streak = r.status === 200 && r.body.includes(`${version}!`) ? streak + 1 : 0;
        return d.state === 'DEPLOYED' && streak >= CONSECUTIVE ? true : undefined;
      },
      { everyMs: 5, timeoutMs: 300_000 },
    );
    const end = Date.now();
    const p = Date.parse(pkg.created_at);
    const dc = Date.parse(dep.created_at);
    phases.fetch.push(p - t0);
    phases.stage.push(dc - p);
    phases.roll.push(end - dc);
    totals.push(end - t0);
    console.log(`run ${run} (${sha.slice(0, 10)}): total ${end - t0} ms — fetch ${p - t0} ms, stage ${dc - p} ms, roll ${end - dc} ms`);
  }
  console.log(`\ncommit → every instance serving it (2 instances, poll ${POLL_SECONDS} s), median of ${RUNS}: ${median(totals).toFixed(0)} ms`);
  console.log(`  fetch ${median(phases.fetch).toFixed(0)} ms, stage ${median(phases.stage).toFixed(0)} ms, roll ${median(phases.roll).toFixed(0)} ms`);
} finally {
  await kiln.stop();
  await apiserver.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
