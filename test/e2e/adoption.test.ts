import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTarget, FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * A single Kiln on SQLite SIGKILLed and started again on its data dir adopts its app instances (KILN_ADOPT_INSTANCES,
 * on by default): the same process keeps running, and the lines it prints — while no Kiln runs and afterwards —
 * still reach log-cache, in order and without a gap (its stdout is a FIFO that outlives Kiln, not a pipe into it).
 */

let server: ServerProcess;
let api: string;
let token: string;
let client: ReturnType<typeof pushClient>;
const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);

beforeAll(async () => {
  server = await startServerProcess();
  ({ api, token, client } = await adminTarget(server, 'adopt-org'));
}, 60_000);

afterAll(() => server?.stop());

interface Envelope {
  timestamp: string;
  log: { payload: string };
}

/** `tick <incarnation> <n>` lines of the ticker fixture in log-cache, oldest first. */
async function ticks(appGuid: string, query = ''): Promise<Array<{ incarnation: string; n: number }>> {
  const out: Array<{ incarnation: string; n: number }> = [];
  for (let from = 0n; ; ) {
    const res = await call('GET', `/api/v1/read/${appGuid}?start_time=${from}&envelope_types=LOG&limit=1000${query}`);
    expect(res.status).toBe(200);
    const page = res.body.envelopes.batch as Envelope[];
    for (const e of page) {
      const m = /^tick ([0-9a-f]+) (\d+)$/.exec(Buffer.from(e.log.payload, 'base64').toString());
      if (m) out.push({ incarnation: m[1]!, n: Number(m[2]) });
    }
    if (page.length < 1000) return out;
    from = BigInt(page.at(-1)!.timestamp) + 1n;
  }
}

describe('adopting instances after Kiln is SIGKILLed', () => {
  it('keeps the instance running and its log lines flowing, those printed while no Kiln ran included', async () => {
    const app = await client.push('ticker', path.join(FIXTURES, 'ticker'));
    await until('RUNNING', async () => ((await client.stats(app))[0]?.state === 'RUNNING' ? true : undefined), 60_000);
    await until('ticking', async () => ((await ticks(app)).length > 20 ? true : undefined));
    const web = (await call('GET', `/v3/apps/${app}/processes/web`)).body.guid as string;
    const statsOf = async () => (await call('GET', `/v3/processes/${web}/stats`)).body.resources[0];
    const running = await statsOf();

    const newest = async () => {
      const res = await call('GET', `/api/v1/read/${app}?descending=true&limit=1&envelope_types=LOG`);
      const m = /^tick ([0-9a-f]+) (\d+)$/.exec(Buffer.from((res.body.envelopes.batch as Envelope[])[0]!.log.payload, 'base64').toString());
      return { incarnation: m![1]!, n: Number(m![2]) };
    };
    const before = await newest();
    const { dataDir, adminPassword } = server;
    await server.stop({ keepData: true, signal: 'SIGKILL' });
    server = await startServerProcess({ dataDir });
    api = server.url;
    token = (await cliLogin(api, 'admin', adminPassword)).access_token;
    client = pushClient({ api, token, spaceGuid: (await call('GET', `/v3/apps/${app}`)).body.relationships.space.data.guid });
    expect(server.output.some((l) => l.includes('adopted instances left running by a previous Kiln process'))).toBe(true);

    // The ticker prints every 5 ms: by now it has printed hundreds of lines since `before`.
    const after = await until('lines after the restart', async () => {
      const t = await ticks(app);
      return t.length > 0 && t.at(-1)!.n - before.n > 300 ? t : undefined;
    }, 60_000);
    // One incarnation only: the process Kiln started before it was killed, neither restarted nor duplicated.
    expect(new Set(after.map((t) => t.incarnation))).toEqual(new Set([before.incarnation]));
    // Its lines arrive in order with no gap, starting right where the killed Kiln stopped reading: what the app
    // printed while no Kiln ran waited in the FIFO (with a pipe the app died of EPIPE on its first such line).
    expect(after.every((t, i) => i === 0 || t.n === after[i - 1]!.n + 1)).toBe(true);
    expect(after[0]!.n - before.n).toBeGreaterThan(0);
    expect(after[0]!.n - before.n).toBeLessThan(100);

    // Same port, uptime counted from its first start, no crash.
    const adopted = await statsOf();
    expect(adopted).toMatchObject({ state: 'RUNNING', index: 0, instance_ports: running.instance_ports });
    expect(adopted.uptime).toBeGreaterThanOrEqual(running.uptime);
    expect((await call('GET', `/v3/processes/${web}/stats`)).body.resources).toHaveLength(1);
    expect((await call('GET', `/v3/audit_events?types=app.crash&target_guids=${app}`)).body.resources).toEqual([]);
  }, 180_000);
});
