import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** Runs the real `kiln` command (src/main.ts through tsx, as bin/kiln.mjs does) in its own process. */

const repoRoot = path.resolve(import.meta.dirname, '../..');

export interface KilnRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface KilnEnv {
  /** HOME for the CLI: its ~/.kiln/config.json lives there. */
  home: string;
  cwd?: string;
  /** Where src/main.ts is (another checkout, for the clone test). */
  root?: string;
  env?: Record<string, string>;
}

function childEnv(opts: KilnEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: opts.home, NO_COLOR: '1', ...opts.env };
  // The suite's own settings must not leak into the CLI under test.
  for (const key of ['KILN_API', 'KILN_TOKEN', 'KILN_USERNAME', 'KILN_PASSWORD', 'KILN_ORG', 'KILN_SPACE']) if (!opts.env?.[key]) delete env[key];
  return env;
}

export function spawnKiln(args: string[], opts: KilnEnv): ChildProcess {
  const root = opts.root ?? repoRoot;
  // tsx from the checkout, not from the working folder (which may be anywhere), as bin/kiln.mjs does.
  const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
  return spawn(process.execPath, ['--import', tsx, path.join(root, 'src/main.ts'), ...args], {
    cwd: opts.cwd ?? root,
    env: childEnv(opts),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function runKiln(args: string[], opts: KilnEnv, timeoutMs = 120_000): Promise<KilnRun> {
  const child = spawnKiln(args, opts);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kiln ${args.join(' ')} did not finish in ${timeoutMs}ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      // 'exit' can come before the pipes drain.
      setImmediate(() => resolve({ code, stdout, stderr }));
    });
  });
}

/**
 * GETs an app URL (`http://node-hello.apps.localhost:PORT/path`) through Kiln's router. `*.localhost` does not
 * resolve on every machine (browsers and curl treat it as loopback themselves), so this connects to
 * 127.0.0.1 and sends the URL's host as the Host header, as those clients do.
 */
export function getAppUrl(url: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname: '127.0.0.1', port: u.port || 80, path: `${u.pathname}${u.search}`, headers: { host: u.host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
