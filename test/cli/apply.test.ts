import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TestRepo } from '../gitops/git-repo.ts';
import { until } from '../helpers/push.ts';
import { runKiln, type KilnEnv } from '../helpers/kiln-cli.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * `kiln apply|diff|delete -f` as real processes against a real server: a directory of kiln.dev documents is
 * applied (org and space created, apps through apply_manifest), diffed field by field, pruned, deleted.
 */
vi.setConfig({ testTimeout: 120_000 });
let server: ServerProcess;
let home: string;
let dir: string;
let opts: KilnEnv;
let token: string;
const kiln = (...args: string[]) => runKiln(args, opts);
const call = (method: string, url: string) => cliCall(method, `${server.url}${url}`, token);

const app = (name: string, extra = '') => `apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: ${name} }\nspec:\n  org: decl\n  space: dev\n  instances: 1\n  memory: 64M\n  env: { WHO: ${name} }\n${extra}`;

beforeAll(async () => {
  server = await startServerProcess({ env: { KILN_GIT_POLL_SECONDS: '0.5', KILN_GIT_ALLOW_LOCAL: 'true' } });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-apply-home-'));
  dir = path.join(home, 'decl');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'org.yaml'), 'apiVersion: kiln.dev/v1alpha1\nkind: Organization\nmetadata: { name: decl }\n---\napiVersion: kiln.dev/v1alpha1\nkind: Space\nmetadata: { name: decl-dev }\nspec: { org: decl, name: dev }\n');
  fs.writeFileSync(path.join(dir, 'one.yaml'), app('one'));
  fs.writeFileSync(path.join(dir, 'two.yml'), app('two'));
  opts = { home, cwd: home };
  const login = await kiln('login', '-a', server.url, '-u', 'admin', '-p', server.adminPassword);
  expect(login.code, login.stderr).toBe(0);
  token = (await cliLogin(server.url, 'admin', server.adminPassword)).access_token;
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

const appNamed = async (name: string) => (await call('GET', `/v3/apps?names=${name}`)).body.resources[0];

describe('kiln apply / diff / delete -f', () => {
  it('diff shows what would be created (exit 1), --dry-run changes nothing, apply makes it, then diff exits 0', async () => {
    const d = await kiln('diff', '-f', dir);
    expect(d.code, d.stderr).toBe(1);
    expect(d.stdout.split('\n').filter(Boolean)).toEqual(['+ organization decl', '+ space decl/dev', '+ app decl/dev/one', '+ app decl/dev/two']);
    const dry = await kiln('apply', '-f', dir, '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('+ app decl/dev/one');
    expect((await call('GET', '/v3/organizations?names=decl')).body.resources).toHaveLength(0);

    const a = await kiln('apply', '-f', dir);
    expect(a.code, a.stderr + a.stdout).toBe(0);
    const one = await appNamed('one');
    expect(one.metadata.labels['kiln.dev/applied-from']).toMatch(/^src-[0-9a-f]{20}$/);
    expect((await call('GET', `/v3/apps/${one.guid}/environment_variables`)).body.var).toEqual({ WHO: 'one' });
    expect((await call('GET', `/v3/apps/${one.guid}/processes/web`)).body.memory_in_mb).toBe(64);

    const again = await kiln('diff', '-f', dir);
    expect(again.stdout + again.stderr).toBe('');
    expect(again.code).toBe(0);
  });

  it('diff shows a changed field with its old and new value', async () => {
    fs.writeFileSync(path.join(dir, 'one.yaml'), app('one').replace('instances: 1', 'instances: 3'));
    const d = await kiln('diff', '-f', dir);
    expect(d.code, d.stderr).toBe(1);
    expect(d.stdout.split('\n').filter(Boolean)).toEqual(['~ app decl/dev/one: instances: 1 → 3']);
    // The same file applied on its own is another source: the label that --prune goes by would change.
    const alone = await kiln('diff', '-f', path.join(dir, 'one.yaml'));
    expect(alone.stdout).toMatch(/^~ app decl\/dev\/one: metadata\.labels\.kiln\.dev\/applied-from: "src-[0-9a-f]+" → "src-[0-9a-f]+"$/m);
    expect((await kiln('apply', '-f', dir)).code).toBe(0);
    expect((await call('GET', `/v3/apps/${(await appNamed('one')).guid}/processes/web`)).body.instances).toBe(3);
  });

  it('--prune deletes an app applied from the directory that it no longer declares, and nothing else', async () => {
    const spaceGuid = (await appNamed('one')).relationships.space.data.guid;
    const other = await cliCall('POST', `${server.url}/v3/apps`, token, { name: 'bystander', relationships: { space: { data: { guid: spaceGuid } } } });
    expect(other.status).toBe(201);
    fs.rmSync(path.join(dir, 'two.yml'));
    const dry = await kiln('apply', '-f', dir, '--prune', '--dry-run');
    expect(dry.stdout.split('\n').filter(Boolean)).toEqual(['- app decl/dev/two']);
    expect(await appNamed('two')).toBeDefined();
    const a = await kiln('apply', '-f', dir, '--prune');
    expect(a.code, a.stderr).toBe(0);
    expect(await appNamed('two')).toBeUndefined();
    expect(await appNamed('one')).toBeDefined();
    expect(await appNamed('bystander')).toBeDefined();
  });

  it('reports a broken file and applies nothing', async () => {
    fs.writeFileSync(path.join(dir, 'broken.yaml'), 'apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: bad }\nspec: { org: decl }\n');
    const a = await kiln('apply', '-f', dir);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/broken\.yaml: document 1: spec\.space/);
    fs.rmSync(path.join(dir, 'broken.yaml'));
  });

  it('delete -f removes the apps, then the space and org it declared once they are empty', async () => {
    await cliCall('DELETE', `${server.url}/v3/apps/${(await appNamed('bystander')).guid}`, token);
    for (let i = 0; i < 100 && (await appNamed('bystander')); i++) await new Promise((r) => setTimeout(r, 100));
    const d = await kiln('delete', '-f', dir + '/');
    expect(d.code, d.stderr).toBe(0);
    expect(await appNamed('one')).toBeUndefined();
    expect((await call('GET', '/v3/organizations?names=decl')).body.resources).toHaveLength(0);
  });
});

describe('kiln create-gitsource / gitsources (a real server reconciling a local bare repository)', () => {
  const gapp = (name: string) => `apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: ${name} }\nspec: { org: gsorg, space: dev, instances: 1, memory: 64M }\n`;
  it('applies three apps, prunes the one whose file is removed, and reports a broken file while the rest stays', async () => {
    const repo = new TestRepo(fs.mkdtempSync(path.join(home, 'repo-')));
    repo.commit({
      'site/platform.yaml': 'apiVersion: kiln.dev/v1alpha1\nkind: Organization\nmetadata: { name: gsorg }\n---\napiVersion: kiln.dev/v1alpha1\nkind: Space\nmetadata: { name: gsorg-dev }\nspec: { org: gsorg, name: dev }\n',
      'site/a.yaml': gapp('ga'),
      'site/b.yaml': gapp('gb'),
      'site/c.yaml': gapp('gc'),
    });
    const made = await kiln('create-gitsource', 'site', '--url', repo.url, '--ref', 'main', '--path', 'site');
    expect(made.code, made.stderr).toBe(0);
    await until('three apps', async () => ((await appNamed('ga')) && (await appNamed('gb')) && (await appNamed('gc')) ? true : undefined), 60_000);
    const listed = await until('APPLIED', async () => {
      const r = await kiln('gitsources');
      return /site\s+\S+\s+main\s+site\s+APPLIED\s+[0-9a-f]{12}\s+0/.test(r.stdout) ? r : undefined;
    }, 60_000);
    expect(listed.code).toBe(0);

    repo.commit({ 'site/c.yaml': null }, 'remove gc');
    await until('gc pruned', async () => ((await appNamed('gc')) ? undefined : true), 60_000);
    expect(await appNamed('ga')).toBeDefined();

    repo.commit({ 'site/b.yaml': 'kind: App\nmetadata: {', 'site/a.yaml': gapp('ga').replace('instances: 1', 'instances: 2') }, 'break gb');
    const degraded = await until('DEGRADED', async () => {
      const r = await kiln('gitsources');
      return r.stdout.includes('DEGRADED') ? r : undefined;
    }, 60_000);
    expect(degraded.stderr).toMatch(/^site: b\.yaml: /m);
    expect(await appNamed('gb')).toBeDefined();
    const ga = await appNamed('ga');
    await until('ga scaled', async () => ((await call('GET', `/v3/apps/${ga.guid}/processes/web`)).body.instances === 2 ? true : undefined), 30_000);
    expect((await kiln('delete-gitsource', 'site')).code).toBe(0);
    expect((await kiln('gitsources')).stdout).toContain('No GitSources');
  });
});

describe('kiln apply / diff / delete -f with --api, --username and --password (no saved login)', () => {
  it('log in for the one run, as kiln push does, and save nothing', async () => {
    const fresh = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-apply-flags-'));
    const flagsDir = path.join(fresh, 'decl');
    fs.mkdirSync(flagsDir);
    fs.writeFileSync(
      path.join(flagsDir, 'all.yaml'),
      'apiVersion: kiln.dev/v1alpha1\nkind: Organization\nmetadata: { name: flags }\n---\napiVersion: kiln.dev/v1alpha1\nkind: Space\nmetadata: { name: flags-dev }\nspec: { org: flags, name: dev }\n---\n' +
        'apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: flagged }\nspec: { org: flags, space: dev, instances: 1, memory: 64M }\n',
    );
    const run = (...args: string[]) => runKiln(args, { home: fresh, cwd: fresh });
    const login = ['--api', server.url, '--username', 'admin', '--password', server.adminPassword];
    try {
      const half = await run('apply', '-f', flagsDir, '--api', server.url, '--username', 'admin');
      expect(half.code).toBe(2);
      expect(half.stderr).toContain('--username and --password go together.');
      const anonymous = await run('apply', '-f', flagsDir, '--api', server.url);
      expect(anonymous.code).toBe(1);
      expect(anonymous.stderr).toContain(`Not logged in to ${server.url}. Pass --username and --password`);

      const applied = await run('apply', '-f', flagsDir, ...login);
      expect(applied.code, applied.stderr + applied.stdout).toBe(0);
      expect(await appNamed('flagged')).toBeDefined();
      const diff = await run('diff', '-f', flagsDir, ...login);
      expect(diff.code, diff.stderr + diff.stdout).toBe(0);
      fs.writeFileSync(path.join(flagsDir, 'all.yaml'), fs.readFileSync(path.join(flagsDir, 'all.yaml'), 'utf8').replace('memory: 64M }', 'memory: 64M, env: { NEW: "1" } }'));
      const changed = await run('diff', '-f', flagsDir, ...login);
      expect(changed.code, changed.stderr).toBe(1);
      expect(changed.stdout).toContain('flagged');
      // $KILN_TOKEN instead of a password, as for push.
      const byToken = await runKiln(['diff', '-f', flagsDir, '--api', server.url], { home: fresh, cwd: fresh, env: { KILN_TOKEN: token } });
      expect(byToken.code, byToken.stderr).toBe(1);

      const deleted = await run('delete', '-f', flagsDir, ...login);
      expect(deleted.code, deleted.stderr).toBe(0);
      expect(await appNamed('flagged')).toBeUndefined();
      expect((await call('GET', '/v3/organizations?names=flags')).body.resources).toHaveLength(0);
      // Nothing was saved: the next command without flags is not logged in.
      expect(fs.existsSync(path.join(fresh, '.kiln', 'config.json'))).toBe(false);
    } finally {
      fs.rmSync(fresh, { recursive: true, force: true });
    }
  });
});
