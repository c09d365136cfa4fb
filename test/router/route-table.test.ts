import { describe, expect, it } from 'vitest';
import { RouteTable, normalizeHost, normalizeRoutePath, requestPath, routeKey, type Backend } from '../../src/router/route-table.ts';

function backend(id: string, port = 1000): Backend {
  return { instanceId: id, processGuid: `p-${id}`, appGuid: `a-${id}`, index: 0, host: '127.0.0.1', port };
}

describe('host and path normalization', () => {
  it('lowercases hosts and strips ports and trailing dots', () => {
    expect(normalizeHost('App.Example.COM:8080')).toBe('app.example.com');
    expect(normalizeHost('app.example.com.')).toBe('app.example.com');
    expect(normalizeHost('[::1]:9000')).toBe('::1');
    expect(normalizeHost('::1')).toBe('::1');
  });

  it('canonicalizes route paths and keys', () => {
    expect(normalizeRoutePath(undefined)).toBe('');
    expect(normalizeRoutePath('/')).toBe('');
    expect(normalizeRoutePath('Foo/Bar/')).toBe('/foo/bar');
    expect(routeKey('App.Example.com', '/API')).toBe('app.example.com/api');
    expect(routeKey('app.example.com')).toBe('app.example.com');
  });

  it('extracts the matching path from request targets', () => {
    expect(requestPath('/a/b?x=1#f')).toBe('/a/b');
    expect(requestPath('http://h.example.com/Q?x')).toBe('/q');
    expect(requestPath('http://h.example.com')).toBe('/');
    expect(requestPath(undefined)).toBe('/');
  });
});

describe('RouteTable', () => {
  it('matches whole path segments and prefers the longest prefix', () => {
    const t = new RouteTable();
    t.setBackends('app.example.com', [backend('root')]);
    t.setBackends('app.example.com/foo', [backend('foo')]);
    t.setBackends('app.example.com/foo/bar', [backend('foobar')]);
    const hit = (url: string): string | undefined => t.lookup('APP.example.com:443', url)?.key;
    expect(hit('/')).toBe('app.example.com');
    expect(hit('/foo')).toBe('app.example.com/foo');
    expect(hit('/foo/')).toBe('app.example.com/foo');
    expect(hit('/foo?x=1')).toBe('app.example.com/foo');
    expect(hit('/FOO/baz')).toBe('app.example.com/foo');
    expect(hit('/foobar')).toBe('app.example.com');
    expect(hit('/foo/bar/baz')).toBe('app.example.com/foo/bar');
    expect(t.lookup('other.example.com', '/')).toBeUndefined();
  });

  it('a path-only host does not serve other paths', () => {
    const t = new RouteTable();
    t.setBackends('app.example.com/api', [backend('api')]);
    expect(t.lookup('app.example.com', '/api/v1')?.key).toBe('app.example.com/api');
    expect(t.lookup('app.example.com', '/apiary')).toBeUndefined();
    expect(t.lookup('app.example.com', '/')).toBeUndefined();
    expect(t.hasHost('app.example.com:80')).toBe(true);
  });

  it('serves subdomains from a wildcard route unless they have their own', () => {
    const t = new RouteTable();
    t.setBackends('*.example.com', [backend('wild')]);
    t.setBackends('own.example.com', [backend('own')]);
    expect(t.lookup('x.example.com', '/')?.key).toBe('*.example.com');
    expect(t.lookup('a.b.example.com', '/')?.key).toBe('*.example.com');
    expect(t.lookup('own.example.com', '/')?.key).toBe('own.example.com');
    expect(t.lookup('example.com', '/')).toBeUndefined();
  });

  it('replaces backends atomically and keeps empty routes', () => {
    const t = new RouteTable();
    const input = [backend('a'), backend('b')];
    const route = t.setBackends('app.example.com', input);
    input.push(backend('c'));
    expect(route.backends.map((b) => b.instanceId)).toEqual(['a', 'b']);
    t.setBackends('APP.example.com', [backend('c')]);
    expect(t.get('app.example.com')?.backends.map((b) => b.instanceId)).toEqual(['c']);
    t.setBackends('app.example.com', []);
    expect(t.lookup('app.example.com', '/')?.backends).toEqual([]);
    expect(t.size).toBe(1);
  });

  it('removes routes and backends', () => {
    const t = new RouteTable();
    t.setBackends('a.example.com', [backend('x'), backend('y')]);
    t.setBackends('a.example.com/p', [backend('x')]);
    t.setBackends('b.example.com', [backend('y')]);
    expect(t.removeBackend('x')).toBe(2);
    expect(t.get('a.example.com')?.backends.map((b) => b.instanceId)).toEqual(['y']);
    expect(t.get('a.example.com/p')?.backends).toEqual([]);
    expect(t.removeRoute('a.example.com/p')).toBe(true);
    expect(t.removeRoute('a.example.com/p')).toBe(false);
    expect(t.lookup('a.example.com', '/p')?.key).toBe('a.example.com');
    expect(t.removeRoute('a.example.com')).toBe(true);
    expect(t.hasHost('a.example.com')).toBe(false);
    expect(t.routes().map((r) => r.key)).toEqual(['b.example.com']);
  });

  it('picks round robin and skips excluded instances', () => {
    const t = new RouteTable();
    const route = t.setBackends('app.example.com', [backend('a'), backend('b'), backend('c')]);
    const picks = Array.from({ length: 6 }, () => RouteTable.pick(route)?.instanceId);
    expect(picks).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect(RouteTable.pick(route, new Set(['a', 'b']))?.instanceId).toBe('c');
    expect(RouteTable.pick(route, new Set(['a', 'b', 'c']))).toBeUndefined();
    expect(RouteTable.pick(t.setBackends('empty.example.com', []))).toBeUndefined();
  });
});
