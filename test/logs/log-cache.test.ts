import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { LogStore } from '../../src/logs/log-store.ts';
import { logCacheRoutes } from '../../src/logs/log-cache-api.ts';
import { apiLogLine } from '../../src/logs/api-log.ts';

const line = (sourceId: string, payload: string, sourceType = 'APP/PROC/WEB') =>
  ({ sourceId, instanceId: '0', sourceType, type: 'OUT' as const, payload });

describe('LogStore', () => {
  it('keeps strictly increasing timestamps and reads ascending or newest-first', () => {
    const logs = new LogStore();
    const a = logs.append(line('app', 'one'));
    const b = logs.append(line('app', 'two'));
    const c = logs.append(line('app', 'three'));
    expect(b.timestamp > a.timestamp && c.timestamp > b.timestamp).toBe(true);
    expect(logs.read('app', { limit: 2, descending: false }).map((e) => e.payload)).toEqual(['one', 'two']);
    expect(logs.read('app', { limit: 2, descending: true }).map((e) => e.payload)).toEqual(['three', 'two']);
    expect(logs.read('app', { startTime: b.timestamp, limit: 10, descending: false }).map((e) => e.payload)).toEqual(['two', 'three']);
    expect(logs.read('app', { endTime: b.timestamp, limit: 10, descending: false }).map((e) => e.payload)).toEqual(['one']);
    expect(logs.read('other', { limit: 10, descending: false })).toEqual([]);
  });

  it('bounds each source and the number of sources', () => {
    const logs = new LogStore(3, 2);
    for (let i = 0; i < 5; i++) logs.append(line('a', `l${i}`));
    expect(logs.read('a', { limit: 10, descending: false }).map((e) => e.payload)).toEqual(['l2', 'l3', 'l4']);
    logs.append(line('b', 'x'));
    logs.append(line('c', 'y'));
    expect(logs.read('a', { limit: 10, descending: false })).toEqual([]);
    expect(logs.read('b', { limit: 10, descending: false })).toHaveLength(1);
  });

  it('keeps the newest lines of a long-running source exactly, whatever their length and characters', () => {
    const logs = new LogStore(1000, 10);
    const sent: { payload: string; instanceId: string; sourceType: string; type: 'OUT' | 'ERR'; timestamp: bigint }[] = [];
    for (let i = 0; i < 5000; i++) {
      // Short and long lines, multi-byte characters, an empty line, and one longer than any buffer segment.
      const payload = i === 2500 ? 'x'.repeat(200_000) : i % 97 === 0 ? '' : `line ${i} ${'é✓'.repeat(i % 50)} ${'y'.repeat((i * 37) % 700)}`;
      const e = logs.append({ sourceId: 'app', instanceId: String(i % 3), sourceType: i % 5 === 0 ? 'RTR' : 'APP/PROC/WEB', type: i % 7 === 0 ? 'ERR' : 'OUT', payload });
      sent.push({ payload, instanceId: e.instanceId, sourceType: e.sourceType, type: e.type, timestamp: e.timestamp });
    }
    const kept = sent.slice(-1000).map((l) => ({ sourceId: 'app', ...l }));
    expect(logs.read('app', { limit: 5000, descending: false })).toEqual(kept);
    expect(logs.read('app', { limit: 3, descending: true })).toEqual(kept.slice(-3).reverse());
    const from = kept[400]!.timestamp;
    const to = kept[900]!.timestamp;
    expect(logs.read('app', { startTime: from, endTime: to, limit: 5000, descending: false })).toEqual(kept.slice(400, 900));
    expect(logs.read('app', { startTime: from, limit: 10, descending: false })).toEqual(kept.slice(400, 410));
  });

  it('drops the source that went longest without a line when a new one comes', () => {
    const logs = new LogStore(10, 2);
    logs.append(line('a', 'a1'));
    logs.append(line('b', 'b1'));
    logs.append(line('c', 'c1')); // a goes
    logs.append(line('b', 'b2')); // b had a line after c did
    logs.append(line('d', 'd1')); // so c goes, and b stays
    expect(logs.read('a', { limit: 10, descending: false })).toEqual([]);
    expect(logs.read('c', { limit: 10, descending: false })).toEqual([]);
    expect(logs.read('b', { limit: 10, descending: false }).map((e) => e.payload)).toEqual(['b1', 'b2']);
    expect(logs.read('d', { limit: 10, descending: false }).map((e) => e.payload)).toEqual(['d1']);
  });

  it('splits text into one envelope per line', () => {
    const logs = new LogStore();
    logs.appendText({ sourceId: 's', instanceId: '0', sourceType: 'STG', type: 'OUT' }, 'a\r\nb\n\nc\n');
    expect(logs.read('s', { limit: 10, descending: false }).map((e) => e.payload)).toEqual(['a', 'b', 'c']);
  });
});

describe('log-cache API', () => {
  const logs = new LogStore();
  const app = new Hono();
  app.route('/', logCacheRoutes(logs, {
    async authorize(c, sourceId) {
      if (c.req.header('authorization') !== 'bearer ok' || sourceId === 'secret') throw new Error('denied');
    },
  }));
  app.onError((_err, c) => c.json({ error: 'denied' }, 404));
  logs.append(line('app-1', 'hello'));
  logs.append({ ...line('app-1', 'oops', 'STG'), type: 'ERR' });

  const get = async (url: string, auth = 'bearer ok') => {
    const res = await app.request(url, { headers: { authorization: auth } });
    return { status: res.status, body: (await res.json()) as any };
  };

  it('answers info with a 2.x+ version the CLI accepts', async () => {
    const res = await get('/api/v1/info');
    expect(res.status).toBe(200);
    expect(Number(res.body.version.split('.')[0])).toBeGreaterThanOrEqual(2);
  });

  it('reads the CLI recent-logs query in log-cache envelope shape, newest first', async () => {
    const res = await get('/api/v1/read/app-1?descending=true&envelope_types=LOG&limit=1000&start_time=-6795364578871345152');
    expect(res.status).toBe(200);
    const batch = res.body.envelopes.batch;
    expect(batch).toHaveLength(2);
    expect(Object.keys(batch[0]).sort()).toEqual(['deprecated_tags', 'instance_id', 'log', 'source_id', 'tags', 'timestamp']);
    expect(batch[0]).toMatchObject({ source_id: 'app-1', instance_id: '0', tags: { source_type: 'STG' }, log: { type: 'ERR' } });
    expect(Buffer.from(batch[0].log.payload, 'base64').toString()).toBe('oops');
    expect(BigInt(batch[0].timestamp) > BigInt(batch[1].timestamp)).toBe(true);
  });

  it('validates parameters and authorizes per source', async () => {
    expect((await get('/api/v1/read/app-1?limit=5000')).status).toBe(400);
    expect((await get('/api/v1/read/app-1?start_time=yesterday')).status).toBe(400);
    expect((await get('/api/v1/read/app-1?envelope_types=BOGUS')).status).toBe(400);
    expect((await get('/api/v1/read/app-1?envelope_types=GAUGE')).body.envelopes.batch).toEqual([]);
    expect((await get('/api/v1/read/secret')).status).toBe(404);
    expect((await get('/api/v1/read/app-1', 'bearer no')).status).toBe(404);
  });
});

describe('API log lines', () => {
  const ev = (type: string, targetType = 'app', data: Record<string, unknown> = {}) => ({
    type,
    actorName: 'admin',
    target: { type: targetType, guid: 'g-1', name: 'hello' },
    data,
  });

  it('describes app changes as Cloud Controller does and ignores other targets', () => {
    expect(apiLogLine(ev('audit.app.create'))).toBe('Created app with guid g-1');
    expect(apiLogLine(ev('audit.app.start'))).toBe('Updated app with guid g-1 ({"state":"STARTED"})');
    expect(apiLogLine(ev('audit.app.process.scale', 'app', { request: { instances: 3 } }))).toBe(
      'Updated app with guid g-1: process.scale {"instances":3}',
    );
    expect(apiLogLine(ev('audit.space.create', 'space'))).toBeUndefined();
  });
});
