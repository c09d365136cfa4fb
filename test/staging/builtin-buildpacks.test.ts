import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KilnError } from '../../src/domain/errors.ts';
import { stage, type StageResult } from '../../src/staging/buildpack-runner.ts';
import { BUILTIN_BUILDPACKS } from '../../src/staging/builtin-buildpacks.ts';
import { extractDroplet, launchSpec } from '../../src/staging/droplet.ts';
import { listTarGz } from '../../src/staging/tarball.ts';
import { tempDir } from './zip-fixtures.ts';

const SERVER_JS = `
const http = require('node:http');
const greeting = process.env.GREETING_FROM_DEP ? require('tiny-dep').greet() : 'plain';
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end(greeting + ' ' + process.env.NODE_ENV + ' ' + req.url);
});
server.listen(Number(process.env.PORT), () => console.log('listening on ' + server.address().port));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

describe('built-in buildpacks', () => {
  let base: string;
  let counter = 0;
  const running: ChildProcess[] = [];
  beforeAll(() => {
    base = tempDir('kiln-builtin-');
  });
  afterEach(() => {
    for (const child of running.splice(0)) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already exited.
      }
    }
  });
  afterAll(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  async function writeApp(files: Record<string, string>): Promise<string> {
    const dir = path.join(base, `app-${++counter}`);
    for (const [name, content] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await fs.writeFile(path.join(dir, name), content);
    }
    return dir;
  }

  async function stageApp(appDir: string, lines: string[] = [], cacheDir?: string): Promise<StageResult & { root: string }> {
    const id = ++counter;
    const result = await stage({
      appDir,
      buildpacks: [...BUILTIN_BUILDPACKS],
      workDir: path.join(base, `work-${id}`),
      cacheDir: cacheDir ?? path.join(base, `cache-${id}`),
      dropletPath: path.join(base, `droplet-${id}.tgz`),
      onOutput: (line) => lines.push(line),
      timeoutMs: 60_000,
    });
    const root = path.join(base, `run-${id}`);
    await extractDroplet(result.dropletPath, root);
    return { ...result, root };
  }

  /** Starts the droplet like the runtime will, with PORT=0, and answers the port the app announces. */
  async function launch(root: string, command: string, env: Record<string, string> = {}): Promise<number> {
    const spec = launchSpec(root, command, { PORT: '0', ...env });
    const child = spawn(spec.file, spec.args, { cwd: spec.cwd, env: spec.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    running.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const rl = createInterface({ input: child.stdout! });
    return new Promise<number>((resolve, reject) => {
      rl.on('line', (line) => {
        const m = /listening on (?:port )?(\d+)/.exec(line);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`app exited with ${code}: ${stderr}`)));
    });
  }

  async function get(port: number, urlPath: string): Promise<{ status: number; body: string; type: string | null }> {
    const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { redirect: 'manual' });
    return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
  }

  it('stages and runs a dependency-free Node.js app (start command from main)', async () => {
    const app = await writeApp({ 'package.json': JSON.stringify({ name: 'plain', main: 'server.js' }), 'server.js': SERVER_JS });
    const lines: string[] = [];
    const result = await stageApp(app, lines);
    expect(result.detectedBuildpack).toBe('nodejs');
    expect(result.buildpacks).toEqual([{ name: 'nodejs_buildpack', buildpackName: 'nodejs', version: '1.0.0', detectOutput: 'nodejs' }]);
    expect(result.processTypes).toEqual({ web: 'node "server.js"' });
    expect(lines).toContain('-----> No dependencies to install');
    const port = await launch(result.root, result.startCommand);
    expect(await get(port, '/hi')).toMatchObject({ status: 200, body: 'plain production /hi' });
  });

  it('installs a real npm dependency (local file: package, offline) and omits devDependencies', async () => {
    const app = await writeApp({
      'package.json': JSON.stringify({
        name: 'with-dep',
        version: '1.0.0',
        scripts: { start: 'node server.js' },
        dependencies: { 'tiny-dep': 'file:vendor/tiny-dep' },
        devDependencies: { 'dev-only': 'file:vendor/dev-only' },
      }),
      'server.js': SERVER_JS,
      'vendor/tiny-dep/package.json': JSON.stringify({ name: 'tiny-dep', version: '1.0.0', main: 'index.js' }),
      'vendor/tiny-dep/index.js': "exports.greet = () => 'hello from tiny-dep';\n",
      'vendor/dev-only/package.json': JSON.stringify({ name: 'dev-only', version: '1.0.0' }),
    });
    const lines: string[] = [];
    const result = await stageApp(app, lines);
    expect(result.startCommand).toBe('npm start');
    expect(lines).toContain('-----> Installing dependencies with npm install');
    const entries = await listTarGz(result.dropletPath);
    const dep = entries.find((e) => e.path === 'app/node_modules/tiny-dep/index.js');
    // Copied, not linked: a link would point into the scratch directory that is gone after staging.
    expect(dep?.type).toBe('File');
    expect(entries.some((e) => e.path.startsWith('app/node_modules/dev-only'))).toBe(false);
    const port = await launch(result.root, result.startCommand, { GREETING_FROM_DEP: '1' });
    expect((await get(port, '/')).body).toBe('hello from tiny-dep production /');
  });

  it('reuses the installed node_modules while the lock file is unchanged, and installs again when it changes', async () => {
    const files = {
      'package.json': JSON.stringify({ name: 'locked', version: '1.0.0', scripts: { start: 'node server.js' }, dependencies: { 'tiny-dep': 'file:vendor/tiny-dep' } }),
      'server.js': SERVER_JS,
      'vendor/tiny-dep/package.json': JSON.stringify({ name: 'tiny-dep', version: '1.0.0', main: 'index.js' }),
      'vendor/tiny-dep/index.js': "exports.greet = () => 'hello from tiny-dep';\n",
    };
    const app = await writeApp(files);
    execFileSync('npm', ['install', '--package-lock-only', '--offline', '--no-audit', '--no-fund', '--install-links'], { cwd: app, stdio: 'ignore' });
    const cache = path.join(base, `cache-shared-${++counter}`);
    const first: string[] = [];
    await stageApp(app, first, cache);
    expect(first).toContain('-----> Installing dependencies with npm ci (lockfile found)');

    // The code changes, the dependencies do not: no npm run, the same node_modules in the droplet.
    await fs.appendFile(path.join(app, 'server.js'), '// changed\n');
    const second: string[] = [];
    const again = await stageApp(app, second, cache);
    expect(second).toContain('-----> Reusing node_modules from the dependency cache (lock file unchanged)');
    expect(second.some((l) => l.includes('npm ci'))).toBe(false);
    expect((await listTarGz(again.dropletPath)).find((e) => e.path === 'app/node_modules/tiny-dep/index.js')?.type).toBe('File');
    const port = await launch(again.root, again.startCommand, { GREETING_FROM_DEP: '1' });
    expect((await get(port, '/')).body).toBe('hello from tiny-dep production /');

    // A changed lock file installs again.
    const lock = JSON.parse(await fs.readFile(path.join(app, 'package-lock.json'), 'utf8'));
    lock.name = 'locked-renamed';
    await fs.writeFile(path.join(app, 'package-lock.json'), JSON.stringify(lock));
    const third: string[] = [];
    await stageApp(app, third, cache);
    expect(third).toContain('-----> Installing dependencies with npm ci (lockfile found)');
  });

  it('uses the Procfile over package.json for Node.js apps', async () => {
    const app = await writeApp({
      'package.json': JSON.stringify({ name: 'p', scripts: { start: 'node nope.js' } }),
      'server.js': SERVER_JS,
      Procfile: 'web: node server.js --from-procfile\n',
    });
    const result = await stageApp(app);
    expect(result.detectedBuildpack).toBe('nodejs');
    expect(result.startCommand).toBe('node server.js --from-procfile');
  });

  it('fails Node.js staging with BuildpackCompileFailed on a broken package.json', async () => {
    const app = await writeApp({ 'package.json': '{ not json' });
    const lines: string[] = [];
    const err = await stageApp(app, lines).catch((e: unknown) => e);
    expect((err as KilnError).errorName).toBe('BuildpackCompileFailed');
    expect(lines.some((l) => l.includes('package.json could not be read'))).toBe(true);
  });

  it('stages and serves a static site with the built-in server', async () => {
    const app = await writeApp({
      'index.html': '<h1>home</h1>',
      'css/site.css': 'body{}',
      'docs/index.html': '<h1>docs</h1>',
      '.secret': 'hidden',
      Staticfile: '',
    });
    const result = await stageApp(app);
    expect(result.detectedBuildpack).toBe('staticfile');
    expect(result.startCommand).toBe('node .kiln-staticfile/server.mjs');
    const port = await launch(result.root, result.startCommand);
    expect(await get(port, '/')).toMatchObject({ status: 200, body: '<h1>home</h1>', type: 'text/html; charset=utf-8' });
    expect(await get(port, '/css/site.css')).toMatchObject({ status: 200, body: 'body{}', type: 'text/css; charset=utf-8' });
    expect((await get(port, '/docs')).status).toBe(301);
    expect((await get(port, '/docs/')).body).toBe('<h1>docs</h1>');
    expect((await get(port, '/missing.html')).status).toBe(404);
    expect((await get(port, '/.secret')).status).toBe(404);
    expect((await get(port, '/.kiln-staticfile/config.json')).status).toBe(404);
    expect((await get(port, '/Staticfile')).status).toBe(404);
    expect((await get(port, '/%2e%2e/%2e%2e/etc/passwd')).status).toBe(404);
    expect((await get(port, '/..%2f..%2fetc%2fpasswd')).status).toBe(400);
    const post = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST' });
    expect(post.status).toBe(405);
  });

  it('serves public/ when the site lives there, with pushstate from the Staticfile', async () => {
    const app = await writeApp({ 'public/index.html': '<h1>spa</h1>', Staticfile: 'pushstate: enabled\n' });
    const result = await stageApp(app);
    const port = await launch(result.root, result.startCommand);
    expect((await get(port, '/')).body).toBe('<h1>spa</h1>');
    expect((await get(port, '/some/client/route')).body).toBe('<h1>spa</h1>');
    expect((await get(port, '/missing.js')).status).toBe(404);
  });

  it('runs a Procfile app with the binary buildpack', async () => {
    const app = await writeApp({ 'app.js': SERVER_JS, Procfile: "web: node app.js\nworker: echo 'it''s working'\n" });
    const result = await stageApp(app);
    expect(result.detectedBuildpack).toBe('binary');
    expect(result.processTypes).toEqual({ web: 'node app.js', worker: "echo 'it''s working'" });
    const port = await launch(result.root, result.startCommand);
    expect((await get(port, '/x')).body).toBe('plain undefined /x');
  });

  it('reports NoAppDetectedError for an app no built-in buildpack recognises', async () => {
    const app = await writeApp({ 'README.md': 'nothing to run' });
    const err = await stageApp(app).catch((e: unknown) => e);
    expect((err as KilnError).errorName).toBe('NoAppDetectedError');
  });
});
