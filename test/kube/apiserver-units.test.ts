import { describe, expect, it } from 'vitest';
import { jsonPatch, mergePatch, strategicMerge, type Json } from './apiserver/patch.ts';
import { parseFieldSelector, parseLabelSelector } from './apiserver/selectors.ts';
import { jsonPath, startApiServer } from './apiserver/server.ts';

describe('patch formats of the in-memory API server', () => {
  it('merge patch replaces lists and deletes keys set to null', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1, 2] }, { b: { c: null }, l: [3], e: 'x' })).toEqual({ a: 1, b: { d: 3 }, l: [3], e: 'x' });
  });

  it('JSON patch adds, removes, replaces, moves and tests, and refuses a failed test', () => {
    const doc = { spec: { list: ['a', 'b'], n: 1 } } as Json;
    expect(
      jsonPatch(doc, [
        { op: 'add', path: '/spec/list/-', value: 'c' },
        { op: 'remove', path: '/spec/list/0' },
        { op: 'replace', path: '/spec/n', value: 2 },
        { op: 'move', from: '/spec/n', path: '/spec/m' },
        { op: 'test', path: '/spec/m', value: 2 },
      ]),
    ).toEqual({ spec: { list: ['b', 'c'], m: 2 } });
    expect(() => jsonPatch(doc, [{ op: 'test', path: '/spec/n', value: 9 }])).toThrow(/testing value/);
    expect(() => jsonPatch(doc, [{ op: 'replace', path: '/spec/missing', value: 9 }])).toThrow(/missing key/);
  });

  it('strategic merge merges lists by their key and honours $patch, $retainKeys and $deleteFromPrimitiveList', () => {
    const pod = {
      metadata: { finalizers: ['a', 'b'] },
      spec: { containers: [{ name: 'main', image: 'v1', env: [{ name: 'A', value: '1' }] }, { name: 'side', image: 's' }], tolerations: [{ key: 'x' }] },
    } as Json;
    const out = strategicMerge(pod, {
      metadata: { finalizers: ['c'], '$deleteFromPrimitiveList/finalizers': ['a'] },
      spec: {
        containers: [{ name: 'main', image: 'v2', env: [{ name: 'B', value: '2' }] }, { name: 'side', $patch: 'delete' }],
        tolerations: [{ key: 'y' }],
        '$setElementOrder/containers': [{ name: 'main' }],
      },
    });
    expect(out).toEqual({
      metadata: { finalizers: ['b', 'c'] },
      spec: { containers: [{ name: 'main', image: 'v2', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] }], tolerations: [{ key: 'y' }] },
    });
    expect(strategicMerge({ spec: { a: 1, b: 2 } }, { spec: { $patch: 'replace', c: 3 } })).toEqual({ spec: { c: 3 } });
    expect(strategicMerge({ strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1 } } }, { strategy: { $retainKeys: ['type'], type: 'Recreate' } })).toEqual({ strategy: { type: 'Recreate' } });
    expect(strategicMerge({ spec: { ports: [{ port: 80, name: 'a' }] } }, { spec: { ports: [{ port: 80, name: 'b' }, { port: 81 }] } })).toEqual({ spec: { ports: [{ port: 80, name: 'b' }, { port: 81 }] } });
  });
});

describe('selectors and printer-column paths', () => {
  it('label selectors: equality, inequality, sets, existence', () => {
    const m = parseLabelSelector('app=web,tier!=db,env in (dev, test),!legacy,team');
    expect(m({ app: 'web', env: 'dev', team: 'x' })).toBe(true);
    expect(m({ app: 'web', env: 'prod', team: 'x' })).toBe(false);
    expect(m({ app: 'web', env: 'dev', team: 'x', legacy: '1' })).toBe(false);
    expect(m({ app: 'web', env: 'dev' })).toBe(false);
    expect(parseLabelSelector('x notin (a)')({})).toBe(true);
    expect(() => parseLabelSelector('a in b')).toThrow(/unable to parse/);
  });

  it('field selectors allow only the fields a kind supports', () => {
    const f = parseFieldSelector('metadata.name=a,status.phase!=Failed', ['metadata.name', 'status.phase'], 'Pod');
    expect(f({ metadata: { name: 'a' }, status: { phase: 'Running' } })).toBe(true);
    expect(f({ metadata: { name: 'a' }, status: { phase: 'Failed' } })).toBe(false);
    expect(() => parseFieldSelector('spec.x=1', ['metadata.name'], 'Pod')).toThrow(/field label not supported: spec.x/);
  });

  it('JSONPath: fields, indexes and filters', () => {
    const o = { status: { conditions: [{ type: 'A', status: 'False' }, { type: 'Ready', status: 'True' }] }, spec: { l: [{ n: 1 }] } };
    expect(jsonPath(o, '.status.conditions[?(@.type=="Ready")].status')).toBe('True');
    expect(jsonPath(o, '.spec.l[0].n')).toBe(1);
    expect(jsonPath(o, '.spec.missing.deeper')).toBeUndefined();
  });
});

describe('subresources served by the test', () => {
  it('hands pods/log to the handler it was given and records the call', async () => {
    const server = await startApiServer({
      subresources: (sub, _req, res) => {
        if (sub.subresource !== 'log') return false;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`logs of ${sub.namespace}/${sub.name} container=${sub.query.get('container')}\n`);
        return true;
      },
    });
    try {
      const res = await fetch(`${server.url}/api/v1/namespaces/default/pods/p1/log?container=app`);
      expect(await res.text()).toBe('logs of default/p1 container=app\n');
      expect((await fetch(`${server.url}/api/v1/namespaces/default/pods/p1/exec`)).status).toBe(404);
      expect(server.calls).toContainEqual(expect.objectContaining({ verb: 'get', resource: 'pods', subresource: 'log', name: 'p1' }));
    } finally {
      await server.close();
    }
  });
});
