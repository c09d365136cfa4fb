import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { getAppUrl } from '../helpers/kiln-cli.ts';
import { until } from '../helpers/push.ts';

/**
 * A new user's first minutes, on a machine that has only the repository: clone HEAD into an empty temporary
 * folder (nothing beside it, so nothing outside the repository can be read), then run README's quick start as written — `npm start`, the
 * `npx kiln` lines, the URL — and the parts of the suite that need the vendored contract. node_modules is
 * linked in from this checkout because the test must not install from the network; `npm install` itself is
 * not what is under test.
 */

const repo = path.resolve(import.meta.dirname, '../..');
// CI may run as another user than the checkout's owner; git refuses such repositories unless told otherwise.
const git = (args: string[], cwd?: string) => execFileSync('git', ['-c', 'safe.directory=*', ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** Clones HEAD (what is committed) into `dir`. */
function cloneHead(dir: string): void {
  const head = git(['rev-parse', 'HEAD'], repo).trim();
  git(['clone', '--quiet', '--no-checkout', repo, dir]);
  git(['checkout', '--quiet', head], dir);
}
// Without git (a source tarball) there is nothing to clone.
const isGitCheckout = (() => {
  try {
    git(['rev-parse', 'HEAD'], repo);
    return true;
  } catch {
    return false;
  }
})();

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** The shell blocks of README's "Start Kiln" section: [start block, client block]. */
function quickStart(readme: string): string[][] {
  const section = readme.slice(readme.indexOf('## Start Kiln'), readme.indexOf('\n## ', readme.indexOf('## Start Kiln') + 3));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.split('\n').filter((l) => l.trim() !== ''));
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

function sh(command: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      setImmediate(() => resolve({ code, out }));
    });
  });
}

describe.skipIf(!isGitCheckout)('a bare clone of the repository', () => {
  it('runs the README quick start: npm start, kiln login and push without any org or space command, then the app URL answers', async () => {
    const outer = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-clone-'));
    cleanups.push(() => fs.rmSync(outer, { recursive: true, force: true }));
    const clone = path.join(outer, 'kiln');
    cloneHead(clone);
    expect(fs.readdirSync(outer)).toEqual(['kiln']);
    fs.symlinkSync(fs.realpathSync(path.join(repo, 'node_modules')), path.join(clone, 'node_modules'));

    const [start, client] = quickStart(fs.readFileSync(path.join(clone, 'README.md'), 'utf8'));
    expect(start).toEqual(['npm install && npm start']);
    expect(client!.some((l) => /org|space|target/.test(l)), 'the quick start needs no org or space command').toBe(false);

    // README's commands with one change: a free port instead of 9000, given to both sides through PORT.
    const port = await freePort();
    const home = path.join(outer, 'home');
    fs.mkdirSync(home);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOME: home, npm_config_offline: 'true', NO_COLOR: '1' };
    for (const key of ['KILN_API', 'KILN_TOKEN', 'KILN_USERNAME', 'KILN_PASSWORD', 'KILN_ORG', 'KILN_SPACE', 'KILN_DATA_DIR', 'DATABASE_URL', 'KILN_ADMIN_PASSWORD', 'KILN_DEFAULT_ORG', 'KILN_DEFAULT_SPACE', 'HOST']) delete env[key];

    // `npm start` in its own process group, so stopping it stops npm, tsx and Kiln (and the app) together.
    const server: ChildProcess = spawn('npm', ['start'], { cwd: clone, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const serverOut: string[] = [];
    server.stderr!.on('data', (d) => serverOut.push(String(d)));
    cleanups.push(async () => {
      if (server.exitCode !== null || server.signalCode !== null) return;
      const exited = new Promise((r) => server.once('exit', r));
      process.kill(-server.pid!, 'SIGTERM');
      await exited;
    });
    const listening = new Promise<void>((resolve, reject) => {
      server.once('exit', (code) => reject(new Error(`npm start exited ${code}: ${serverOut.join('')}`)));
      readline.createInterface({ input: server.stdout! }).on('line', (line) => {
        serverOut.push(line);
        if (line.includes('"msg":"Kiln is listening"')) resolve();
      });
    });
    await listening;
    await until('the admin password file', async () => (fs.existsSync(path.join(clone, '.kiln/initial-admin-password')) ? true : undefined), 10_000);

    for (const line of client!) {
      const url = line.match(/^curl (\S+)$/)?.[1];
      if (url) {
        const res = await getAppUrl(url.replace(':9000', `:${port}`));
        expect(res.status, serverOut.join('\n')).toBe(200);
        expect(res.body).toContain('Hello from Kiln!');
        continue;
      }
      const r = await sh(line, clone, env);
      expect(r.code, `${line}\n${r.out}\n--- server ---\n${serverOut.join('\n')}`).toBe(0);
      if (line.includes('kiln push')) expect(r.out).toMatch(new RegExp(`http://node-hello\\.apps\\.localhost:${port}`));
    }
  }, 90_000);

  it('has what the API tests need: the vendored contract, the catalogue check and an API test pass there', async () => {
    const outer = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-clone-'));
    cleanups.push(() => fs.rmSync(outer, { recursive: true, force: true }));
    const clone = path.join(outer, 'kiln');
    cloneHead(clone);
    fs.symlinkSync(fs.realpathSync(path.join(repo, 'node_modules')), path.join(clone, 'node_modules'));
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.KILN_TEST_DIALECT;
    delete env.VITEST;
    const r = await sh('npx vitest run test/repo test/api/stacks.test.ts', clone, env);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/Test Files\s+3 passed/);
  }, 90_000);
});
