import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tar from 'tar';
import { cliCall, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { pushClient, until } from '../helpers/push.ts';
import { startFixtureBroker, type FixtureBroker } from '../fixtures/broker/broker.ts';

/**
 * The whole tsuru flow against the real server, request by request as tsuru-client sends them (research/tsuru.md
 * §3 and §6.3): native login, app-create, app-deploy of a tar.gz of examples/node-hello, app-info, the app
 * through Kiln's router, env-set (which rolls the app), unit-add, app-log, a canceled deploy, a service instance
 * bound with a restart; then the same app read through the CF API.
 */

let server: ServerProcess;
let api: string;
let token: string;
let cfToken: string;
let broker: FixtureBroker;

const EXAMPLE = path.resolve(import.meta.dirname, '../../examples/node-hello');
const CLI = { 'User-Agent': 'tsuru-client/1.22.0', 'X-Tsuru-Verbosity': '0' };

async function tsuru(method: string, urlPath: string, init: { form?: Record<string, string>; json?: unknown; body?: FormData; token?: string | null } = {}) {
  const headers: Record<string, string> = { ...CLI };
  const bearer = init.token === undefined ? token : init.token;
  if (bearer) headers.Authorization = `bearer ${bearer}`;
  let body: string | FormData | undefined = init.body;
  if (init.form) {
    body = new URLSearchParams(init.form).toString();
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
  } else if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(`${api}/tsuru${urlPath}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

const streamLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { Message: string; Error?: string });

/** What `tsuru app deploy .` uploads: a gzip tar of the directory's files. */
async function tarball(dir: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const stream = tar.c({ gzip: true, cwd: dir, portable: true }, ['server.js', 'package.json']);
  for await (const chunk of stream as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function deployForm(archive: Buffer): FormData {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(archive)], { type: 'application/octet-stream' }), 'archive.tar.gz');
  form.append('origin', 'app-deploy');
  form.append('message', 'first deploy');
  return form;
}

interface Unit {
  Name: string;
  Addresses: Array<{ Scheme: string; Host: string }>;
  ProcessName: string;
  Status: string;
  Ready: boolean;
}

const info = async () => JSON.parse((await tsuru('GET', '/1.0/apps/hello')).text) as { units: Unit[]; ip: string; deploys: number };

beforeAll(async () => {
  // The first start makes org `default` with space `dev`: the Tsuru org and its one team.
  broker = await startFixtureBroker();
  server = await startServerProcess({ env: { KILN_TSURU_ORG: 'default' } });
  api = server.url;
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await broker?.close();
});

describe('the tsuru CLI flow against Kiln', () => {
  it('logs in with the native scheme', async () => {
    const schemes = await tsuru('GET', '/1.18/auth/schemes', { token: null });
    expect(JSON.parse(schemes.text)).toEqual([{ name: 'native', default: true, data: {} }]);
    const login = await tsuru('POST', '/1.0/users/admin/tokens', { token: null, form: { password: server.adminPassword } });
    expect(login.status).toBe(200);
    token = JSON.parse(login.text).token;
    cfToken = token;
    const teams = await tsuru('GET', '/1.0/teams');
    expect(JSON.parse(teams.text).map((t: { name: string }) => t.name)).toEqual(['dev']);
  });

  it('creates an app and answers with its address', async () => {
    const res = await tsuru('POST', '/1.0/apps', { form: { name: 'hello', platform: 'nodejs_buildpack', plan: 'small', teamOwner: 'dev', description: 'node hello' } });
    expect(res.status, res.text).toBe(201);
    expect(JSON.parse(res.text)).toEqual({ status: 'success', ip: 'hello.apps.localhost' });
  });

  it('deploys a tar.gz of examples/node-hello: text output ending with OK and an event id', async () => {
    expect((await tsuru('GET', '/1.0/apps/hello')).status).toBe(200);
    const started = Date.now();
    const res = await tsuru('POST', '/1.0/apps/hello/deploy', { body: deployForm(await tarball(EXAMPLE)) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text');
    expect(res.headers.get('x-tsuru-eventid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.text, res.text).toMatch(/\nOK\n$/);
    expect(res.text).toContain('Building application image');
    console.log(`tsuru deploy of node-hello (upload, staging, rollout, unit ready) took ${Date.now() - started} ms`);
  }, 180_000);

  it('shows a started unit in app-info, and the app answers through the router', async () => {
    const units = await until('a started unit', async () => {
      const i = await info();
      return i.units.length === 1 && i.units[0]!.Status === 'started' ? i.units : undefined;
    });
    expect(units[0]).toMatchObject({ Name: 'hello-web-0', ProcessName: 'web', Ready: true });
    // The CLI prints a unit's host and port from its first address (`host:port`).
    expect(units[0]!.Addresses[0]!.Host).toMatch(/^[0-9.]+:\d+$/);
    const client = pushClient({ api, token, spaceGuid: '' });
    const res = await until('the app through the router', async () => {
      const r = await client.viaRouter('hello.apps.localhost');
      return r.status === 200 ? r : undefined;
    });
    expect(res.body).toContain('Hello from Kiln!');
  }, 60_000);

  it('sets env and rolls the app by default, streaming progress', async () => {
    const res = await tsuru('POST', '/1.0/apps/hello/env', { form: { 'Envs.0.Name': 'GREETING', 'Envs.0.Value': 'hi', NoRestart: 'false', Private: 'false' } });
    expect(res.status).toBe(200);
    const lines = streamLines(res.text);
    expect(lines.filter((l) => l.Error), res.text).toEqual([]);
    expect(lines.map((l) => l.Message).join('')).toContain('rolling restart');
    expect((await info()).units.map((u) => u.Status)).toEqual(['started']);
  }, 120_000);

  it('keeps rolling when the client leaves an env-set stream (Ctrl-C does not undo it)', async () => {
    const abort = new AbortController();
    const res = await fetch(`${api}/tsuru/1.0/apps/hello/env`, {
      method: 'POST',
      headers: { ...CLI, Authorization: `bearer ${token}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ 'Envs.0.Name': 'LEFT', 'Envs.0.Value': 'early' }).toString(),
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    abort.abort();
    const appGuid = (await cliCall('GET', `${api}/v3/apps?names=hello`, token)).body.resources[0].guid;
    const last = await until('the rollout to finish', async () => {
      const d = await cliCall('GET', `${api}/v3/deployments?app_guids=${appGuid}&order_by=-created_at&per_page=1`, token);
      const newest = d.body.resources[0];
      return newest.status.value === 'FINALIZED' ? newest : undefined;
    }, 60_000);
    expect(last.status.reason).toBe('DEPLOYED');
    await tsuru('DELETE', '/1.0/apps/hello/env?env=LEFT&noRestart=true');
  }, 90_000);

  it('adds a unit, and app-info shows two started units', async () => {
    const res = await tsuru('PUT', '/1.0/apps/hello/units', { form: { units: '1', process: 'web', version: '0' } });
    expect(res.status).toBe(200);
    expect(streamLines(res.text).filter((l) => l.Error), res.text).toEqual([]);
    const i = await info();
    expect(i.units.map((u) => [u.Name, u.Status])).toEqual([
      ['hello-web-0', 'started'],
      ['hello-web-1', 'started'],
    ]);
  }, 120_000);

  it('kills a unit and Kiln replaces it', async () => {
    const res = await tsuru('DELETE', '/1.12/apps/hello/units/hello-web-1');
    expect(res.status, res.text).toBe(200);
    await until('two started units again', async () => {
      const units = (await info()).units;
      return units.length === 2 && units.every((u) => u.Status === 'started') ? true : undefined;
    });
  }, 60_000);

  it("shows the app's output in app-log", async () => {
    const res = await tsuru('GET', '/1.0/apps/hello/log?lines=200');
    expect(res.status).toBe(200);
    const entries = streamLines(res.text).flat() as unknown as Array<{ Message: string; Source: string; Unit: string; Name: string }>;
    const mine = entries.filter((e) => e.Source === 'web');
    expect(mine.some((e) => e.Message.includes('listening on port'))).toBe(true);
    expect(mine[0]).toMatchObject({ Name: 'hello', Unit: expect.stringMatching(/^hello-web-\d$/) });
    const only = await tsuru('GET', '/1.0/apps/hello/log?lines=1&source=web');
    expect(streamLines(only.text)[0]).toHaveLength(1);
  });

  it('follows the log: new lines arrive as single-entry arrays while the request stays open', async () => {
    const abort = new AbortController();
    const res = await fetch(`${api}/tsuru/1.0/apps/hello/log?lines=0&follow=1`, { headers: { ...CLI, Authorization: `bearer ${token}` }, signal: abort.signal });
    expect(res.headers.get('content-type')).toBe('application/x-json-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const first = await reader.read();
    text += decoder.decode(first.value);
    expect(text).toBe('[]\n');
    const client = pushClient({ api, token, spaceGuid: '' });
    expect((await client.viaRouter('hello.apps.localhost', '/followed')).status).toBe(200);
    const deadline = Date.now() + 10_000;
    while (!text.includes('/followed') && Date.now() < deadline) text += decoder.decode((await reader.read()).value);
    abort.abort();
    const entry = streamLines(text)
      .slice(1)
      .map((l) => l as unknown as Array<{ Message: string; Source: string }>)
      .find((l) => l[0]!.Message.includes('/followed'));
    expect(entry).toHaveLength(1);
    expect(entry![0]!.Source).toBe('router');
  }, 30_000);

  it('restarts with a rolling deployment, stops and starts again', async () => {
    const restart = await tsuru('POST', '/1.0/apps/hello/restart', { form: { process: '' } });
    expect(streamLines(restart.text).filter((l) => l.Error), restart.text).toEqual([]);
    expect(streamLines(restart.text).map((l) => l.Message).join('')).toContain('rolling restart');
    const stop = await tsuru('POST', '/1.0/apps/hello/stop', { form: {} });
    expect(stop.status).toBe(200);
    await until('no units', async () => ((await info()).units.length === 0 ? true : undefined));
    const start = await tsuru('POST', '/1.0/apps/hello/start', { form: {} });
    expect(streamLines(start.text).filter((l) => l.Error), start.text).toEqual([]);
    expect((await info()).units.map((u) => u.Status)).toEqual(['started', 'started']);
  }, 120_000);

  it('cancels a deploy through POST /events/{id}/cancel: the output ends without OK', async () => {
    const archive = await tarball(EXAMPLE);
    const headers: Record<string, string> = { ...CLI, Authorization: `bearer ${token}` };
    const res = await fetch(`${api}/tsuru/1.0/apps/hello/deploy`, { method: 'POST', headers, body: deployForm(archive) });
    const eventId = res.headers.get('x-tsuru-eventid')!;
    expect(eventId).toBeTruthy();
    const cancel = await tsuru('POST', `/1.1/events/${eventId}/cancel`, { json: { reason: 'Canceled on client.' } });
    expect(cancel.status).toBe(204);
    const text = await res.text();
    expect(text).toContain('deploy canceled: Canceled on client.');
    expect(text).not.toMatch(/\nOK\n$/);
    // The running app is untouched.
    expect((await info()).units.map((u) => u.Status)).toEqual(['started', 'started']);
  }, 120_000);

  it('adds a service instance and binds it: the app rolls and its env carries the binding', async () => {
    // The operator side, through the CF API: a broker and a public plan.
    const reg = await cliCall('POST', `${api}/v3/service_brokers`, token, {
      name: 'fixture',
      url: broker.url,
      authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
    });
    expect(reg.status).toBe(202);
    await until('the broker catalogue', async () => {
      const offerings = await cliCall('GET', `${api}/v3/service_offerings?names=fixture-db`, token);
      return offerings.body.resources.length === 1 ? true : undefined;
    });
    const small = (await cliCall('GET', `${api}/v3/service_plans?names=small&service_offering_names=fixture-db`, token)).body.resources[0];
    expect((await cliCall('PATCH', `${api}/v3/service_plans/${small.guid}/visibility`, token, { type: 'public' })).status).toBe(200);

    // The tsuru side: service-instance-add, then service-instance-bind (restart by default).
    const add = await tsuru('POST', '/1.0/services/fixture-db/instances', { form: { name: 'db', plan: 'small', owner: 'dev' } });
    expect(add.status, add.text).toBe(201);
    const bind = await tsuru('PUT', '/1.13/services/fixture-db/instances/db/apps/hello', { form: { noRestart: 'false' } });
    expect(bind.status).toBe(200);
    const lines = streamLines(bind.text);
    expect(lines.filter((l) => l.Error), bind.text).toEqual([]);
    const said = lines.map((l) => l.Message).join('');
    expect(said).toContain('- VCAP_SERVICES');
    expect(said).toContain('rolling restart');
    const list = JSON.parse((await tsuru('GET', '/1.0/services/instances')).text) as Array<{ service: string; service_instances: Array<{ Name: string; Apps: string[] }> }>;
    expect(list.find((s) => s.service === 'fixture-db')!.service_instances).toEqual([expect.objectContaining({ Name: 'db', Apps: ['hello'] })]);
    const appGuid = (await cliCall('GET', `${api}/v3/apps?names=hello`, token)).body.resources[0].guid;
    const env = await cliCall('GET', `${api}/v3/apps/${appGuid}/env`, token);
    expect(env.body.system_env_json.VCAP_SERVICES['fixture-db'][0]).toMatchObject({ instance_name: 'db' });
    expect((await info()).units.map((u) => u.Status)).toEqual(['started', 'started']);
  }, 120_000);

  it('reads the same app through the CF API', async () => {
    const call = (method: string, url: string) => cliCall(method, `${api}${url}`, cfToken);
    const apps = await call('GET', '/v3/apps?names=hello');
    expect(apps.body.resources).toHaveLength(1);
    const app = apps.body.resources[0];
    expect(app.state).toBe('STARTED');
    expect(app.lifecycle.data.buildpacks).toEqual(['nodejs_buildpack']);
    expect(app.metadata.annotations['tsuru.io/description']).toBe('node hello');
    const web = await call('GET', `/v3/apps/${app.guid}/processes/web`);
    expect(web.body).toMatchObject({ instances: 2, memory_in_mb: 256 });
    const env = await call('GET', `/v3/apps/${app.guid}/environment_variables`);
    expect(env.body.var).toEqual({ GREETING: 'hi' });
    const deployments = await call('GET', `/v3/deployments?app_guids=${app.guid}`);
    // The deploy and the env-set's rolling restart (the canceled deploy never reached a deployment, or was rolled back).
    expect(deployments.body.resources.filter((d: { status: { reason: string } }) => d.status.reason === 'DEPLOYED').length).toBeGreaterThanOrEqual(2);
    const routes = await call('GET', `/v3/apps/${app.guid}/routes`);
    expect(routes.body.resources[0].url).toBe('hello.apps.localhost');
  });
});
