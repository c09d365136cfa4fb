import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTarget, FIXTURES, pushClient, until, zipEntries } from '../helpers/push.ts';
import { cliCall, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { hostPidOf } from '../helpers/host-pid.ts';

/**
 * Replays the cf CLI v8 push flow (cf-cli-flows §5.4) against the real server with the local runtime, then
 * talks to the app through Kiln's router: scaling, replacement of a killed instance, crashes, stop, and a
 * malicious upload.
 */

let server: ServerProcess;
let api: string;
let token: string;
let spaceGuid: string;
let client: ReturnType<typeof pushClient>;

const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);
const viaRouter = (host: string, urlPath = '/') => client.viaRouter(host, urlPath);
const stats = (appGuid: string) => client.stats(appGuid);
const upload = (packageGuid: string, zip: Buffer, resources: unknown[] = []) => client.upload(packageGuid, zip, resources);
const push = (name: string, dir: string) => client.push(name, dir);

beforeAll(async () => {
  server = await startServerProcess();
  ({ api, token, spaceGuid, client } = await adminTarget(server, 'push-org'));
}, 60_000);

afterAll(() => server?.stop());

describe('cf push against the local runtime, through the router', () => {
  let hello: string;

  it('pushes a Node.js app and serves it on its default route', async () => {
    hello = await push('hello', path.join(FIXTURES, 'hello'));
    expect((await stats(hello)).map((i) => i.state)).toEqual(['RUNNING']);
    const routes = await call('GET', `/v3/apps/${hello}/routes`);
    expect(routes.body.resources[0].url).toBe('hello.apps.localhost');
    const res = await viaRouter('hello.apps.localhost', '/greet');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ version: 'v1', index: '0', path: '/greet' });
    expect(res.headers['x-vcap-request-id']).toBeTruthy();
    const unknown = await viaRouter('nope.apps.localhost');
    expect(unknown.status).toBe(404);
    // staging and router lines reach the app's log-cache buffer
    const logs = await call('GET', `/api/v1/read/${hello}?descending=true&envelope_types=LOG&limit=1000&start_time=-6795364578871345152`);
    const types = new Set(logs.body.envelopes.batch.map((e: { tags: { source_type: string } }) => e.tags.source_type));
    expect(types).toContain('STG');
    expect(types).toContain('RTR');
  }, 120_000);

  it('scales to three instances that all answer, and replaces one killed from outside', async () => {
    const web = (await call('GET', `/v3/apps/${hello}/processes/web`)).body;
    expect((await call('POST', `/v3/processes/${web.guid}/actions/scale`, { instances: 3 })).status).toBe(202);
    await until('3 running', async () => ((await stats(hello)).filter((i) => i.state === 'RUNNING').length === 3 ? true : undefined));
    const seen = new Map<string, number>();
    await until('all indexes answer', async () => {
      // While an instance is being replaced a request may get the router's 502; only app answers count.
      const res = await viaRouter('hello.apps.localhost');
      if (res.status !== 200) return undefined;
      const r = JSON.parse(res.body) as { index: string; pid: number };
      seen.set(r.index, r.pid);
      return seen.size === 3 ? true : undefined;
    });
    expect([...seen.keys()].sort()).toEqual(['0', '1', '2']);

    // The app reports its pid inside its sandbox's PID namespace; the kill comes from the host.
    const victim = seen.get('1')!;
    const hostPid = hostPidOf(victim, [hello, 'CF_INSTANCE_INDEX=1']);
    expect(hostPid).toBeDefined();
    process.kill(hostPid!, 'SIGKILL');
    await until('index 1 replaced', async () => {
      // While an instance is being replaced a request may get the router's 502; only app answers count.
      const res = await viaRouter('hello.apps.localhost');
      if (res.status !== 200) return undefined;
      const r = JSON.parse(res.body) as { index: string; pid: number };
      if (r.index !== '1') return undefined;
      const now = hostPidOf(r.pid, [hello, 'CF_INSTANCE_INDEX=1']);
      return now !== undefined && now !== hostPid ? true : undefined;
    });
    await until('3 running again', async () => ((await stats(hello)).filter((i) => i.state === 'RUNNING').length === 3 ? true : undefined));
  }, 120_000);

  it('reports a crashing app as CRASHED', async () => {
    const crasher = await push('crasher', path.join(FIXTURES, 'crasher'));
    const s = await until('CRASHED', async () => {
      const st = await stats(crasher);
      return st.some((i) => i.state === 'CRASHED') ? st : undefined;
    });
    expect(s[0]!.state).toBe('CRASHED');
  }, 120_000);

  it('stops serving when the app is stopped', async () => {
    expect((await call('POST', `/v3/apps/${hello}/actions/stop`)).status).toBe(200);
    await until('route no longer served', async () => {
      const r = await viaRouter('hello.apps.localhost');
      // gorouter drops the pool with its last instance: an unknown route, not 503 no_endpoints.
      return r.status === 404 && r.headers['x-cf-routererror'] === 'unknown_route' ? r : undefined;
    });
    await until('no instances', async () => ((await stats(hello)).every((i) => i.state === 'DOWN') ? true : undefined));
  }, 60_000);

  it('rejects a zip that escapes the app root and writes nothing outside', async () => {
    const apps = await call('GET', `/v3/apps?names=hello&space_guids=${spaceGuid}`);
    const pkg = await call('POST', '/v3/packages', { type: 'bits', relationships: { app: { data: { guid: apps.body.resources[0].guid } } } });
    const marker = `kiln-escape-${Date.now()}`;
    const evil = await zipEntries([
      { name: 'ok.txt', data: Buffer.from('fine') },
      { name: `../../../../../../tmp/${marker}`, data: Buffer.from('pwned') },
    ]);
    const res = await upload(pkg.body.guid, evil);
    expect(res.status).toBe(422);
    expect(fs.existsSync(path.join(os.tmpdir(), marker))).toBe(false);
    expect(fs.existsSync(path.join('/tmp', marker))).toBe(false);
    const after = await call('GET', `/v3/packages/${pkg.body.guid}`);
    expect(after.body.state).not.toBe('READY');
  }, 60_000);
});
