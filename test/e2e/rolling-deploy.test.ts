import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTarget, FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * Zero-downtime deployments against the real server and local runtime (issue 4): a load loop sends requests
 * through Kiln's router to a 4-instance app while a rolling deployment replaces it; no request may fail, and
 * afterwards every response comes from the new version. Then (issue 12) the two web processes of a rolling and a
 * canary deployment are watched through /v3/processes and stats, step by step, against upstream's step plan.
 */

const HOST = 'roller.apps.localhost';
const HELLO = path.join(FIXTURES, 'hello');

let server: ServerProcess;
let api: string;
let token: string;
let client: ReturnType<typeof pushClient>;
let appGuid: string;

const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);

beforeAll(async () => {
  server = await startServerProcess();
  ({ api, token, client } = await adminTarget(server, 'deploy-org'));
}, 60_000);

afterAll(() => server?.stop());

interface LoadResult {
  total: number;
  failed: number;
  failures: string[];
  versions: Map<string, number>;
}

/**
 * Sends requests through the router from `workers` loops (new connection each, loopback only) until stopped, or
 * until the time or count bound is reached.
 */
function loadLoop(host: string, workers = 4, bounds = { ms: 180_000, count: 100_000 }) {
  const result: LoadResult = { total: 0, failed: 0, failures: [], versions: new Map() };
  let stopped = false;
  const started = Date.now();
  const worker = async () => {
    while (!stopped && Date.now() - started < bounds.ms && result.total < bounds.count) {
      result.total++;
      try {
        const res = await client.viaRouter(host);
        if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.slice(0, 200)}`);
        const version = (JSON.parse(res.body) as { version: string }).version;
        result.versions.set(version, (result.versions.get(version) ?? 0) + 1);
      } catch (err) {
        result.failed++;
        if (result.failures.length < 10) result.failures.push(String(err));
      }
    }
  };
  const done = Promise.all(Array.from({ length: workers }, worker));
  return {
    result,
    async stop(): Promise<LoadResult> {
      stopped = true;
      await done;
      return result;
    },
  };
}

/** Polls the deployment as the cf CLI does (more often, to time it) until it is FINALIZED. */
async function awaitFinalized(guid: string): Promise<{ body: any; ms: number }> {
  const t0 = Date.now();
  const body = await until(
    'deployment FINALIZED',
    async () => {
      const d = await call('GET', `/v3/deployments/${guid}`);
      return d.body.status.value === 'FINALIZED' ? d.body : undefined;
    },
    120_000,
    50,
  );
  return { body, ms: Date.now() - t0 };
}

/** After a rollout: 4 instances RUNNING, and responses only from `version` (old ones drained and gone). */
async function onlyNewVersion(version: string): Promise<void> {
  await until('4 instances RUNNING', async () => {
    const s = await client.stats(appGuid);
    return s.length === 4 && s.every((i) => i.state === 'RUNNING') ? true : undefined;
  });
  await until(`only ${version} answers`, async () => {
    for (let i = 0; i < 20; i++) {
      const r = await client.viaRouter(HOST);
      if (r.status !== 200 || (JSON.parse(r.body) as { version: string }).version !== version) return undefined;
    }
    return true;
  });
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) seen.add((JSON.parse((await client.viaRouter(HOST)).body) as { version: string }).version);
  expect([...seen]).toEqual([version]);
}

async function deployUnderLoad(body: Record<string, unknown>, newVersion: string) {
  const load = loadLoop(HOST);
  // Let the loop reach steady state on the old version first.
  await until('load on the old version', async () => (load.result.total > 50 ? true : undefined));
  const t0 = Date.now();
  const created = await call('POST', '/v3/deployments', { relationships: { app: { data: { guid: appGuid } } }, strategy: 'rolling', ...body });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const { body: final } = await awaitFinalized(created.body.guid);
  const ms = Date.now() - t0;
  expect(final.status.reason).toBe('DEPLOYED');
  await onlyNewVersion(newVersion);
  const result = await load.stop();
  return { ms, result, deployment: final };
}

describe('rolling deployments under load', () => {
  it('pushes a 4-instance app', async () => {
    appGuid = await client.push('roller', HELLO, '  instances: 4\n  env:\n    HELLO_VERSION: v1\n');
    await until('4 RUNNING', async () => ((await client.stats(appGuid)).filter((i) => i.state === 'RUNNING').length === 4 ? true : undefined));
    expect(JSON.parse((await client.viaRouter(HOST)).body).version).toBe('v1');
  }, 120_000);

  it('replaces a new droplet and environment with max_in_flight 1 without failing a request', async () => {
    const env = await call('PATCH', `/v3/apps/${appGuid}/environment_variables`, { var: { HELLO_VERSION: 'v2' } });
    expect(env.status).toBe(200);
    const droplet = await client.stage(appGuid, HELLO);
    const { ms, result, deployment } = await deployUnderLoad(
      {
        droplet: { guid: droplet },
        options: { max_in_flight: 1, web_instances: null, memory_in_mb: null, disk_in_mb: null, log_rate_limit_in_bytes_per_second: null },
      },
      'v2',
    );
    console.log(`rolling deployment, 4 instances, max_in_flight 1: ${ms} ms; ${result.total} requests, ${result.failed} failed; versions ${JSON.stringify([...result.versions])}`);
    expect(result.failures).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.versions.get('v1')).toBeGreaterThan(0);
    expect(result.versions.get('v2')).toBeGreaterThan(0);
    expect(deployment.droplet.guid).toBe(droplet);
  }, 240_000);

  it('restarts with --strategy rolling and max_in_flight 4 without failing a request', async () => {
    expect((await call('PATCH', `/v3/apps/${appGuid}/environment_variables`, { var: { HELLO_VERSION: 'v3' } })).status).toBe(200);
    const { ms, result } = await deployUnderLoad(
      { options: { max_in_flight: 4, web_instances: null, memory_in_mb: null, disk_in_mb: null, log_rate_limit_in_bytes_per_second: null } },
      'v3',
    );
    console.log(`rolling deployment, 4 instances, max_in_flight 4: ${ms} ms; ${result.total} requests, ${result.failed} failed; versions ${JSON.stringify([...result.versions])}`);
    expect(result.failures).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.versions.get('v3')).toBeGreaterThan(0);
  }, 240_000);

  it('pauses a canary, cancels it back to the old version, then continues another to the end, without failing a request', async () => {
    const load = loadLoop(HOST);
    expect((await call('PATCH', `/v3/apps/${appGuid}/environment_variables`, { var: { HELLO_VERSION: 'canary' } })).status).toBe(200);
    const canary = { strategy: 'canary', options: { canary: { steps: [{ instance_weight: 25 }] } } };
    const first = await call('POST', '/v3/deployments', { relationships: { app: { data: { guid: appGuid } } }, ...canary });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const paused = await until('PAUSED', async () => {
      const d = await call('GET', `/v3/deployments/${first.body.guid}`);
      return d.body.status.reason === 'PAUSED' ? d.body : undefined;
    }, 60_000, 50);
    expect(paused.links.continue).toBeDefined();
    await until('canary answers', async () => (JSON.parse((await client.viaRouter(HOST)).body).version === 'canary' ? true : undefined));
    expect((await call('POST', `/v3/deployments/${first.body.guid}/actions/cancel`)).status).toBe(200);
    const canceled = await awaitFinalized(first.body.guid);
    expect(canceled.body.status.reason).toBe('CANCELED');
    await onlyNewVersion('v3');

    const second = await call('POST', '/v3/deployments', { relationships: { app: { data: { guid: appGuid } } }, ...canary });
    await until('PAUSED again', async () => ((await call('GET', `/v3/deployments/${second.body.guid}`)).body.status.reason === 'PAUSED' ? true : undefined), 60_000, 50);
    expect((await call('POST', `/v3/deployments/${second.body.guid}/actions/continue`)).status).toBe(200);
    expect((await awaitFinalized(second.body.guid)).body.status.reason).toBe('DEPLOYED');
    await onlyNewVersion('canary');
    const result = await load.stop();
    console.log(`canary cancel + canary continue: ${result.total} requests, ${result.failed} failed; versions ${JSON.stringify([...result.versions])}`);
    expect(result.failures).toEqual([]);
  }, 240_000);

  it('finishes a rolling deployment after Kiln is killed mid-way, with no leftover processes', async () => {
    expect((await call('PATCH', `/v3/apps/${appGuid}/environment_variables`, { var: { HELLO_VERSION: 'v4' } })).status).toBe(200);
    const created = await call('POST', '/v3/deployments', { relationships: { app: { data: { guid: appGuid } } }, strategy: 'rolling' });
    expect(created.status).toBe(201);
    // Kill once the rollout is under way: some v4 instance serves, some old ones still run.
    await until('rollout under way', async () => (JSON.parse((await client.viaRouter(HOST)).body).version === 'v4' ? true : undefined), 60_000, 20);
    const { dataDir, adminPassword } = server;
    await server.stop({ keepData: true, signal: 'SIGKILL' });
    server = await startServerProcess({ dataDir });
    api = server.url;
    token = (await cliLogin(api, 'admin', adminPassword)).access_token;
    const spaceGuid = (await call('GET', `/v3/apps/${appGuid}`)).body.relationships.space.data.guid as string;
    client = pushClient({ api, token, spaceGuid });
    // With adoption (on by default with SQLite) the new Kiln supervises what the killed one left running, the old
    // side included, and kills nothing at its start: every process had its record (the start gate) and an instance
    // that logged while no Kiln ran (npm's banner) did not die of a broken pipe.
    if (process.env.KILN_ADOPT_INSTANCES !== 'false') {
      expect(server.output.some((l) => l.includes('adopted instances left running by a previous Kiln process'))).toBe(true);
      expect(server.output.filter((l) => l.includes('stopped instances left running by a previous Kiln process'))).toEqual([]);
    }
    const { body: final } = await awaitFinalized(created.body.guid);
    expect(final.status.reason).toBe('DEPLOYED');
    await onlyNewVersion('v4');
    // The old side (adopted, then stopped as the rollout went on) is gone as promptly as instances Kiln started.
    const procs = instancesUnder(dataDir, appGuid);
    expect(procs.length, procs.join('\n')).toBe(4);
  }, 240_000);
});

/**
 * Items 1–2 of issue 12, watched from outside as `cf app` would: a deployment creates a second web process and the
 * counts of both, read from `/v3/processes` while load runs, follow upstream's deployment updater step by step
 * (Scale with max_in_flight; canary_step_plan keeps every old instance beside the canary).
 */
describe('the web processes of a deployment, step by step, under load', () => {
  const STEP_HOST = 'stepper.apps.localhost';
  let stepApp: string;

  /** `old+new` instance counts of the two web processes, from /v3/processes; `-` for a process that is gone. */
  async function counts(oldGuid: string, newGuid: string): Promise<string> {
    const res = await call('GET', `/v3/processes?app_guids=${stepApp}&types=web&per_page=10`);
    const of = (guid: string) => res.body.resources.find((p: any) => p.guid === guid)?.instances ?? '-';
    return `${of(oldGuid)}+${of(newGuid)}`;
  }

  /**
   * Samples the counts until stopped: every value seen must be one of `plan`, in the plan's order (a fast step may
   * fall between two samples, but no other combination may ever show and none may come back). Each sample also
   * reads both processes' stats, the old one first (so an old instance stopped between the two reads was already
   * replaced by a RUNNING new one): together they must never run fewer than `floor` instances.
   */
  function watch(oldGuid: string, newGuid: string, plan: string[], floor = 3) {
    const seen: string[] = [];
    let fewestRunning = Number.POSITIVE_INFINITY;
    let stopped = false;
    const done = (async () => {
      while (!stopped) {
        const c = await counts(oldGuid, newGuid);
        if (seen[seen.length - 1] !== c) seen.push(c);
        const total = (await running(oldGuid)) + (await running(newGuid));
        fewestRunning = Math.min(fewestRunning, total);
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    return {
      seen,
      async stop() {
        stopped = true;
        await done;
        // The loop may have been asleep since its last sample: the state the caller waited for is sampled here.
        const last = await counts(oldGuid, newGuid);
        if (seen[seen.length - 1] !== last) seen.push(last);
        const positions = seen.map((c) => plan.indexOf(c));
        expect(positions.every((p) => p >= 0), `seen ${seen.join(' → ')}, plan ${plan.join(' → ')}`).toBe(true);
        expect(
          positions.every((p, i) => i === 0 || p > positions[i - 1]!),
          `seen ${seen.join(' → ')}, plan ${plan.join(' → ')}`,
        ).toBe(true);
        expect(fewestRunning, 'fewest RUNNING instances in stats across both web processes').toBeGreaterThanOrEqual(floor);
        return seen;
      },
    };
  }

  /** RUNNING instances of a process, per its stats (none once the process is gone). */
  async function running(processGuid: string): Promise<number> {
    const res = await call('GET', `/v3/processes/${processGuid}/stats`);
    if (res.status === 404) return 0;
    return res.body.resources.filter((r: any) => r.state === 'RUNNING').length;
  }

  async function deployment(body: Record<string, unknown>) {
    const res = await call('POST', '/v3/deployments', { relationships: { app: { data: { guid: stepApp } } }, ...body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.new_processes).toHaveLength(1);
    return res.body;
  }

  const status = async (guid: string) => (await call('GET', `/v3/deployments/${guid}`)).body.status;

  it('pushes a 3-instance app', async () => {
    stepApp = await client.push('stepper', HELLO, '  instances: 3\n  env:\n    HELLO_VERSION: s1\n');
    await until('3 RUNNING', async () => ((await running(stepApp)) === 3 ? true : undefined));
  }, 120_000);

  it('rolls with max_in_flight 1 through 3+1, 2+2 and 1+3, then the new process is the only web process', async () => {
    const load = loadLoop(STEP_HOST);
    expect((await call('PATCH', `/v3/apps/${stepApp}/environment_variables`, { var: { HELLO_VERSION: 's2' } })).status).toBe(200);
    const old = (await call('GET', `/v3/apps/${stepApp}/processes/web`)).body.guid as string;
    const d = await deployment({ strategy: 'rolling', options: { max_in_flight: 1 } });
    const fresh = d.new_processes[0].guid as string;
    expect(fresh).not.toBe(old);
    const watcher = watch(old, fresh, ['3+1', '2+2', '1+3', '-+3']);
    // During the rollout `cf app` lists both web processes.
    const listed = (await call('GET', `/v3/apps/${stepApp}/processes`)).body.resources.filter((p: any) => p.type === 'web');
    expect(listed.map((p: any) => p.guid)).toEqual([old, fresh]);
    expect((await status(d.guid)).reason).toBe('DEPLOYING');
    await awaitFinalized(d.guid);
    await until('the old process gone', async () => ((await counts(old, fresh)) === '-+3' ? true : undefined));
    const seen = await watcher.stop();
    expect(seen[0]).toBe('3+1');
    expect(seen[seen.length - 1]).toBe('-+3');
    expect((await call('GET', `/v3/processes/${old}`)).status).toBe(404);
    expect((await call('GET', `/v3/apps/${stepApp}/processes/web`)).body.guid).toBe(fresh);
    await until('3 new RUNNING', async () => ((await running(fresh)) === 3 ? true : undefined));
    const result = await load.stop();
    console.log(`rolling 3 instances, max_in_flight 1: counts ${seen.join(' → ')}; ${result.total} requests, ${result.failed} failed`);
    expect(result.failures).toEqual([]);
    expect(result.versions.get('s2')).toBeGreaterThan(0);
  }, 240_000);

  it('canaries through canary_step_plan: all old instances beside each canary step, then rolls the rest', async () => {
    const load = loadLoop(STEP_HOST);
    expect((await call('PATCH', `/v3/apps/${stepApp}/environment_variables`, { var: { HELLO_VERSION: 's3' } })).status).toBe(200);
    const old = (await call('GET', `/v3/apps/${stepApp}/processes/web`)).body.guid as string;
    // 3 instances: 34% → 1 canary, original 3 − 1 + 1 = 3; 67% → 2 canaries, original 3 − 2 + 1 = 2.
    const d = await deployment({ strategy: 'canary', options: { canary: { steps: [{ instance_weight: 34 }, { instance_weight: 67 }] } } });
    const fresh = d.new_processes[0].guid as string;
    const watcher = watch(old, fresh, ['3+1', '3+2', '2+2', '1+3', '-+3']);

    await until('step 1 PAUSED', async () => ((await status(d.guid)).reason === 'PAUSED' ? true : undefined), 60_000, 50);
    expect(await counts(old, fresh)).toBe('3+1');
    expect([await running(old), await running(fresh)]).toEqual([3, 1]);
    expect((await status(d.guid)).canary).toEqual({ steps: { current: 1, total: 2 } });

    expect((await call('POST', `/v3/deployments/${d.guid}/actions/continue`)).status).toBe(200);
    await until('step 2 PAUSED', async () => {
      const s = await status(d.guid);
      return s.reason === 'PAUSED' && s.canary.steps.current === 2 ? true : undefined;
    }, 60_000, 50);
    expect(await counts(old, fresh)).toBe('2+2');
    await until('2 old and 2 new RUNNING', async () => ((await running(old)) === 2 && (await running(fresh)) === 2 ? true : undefined));

    expect((await call('POST', `/v3/deployments/${d.guid}/actions/continue`)).status).toBe(200);
    expect((await awaitFinalized(d.guid)).body.status.reason).toBe('DEPLOYED');
    await until('the old process gone', async () => ((await counts(old, fresh)) === '-+3' ? true : undefined));
    const seen = await watcher.stop();
    expect(seen).toContain('2+2');
    await until('3 new RUNNING', async () => ((await running(fresh)) === 3 ? true : undefined));
    const result = await load.stop();
    console.log(`canary 3 instances, steps 34/67: counts ${seen.join(' → ')}; ${result.total} requests, ${result.failed} failed`);
    expect(result.failures).toEqual([]);
    expect(result.versions.get('s3')).toBeGreaterThan(0);
  }, 240_000);

  it('cancels a canary: the old process keeps its instances and the canary process is removed', async () => {
    const old = (await call('GET', `/v3/apps/${stepApp}/processes/web`)).body.guid as string;
    const d = await deployment({ strategy: 'canary' });
    const fresh = d.new_processes[0].guid as string;
    await until('PAUSED', async () => ((await status(d.guid)).reason === 'PAUSED' ? true : undefined), 60_000, 50);
    expect(await counts(old, fresh)).toBe('3+1');
    expect((await call('POST', `/v3/deployments/${d.guid}/actions/cancel`)).status).toBe(200);
    expect((await awaitFinalized(d.guid)).body.status.reason).toBe('CANCELED');
    expect(await counts(old, fresh)).toBe('3+-');
    expect((await call('GET', `/v3/apps/${stepApp}/processes/web`)).body.guid).toBe(old);
    // The deployment still names the process it created.
    expect((await call('GET', `/v3/deployments/${d.guid}`)).body.new_processes).toEqual([{ guid: fresh, type: 'web' }]);
  }, 120_000);

  it('surges by max_in_flight 2: the new process starts at 2 beside all 3 old instances', async () => {
    const load = loadLoop(STEP_HOST);
    expect((await call('PATCH', `/v3/apps/${stepApp}/environment_variables`, { var: { HELLO_VERSION: 's4' } })).status).toBe(200);
    const old = (await call('GET', `/v3/apps/${stepApp}/processes/web`)).body.guid as string;
    const d = await deployment({ strategy: 'rolling', options: { max_in_flight: 2 } });
    const fresh = d.new_processes[0].guid as string;
    // Two instances up at once skip 2+3 (the old side drops by both in one step).
    const watcher = watch(old, fresh, ['3+2', '2+3', '1+3', '-+3']);
    await awaitFinalized(d.guid);
    await until('the old process gone', async () => ((await counts(old, fresh)) === '-+3' ? true : undefined));
    const seen = await watcher.stop();
    expect(seen[0]).toBe('3+2');
    await until('3 new RUNNING', async () => ((await running(fresh)) === 3 ? true : undefined));
    const result = await load.stop();
    console.log(`rolling 3 instances, max_in_flight 2: counts ${seen.join(' → ')}; ${result.total} requests, ${result.failed} failed`);
    expect(result.failures).toEqual([]);
  }, 240_000);

  it('cancels a rolling deployment mid-way: the old process returns to 3 before the new one is removed', async () => {
    const load = loadLoop(STEP_HOST);
    expect((await call('PATCH', `/v3/apps/${stepApp}/environment_variables`, { var: { HELLO_VERSION: 's5' } })).status).toBe(200);
    const old = (await call('GET', `/v3/apps/${stepApp}/processes/web`)).body.guid as string;
    const d = await deployment({ strategy: 'rolling', options: { max_in_flight: 1 } });
    const fresh = d.new_processes[0].guid as string;
    await until('the old side scaled down', async () => (['2+2', '1+3'].includes(await counts(old, fresh)) ? true : undefined), 60_000, 10);
    expect((await call('POST', `/v3/deployments/${d.guid}/actions/cancel`)).status).toBe(200);
    expect((await awaitFinalized(d.guid)).body.status.reason).toBe('CANCELED');
    expect(await counts(old, fresh)).toBe('3+-');
    await until('3 old RUNNING', async () => ((await running(old)) === 3 ? true : undefined));
    await until('only s4 answers', async () => {
      for (let i = 0; i < 10; i++) if (JSON.parse((await client.viaRouter(STEP_HOST)).body).version !== 's4') return undefined;
      return true;
    });
    const result = await load.stop();
    console.log(`rolling cancel mid-way: ${result.total} requests, ${result.failed} failed; versions ${JSON.stringify([...result.versions])}`);
    expect(result.failures).toEqual([]);
  }, 240_000);
});

/**
 * App instances (`node server.js`, without their `sh -c` wrappers) running from Kiln's data dir, per the process
 * table; a sandboxed one has its cwd in its own mount namespace (/home/vcap/app), so its environment names the app.
 */
function instancesUnder(dataDir: string, appGuid: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      const ppid = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1];
      const ofApp = cwd.startsWith(fs.realpathSync(dataDir)) || fs.readFileSync(`/proc/${pid}/environ`, 'utf8').includes(appGuid);
      if (ofApp && cmd.startsWith('node server.js')) found.push(`${pid} (parent ${ppid}) ${cwd}: ${cmd}`);
    } catch {
      // The process exited while we looked, or is not ours to read.
    }
  }
  return found;
}
