import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { generatedCrds } from '../../src/kube/crds.ts';
import { startApiServer, type ApiServer } from '../kube/apiserver/index.ts';

/**
 * Issue 11, item 2, with real processes and the real PostgreSQL: two Kiln replicas share one database and one
 * blob dir (KILN_SHARED_DIR). Both serve the API; one runs the controllers. The leader is SIGKILLed in the middle
 * of a rolling deployment; the follower takes the advisory lock, finishes the deployment, and at no moment do two
 * copies of one instance (process version and index) run.
 *
 * The local runtime's instances are children of the replica that started them (bubblewrap's --die-with-parent),
 * so they die with it; the new leader finds none in its runtime and starts replacements (it does not adopt them).
 */

const pgUrl = process.env.KILN_TEST_DATABASE_URL;
const HELLO = path.join(FIXTURES, 'hello');
const HOST = 'ha.apps.localhost';
const PASSWORD = 'ha-admin-password-1';

interface LiveInstance {
  pid: number;
  replica: 'a' | 'b' | '?';
  processGuid: string;
  index: string;
}

/** Every live instance of the app: its process version and index, and which replica's process tree it is in. */
function liveInstances(appGuid: string, replicas: { a: number; b: number }): LiveInstance[] {
  const found: LiveInstance[] = [];
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ');
      if (!cmd.startsWith('node server.js')) continue;
      const env = fs.readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
      const vcap = env.find((e) => e.startsWith('VCAP_APPLICATION='));
      if (!vcap || !vcap.includes(appGuid)) continue;
      const app = JSON.parse(vcap.slice('VCAP_APPLICATION='.length)) as { process_id: string };
      const index = env.find((e) => e.startsWith('CF_INSTANCE_INDEX='))!.split('=')[1]!;
      let replica: LiveInstance['replica'] = '?';
      for (let pid = Number(p), hops = 0; pid > 1 && hops < 20; hops++) {
        if (pid === replicas.a) replica = 'a';
        if (pid === replicas.b) replica = 'b';
        if (replica !== '?') break;
        pid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      }
      found.push({ pid: Number(p), replica, processGuid: app.process_id, index });
    } catch {
      // exited while we looked
    }
  }
  return found;
}

async function readyz(url: string): Promise<{ role?: string; leader?: string | null; replica?: string }> {
  try {
    return (await (await fetch(`${url}/readyz`)).json()) as { role?: string; leader?: string | null };
  } catch {
    return {};
  }
}

async function leaderMetric(url: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^kiln_leader (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

describe.skipIf(!pgUrl)('two replicas on PostgreSQL: the leader dies mid-deployment', () => {
  const dbName = `kiln_ha_e2e_${process.pid}_${Date.now()}`;
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ha-shared-'));
  let a: ServerProcess;
  let b: ServerProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`create database ${dbName}`);
    await admin.end();
    const u = new URL(pgUrl!);
    u.pathname = `/${dbName}`;
    env = {
      DATABASE_URL: u.toString(),
      KILN_SHARED_DIR: shared,
      KILN_ADMIN_PASSWORD: PASSWORD,
      KILN_LEADER_ELECTION: 'postgres',
      KILN_LEADER_LEASE_SECONDS: '6',
      KILN_LEADER_RENEW_DEADLINE_SECONDS: '4',
      KILN_LEADER_RETRY_SECONDS: '0.5',
    };
    // A first (it migrates the database), then B.
    a = await startServerProcess({ env: { ...env, KILN_REPLICA_ID: 'replica-a' } });
    await until('a leads', async () => ((await readyz(a.url)).role === 'leader' ? true : undefined), 30_000);
    b = await startServerProcess({ env: { ...env, KILN_REPLICA_ID: 'replica-b' } });
  }, 120_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    fs.rmSync(shared, { recursive: true, force: true });
  });

  it('elects one leader: both name it in /readyz, kiln_leader is 1 only there', async () => {
    expect(await readyz(a.url)).toMatchObject({ status: 'ok', role: 'leader', leader: 'replica-a', replica: 'replica-a' });
    expect(await readyz(b.url)).toMatchObject({ status: 'ok', role: 'follower', leader: 'replica-a', replica: 'replica-b' });
    expect(await leaderMetric(a.url)).toBe(1);
    expect(await leaderMetric(b.url)).toBe(0);
  });

  it('takes over within the lease time after SIGKILL, finishes the rolling deployment, never runs an instance twice', async () => {
    // Setup through the follower's API (tokens and writes work on every replica), app traffic through the leader.
    const token = (await cliLogin(b.url, 'admin', PASSWORD)).access_token;
    const callB = (method: string, url: string, body?: unknown) => cliCall(method, `${b.url}${url}`, token, body);
    const org = await callB('POST', '/v3/organizations', { name: 'ha-org' });
    const space = await callB('POST', '/v3/spaces', { name: 'dev', relationships: { organization: { data: { guid: org.body.guid } } } });
    const viaA = pushClient({ api: a.url, token, spaceGuid: space.body.guid });
    const viaB = pushClient({ api: b.url, token, spaceGuid: space.body.guid });
    const appGuid = await viaB.applyManifest('ha', '  instances: 4\n  env:\n    HELLO_VERSION: v1\n');
    const droplet = await viaB.stage(appGuid, HELLO);
    expect((await callB('PATCH', `/v3/apps/${appGuid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
    expect((await callB('POST', `/v3/apps/${appGuid}/actions/start`)).status).toBe(200);
    // The leader's runtime runs the instances (a follower's stats see none of them).
    await until('4 RUNNING on the leader', async () => ((await viaA.stats(appGuid)).filter((i) => i.state === 'RUNNING').length === 4 ? true : undefined), 90_000);

    // The follower answers stats and routes from the instances the leader publishes.
    await until('4 RUNNING in the follower\'s stats', async () => ((await viaB.stats(appGuid)).filter((i) => i.state === 'RUNNING').length === 4 ? true : undefined), 30_000);
    await until('the follower routes to the leader\'s instances', async () => ((await viaB.viaRouter(HOST)).status === 200 ? true : undefined), 30_000);

    // Requests through the follower's router for the rest of the test, counted before and after the kill.
    let killed = false;
    const load = { before: { ok: 0, failed: 0 }, after: { ok: 0, failed: 0 }, failures: [] as string[] };
    let loading = true;
    const loader = Promise.all(
      [0, 1].map(async () => {
        while (loading) {
          // Counted when the request ends: one in flight when the leader is killed counts as after the kill.
          try {
            const r = await viaB.viaRouter(HOST);
            if (r.status !== 200) throw new Error(`${r.status} ${r.body.slice(0, 80)}`);
            (killed ? load.after : load.before).ok++;
          } catch (err) {
            (killed ? load.after : load.before).failed++;
            if (load.failures.length < 5) load.failures.push(`${killed ? 'after' : 'before'}: ${String(err)}`);
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }),
    );

    // Watch every live instance from now on: no (process version, index) may ever run twice at once.
    const pids = { a: a.child.pid!, b: b.child.pid! };
    const duplicates: string[] = [];
    const ranOn = { a: new Set<string>(), b: new Set<string>() };
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const live = liveInstances(appGuid, pids);
        const seen = new Map<string, LiveInstance>();
        for (const i of live) {
          const key = `${i.processGuid}/${i.index}`;
          const other = seen.get(key);
          if (other) duplicates.push(`${key}: pid ${other.pid} (${other.replica}) and pid ${i.pid} (${i.replica})`);
          seen.set(key, i);
          if (i.replica !== '?') ranOn[i.replica].add(`${key}/${i.pid}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    // A rolling deployment created through the follower; the leader's controllers hear of it by NOTIFY.
    expect((await callB('PATCH', `/v3/apps/${appGuid}/environment_variables`, { var: { HELLO_VERSION: 'v2' } })).status).toBe(200);
    const created = await callB('POST', '/v3/deployments', { relationships: { app: { data: { guid: appGuid } } }, strategy: 'rolling' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await until('rollout under way on the leader', async () => (JSON.parse((await viaA.viaRouter(HOST)).body).version === 'v2' ? true : undefined), 60_000, 20);

    const killedAt = Date.now();
    killed = true;
    await a.stop({ keepData: true, signal: 'SIGKILL' });
    await until('b leads', async () => ((await readyz(b.url)).role === 'leader' ? true : undefined), 20_000, 25);
    const takeoverMs = Date.now() - killedAt;
    const aGoneMs = await until('a\'s instances gone', async () => (liveInstances(appGuid, pids).some((i) => i.replica === 'a') ? undefined : Date.now() - killedAt), 10_000, 25);
    // kiln_leader turns 1 once the controllers run (they list every key first).
    await until('kiln_leader 1 on b', async () => ((await leaderMetric(b.url)) === 1 ? true : undefined), 20_000, 25);
    const controllersMs = Date.now() - killedAt;
    expect((await readyz(b.url)).leader).toBe('replica-b');

    const final = await until(
      'deployment FINALIZED',
      async () => {
        const d = await callB('GET', `/v3/deployments/${created.body.guid}`);
        return d.body.status.value === 'FINALIZED' ? d.body : undefined;
      },
      120_000,
      100,
    );
    const finishedMs = Date.now() - killedAt;
    expect(final.status.reason).toBe('DEPLOYED');
    await until('4 RUNNING on the new leader', async () => ((await viaB.stats(appGuid)).filter((i) => i.state === 'RUNNING').length === 4 ? true : undefined), 60_000);
    await until('only v2 answers through the new leader', async () => {
      for (let i = 0; i < 10; i++) if (JSON.parse((await viaB.viaRouter(HOST)).body).version !== 'v2') return undefined;
      return true;
    });
    watching = false;
    await watcher;
    loading = false;
    await loader;

    console.log(
      `HA failover: leader SIGKILLed mid-deployment; follower held the lock after ${takeoverMs} ms and ran its controllers after ${controllersMs} ms (lease 6 s, retry 0.5 s), ` +
        `the old leader's instances were gone after ${aGoneMs} ms, the deployment finished ${finishedMs} ms after the kill; ` +
        `instances seen: ${ranOn.a.size} under A, ${ranOn.b.size} under B; requests through the follower's router: ` +
        `before the kill ${load.before.ok} ok / ${load.before.failed} failed, after it ${load.after.ok} ok / ${load.after.failed} failed ` +
        `${JSON.stringify(load.failures)}`,
    );
    // Until the kill the follower routed to the leader's instances through a rolling deployment without a failure.
    expect(load.before.failed).toBe(0);
    expect(load.before.ok).toBeGreaterThan(0);
    expect(takeoverMs).toBeLessThan(6000);
    expect(duplicates).toEqual([]);
    expect(ranOn.a.size).toBeGreaterThan(0);
    expect(ranOn.b.size).toBeGreaterThan(0);
    const live = liveInstances(appGuid, pids);
    expect(live.length, JSON.stringify(live)).toBe(4);
    expect(live.every((i) => i.replica === 'b')).toBe(true);
  }, 400_000);
});

describe.skipIf(!pgUrl)('fencing: a leader whose lock session ends', () => {
  const dbName = `kiln_ha_fence_${process.pid}_${Date.now()}`;
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ha-fence-'));
  let a: ServerProcess | undefined;
  let b: ServerProcess | undefined;
  let url = '';
  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`create database ${dbName}`);
    await admin.end();
    const u = new URL(pgUrl!);
    u.pathname = `/${dbName}`;
    url = u.toString();
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    fs.rmSync(shared, { recursive: true, force: true });
  });

  it('stops its controllers and exits before the follower takes over', async () => {
    const env = { DATABASE_URL: url, KILN_SHARED_DIR: shared, KILN_ADMIN_PASSWORD: PASSWORD, KILN_LEADER_ELECTION: 'postgres', KILN_LEADER_RETRY_SECONDS: '0.5' };
    a = await startServerProcess({ env: { ...env, KILN_REPLICA_ID: 'fence-a' } });
    await until('a leads', async () => ((await readyz(a!.url)).role === 'leader' ? true : undefined), 30_000);
    b = await startServerProcess({ env: { ...env, KILN_REPLICA_ID: 'fence-b' } });
    const exited = new Promise<number | null>((resolve) => a!.child.once('exit', (code) => resolve(code)));
    // The server ends A's lock session (a network cut the server noticed, an admin, a failover of PostgreSQL).
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'kiln:fence-a'`);
    await admin.end();
    expect(await exited).toBe(1);
    await until('b leads', async () => ((await readyz(b!.url)).role === 'leader' ? true : undefined), 20_000, 25);
    const log = a.output.join('\n');
    const lost = log.indexOf('leadership lost: stopping the controllers');
    expect(lost, log.slice(-2000)).toBeGreaterThan(-1);
    expect(log.indexOf('leadership lost; exiting')).toBeGreaterThan(lost);
  }, 120_000);
});

/**
 * The same two replicas electing with a coordination.k8s.io Lease (KILN_KUBECONFIG, as deploy/ configures them),
 * against the in-memory API server: a SIGKILLed leader never releases its Lease, so the follower takes over once the
 * Lease has gone unrenewed for the lease time, by its own clock.
 */
describe.skipIf(!pgUrl)('two replicas electing with a Lease: the leader is SIGKILLed', () => {
  const dbName = `kiln_ha_lease_${process.pid}_${Date.now()}`;
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ha-lease-'));
  let api: ApiServer;
  let a: ServerProcess | undefined;
  let b: ServerProcess | undefined;

  beforeAll(async () => {
    api = await startApiServer();
    for (const crd of generatedCrds().values()) api.storage.create(api.storage.type('apiextensions.k8s.io', 'customresourcedefinitions')!, undefined, crd);
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`create database ${dbName}`);
    await admin.end();
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await api?.close();
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    fs.rmSync(shared, { recursive: true, force: true });
  });

  it('takes the Lease over after the lease time and names itself in the Lease and /readyz', async () => {
    const u = new URL(pgUrl!);
    u.pathname = `/${dbName}`;
    const env = {
      DATABASE_URL: u.toString(),
      KILN_SHARED_DIR: shared,
      KILN_ADMIN_PASSWORD: PASSWORD,
      KILN_KUBECONFIG: api.writeKubeconfig(shared),
      KILN_LEADER_LEASE_NAMESPACE: 'default',
      KILN_LEADER_LEASE_SECONDS: '4',
      KILN_LEADER_RENEW_DEADLINE_SECONDS: '3',
      KILN_LEADER_RETRY_SECONDS: '0.5',
    };
    a = await startServerProcess({ env: { ...env, KILN_REPLICA_ID: 'lease-a' } });
    await until('a leads', async () => ((await readyz(a!.url)).role === 'leader' ? true : undefined), 30_000);
    b = await startServerProcess({ env: { ...env, KILN_REPLICA_ID: 'lease-b' } });
    expect(await readyz(b.url)).toMatchObject({ role: 'follower', leader: 'lease-a', election: 'lease' });
    const leases = api.storage.type('coordination.k8s.io', 'leases')!;
    expect(api.storage.find(leases, 'default', 'kiln-controllers')?.spec.holderIdentity).toBe('lease-a');

    const killedAt = Date.now();
    await a.stop({ signal: 'SIGKILL' });
    a = undefined;
    await until('b leads', async () => ((await readyz(b!.url)).role === 'leader' ? true : undefined), 20_000, 25);
    const takeoverMs = Date.now() - killedAt;
    await until('kiln_leader 1 on b', async () => ((await leaderMetric(b!.url)) === 1 ? true : undefined), 20_000, 25);
    console.log(`Lease failover: the follower led ${takeoverMs} ms after the leader was SIGKILLed (lease 4 s, retry 0.5 s)`);
    const lease = api.storage.find(leases, 'default', 'kiln-controllers')!;
    expect(lease.spec.holderIdentity).toBe('lease-b');
    expect(lease.spec.leaseTransitions).toBe(1);
    // Not before the lease time (the follower cannot know the leader is gone), and not much after it.
    expect(takeoverMs).toBeGreaterThanOrEqual(3000);
    expect(takeoverMs).toBeLessThan(4000 + 3000);
  }, 120_000);
});
