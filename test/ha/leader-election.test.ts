import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseLeader, PostgresLeader, type LeaderElector } from '../../src/ha/leader-election.ts';
import { claimSqliteFile } from '../../src/ha/single-replica.ts';
import { loadConfig } from '../../src/config/config.ts';
import { startApiServer, type ApiServer } from '../kube/apiserver/index.ts';
import { until } from '../helpers/until.ts';

const log = pino({ level: 'silent' });
const timing = { leaseMs: 3000, renewDeadlineMs: 2000, retryMs: 200 };


/** An elector with a journal of what its callbacks saw, and the time of each. */
function journal() {
  const events: Array<{ what: 'elected' | 'lost'; at: number; reason?: string }> = [];
  return {
    events,
    onElected: async () => void events.push({ what: 'elected', at: Date.now() }),
    onLost: async (reason: string) => void events.push({ what: 'lost', at: Date.now(), reason }),
  };
}

const pgUrl = process.env.KILN_TEST_DATABASE_URL;

describe.skipIf(!pgUrl)('PostgreSQL advisory-lock leader election', () => {
  let url = '';
  const name = `kiln_ha_${process.pid}_${Date.now()}`;
  const electors: LeaderElector[] = [];
  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const u = new URL(pgUrl!);
    u.pathname = `/${name}`;
    url = u.toString();
  });
  afterAll(async () => {
    for (const e of electors) await e.stop();
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  });

  it('elects one replica, names it to the others, and fences it when its lock session dies', async () => {
    const a = journal();
    const b = journal();
    const ea = new PostgresLeader({ url, replicaId: 'replica-a', timing, log, ...a });
    electors.push(ea);
    ea.start();
    await until('a elected', () => ea.isLeader());
    const eb = new PostgresLeader({ url, replicaId: 'replica-b', timing, log, ...b });
    electors.push(eb);
    eb.start();
    await until('b names a', async () => (await eb.leader()) === 'replica-a');
    expect(eb.isLeader()).toBe(false);

    // The server ends A's lock session (as when A's socket closes): A stops before B can have started.
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'kiln:replica-a'`);
    await admin.end();
    await until('b elected', () => eb.isLeader());
    expect(ea.isLeader()).toBe(false);
    const lost = a.events.find((e) => e.what === 'lost')!;
    const elected = b.events.find((e) => e.what === 'elected')!;
    expect(lost).toBeDefined();
    expect(lost.at).toBeLessThanOrEqual(elected.at);
    expect(await eb.leader()).toBe('replica-b');
  });
});

describe('Lease leader election (coordination.k8s.io/v1 on the in-memory API server)', () => {
  let api: ApiServer;
  let kc: k8s.KubeConfig;
  const electors: LeaderElector[] = [];
  beforeAll(async () => {
    api = await startApiServer();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-lease-'));
    kc = new k8s.KubeConfig();
    kc.loadFromFile(api.writeKubeconfig(dir));
  });
  afterAll(async () => {
    for (const e of electors) await e.stop();
    await api.close();
  });

  const elector = (id: string, j: ReturnType<typeof journal>) => {
    const e = new LeaseLeader({ kubeconfig: kc, namespace: 'default', name: 'kiln-controllers', replicaId: id, timing, log, ...j });
    electors.push(e);
    return e;
  };

  it('hands over on release at once, and after the lease time when the leader vanishes', async () => {
    const a = journal();
    const b = journal();
    const c = journal();
    const ea = elector('a', a);
    ea.start();
    await until('a elected', () => ea.isLeader());
    const eb = elector('b', b);
    eb.start();
    expect(await eb.leader()).toBe('a');
    await new Promise((r) => setTimeout(r, 1000));
    expect(eb.isLeader()).toBe(false);

    // A graceful stop releases the Lease: B takes it on its next try.
    await ea.stop();
    await until('b elected', () => eb.isLeader(), 5000);
    expect(a.events.map((e) => e.what)).toEqual(['elected', 'lost']);

    // B vanishes without releasing (its timers die with it): C waits out the lease, B's record unchanged.
    const ec = elector('c', c);
    ec.start();
    await until('c saw b', async () => (await ec.leader()) === 'b');
    const vanished = Date.now();
    (eb as unknown as { stopped: boolean }).stopped = true; // no more renewals, no release
    await until('c elected', () => ec.isLeader(), 10_000);
    const waited = Date.now() - vanished;
    expect(waited).toBeGreaterThanOrEqual(timing.leaseMs - timing.retryMs * 2);
    // B, still running its renew deadline watchdog in a real process, would have stopped by now.
    expect(b.events.map((e) => e.what)).toEqual(['elected']);
    const lease = await kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: 'kiln-controllers', namespace: 'default' });
    expect(lease.spec?.holderIdentity).toBe('c');
    expect(lease.spec?.leaseTransitions).toBeGreaterThanOrEqual(2);
    expect(api.calls.some((call) => call.group === 'coordination.k8s.io' && call.resource === 'leases' && call.verb === 'update')).toBe(true);
  });
});

describe('SQLite: one replica per database file', () => {
  it('refuses a second live process and takes over a stale claim', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-sqlite-claim-'));
    const file = path.join(dir, 'kiln.sqlite');
    // A live other process (the parent of this test worker) holds it.
    fs.writeFileSync(`${file}.replica`, JSON.stringify({ pid: process.ppid, host: os.hostname(), since: 'then' }));
    expect(() => claimSqliteFile(file)).toThrow(/exactly one replica may run/);
    // A process that is gone left it behind.
    fs.writeFileSync(`${file}.replica`, JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname(), since: 'then' }));
    const release = claimSqliteFile(file);
    expect(JSON.parse(fs.readFileSync(`${file}.replica`, 'utf8')).pid).toBe(process.pid);
    release();
    expect(fs.existsSync(`${file}.replica`)).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('leader election settings', () => {
  it('refuse a renew deadline that is not shorter than the lease, and default the shared dir to the data dir', () => {
    expect(() => loadConfig({ KILN_LEADER_LEASE_SECONDS: '5' })).toThrow(/KILN_LEADER_RENEW_DEADLINE_SECONDS: .*shorter than KILN_LEADER_LEASE_SECONDS/);
    const c = loadConfig({ KILN_DATA_DIR: '/tmp/kiln-a', KILN_LEADER_LEASE_SECONDS: '6', KILN_LEADER_RENEW_DEADLINE_SECONDS: '4', KILN_REPLICA_ID: 'r1' });
    expect(c.sharedDir).toBe('/tmp/kiln-a');
    expect(c.leader).toMatchObject({ replicaId: 'r1', election: 'auto', leaseMs: 6000, renewDeadlineMs: 4000, retryMs: 2000, leaseName: 'kiln-controllers' });
    expect(loadConfig({ KILN_SHARED_DIR: '/mnt/kiln' }).sharedDir).toBe('/mnt/kiln');
  });
});
