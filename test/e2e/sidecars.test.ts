import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/runtime/local/proc.ts';
import { adminTarget, FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { hostPidOf } from '../helpers/host-pid.ts';

/**
 * A sidecar created through the API runs beside the web process once the app (re)starts: the process controller
 * puts it in the instance spec, the local runtime starts it with the instance's environment, its output reaches
 * the app's logs under CF's sidecar source type, and stopping the app stops it.
 */

let server: ServerProcess;
let api: string;
let token: string;
let client: ReturnType<typeof pushClient>;
const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);

beforeAll(async () => {
  server = await startServerProcess();
  ({ api, token, client } = await adminTarget(server, 'sc-org'));
}, 60_000);

afterAll(() => server?.stop());

interface Envelope {
  tags: { source_type: string };
  log?: { payload: string };
}

describe('sidecars with the local runtime', () => {
  it('runs a sidecar of the web process type beside it and stops it with the app', async () => {
    const appGuid = await client.applyManifest('with-sidecar');
    const created = await call('POST', `/v3/apps/${appGuid}/sidecars`, {
      name: 'ticker',
      command: 'echo "ticker on $PORT pid $$"; exec sleep 1000',
      process_types: ['web'],
      memory_in_mb: 64,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const droplet = await client.stage(appGuid, path.join(FIXTURES, 'hello'));
    expect((await call('PATCH', `/v3/apps/${appGuid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
    expect((await call('POST', `/v3/apps/${appGuid}/actions/start`)).status).toBe(200);
    await until('web RUNNING', async () => ((await client.stats(appGuid)).some((i) => i.state === 'RUNNING') ? true : undefined));

    const line = await until('sidecar log line', async () => {
      const logs = await call('GET', `/api/v1/read/${appGuid}?descending=true&envelope_types=LOG&limit=1000&start_time=-6795364578871345152`);
      const envelopes = logs.body.envelopes.batch as Envelope[];
      const hit = envelopes.find((e) => e.tags.source_type === 'APP/PROC/WEB/SIDECAR/TICKER');
      return hit?.log ? Buffer.from(hit.log.payload, 'base64').toString() : undefined;
    });
    const match = /^ticker on (\d+) pid (\d+)$/.exec(line);
    expect(match, line).not.toBeNull();
    // $$ is the pid inside the sidecar's sandbox; its host pid is what outlives or not the stop.
    const pid = hostPidOf(Number(match![2]), [appGuid, 'CF_INSTANCE_INDEX=0'])!;
    expect(pid).toBeDefined();
    expect(isAlive(pid)).toBe(true);

    expect((await call('POST', `/v3/apps/${appGuid}/actions/stop`)).status).toBe(200);
    await until('sidecar stopped', async () => (isAlive(pid) ? undefined : true));
  }, 120_000);
});
