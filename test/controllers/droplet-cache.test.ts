import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Blobstore } from '../../src/blobstore/blobstore.ts';
import { DropletCache } from '../../src/controllers/droplet-cache.ts';
import { DROPLET_COLLECTOR, dropletCollector, dropletsToKeep, type DropletUse } from '../../src/controllers/droplet-collector.ts';
import type { InstanceStatus, Runtime } from '../../src/runtime/runtime.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanups.splice(0)) fn();
});

function tempRoot(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-droplets-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Lays out a droplet directory as an extraction leaves it. */
function extracted(root: string, name: string): void {
  mkdirSync(join(root, name, 'app'), { recursive: true });
}

/** A blobstore whose blob never arrives: an extraction of it stays in flight until the test ends. */
function stalledBlobs(): Blobstore {
  // Only localPath is reached by DropletCache; the rest of the interface is irrelevant here.
  return { localPath: () => new Promise<string>(() => {}) } as unknown as Blobstore;
}

const none: DropletUse = { startedAppDroplets: [], activeDeployments: [], liveTaskDroplets: [], instances: [], versions: [], appDroplets: new Map() };

describe('dropletsToKeep', () => {
  it('keeps started apps’ droplets, both sides of active deployments and live tasks’ droplets', () => {
    const keep = dropletsToKeep({
      ...none,
      startedAppDroplets: ['current', null],
      activeDeployments: [{ droplet_guid: 'rolling-new', previous_droplet_guid: 'rolling-old' }],
      liveTaskDroplets: ['task'],
    });
    expect([...keep!].sort()).toEqual(['current', 'rolling-new', 'rolling-old', 'task']);
  });

  it('keeps the droplet an instance was launched from, not its app’s other droplets', () => {
    const keep = dropletsToKeep({
      ...none,
      instances: [{ appGuid: 'app', processGuid: 'p', version: 'v1' }],
      versions: [
        { processGuid: 'p', version: 'v1', dropletGuid: 'old' },
        { processGuid: 'p', version: 'v2', dropletGuid: 'new' },
      ],
      appDroplets: new Map([['app', ['old', 'new', 'older']]]),
    });
    expect([...keep!]).toEqual(['old']);
  });

  it('keeps every droplet of the app for an instance of an unknown version', () => {
    const keep = dropletsToKeep({
      ...none,
      instances: [{ appGuid: 'app', processGuid: 'p', version: 'v9' }],
      versions: [{ processGuid: 'p', version: 'v1', dropletGuid: 'old' }],
      appDroplets: new Map([['app', ['old', 'new']]]),
    });
    expect([...keep!].sort()).toEqual(['new', 'old']);
  });

  it('cannot tell while an instance of an app without droplets runs', () => {
    expect(dropletsToKeep({ ...none, instances: [{ appGuid: 'gone', processGuid: 'p', version: 'v1' }] })).toBeUndefined();
  });
});

describe('DropletCache.prune', () => {
  it('removes unused droplets and crash leftovers, keeps used, in-flight and recently handed-out ones', async () => {
    const root = tempRoot();
    let now = 1_000_000;
    const cache = new DropletCache(root, stalledBlobs(), () => now);
    for (const name of ['used', 'unused', 'handed-out', '.tmp-crashed-1', '.trash-crashed-2']) extracted(root, name);
    // An extraction in flight: its temporary directory must survive the prune.
    void cache.ensure('inflight', 'droplets/inflight');
    extracted(root, '.tmp-inflight-3');
    // An already extracted droplet a controller has just been given.
    await cache.ensure('handed-out', 'droplets/handed-out');

    const removed = await cache.prune(new Set(['used']), { graceMs: 60_000 });
    expect(removed).toEqual(['unused']);
    expect(readdirSync(root).sort()).toEqual(['.tmp-inflight-3', 'handed-out', 'used']);

    now += 60_001;
    expect(await cache.prune(new Set(['used']), { graceMs: 60_000 })).toEqual(['handed-out']);
    expect(readdirSync(root).sort()).toEqual(['.tmp-inflight-3', 'used']);
  });

  it('does not fail when the cache directory does not exist yet', async () => {
    const cache = new DropletCache(join(tempRoot(), 'missing'), stalledBlobs());
    expect(await cache.prune(new Set())).toEqual([]);
  });
});

describe('dropletCollector', () => {
  let t: TestKiln;
  beforeAll(async () => {
    // Only the collector under test touches the cache directory it is given.
    t = await createTestKiln({}, { disabledControllers: ['processes', 'tasks', 'deployments', DROPLET_COLLECTOR] });
  });
  afterAll(async () => {
    await t?.close();
  });

  async function newApp(name: string, spaceGuid: string): Promise<string> {
    const res = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: spaceGuid } } } });
    expect(res.status, res.text).toBe(201);
    return res.body.guid as string;
  }

  it('removes droplets of stopped apps and superseded droplets, keeps the current one and one an instance runs', async () => {
    const org = await t.org('droplet-gc');
    const space = await t.space('droplet-gc', org.guid);
    const started = await newApp('started', space.guid);
    const stopped = await newApp('stopped', space.guid);
    const old = await t.droplet(started);
    const running = await t.droplet(started);
    const current = await t.droplet(started);
    const stoppedDroplet = await t.droplet(stopped);
    for (const [app, droplet] of [
      [started, current],
      [stopped, stoppedDroplet],
    ] as const) {
      const res = await t.admin.patch(`/v3/apps/${app}/relationships/current_droplet`, { data: { guid: droplet } });
      expect(res.status, res.text).toBe(200);
    }
    const web = await t.kiln.store.db.selectFrom('processes').select('guid').where('app_guid', '=', started).executeTakeFirstOrThrow();
    await t.kiln.store.write(async (tx) => {
      await tx.update('apps', started, { state: 'STARTED' });
      // An instance of an earlier launch still runs (e.g. being replaced): it was launched from `running`.
      await tx.updateStatus('processes', web.guid, { launched_version: 'v-running', launched_droplet_guid: running });
    });
    const instance: InstanceStatus = {
      id: `${web.guid}:v-running:0`,
      appGuid: started,
      processGuid: web.guid,
      version: 'v-running',
      index: 0,
      state: 'RUNNING',
      host: '127.0.0.1',
      port: 1,
      pid: 1,
      since: Date.now(),
      crashCount: 0,
    };
    // The collector only asks the runtime what runs; the rest of the interface is not reached.
    const runtime = { listInstances: () => [instance], taskStatus: () => undefined } as unknown as Runtime;

    const root = tempRoot();
    for (const guid of [old, running, current, stoppedDroplet]) extracted(root, guid);
    const cache = new DropletCache(root, stalledBlobs());
    const collector = dropletCollector({ store: t.kiln.store, runtime, droplets: cache, log: pino({ level: 'silent' }), graceMs: 0 });
    expect(await collector.listKeys()).toEqual([DROPLET_COLLECTOR]);
    await collector.reconcile(DROPLET_COLLECTOR);

    expect(existsSync(join(root, current))).toBe(true);
    expect(existsSync(join(root, running))).toBe(true);
    expect(existsSync(join(root, old))).toBe(false);
    expect(existsSync(join(root, stoppedDroplet))).toBe(false);
  });
});
