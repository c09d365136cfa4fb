import { describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/cli/api-client.ts';
import { formatEnvelope, LogFollower, type LogEnvelope } from '../../src/cli/log-follower.ts';

/** A log-cache `read` over an in-memory list, with its inclusive start_time, limit and descending. */
function fakeLogCache(envelopes: LogEnvelope[]) {
  const requests: URLSearchParams[] = [];
  const fetch = async (url: string) => {
    const q = new URL(url).searchParams;
    requests.push(q);
    const start = BigInt(q.get('start_time') ?? '0');
    const limit = Number(q.get('limit') ?? '100');
    const inRange = envelopes.filter((e) => BigInt(e.timestamp) >= start);
    const batch = q.get('descending') === 'true' ? inRange.slice(-limit).reverse() : inRange.slice(0, limit);
    return new Response(JSON.stringify({ envelopes: { batch } }), { headers: { 'content-type': 'application/json' } });
  };
  return { client: new ApiClient({ api: 'http://kiln.test', fetch }), requests };
}

const env = (ts: number, payload: string, instance = '0'): LogEnvelope => ({
  timestamp: String(ts),
  instance_id: instance,
  tags: { source_type: 'APP/PROC/WEB' },
  log: { payload: Buffer.from(payload).toString('base64'), type: 'OUT' },
});
const texts = (list: LogEnvelope[]) => list.map((e) => Buffer.from(e.log!.payload!, 'base64').toString());

describe('LogFollower', () => {
  it('skips what is already cached, then emits each new envelope once, even several at one timestamp', async () => {
    const list = [env(100, 'old-1'), env(200, 'old-2'), env(200, 'old-3')];
    const { client } = fakeLogCache(list);
    const f = new LogFollower(client, '/api/v1/read/app');
    await f.skipExisting();
    expect(await f.poll()).toEqual([]);
    list.push(env(200, 'same-ts-as-old'), env(300, 'a'), env(300, 'b', '1'));
    expect(texts(await f.poll())).toEqual(['same-ts-as-old', 'a', 'b']);
    expect(await f.poll()).toEqual([]);
    list.push(env(300, 'late-at-300'), env(400, 'c'));
    expect(texts(await f.poll())).toEqual(['late-at-300', 'c']);
    expect(await f.poll()).toEqual([]);
  });

  it('pages through more than one read when many envelopes arrive between polls', async () => {
    const list: LogEnvelope[] = [];
    const { client, requests } = fakeLogCache(list);
    const f = new LogFollower(client, '/api/v1/read/app');
    await f.skipExisting();
    for (let i = 1; i <= 2500; i++) list.push(env(1000 + i, `line-${i}`));
    const got = await f.poll();
    expect(got).toHaveLength(2500);
    expect(new Set(texts(got)).size).toBe(2500);
    expect(requests.filter((q) => q.get('descending') !== 'true').length).toBeGreaterThanOrEqual(3);
  });

  it('returns the recent envelopes oldest first and follows on after them', async () => {
    const list = [env(1, 'one'), env(2, 'two')];
    const { client } = fakeLogCache(list);
    const f = new LogFollower(client, '/api/v1/read/app');
    expect(texts(await f.recent())).toEqual(['one', 'two']);
    list.push(env(3, 'three'));
    expect(texts(await f.poll())).toEqual(['three']);
  });

  it('formats a line as cf does', () => {
    const e = { ...env(Date.UTC(2026, 0, 2, 3, 4, 5, 678) * 1_000_000, 'hello\n') };
    expect(formatEnvelope(e)).toBe('   2026-01-02T03:04:05.67+0000 [APP/PROC/WEB/0] OUT hello');
  });
});
