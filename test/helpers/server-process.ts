import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const repo = path.resolve(import.meta.dirname, '../..');

export interface ServerProcess {
  url: string;
  dataDir: string;
  /** The admin password the server generated and printed on its first start. */
  adminPassword: string;
  child: ChildProcess;
  output: string[];
  /** SIGTERM and wait; `keepData` leaves the data dir for a restart. */
  stop(opts?: { keepData?: boolean; signal?: NodeJS.Signals }): Promise<void>;
}

/**
 * Starts the real server the way `npm start` does (tsx src/main.ts serve) on a free port, with a temp data dir
 * (or the given one, to test restarts), and resolves once it logs that it listens.
 */
export async function startServerProcess(opts: { dataDir?: string; env?: Record<string, string>; openFiles?: Record<number, string> } = {}): Promise<ServerProcess> {
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-e2e-'));
  const argv = [process.execPath, '--import', 'tsx', 'src/main.ts', 'serve'];
  // openFiles: descriptors the server inherits from a careless launcher (a shell's `exec 40<file`: no close-on-exec;
  // bash, as dash opens nothing above 9).
  const files = Object.entries(opts.openFiles ?? {});
  const [file, args] = files.length
    ? ['/bin/bash', ['-c', `exec "$@" ${files.map(([fd]) => `${Number(fd)}<"$KILN_TEST_OPEN_${Number(fd)}"`).join(' ')}`, 'launcher', ...argv]]
    : [argv[0]!, argv.slice(1)];
  const child = spawn(file, args, {
    cwd: repo,
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      KILN_DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      KILN_ADMIN_PASSWORD: '',
      DATABASE_URL: '',
      ...Object.fromEntries(files.map(([fd, p]) => [`KILN_TEST_OPEN_${Number(fd)}`, p])),
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const lines = readline.createInterface({ input: child.stdout! });
  child.stderr!.on('data', (d) => output.push(String(d)));
  let adminPassword = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output.join('')}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${output.join('')}`)));
    lines.on('line', (line) => {
      output.push(line);
      const password = line.match(/with password: (\S+)/);
      if (password) adminPassword = password[1]!;
      if (line.startsWith('{')) {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'Kiln is listening' && entry.url) {
          clearTimeout(timer);
          resolve(entry.url);
        }
      }
    });
  });
  // The generated password is printed after the listening line (first start only).
  // (Not when the password is given: a replica joining an existing database generates none.)
  const given = opts.env?.KILN_ADMIN_PASSWORD;
  const deadline = Date.now() + 5_000;
  while (!adminPassword && !given && Date.now() < deadline && !opts.dataDir) await new Promise((r) => setTimeout(r, 20));
  if (!adminPassword) adminPassword = given || fs.readFileSync(path.join(dataDir, 'initial-admin-password'), 'utf8').trim();
  return {
    url,
    dataDir,
    adminPassword,
    child,
    output,
    async stop({ keepData = false, signal = 'SIGTERM' } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill(signal);
        await exited;
      }
      if (!keepData) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Logs in like the cf CLI (password grant, client `cf`) and returns the access token. */
export async function cliLogin(api: string, username: string, password: string): Promise<{ access_token: string; refresh_token: string; token_type: string }> {
  const res = await fetch(`${api}/oauth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', Authorization: `Basic ${Buffer.from('cf:').toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'password', password, username }).toString(),
  });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as { access_token: string; refresh_token: string; token_type: string };
}

/** Headers the cf CLI v8 sends on CC requests (cf-cli-flows §1.2). */
export const CLI_HEADERS = { 'Content-Type': 'application/json', Accept: 'application/json', 'User-Agent': 'cf/8.18.4 (go1.26; amd64 linux)' };

/** One CC request as the CLI sends it; the body is parsed when there is one. */
export async function cliCall(method: string, url: string, token?: string, body?: unknown) {
  const res = await fetch(url, {
    method,
    headers: { ...CLI_HEADERS, ...(token ? { Authorization: `bearer ${token}` } : {}) },
    body: body === undefined ? (method === 'GET' ? undefined : '') : JSON.stringify(body),
  });
  const text = await res.text();
  // Test code reads fields of many CF resources; typing each response here would duplicate the presenters.
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : {}) as any };
}
