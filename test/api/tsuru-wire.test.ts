import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { Env } from '../../src/api/context.ts';
import { handleTsuruError, jsonStream, readForm, route, TsuruError, TsuruForm, tsuruPath } from '../../src/api/tsuru/wire.ts';

/** Tsuru's wire rules on their own: form decoding, version prefixes, streams and their keepalive, errors. */

function app() {
  const a = new Hono<Env>();
  a.onError(handleTsuruError);
  return a;
}

describe('TsuruForm', () => {
  it('rebuilds Envs.N.Name/Value lists in index order, with keys matched case-insensitively', () => {
    const f = new TsuruForm([
      ['Envs.1.Name', 'B'],
      ['Envs.0.Name', 'A'],
      ['envs.0.value', '1'],
      ['Envs.10.Name', 'K'],
      ['NoRestart', 'true'],
    ]);
    expect(f.objects('Envs')).toEqual([{ name: 'A', value: '1' }, { name: 'B' }, { name: 'K' }]);
    expect(f.bool('noRestart')).toBe(true);
  });

  it('reads Go booleans and refuses anything else with 400', () => {
    const f = new TsuruForm([
      ['a', '1'],
      ['b', 'F'],
      ['c', 'yes'],
    ]);
    expect(f.bool('a')).toBe(true);
    expect(f.bool('b')).toBe(false);
    expect(f.bool('missing', true)).toBe(true);
    expect(() => f.bool('c')).toThrow(TsuruError);
  });

  it('keeps repeated keys as lists and dotted maps', () => {
    const f = new TsuruForm([
      ['tag', 'a'],
      ['tag', 'b'],
      ['routeropts.x', '1'],
    ]);
    expect(f.all('tag')).toEqual(['a', 'b']);
    expect(f.map('routeropts')).toEqual({ x: '1' });
  });

  it('flattens a JSON body into the same keys as the form encoding, merged with the query', async () => {
    const a = app();
    route(a, 'post', '/x', async (c) => {
      const f = await readForm(c);
      return c.json({ envs: f.objects('Envs'), noRestart: f.bool('NoRestart'), q: f.get('q') });
    });
    const res = await a.request('/1.0/x?q=1', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ Envs: [{ Name: 'A', Value: 'v' }], NoRestart: true }),
    });
    expect(await res.json()).toEqual({ envs: [{ name: 'A', value: 'v' }], noRestart: true, q: '1' });
  });
});

describe('Tsuru paths', () => {
  it('strips the mount prefix and the version', async () => {
    const a = app();
    a.get('*', (c) => c.text(tsuruPath(c)));
    expect(await (await a.request('/tsuru/1.13/services/x')).text()).toBe('/services/x');
    expect(await (await a.request('/tsuru/apps')).text()).toBe('/apps');
  });
});

describe('JSON streams', () => {
  it('writes a bare newline after the keepalive interval of silence, and ends with an Error line on failure', async () => {
    const a = app();
    a.get('/s', (c) =>
      jsonStream(
        c,
        async (p) => {
          p.say('first');
          await new Promise((r) => setTimeout(r, 130));
          throw new TsuruError(400, 'it broke');
        },
        50,
      ),
    );
    const res = await a.request('/s');
    expect(res.headers.get('content-type')).toBe('application/x-json-stream');
    const text = await res.text();
    const lines = text.split('\n');
    expect(JSON.parse(lines[0]!)).toMatchObject({ Message: 'first\n' });
    // At least one keepalive: an empty line between the message and the error.
    expect(lines.slice(1, -2).every((l) => l === '')).toBe(true);
    expect(lines.slice(1, -2).length).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(lines.at(-2)!)).toMatchObject({ Message: '', Error: 'it broke' });
    expect(text.endsWith('\n')).toBe(true);
  });

  it('answers an error thrown before the stream as plain text with its status', async () => {
    const a = app();
    a.get('/e', () => {
      throw new TsuruError(409, 'taken');
    });
    const res = await a.request('/e');
    expect(res.status).toBe(409);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('taken\n');
  });
});
