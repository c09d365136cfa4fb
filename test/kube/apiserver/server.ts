import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { badRequest, KubeError } from './errors.ts';
import { decodeProtobuf } from './protobuf.ts';
import { jsonPatch, mergePatch, strategicMerge, type Json } from './patch.ts';
import type { ResourceType } from './resources.ts';
import { fieldValue, parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { matches, Storage, typeKey, type EventType, type KObj, type StorageOptions, type WatchFilter } from './storage.ts';

/**
 * A generic in-memory Kubernetes API server for tests, served over real HTTP so that `kubectl` and
 * @kubernetes/client-node talk to it exactly as to a cluster: discovery (`/api`, `/apis`, legacy per-group-version
 * lists; no aggregated discovery, which clients fall back from), `/openapi/v3` (enough for kubectl to see that
 * the server validates fields itself), `/version`, CRUD, list with label/field selectors and paging, watch with
 * bookmarks and 410 Gone, the status subresource, the four patch types, Table output for `kubectl get`, and
 * CRDs that start serving their kinds when created. No authentication, no admission webhooks, no controllers
 * but the garbage collector (nothing schedules pods or rolls deployments — a test kubelet or the code under test
 * does that).
 */
export interface RecordedCall {
  verb: string;
  group: string;
  version: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** Who called, as an audit log names the user: the bearer token (nobody is authenticated; tests give each client its own). */
  user?: string;
  /** A request for a path the server does not serve (404); `resource` is then the path. */
  unresolved?: boolean;
}

/** What a subresource handler is told about the request (e.g. `pods/log` served by a test kubelet). */
export interface SubresourceRequest {
  group: string;
  version: string;
  resource: string;
  subresource: string;
  namespace?: string;
  name: string;
  method: string;
  query: URLSearchParams;
}

export interface ApiServerOptions extends StorageOptions {
  /**
   * Serves subresources other than `status` (`pods/log`, `pods/exec`, `deployments/scale`…), which need
   * something behind the API server. Return false to answer 404 as if there were none.
   */
  subresources?: (sub: SubresourceRequest, req: http.IncomingMessage, res: http.ServerResponse) => boolean | Promise<boolean>;
  /** How often watches that asked for bookmarks get one (the real server: about a minute). */
  bookmarkIntervalMs?: number;
  port?: number;
}

export interface ApiServer {
  url: string;
  storage: Storage;
  calls: RecordedCall[];
  /** Writes a kubeconfig for this server into `dir` and returns its path; `user` becomes its token (see RecordedCall.user). */
  writeKubeconfig(dir: string, namespace?: string, opts?: { user?: string; file?: string }): string;
  close(): Promise<void>;
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

interface Target {
  group: string;
  version: string;
  type: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
  watchPrefix: boolean;
}

function gvString(group: string, version: string) {
  return group ? `${group}/${version}` : version;
}

function withVersion(obj: KObj, group: string, version: string): KObj {
  return { ...obj, apiVersion: gvString(group, version) };
}

export async function startApiServer(opts: ApiServerOptions = {}): Promise<ApiServer> {
  const storage = new Storage(opts);
  const calls: RecordedCall[] = [];
  const bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 5_000;
  const streams = new Set<http.ServerResponse>();

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof KubeError ? err : new KubeError('InternalError', String((err as Error)?.stack ?? err));
      if (!res.headersSent) send(res, e.code, e.toStatus());
      else res.end();
    });
  });
  server.keepAliveTimeout = 1000;

  function send(res: http.ServerResponse, code: number, body: unknown, warnings: string[] = []) {
    const headers: Record<string, string | string[]> = { 'content-type': 'application/json' };
    if (warnings.length) headers.warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
    res.writeHead(code, headers);
    res.end(JSON.stringify(body));
  }

  async function readBody(req: http.IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    if ((req.headers['content-type'] ?? '').includes('protobuf')) return decodeProtobuf(raw);
    const text = raw.toString('utf8');
    if (!text.trim()) return undefined;
    try {
      return (req.headers['content-type'] ?? '').includes('yaml') ? YAML.parse(text) : JSON.parse(text);
    } catch (e) {
      throw badRequest(`the body of the request was in an unknown format: ${(e as Error).message}`);
    }
  }

  function resolve(segs: string[]): Target | undefined {
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api') {
      group = '';
      version = segs[1]!;
      rest = segs.slice(2);
    } else {
      group = segs[1]!;
      version = segs[2]!;
      rest = segs.slice(3);
    }
    let watchPrefix = false;
    if (rest[0] === 'watch') {
      watchPrefix = true;
      rest = rest.slice(1);
    }
    const served = (plural: string | undefined) => {
      const t = plural ? storage.type(group, plural) : undefined;
      return t && t.versions.includes(version) ? t : undefined;
    };
    if (rest[0] === 'namespaces' && rest.length >= 3 && served(rest[2])?.namespaced) {
      return { group, version, type: served(rest[2])!, namespace: rest[1], name: rest[3], subresource: rest[4], watchPrefix };
    }
    const t = served(rest[0]);
    if (!t) return undefined;
    return { group, version, type: t, name: rest[1], subresource: rest[2], watchPrefix };
  }

  function record(verb: string, t: Target, req: http.IncomingMessage) {
    const auth = req.headers.authorization;
    const user = auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined;
    calls.push({ verb, group: t.group, version: t.version, resource: t.type.plural, subresource: t.subresource, namespace: t.namespace, name: t.name, ...(user ? { user } : {}) });
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const q = url.searchParams;
    const segs = url.pathname.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    const accept = String(req.headers.accept ?? '');

    if (method === 'GET' && discovery(url.pathname, segs, res)) return;

    const target = segs[0] === 'api' || segs[0] === 'apis' ? resolve(segs) : undefined;
    if (!target) {
      calls.push({ verb: method.toLowerCase(), group: '', version: '', resource: url.pathname, unresolved: true });
      throw new KubeError('NotFound', 'the server could not find the requested resource');
    }
    const { type: t, group, version } = target;
    if (!t.namespaced && target.namespace !== undefined) throw new KubeError('NotFound', 'the server could not find the requested resource');
    if (target.subresource !== undefined && target.subresource !== 'status' && target.name !== undefined && opts.subresources) {
      record(method === 'GET' ? 'get' : method === 'POST' ? 'create' : method.toLowerCase(), target, req);
      const sub = { group, version, resource: t.plural, subresource: target.subresource, namespace: target.namespace, name: target.name, method, query: q };
      if (await opts.subresources(sub, req, res)) return;
    }
    if (target.subresource !== undefined && (target.subresource !== 'status' || !t.hasStatus)) throw new KubeError('NotFound', 'the server could not find the requested resource');
    const dryRun = q.getAll('dryRun').includes('All');
    const warnings: string[] = [];
    const writeOpts = { dryRun, fieldValidation: q.get('fieldValidation') ?? undefined, warnings };
    const out = (code: number, obj: KObj) => send(res, code, asTable(accept) && method === 'GET' ? table(t, version, [obj]) : withVersion(obj, group, version), warnings);

    if (target.name === undefined) {
      const filter: WatchFilter = {
        namespace: target.namespace,
        labels: parseLabelSelector(q.get('labelSelector') ?? undefined),
        fields: parseFieldSelector(q.get('fieldSelector') ?? undefined, ['metadata.name', 'metadata.namespace', ...t.selectableFields], t.kind),
      };
      const isWatch = target.watchPrefix || q.get('watch') === 'true' || q.get('watch') === '1';
      if (method === 'GET' && isWatch) {
        record('watch', target, req);
        return watch(req, res, target, filter, q, accept);
      }
      if (method === 'GET') {
        record('list', target, req);
        return list(res, target, filter, q, accept);
      }
      if (method === 'POST') {
        record('create', target, req);
        const body = (await readBody(req)) as KObj | undefined;
        if (!body || typeof body !== 'object') throw badRequest('the request body is empty or not an object');
        return out(201, storage.create(t, target.namespace, body, writeOpts));
      }
      if (method === 'DELETE') {
        record('deletecollection', target, req);
        const options = ((await readBody(req)) ?? {}) as KObj;
        for (const o of storage.list(t, filter)) storage.delete(t, o.metadata.namespace, o.metadata.name, options, dryRun);
        return send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success' });
      }
      throw new KubeError('MethodNotAllowed', `the server does not allow this method on the requested resource`);
    }

    const { namespace: ns, name, subresource } = target;
    if (target.watchPrefix && method === 'GET') {
      record('watch', target, req);
      const filter: WatchFilter = { namespace: ns, labels: () => true, fields: (o) => fieldValue(o, 'metadata.name') === name };
      return watch(req, res, target, filter, q, accept);
    }
    switch (method) {
      case 'GET':
        record('get', target, req);
        return out(200, storage.get(t, ns, name));
      case 'PUT': {
        record('update', target, req);
        const body = (await readBody(req)) as KObj | undefined;
        if (!body || typeof body !== 'object') throw badRequest('the request body is empty or not an object');
        return out(200, storage.update(t, ns, name, body, subresource, writeOpts));
      }
      case 'PATCH': {
        record('patch', target, req);
        const ct = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const patch = (await readBody(req)) as Json;
        const current = storage.find(t, ns, name);
        if (ct === 'application/apply-patch+yaml') {
          if (!q.get('fieldManager')) throw badRequest('PATCH, application/apply-patch+yaml: fieldManager is required for apply requests');
          // Server-side apply, simplified: create when missing, else merge the applied configuration in. There
          // is no managedFields bookkeeping, so fields dropped from an applied configuration are not removed.
          if (!current) return out(201, storage.create(t, ns, { ...(patch as KObj), metadata: { ...((patch as KObj).metadata ?? {}), name } }, writeOpts));
          const merged = mergePatch(current as Json, patch) as KObj;
          return out(200, storage.update(t, ns, name, merged, subresource, writeOpts));
        }
        if (!current) throw storageNotFound(t, name);
        let merged: Json;
        if (ct === 'application/merge-patch+json') merged = mergePatch(current as Json, patch);
        else if (ct === 'application/json-patch+json') merged = jsonPatch(current as Json, patch);
        else if (ct === 'application/strategic-merge-patch+json') {
          if (!t.strategicMerge)
            throw new KubeError('UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
          merged = strategicMerge(current as Json, patch);
        } else throw new KubeError('UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml${t.strategicMerge ? ', application/strategic-merge-patch+json' : ''}`);
        return out(200, storage.update(t, ns, name, merged as KObj, subresource, writeOpts));
      }
      case 'DELETE': {
        record('delete', target, req);
        const options = ((await readBody(req)) ?? {}) as KObj;
        if (q.get('propagationPolicy')) options.propagationPolicy = q.get('propagationPolicy');
        if (q.get('gracePeriodSeconds')) options.gracePeriodSeconds = Number(q.get('gracePeriodSeconds'));
        return out(200, storage.delete(t, ns, name, options, dryRun));
      }
      default:
        throw new KubeError('MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  function storageNotFound(t: ResourceType, name: string) {
    return new KubeError('NotFound', `${t.group ? `${t.plural}.${t.group}` : t.plural} "${name}" not found`, { name, group: t.group, kind: t.plural });
  }

  function list(res: http.ServerResponse, target: Target, filter: WatchFilter, q: URLSearchParams, accept: string) {
    const { type: t, group, version } = target;
    let items = storage.list(t, filter);
    const limit = Number(q.get('limit') ?? 0);
    const cont = q.get('continue');
    let next: string | undefined;
    if (cont) {
      const after = JSON.parse(Buffer.from(cont, 'base64url').toString('utf8')) as { key: string };
      items = items.filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > after.key);
    }
    if (limit > 0 && items.length > limit) {
      items = items.slice(0, limit);
      const last = items[items.length - 1]!;
      next = Buffer.from(JSON.stringify({ key: `${last.metadata.namespace ?? ''}/${last.metadata.name}` })).toString('base64url');
    }
    if (asTable(accept)) {
      const tbl = table(t, version, items);
      (tbl.metadata as KObj).resourceVersion = storage.resourceVersion;
      if (next) (tbl.metadata as KObj).continue = next;
      return send(res, 200, tbl);
    }
    send(res, 200, {
      kind: t.listKind,
      apiVersion: gvString(group, version),
      metadata: { resourceVersion: storage.resourceVersion, ...(next ? { continue: next } : {}) },
      items: items.map((o) => withVersion(o, group, version)),
    });
  }

  function watch(req: http.IncomingMessage, res: http.ServerResponse, target: Target, filter: WatchFilter, q: URLSearchParams, accept: string) {
    const { type: t, group, version } = target;
    const rvParam = q.get('resourceVersion');
    const sendInitial = q.get('sendInitialEvents') === 'true';
    const since = rvParam && rvParam !== '0' && !sendInitial ? Number(rvParam) : undefined;
    if (since !== undefined && Number.isNaN(since)) throw badRequest(`invalid resource version: ${rvParam}`);
    const wantTable = asTable(accept);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    streams.add(res);
    const write = (type: string, object: KObj) => {
      const obj = type === 'BOOKMARK' || type === 'ERROR' ? object : wantTable ? table(t, version, [object]) : withVersion(object, group, version);
      res.write(`${JSON.stringify({ type, object: obj })}\n`);
    };
    const bookmark = (annotations?: Record<string, string>) =>
      write('BOOKMARK', { kind: t.kind, apiVersion: gvString(group, version), metadata: { resourceVersion: storage.resourceVersion, ...(annotations ? { annotations } : {}) } });
    let unsubscribe: () => void = () => {};
    try {
      unsubscribe = storage.watch({ typeKey: typeKey(t), filter, send: (type: EventType, o: KObj) => write(type, o) }, since, t);
    } catch (e) {
      if (e instanceof KubeError) {
        write('ERROR', e.toStatus());
        streams.delete(res);
        res.end();
        return;
      }
      throw e;
    }
    const wantsBookmarks = q.get('allowWatchBookmarks') === 'true';
    if (sendInitial && wantsBookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    const timers: NodeJS.Timeout[] = [];
    if (wantsBookmarks) timers.push(setInterval(() => bookmark(), bookmarkIntervalMs));
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    const finish = () => {
      unsubscribe();
      timers.forEach((x) => clearInterval(x));
      streams.delete(res);
      if (!res.writableEnded) res.end();
    };
    if (timeout > 0) timers.push(setTimeout(finish, timeout * 1000));
    req.on('close', finish);
    res.on('close', finish);
    void matches;
  }

  // ---- discovery and OpenAPI

  function groups(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const t of storage.allTypes()) {
      const set = out.get(t.group) ?? new Set<string>();
      for (const v of t.versions) set.add(v);
      out.set(t.group, set);
    }
    return out;
  }

  function apiGroup(name: string, versions: Set<string>) {
    const vs = [...versions].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
    return { name, versions: vs, preferredVersion: vs[0] };
  }

  function resourceList(group: string, version: string) {
    const resources: KObj[] = [];
    for (const t of storage.allTypes()) {
      if (t.group !== group || !t.versions.includes(version)) continue;
      resources.push({
        name: t.plural,
        singularName: t.singular,
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: VERBS,
        ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
        ...(t.categories.length ? { categories: t.categories } : {}),
        storageVersionHash: Buffer.from(`${group}/${t.plural}/${storage.typesEpoch}`).toString('base64').slice(0, 11),
      });
      if (t.hasStatus) resources.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gvString(group, version), resources };
  }

  function openapiDoc(group: string, version: string) {
    const paths: KObj = {};
    for (const t of storage.allTypes()) {
      if (t.group !== group || !t.versions.includes(version)) continue;
      const base = `/${group ? `apis/${group}` : 'api'}/${version}${t.namespaced ? '/namespaces/{namespace}' : ''}/${t.plural}/{name}`;
      const gvk = { group, version, kind: t.kind };
      const params = ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((name) => ({ name, in: 'query', schema: { type: 'string' } }));
      const content = Object.fromEntries(['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'].map((c) => [c, { schema: { type: 'object' } }]));
      paths[base] = {
        get: { operationId: `read${t.kind}`, 'x-kubernetes-action': 'get', 'x-kubernetes-group-version-kind': gvk, responses: { '200': { description: 'OK' } } },
        put: { operationId: `replace${t.kind}`, 'x-kubernetes-action': 'put', 'x-kubernetes-group-version-kind': gvk, parameters: params, responses: { '200': { description: 'OK' } } },
        patch: { operationId: `patch${t.kind}`, 'x-kubernetes-action': 'patch', 'x-kubernetes-group-version-kind': gvk, parameters: params, requestBody: { content }, responses: { '200': { description: 'OK' } } },
        delete: { operationId: `delete${t.kind}`, 'x-kubernetes-action': 'delete', 'x-kubernetes-group-version-kind': gvk, responses: { '200': { description: 'OK' } } },
      };
      paths[base.replace('/{name}', '')] = {
        post: { operationId: `create${t.kind}`, 'x-kubernetes-action': 'post', 'x-kubernetes-group-version-kind': gvk, parameters: params, responses: { '201': { description: 'Created' } } },
      };
    }
    return { openapi: '3.0.0', info: { title: 'Kubernetes (in-memory test server)', version: 'v1.32.0' }, paths, components: { schemas: {} } };
  }

  function discovery(pathname: string, segs: string[], res: http.ServerResponse): boolean {
    const g = groups();
    if (pathname === '/version') {
      send(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0-inmemory', gitCommit: '', gitTreeState: 'clean', buildDate: '', goVersion: '', compiler: 'gc', platform: 'linux/amd64' });
    } else if (['/healthz', '/readyz', '/livez'].includes(pathname)) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    } else if (pathname === '/api') {
      send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] });
    } else if (pathname === '/apis') {
      send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [...g].filter(([name]) => name !== '').map(([name, vs]) => apiGroup(name, vs)) });
    } else if (segs[0] === 'api' && segs.length === 2 && segs[1] === 'v1') {
      send(res, 200, resourceList('', 'v1'));
    } else if (segs[0] === 'apis' && segs.length === 2 && g.has(segs[1]!)) {
      send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(segs[1]!, g.get(segs[1]!)!) });
    } else if (segs[0] === 'apis' && segs.length === 3 && g.get(segs[1]!)?.has(segs[2]!)) {
      send(res, 200, resourceList(segs[1]!, segs[2]!));
    } else if (pathname === '/openapi/v3') {
      const paths: KObj = {};
      for (const [group, vs] of g) for (const v of vs) paths[group ? `apis/${group}/${v}` : `api/${v}`] = { serverRelativeURL: `/openapi/v3/${group ? `apis/${group}` : 'api'}/${v}?hash=${storage.typesEpoch}` };
      send(res, 200, { paths });
    } else if (segs[0] === 'openapi' && segs[1] === 'v3' && segs.length >= 4) {
      const [group, version] = segs[2] === 'api' ? ['', segs[3]!] : [segs[3]!, segs[4]!];
      if (!g.get(group)?.has(version)) return false;
      send(res, 200, openapiDoc(group, version));
    } else return false;
    return true;
  }

  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    storage,
    calls,
    writeKubeconfig(dir: string, namespace = 'default', opts: { user?: string; file?: string } = {}) {
      const file = path.join(dir, opts.file ?? 'kubeconfig');
      const config = {
        apiVersion: 'v1',
        kind: 'Config',
        // client-node refuses plain HTTP unless TLS verification is (vacuously) skipped.
        clusters: [{ name: 'inmemory', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'tester', user: { token: opts.user ?? 'inmemory-test-token' } }],
        contexts: [{ name: 'inmemory', context: { cluster: 'inmemory', user: 'tester', namespace } }],
        'current-context': 'inmemory',
      };
      fs.writeFileSync(file, YAML.stringify(config));
      return file;
    },
    async close() {
      storage.closeAll();
      for (const s of streams) s.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

// ---- Table output (what `kubectl get` asks for)

function asTable(accept: string): boolean {
  return /as=Table/.test(accept);
}

function age(ts: string | undefined): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** The JSONPath subset printer columns use: `.a.b`, `.a[0].b`, `.a[?(@.type=="Ready")].status`. */
export function jsonPath(obj: unknown, expr: string): unknown {
  const tokens = expr.replace(/^\{?\.?/, '').replace(/\}$/, '').match(/\[\?\(@\.[\w.]+==["'][^"']*["']\)\]|\[\d+\]|[^.[\]]+/g) ?? [];
  let cur: unknown = obj;
  for (const tok of tokens) {
    if (cur === undefined || cur === null) return undefined;
    const filter = tok.match(/^\[\?\(@\.([\w.]+)==["']([^"']*)["']\)\]$/);
    if (filter) {
      cur = Array.isArray(cur) ? cur.find((x) => String(fieldValue(x, filter[1]!)) === filter[2]) : undefined;
    } else if (/^\[\d+\]$/.test(tok)) cur = Array.isArray(cur) ? cur[Number(tok.slice(1, -1))] : undefined;
    else cur = (cur as Record<string, unknown>)[tok];
  }
  return cur;
}

function table(t: ResourceType, version: string, objs: KObj[]): KObj {
  const cols = t.printerColumns[version] ?? [];
  const defs = [{ name: 'Name', type: 'string', format: 'name', description: 'Name', priority: 0 }, ...cols.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0 }))];
  if (cols.length === 0) defs.push({ name: 'Age', type: 'string', format: '', description: 'Age', priority: 0 });
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: {},
    columnDefinitions: defs,
    rows: objs.map((o) => ({
      cells: [
        o.metadata.name,
        ...(cols.length === 0
          ? [age(o.metadata.creationTimestamp)]
          : cols.map((c) => {
              const v = jsonPath(o, c.jsonPath);
              if (v === undefined || v === null) return c.type === 'date' ? '<unknown>' : null;
              if (c.type === 'date') return age(String(v));
              return typeof v === 'object' ? JSON.stringify(v) : v;
            })),
      ],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}
