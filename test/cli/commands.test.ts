import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { until } from '../helpers/push.ts';
import { getAppUrl, runKiln, spawnKiln, type KilnEnv } from '../helpers/kiln-cli.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * Every `kiln` client command, run as a real process against a real server (default org and space on), with
 * its own HOME so the saved login is this test's. The tests run in order: each builds on the state the
 * previous ones left (logged in, app pushed, ...).
 */

const repo = path.resolve(import.meta.dirname, '../..');

// Each step runs the CLI as a new node process (about a second each when the machine is idle, far more when it is
// not); a step of ten commands needs more than the suite's default 30 s on a busy machine.
vi.setConfig({ testTimeout: 120_000 });
let server: ServerProcess;
let home: string;
let opts: KilnEnv;
const kiln = (...args: string[]) => runKiln(args, opts);
const configPath = () => path.join(home, '.kiln', 'config.json');
const savedConfig = () => JSON.parse(fs.readFileSync(configPath(), 'utf8')) as Record<string, unknown>;
let appUrl: string;

beforeAll(async () => {
  server = await startServerProcess();
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-cli-home-'));
  // A working folder of its own: no .kiln/initial-admin-password there unless a test puts one.
  opts = { home, cwd: home };
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

/** The first column of each table row under the header line that starts with `header`. */
function tableColumn(stdout: string, header: string): string[] {
  const lines = stdout.split('\n');
  const start = lines.findIndex((l) => l.startsWith(header));
  expect(start, stdout).toBeGreaterThanOrEqual(0);
  return lines.slice(start + 1).filter((l) => l.trim() !== '').map((l) => l.split(/\s{2,}/)[0]!);
}

describe('kiln CLI before login', () => {
  it('tells a user who is not logged in to log in', async () => {
    const r = await kiln('apps');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Not logged in. Use 'kiln login' to log in.");
  });

  it('rejects a wrong password without saving anything', async () => {
    const r = await kiln('login', '-a', server.url, '-u', 'admin', '-p', 'wrong-password');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Credentials were rejected');
    expect(fs.existsSync(configPath()) ? savedConfig().accessToken : undefined).toBeUndefined();
  });

  it('takes the long forms --username/--password as well as cf\'s -u/-p', async () => {
    const r = await kiln('login', '-a', server.url, '--username', 'admin', '--password', 'wrong-password');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Credentials were rejected');
  });

  it('answers an unknown command with a usage error and a suggestion', async () => {
    const r = await kiln('aps');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'aps'/);
    expect(r.stderr).toMatch(/Did you mean .*\bapps\b/);
  });
});

describe('kiln CLI next to a fresh local install', () => {
  it("logs in as the first start's admin by itself when the password file is there, and targets default/dev", async () => {
    const otherHome = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-cli-auto-'));
    try {
      const local = { home: otherHome, cwd: otherHome, env: { KILN_DATA_DIR: server.dataDir, KILN_API: server.url } };
      const r = await runKiln(['target'], local);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`Logged in to ${server.url} as admin with the password in`);
      expect(r.stdout).toMatch(/org:\s+default/);
      expect(r.stdout).toMatch(/space:\s+dev/);
      // Saved: the next command needs no password file.
      const again = await runKiln(['spaces'], { home: otherHome, cwd: otherHome, env: { KILN_API: server.url } });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).not.toContain('Logged in');
    } finally {
      fs.rmSync(otherHome, { recursive: true, force: true });
    }
  });

  it('does not log in by itself against a server that is not on this machine', async () => {
    const otherHome = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-cli-auto-'));
    try {
      const r = await runKiln(['apps'], { home: otherHome, cwd: otherHome, env: { KILN_DATA_DIR: server.dataDir, KILN_API: 'http://kiln.example.invalid:9' } });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("Not logged in. Use 'kiln login' to log in.");
    } finally {
      fs.rmSync(otherHome, { recursive: true, force: true });
    }
  });
});

describe('kiln CLI, logged in', () => {
  it('logs in, keeps the tokens in ~/.kiln/config.json with mode 0600, and targets the default org and space', async () => {
    const r = await kiln('login', '-a', server.url, '-u', 'admin', '-p', server.adminPassword);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/org:\s+default/);
    expect(r.stdout).toMatch(/space:\s+dev/);
    expect(fs.statSync(configPath()).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(configPath())).mode & 0o777).toBe(0o700);
    const saved = savedConfig();
    expect(saved).toMatchObject({ api: server.url, username: 'admin', org: { name: 'default' }, space: { name: 'dev' } });
    expect(typeof saved.accessToken).toBe('string');
    expect(typeof saved.refreshToken).toBe('string');
  });

  it('shows the target, as text and as JSON', async () => {
    const text = await kiln('target');
    expect(text.stdout).toMatch(new RegExp(`API endpoint:\\s+${server.url}`));
    expect(text.stdout).toMatch(/user:\s+admin/);
    const json = JSON.parse((await kiln('target', '--json')).stdout);
    expect(json).toMatchObject({ api: server.url, user: 'admin', org: { name: 'default' }, space: { name: 'dev' } });
  });

  it('creates an org and a space, lists them, and targets them', async () => {
    expect((await kiln('create-org', 'acme')).code).toBe(0);
    const orgs = await kiln('orgs');
    expect(tableColumn(orgs.stdout, 'name')).toEqual(['acme', 'default']);
    const created = await kiln('create-space', 'staging', '-o', 'acme');
    expect(created.code, created.stderr).toBe(0);
    // The creator got the roles cf create-space gives.
    const roles = JSON.parse((await kiln('orgs', '--json')).stdout) as Array<{ name: string }>;
    expect(roles.map((o) => o.name)).toEqual(['acme', 'default']);

    // An org with one space: targeting the org targets the space too, as cf does.
    const t = await kiln('target', '-o', 'acme');
    expect(t.stdout).toMatch(/org:\s+acme/);
    expect(t.stdout).toMatch(/space:\s+staging/);
    expect(tableColumn((await kiln('spaces')).stdout, 'name')).toEqual(['staging']);
    expect((await kiln('create-space', 'prod')).code).toBe(0);
    expect(tableColumn((await kiln('spaces')).stdout, 'name')).toEqual(['prod', 'staging']);

    const back = await kiln('target', '-o', 'default', '-s', 'dev');
    expect(back.code).toBe(0);
    expect(savedConfig()).toMatchObject({ org: { name: 'default' }, space: { name: 'dev' } });
  });

  it('says what to do when an org or space does not exist', async () => {
    const r = await kiln('target', '-o', 'nope');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Organization 'nope' not found. Use 'kiln orgs'");
    const app = await kiln('app', 'nope');
    expect(app.code).toBe(1);
    expect(app.stderr).toContain("App 'nope' not found in space 'dev'. Use 'kiln apps'");
  });

  it('pushes examples/node-hello to the targeted space and prints its URL, which answers through the router', async () => {
    const r = await kiln('push', path.join(repo, 'examples/node-hello'));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Finding org and space: default / dev');
    appUrl = r.stdout.match(/(http:\/\/node-hello\.apps\.localhost:\d+)/)![1]!;
    const res = await getAppUrl(appUrl);
    expect(res.status).toBe(200);
    expect(res.body).toContain('Hello from Kiln! I am instance 0.');
  }, 120_000);

  it('lists apps with state, processes and routes', async () => {
    const r = await kiln('apps');
    expect(r.stdout).toMatch(/^name\s+requested state\s+processes\s+routes$/m);
    expect(r.stdout).toMatch(/^node-hello\s+started\s+web:1\/1\s+node-hello\.apps\.localhost$/m);
    const json = JSON.parse((await kiln('apps', '--json')).stdout);
    expect(json).toMatchObject([{ name: 'node-hello', state: 'STARTED', processes: [{ type: 'web', running: 1, instances: 1 }], routes: ['node-hello.apps.localhost'] }]);
  });

  it("shows an app's instances with state, uptime, CPU and memory", async () => {
    const r = await kiln('app', 'node-hello');
    expect(r.stdout).toMatch(/requested state:\s+started/);
    expect(r.stdout).toMatch(/instances:\s+1\/1/);
    expect(r.stdout).toMatch(/^\s+state\s+uptime\s+cpu\s+memory\s+disk\s+details$/m);
    expect(r.stdout).toMatch(/^#0\s+running\s+\d+[smhd]\S*\s+\d+\.\d%\s+\S+ of 128M\s+/m);
    const json = JSON.parse((await kiln('app', 'node-hello', '--json')).stdout);
    expect(json.processes[0].stats[0]).toMatchObject({ index: 0, state: 'RUNNING', mem_quota: 128 * 1024 * 1024 });
    expect(typeof json.processes[0].stats[0].uptime).toBe('number');
  });

  it('sets, shows and unsets environment variables', async () => {
    expect((await kiln('set-env', 'node-hello', 'GREETING', 'hi there')).code).toBe(0);
    const shown = await kiln('env', 'node-hello');
    expect(shown.stdout).toMatch(/User-Provided:\nGREETING: hi there\n/);
    expect(JSON.parse((await kiln('env', 'node-hello', '--json')).stdout).environment_variables).toEqual({ GREETING: 'hi there' });
    expect((await kiln('unset-env', 'node-hello', 'GREETING')).code).toBe(0);
    expect(JSON.parse((await kiln('env', 'node-hello', '--json')).stdout).environment_variables).toEqual({});
  });

  it('scales to two instances and both serve requests', async () => {
    const r = await kiln('scale', 'node-hello', '-i', '2');
    expect(r.code, r.stderr).toBe(0);
    expect((await kiln('app', 'node-hello')).stdout).toMatch(/instances:\s+2\/2/);
    const seen = new Set<string>();
    await until('both instances answer', async () => {
      const res = await getAppUrl(appUrl);
      const index = res.body.match(/instance (\d+)/)?.[1];
      if (index) seen.add(index);
      return seen.size === 2 ? true : undefined;
    });
    const shown = await kiln('scale', 'node-hello');
    expect(shown.stdout).toMatch(/instances:\s+2/);
  }, 60_000);

  it('scales memory and disk with -m and -k, restarting the app (-f skips the question)', async () => {
    const refused = await kiln('scale', 'node-hello', '-m', '192M');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('add -f');
    const r = await kiln('scale', 'node-hello', '-i', '1', '-m', '192M', '-k', '512M', '-f');
    expect(r.code, r.stderr).toBe(0);
    expect((await kiln('scale', 'node-hello')).stdout).toMatch(/instances:\s+1\nmemory:\s+192M\ndisk:\s+512M/);
    expect((await kiln('app', 'node-hello')).stdout).toMatch(/^#0\s+running\s+.* of 192M/m);
  }, 60_000);

  it('stops, starts and restarts the app', async () => {
    expect((await kiln('stop', 'node-hello')).code).toBe(0);
    expect((await kiln('apps')).stdout).toMatch(/^node-hello\s+stopped\s+web:0\/1/m);
    await until('the route to stop answering', async () => ((await getAppUrl(appUrl)).status !== 200 ? true : undefined));
    const started = await kiln('start', 'node-hello');
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toMatch(/node-hello: 1 of 1 instances running/);
    expect((await getAppUrl(appUrl)).status).toBe(200);
    const restarted = await kiln('restart', 'node-hello');
    expect(restarted.code, restarted.stderr).toBe(0);
    expect((await getAppUrl(appUrl)).status).toBe(200);
  }, 90_000);

  it('maps a second route, lists it, and unmaps it', async () => {
    const mapped = await kiln('map-route', 'node-hello', 'apps.localhost', '--hostname', 'hello-two', '--path', '/v2');
    expect(mapped.code, mapped.stderr).toBe(0);
    const second = appUrl.replace('node-hello.', 'hello-two.');
    await until('the new route to answer', async () => ((await getAppUrl(`${second}/v2`)).status === 200 ? true : undefined));
    const routes = await kiln('routes');
    expect(routes.stdout).toMatch(/^space\s+host\s+domain\s+port\s+path\s+protocol\s+apps$/m);
    expect(routes.stdout).toMatch(/^dev\s+hello-two\s+apps\.localhost\s+\/v2\s+http\s+node-hello$/m);
    expect(JSON.parse((await kiln('routes', '--json')).stdout).map((r: { url: string }) => r.url).sort()).toEqual(['hello-two.apps.localhost/v2', 'node-hello.apps.localhost']);
    const unmapped = await kiln('unmap-route', 'node-hello', 'apps.localhost', '--hostname', 'hello-two', '--path', '/v2');
    expect(unmapped.code, unmapped.stderr).toBe(0);
    await until('the route to stop reaching the app', async () => ((await getAppUrl(`${second}/v2`)).status !== 200 ? true : undefined));
    // The route itself stays, with no app.
    expect((await kiln('routes')).stdout).toMatch(/^dev\s+hello-two\s+apps\.localhost\s+\/v2\s+http$/m);
  }, 60_000);

  it('prints recent logs, including the app output and router lines', async () => {
    await getAppUrl(`${appUrl}/recent-marker`);
    const r = await kiln('logs', 'node-hello', '--recent');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\[APP\/PROC\/WEB\/0\] OUT node-hello instance 0 listening on port \d+/);
    expect(r.stdout).toMatch(/\[RTR\/0\] OUT .*"GET \/recent-marker HTTP\/1\.1" 200/);
    expect(r.stdout).toMatch(/^ {3}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\+0000 \[/m);
  });

  it('follows logs: new lines appear as they come, each once, and old ones are not repeated', async () => {
    const child = spawnKiln(['logs', 'node-hello'], opts);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    try {
      await until('the follower to start', async () => (out.includes('Retrieving logs for app node-hello') ? true : undefined), 20_000);
      // Give it a first poll so the "skip what is there" step is behind it.
      await new Promise((r) => setTimeout(r, 1200));
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 4; i++) expect((await getAppUrl(`${appUrl}/follow-${round}-${i}`)).status).toBe(200);
        await until(`round ${round} to be printed`, async () => (out.includes(`/follow-${round}-3 `) ? true : undefined), 15_000);
      }
    } finally {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
    }
    expect(child.exitCode).toBe(0);
    expect(out).not.toContain('recent-marker');
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) {
        expect(out.split(`"GET /follow-${round}-${i} HTTP/1.1"`).length - 1, `follow-${round}-${i}\n${out}`).toBe(1);
      }
    }
  }, 60_000);

  it('runs a task, waits for it, and lists it', async () => {
    const r = await kiln('run-task', 'node-hello', '--command', 'echo task-says-hello', '--name', 'greeter', '--wait');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/task name:\s+greeter/);
    expect(r.stdout).toMatch(/state:\s+SUCCEEDED/);
    const failing = await kiln('run-task', 'node-hello', '--command', 'exit 3', '--name', 'breaker', '--wait');
    expect(failing.code).toBe(1);
    expect(failing.stderr).toContain("Task breaker failed");
    const tasks = await kiln('tasks', 'node-hello');
    expect(tasks.stdout).toMatch(/^id\s+name\s+state\s+start time\s+command$/m);
    expect(tasks.stdout).toMatch(/^2\s+breaker\s+failed\s+/m);
    expect(tasks.stdout).toMatch(/^1\s+greeter\s+succeeded\s+\S+\s+echo task-says-hello$/m);
    const recent = await kiln('logs', 'node-hello', '--recent');
    expect(recent.stdout).toMatch(/\[APP\/TASK\/greeter\/0\] OUT task-says-hello/);
  }, 60_000);

  it('refreshes an expired access token with the refresh token and saves the new one', async () => {
    const before = savedConfig();
    const payload = Buffer.from(JSON.stringify({ exp: Math.floor(Date.now() / 1000) - 10, user_id: 'x' })).toString('base64url');
    fs.writeFileSync(configPath(), JSON.stringify({ ...before, accessToken: `eyJhbGciOiJub25lIn0.${payload}.sig` }), { mode: 0o600 });
    const r = await kiln('apps');
    expect(r.code, r.stderr).toBe(0);
    const after = savedConfig();
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.accessToken).not.toContain(payload);
    // A token the server refuses (401) is refreshed too.
    fs.writeFileSync(configPath(), JSON.stringify({ ...after, accessToken: 'not-a-token' }), { mode: 0o600 });
    expect((await kiln('orgs')).code).toBe(0);
    expect(savedConfig().accessToken).not.toBe('not-a-token');
    expect(fs.statSync(configPath()).mode & 0o777).toBe(0o600);
  });

  it('asks to log in again when the refresh token is no good either', async () => {
    const saved = savedConfig();
    fs.writeFileSync(configPath(), JSON.stringify({ ...saved, accessToken: 'not-a-token', refreshToken: 'not-a-refresh-token' }), { mode: 0o600 });
    const r = await kiln('apps');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Your login has expired. Use 'kiln login' to log in again.");
    // With two orgs visible now, login targets nothing by itself; -o and -s pick the target.
    const again = await kiln('login', '-a', server.url, '-u', 'admin', '-p', server.adminPassword);
    expect(again.stdout).toContain("No org targeted, use 'kiln target -o ORG'");
    const targeted = await kiln('login', '-a', server.url, '-u', 'admin', '-p', server.adminPassword, '-o', 'default', '-s', 'dev');
    expect(targeted.code, targeted.stderr).toBe(0);
    expect(targeted.stdout).toMatch(/space:\s+dev/);
  });

  it('deletes the app and its routes with -f -r, and asks for -f without a terminal', async () => {
    const unconfirmed = await kiln('delete', 'node-hello');
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain("kiln delete node-hello -f");
    const r = await kiln('delete', 'node-hello', '-f', '-r');
    expect(r.code, r.stderr).toBe(0);
    expect((await kiln('apps')).stdout).toContain('No apps found');
    const routes = JSON.parse((await kiln('routes', '--json')).stdout) as Array<{ url: string }>;
    // -r deleted the mapped route; the unmapped hello-two route was not the app's and stays.
    expect(routes.map((x) => x.url)).toEqual(['hello-two.apps.localhost/v2']);
    expect((await getAppUrl(appUrl)).status).toBe(404);
    const again = await kiln('delete', 'node-hello', '-f');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("App 'node-hello' does not exist.");
  }, 60_000);

  it('logs out, after which commands ask to log in', async () => {
    expect((await kiln('logout')).code).toBe(0);
    expect(savedConfig().accessToken).toBeUndefined();
    const r = await kiln('orgs');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Not logged in. Use 'kiln login' to log in.");
  });
});
