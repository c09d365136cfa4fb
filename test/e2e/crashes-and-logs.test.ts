import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTarget, FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * Crashes, `cf logs` and the router as the platform around Cloud Controller sees them, against the real server:
 * crash events (app_crashed_controller.rb), the cf CLI's log-cache follow loop (sharedaction/logging.go →
 * logcache.Walk) and gorouter's answer for a route whose last instance went away.
 */

let server: ServerProcess;
let api: string;
let token: string;
let client: ReturnType<typeof pushClient>;
const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);

beforeAll(async () => {
  server = await startServerProcess();
  ({ api, token, client } = await adminTarget(server, 'fidelity-org'));
}, 60_000);

afterAll(() => server?.stop());

interface Envelope {
  timestamp: string;
  instance_id: string;
  tags: { source_type: string };
  log: { payload: string };
}
const text = (e: Envelope) => Buffer.from(e.log.payload, 'base64').toString();

async function read(appGuid: string, query: string): Promise<Envelope[]> {
  const res = await call('GET', `/api/v1/read/${appGuid}?${query}`);
  expect(res.status).toBe(200);
  return res.body.envelopes.batch as Envelope[];
}

describe('instance crashes', () => {
  it('records app.crash and audit.app.process.crash once per crash, with the API log lines', async () => {
    const app = await client.push('crasher', path.join(FIXTURES, 'crasher'));
    const web = (await call('GET', `/v3/apps/${app}/processes/web`)).body;
    // Diego restarts at once three times, then backs off 30 s: four crashes arrive quickly.
    const crashes = await until('four app.crash events', async () => {
      const r = await call('GET', `/v3/audit_events?types=app.crash&target_guids=${app}&per_page=100`);
      return r.body.resources.length >= 4 ? r.body.resources : undefined;
    });
    const processCrashes = (await call('GET', `/v3/audit_events?types=audit.app.process.crash&target_guids=${app}&per_page=100`)).body.resources;
    expect(processCrashes).toHaveLength(crashes.length);

    const first = crashes.find((e: any) => e.data.crash_count === 1);
    expect(first).toMatchObject({
      type: 'app.crash',
      actor: { guid: app, type: 'app', name: 'crasher' },
      target: { guid: app, type: 'app', name: 'crasher' },
      data: { index: 0, reason: 'CRASHED', exit_status: 3, exit_description: expect.stringContaining('Exited with status 3'), crash_count: 1 },
    });
    expect(first.data.instance).toEqual(expect.any(String));
    expect(first.data.cell_id).toEqual(expect.any(String));
    expect(first.data.crash_timestamp).toEqual(expect.any(Number));
    expect(processCrashes[0]).toMatchObject({ actor: { guid: web.guid, type: 'process', name: 'web' }, target: { guid: app, type: 'app' } });

    // Every crash once: reconciles triggered by later state changes must not record it again.
    const keys = crashes.map((e: any) => `${e.data.instance}@${e.data.crash_timestamp}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(crashes.map((e: any) => e.data.crash_count).sort()).toEqual(crashes.map((_: unknown, i: number) => i + 1));
    await call('POST', `/v3/processes/${web.guid}/actions/scale`, { disk_in_mb: 1024 }); // more reconciles
    const again = (await call('GET', `/v3/audit_events?types=app.crash&target_guids=${app}&per_page=100`)).body.resources;
    expect(again.length).toBeLessThanOrEqual(crashes.length + 1);
    const againKeys = again.map((e: any) => `${e.data.instance}@${e.data.crash_timestamp}`);
    expect(new Set(againKeys).size).toBe(againKeys.length);

    const lines = (await read(app, 'envelope_types=LOG&limit=1000')).filter((e) => e.tags.source_type === 'API').map(text);
    expect(lines).toContain('Process has crashed with type: "web"');
    const exited = lines.filter((l) => l.startsWith(`App instance exited with guid ${app} payload: {`));
    expect(exited.length).toBeGreaterThanOrEqual(4);
    expect(exited[0]).toContain('"reason"=>"CRASHED"');
  }, 120_000);
});

describe('cf logs APP (follow)', () => {
  it('loses and doubles no line across instances, an instance restart and an app restart', async () => {
    const app = await client.push('ticker', path.join(FIXTURES, 'ticker'), '  instances: 2\n');
    await until('two running', async () => ((await client.stats(app)).filter((i) => i.state === 'RUNNING').length === 2 ? true : undefined), 60_000);
    const web = (await call('GET', `/v3/apps/${app}/processes/web`)).body;

    // The CLI's anchor: the newest envelope, then forward reads from just after it.
    const anchor = (await read(app, 'descending=true&limit=1'))[0];
    let start = anchor ? BigInt(anchor.timestamp) + 1n : BigInt(Date.now()) * 1_000_000n;
    const firstStart = start;
    const walked: Envelope[] = [];
    let walking = true;
    let walkEnd = 0n;
    const walker = (async () => {
      // logcache.Walk: read [start, now − 2 s), emit the batch, continue after its last envelope; 250 ms on empty.
      while (walking || start < walkEnd) {
        const end = BigInt(Date.now() - 2000) * 1_000_000n;
        const batch = end > start ? await read(app, `start_time=${start}&end_time=${end}&envelope_types=LOG&limit=1000`) : [];
        if (batch.length > 0) {
          walked.push(...batch);
          start = BigInt(batch.at(-1)!.timestamp) + 1n;
        } else {
          if (!walking && end >= walkEnd) break;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    })();

    // Each step waits until the walk has seen the new incarnations print, however slow the machine is.
    const incarnations = () => new Set(walked.map((e) => /^tick ([0-9a-f]+) /.exec(text(e))?.[1]).filter(Boolean)).size;
    await until('both instances logging', async () => (incarnations() >= 2 ? true : undefined), 60_000);
    expect((await call('DELETE', `/v3/processes/${web.guid}/instances/1`)).status).toBe(204);
    await until('the replacement logging', async () => (incarnations() >= 3 ? true : undefined), 60_000);
    expect((await call('POST', `/v3/apps/${app}/actions/restart`)).status).toBe(200);
    await until('two running after restart', async () => ((await client.stats(app)).filter((i) => i.state === 'RUNNING').length === 2 ? true : undefined), 60_000);
    await until('the restarted instances logging', async () => (incarnations() >= 5 ? true : undefined), 60_000);
    walkEnd = BigInt(Date.now()) * 1_000_000n;
    walking = false;
    await walker;

    const seen = walked.filter((e) => BigInt(e.timestamp) < walkEnd);
    // What log-cache holds for the same window, read in pages: the walk must have emitted exactly that.
    const stored: Envelope[] = [];
    for (let from = firstStart; ; ) {
      const page = await read(app, `start_time=${from}&end_time=${walkEnd}&envelope_types=LOG&limit=1000`);
      stored.push(...page);
      if (page.length < 1000) break;
      from = BigInt(page.at(-1)!.timestamp) + 1n;
    }
    expect(seen.map((e) => e.timestamp)).toEqual(stored.map((e) => e.timestamp));
    expect(new Set(seen.map((e) => e.timestamp)).size).toBe(seen.length);

    // Per incarnation the app's counter must arrive in order with no gap and no repeat.
    const byPid = new Map<string, number[]>();
    for (const e of seen) {
      const m = /^tick ([0-9a-f]+) (\d+)$/.exec(text(e));
      if (!m) continue;
      const list = byPid.get(m[1]!) ?? [];
      list.push(Number(m[2]));
      byPid.set(m[1]!, list);
    }
    // Two instances, the replaced index 1 and two new ones after the restart.
    expect(byPid.size).toBeGreaterThanOrEqual(5);
    for (const [pid, ns] of byPid) {
      const expected = ns.map((_, i) => ns[0]! + i);
      expect(ns, `pid ${pid}`).toEqual(expected);
    }
    const instances = new Set(seen.filter((e) => e.tags.source_type === 'APP/PROC/WEB').map((e) => e.instance_id));
    expect([...instances].sort()).toEqual(['0', '1']);
  }, 180_000);
});

describe('the router', () => {
  it('answers 404 unknown_route, echoing the Host with its port, once the app is stopped', async () => {
    const { port } = new URL(api);
    const host = `ticker.apps.localhost:${port}`;
    expect((await client.viaRouter(host)).status).toBe(200);
    expect((await call('POST', `/v3/apps/${(await call('GET', '/v3/apps?names=ticker')).body.resources[0].guid}/actions/stop`)).status).toBe(200);
    const r = await until('route dropped', async () => {
      const res = await client.viaRouter(host);
      return res.status === 200 ? undefined : res;
    });
    expect(r.status).toBe(404);
    expect(r.headers['x-cf-routererror']).toBe('unknown_route');
    expect(r.body).toBe(`404 Not Found: Requested route ('${host}') does not exist.\n`);
  }, 60_000);
});
