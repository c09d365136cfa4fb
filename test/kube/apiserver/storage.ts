import { randomBytes, randomUUID } from 'node:crypto';
import { alreadyExists, badRequest, conflict, invalid, KubeError, notFound } from './errors.ts';
import { BUILTINS, CRD_GROUP, crdProblems, fromCrd, type CrdSpec, type ResourceType } from './resources.ts';
import { defaultAndPrune, validate } from './schema.ts';
import type { FieldMatcher, Matcher } from './selectors.ts';

/**
 * The object store behind the server: one global resourceVersion counter, objects per resource type, and a
 * bounded log of recent events that watches replay from. Every mutation is synchronous, so one request's read
 * and write cannot interleave with another's; the order of events is the order of resourceVersions.
 *
 * Semantics kept from the real server: `generation` counts changes outside metadata/status; with a status
 * subresource the main endpoint ignores `status` and `/status` ignores everything else; a stale
 * `metadata.resourceVersion` is 409; a no-op update keeps the resourceVersion and sends no event; deleting an
 * object with finalizers only sets `deletionTimestamp`, and removing the last finalizer then deletes it;
 * dependents whose owners are all gone are deleted in the background (garbage collector); deleting a namespace
 * deletes what is in it; deleting a CRD deletes its objects and stops serving its kind.
 */
// Kubernetes objects are schemaless JSON at this layer.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KObj = Record<string, any>;

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface LoggedEvent {
  rv: number;
  typeKey: string;
  type: EventType;
  object: KObj;
  /** The object before this change (for selector transitions in filtered watches). */
  previous?: KObj;
}

export interface WatchFilter {
  namespace?: string;
  labels: Matcher;
  fields: FieldMatcher;
}

export interface Watcher {
  typeKey: string;
  filter: WatchFilter;
  send(type: EventType, object: KObj): void;
}

export interface StorageOptions {
  /** How many events are kept for watches to resume from; older resourceVersions get 410 Gone. */
  eventLogSize?: number;
  /** Delay before the garbage collector looks for orphans after a deletion. */
  gcDelayMs?: number;
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export const typeKey = (t: Pick<ResourceType, 'group' | 'plural'>) => `${t.group}/${t.plural}`;

export interface WriteOptions {
  dryRun?: boolean;
  /** `Strict` refuses unknown fields (400); otherwise they are pruned and reported as warnings. */
  fieldValidation?: string;
  warnings?: string[];
}

export class Storage {
  private rv = 1;
  private readonly types = new Map<string, ResourceType>();
  private readonly objects = new Map<string, Map<string, KObj>>();
  private readonly uids = new Set<string>();
  private readonly log: LoggedEvent[] = [];
  /** The newest resourceVersion whose event has been dropped from the log. */
  private compactedThrough = 0;
  private readonly watchers = new Set<Watcher>();
  private gcTimer: NodeJS.Timeout | undefined;
  private clusterIp = 1;
  readonly eventLogSize: number;
  readonly gcDelayMs: number;
  /** Bumped whenever the set of served types changes (discovery and OpenAPI hashes). */
  typesEpoch = 0;

  constructor(opts: StorageOptions = {}) {
    this.eventLogSize = opts.eventLogSize ?? 1000;
    this.gcDelayMs = opts.gcDelayMs ?? 0;
    for (const t of BUILTINS) this.addType(t);
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.create(this.type('', 'namespaces')!, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    }
  }

  // ---- types

  private addType(t: ResourceType) {
    this.types.set(typeKey(t), t);
    if (!this.objects.has(typeKey(t))) this.objects.set(typeKey(t), new Map());
    this.typesEpoch++;
  }

  type(group: string, plural: string): ResourceType | undefined {
    return this.types.get(`${group}/${plural}`);
  }

  allTypes(): ResourceType[] {
    return [...this.types.values()];
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  // ---- reads

  private bucket(t: ResourceType): Map<string, KObj> {
    return this.objects.get(typeKey(t))!;
  }

  private key(ns: string | undefined, name: string) {
    return `${ns ?? ''}/${name}`;
  }

  find(t: ResourceType, ns: string | undefined, name: string): KObj | undefined {
    return this.bucket(t).get(this.key(ns, name));
  }

  get(t: ResourceType, ns: string | undefined, name: string): KObj {
    const obj = this.find(t, ns, name);
    if (!obj) throw notFound(t.plural, t.group, t.kind, name);
    return clone(obj);
  }

  list(t: ResourceType, filter: WatchFilter): KObj[] {
    return [...this.bucket(t).values()]
      .filter((o) => matches(o, filter))
      .sort((a, b) => this.key(a.metadata.namespace, a.metadata.name).localeCompare(this.key(b.metadata.namespace, b.metadata.name)))
      .map(clone);
  }

  // ---- writes

  create(t: ResourceType, ns: string | undefined, body: KObj, opts: WriteOptions = {}): KObj {
    const obj = clone(body);
    this.checkKind(t, obj);
    const md = (obj.metadata ??= {});
    if (t.namespaced) {
      if (md.namespace && ns && md.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      md.namespace = ns ?? md.namespace ?? 'default';
      const nsObj = this.find(this.type('', 'namespaces')!, undefined, md.namespace);
      if (!nsObj) throw notFound('namespaces', '', 'Namespace', md.namespace);
      if (nsObj.metadata.deletionTimestamp)
        throw new KubeError('Forbidden', `${t.plural} "${md.name ?? md.generateName}" is forbidden: unable to create new content in namespace ${md.namespace} because it is being terminated`);
    } else delete md.namespace;
    if (!md.name && md.generateName) md.name = `${md.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`;
    if (!md.name) throw invalid(t.kind, t.group, '', [{ field: 'metadata.name', message: 'Required value: name or generateName is required', reason: 'FieldValueRequired' }]);
    this.checkName(t, md.name);
    if (this.find(t, md.namespace, md.name)) throw alreadyExists(t.plural, t.group, md.name);
    if (t.hasStatus && t.crd) delete obj.status;
    this.admit(t, obj, undefined, opts);
    md.uid = randomUUID();
    md.creationTimestamp = now();
    md.generation = 1;
    delete md.deletionTimestamp;
    delete md.resourceVersion;
    if (typeKey(t) === '/secrets') foldStringData(obj);
    if (opts.dryRun) return { ...obj, metadata: { ...md, resourceVersion: this.resourceVersion } };
    this.defaultsOnCreate(t, obj);
    if (typeKey(t) === `${CRD_GROUP}/customresourcedefinitions`) this.registerCrd(obj);
    this.store(t, obj, 'ADDED', undefined);
    return clone(obj);
  }

  /**
   * PUT semantics (also the tail of every patch): `subresource` is `status` for the status endpoint. With
   * `metadata.resourceVersion` set it is a precondition.
   */
  update(t: ResourceType, ns: string | undefined, name: string, body: KObj, subresource: string | undefined, opts: WriteOptions = {}): KObj {
    const current = this.find(t, ns, name);
    if (!current) throw notFound(t.plural, t.group, t.kind, name);
    const incoming = clone(body);
    this.checkKind(t, incoming);
    const md = (incoming.metadata ??= {});
    if (md.name !== undefined && md.name !== name) throw badRequest(`the name of the object (${md.name}) does not match the name on the URL (${name})`);
    if (t.namespaced && md.namespace !== undefined && md.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    if (md.resourceVersion !== undefined && md.resourceVersion !== '' && String(md.resourceVersion) !== current.metadata.resourceVersion)
      throw conflict(t.plural, t.group, name);
    if ((md.resourceVersion === undefined || md.resourceVersion === '') && t.requireResourceVersionOnUpdate && subresource === undefined && !opts.dryRun)
      throw invalid(t.kind, t.group, name, [{ field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]);

    let next: KObj;
    if (subresource === 'status') {
      next = { ...clone(current), status: incoming.status };
    } else {
      next = incoming;
      next.metadata = {
        ...md,
        name: current.metadata.name,
        namespace: current.metadata.namespace,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        generation: current.metadata.generation,
        deletionTimestamp: current.metadata.deletionTimestamp,
        deletionGracePeriodSeconds: current.metadata.deletionGracePeriodSeconds,
      };
      for (const k of ['namespace', 'deletionTimestamp', 'deletionGracePeriodSeconds'] as const) if (next.metadata[k] === undefined) delete next.metadata[k];
      if (t.hasStatus) {
        if (current.status === undefined) delete next.status;
        else next.status = clone(current.status);
      }
      if (current.metadata.deletionTimestamp) {
        const added = (next.metadata.finalizers ?? []).filter((f: string) => !(current.metadata.finalizers ?? []).includes(f));
        if (added.length > 0) throw new KubeError('Forbidden', `${t.plural} "${name}" is forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`);
      }
    }
    this.admit(t, next, current, opts);
    if (typeKey(t) === '/secrets') foldStringData(next);
    delete next.metadata.resourceVersion;
    const { metadata: _a, status: _b, ...specNow } = next;
    const { metadata: _c, status: _d, ...specBefore } = current;
    if (subresource !== 'status' && JSON.stringify(specNow) !== JSON.stringify(specBefore)) next.metadata.generation = (current.metadata.generation ?? 1) + 1;
    const unchanged = JSON.stringify({ ...next, metadata: { ...next.metadata, resourceVersion: current.metadata.resourceVersion } }) === JSON.stringify(current);
    if (unchanged || opts.dryRun) return clone(unchanged ? current : { ...next, metadata: { ...next.metadata, resourceVersion: current.metadata.resourceVersion } });
    if (typeKey(t) === `${CRD_GROUP}/customresourcedefinitions` && subresource !== 'status') this.registerCrd(next);
    if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0 && typeKey(t) !== '/namespaces') {
      this.remove(t, next);
      return clone(next);
    }
    this.store(t, next, 'MODIFIED', current);
    return clone(next);
  }

  delete(t: ResourceType, ns: string | undefined, name: string, options: KObj = {}, dryRun = false): KObj {
    const current = this.find(t, ns, name);
    if (!current) throw notFound(t.plural, t.group, t.kind, name);
    const pre = options.preconditions ?? {};
    if (pre.uid && pre.uid !== current.metadata.uid)
      throw conflict(t.plural, t.group, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion)
      throw conflict(t.plural, t.group, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`);
    if (dryRun) return clone(current);
    const graceful = this.gracefulPodDeletion(t, current, options);
    if (graceful) return graceful;
    const policy: string = options.propagationPolicy ?? (options.orphanDependents ? 'Orphan' : 'Background');
    if (policy === 'Orphan') this.orphanDependents(current.metadata.uid);
    const isNamespace = typeKey(t) === '/namespaces';
    const finalizers: string[] = [...(current.metadata.finalizers ?? [])];
    if (policy === 'Foreground' && this.hasDependents(current.metadata.uid) && !finalizers.includes('foregroundDeletion')) finalizers.push('foregroundDeletion');
    if (finalizers.length > 0 || isNamespace) {
      if (current.metadata.deletionTimestamp && JSON.stringify(finalizers) === JSON.stringify(current.metadata.finalizers ?? [])) return clone(current);
      const next = clone(current);
      next.metadata.deletionTimestamp ??= now();
      next.metadata.deletionGracePeriodSeconds = 0;
      if (finalizers.length > 0) next.metadata.finalizers = finalizers;
      if (isNamespace) next.status = { ...(next.status ?? {}), phase: 'Terminating' };
      this.store(t, next, 'MODIFIED', current);
      this.scheduleGc();
      return clone(next);
    }
    this.remove(t, current);
    return clone(current);
  }

  /**
   * Kubernetes' graceful pod deletion: a pod bound to a node and not finished only gets `deletionTimestamp` (now +
   * grace) and `deletionGracePeriodSeconds`; its kubelet stops the containers and then deletes it with a zero grace
   * period. A later delete may shorten the grace period, never lengthen it. Returns undefined when the pod (or
   * object) is to be deleted at once.
   */
  private gracefulPodDeletion(t: ResourceType, current: KObj, options: KObj): KObj | undefined {
    if (typeKey(t) !== '/pods' || !current.spec?.nodeName || ['Succeeded', 'Failed'].includes(current.status?.phase)) return undefined;
    const asked = options.gracePeriodSeconds;
    const grace = Math.max(0, Number(asked ?? current.spec.terminationGracePeriodSeconds ?? 30));
    if (grace === 0) return undefined;
    const md = current.metadata;
    if (md.deletionTimestamp && (md.deletionGracePeriodSeconds ?? 0) <= grace) return clone(current);
    const next = clone(current);
    next.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    next.metadata.deletionGracePeriodSeconds = grace;
    this.store(t, next, 'MODIFIED', current);
    return clone(next);
  }

  // ---- internals

  private checkKind(t: ResourceType, obj: KObj) {
    if (obj.kind !== undefined && obj.kind !== t.kind) throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${t.group ? `${t.group}/` : ''}${t.versions[0]}) or kind ${obj.kind} is not ${t.kind}`);
    obj.kind = t.kind;
    if (obj.apiVersion === undefined) obj.apiVersion = t.group ? `${t.group}/${t.versions[0]}` : t.versions[0];
    const [g, v] = String(obj.apiVersion).includes('/') ? String(obj.apiVersion).split('/') : ['', String(obj.apiVersion)];
    if (g !== t.group || !t.versions.includes(v!)) throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${t.group ? `${t.group}/` : ''}${t.versions[0]})`);
    obj.apiVersion = t.group ? `${t.group}/${t.versions[0]}` : t.versions[0];
  }

  private checkName(t: ResourceType, name: string) {
    if (name.length > 253 || !NAME_RE.test(name))
      throw invalid(t.kind, t.group, name, [
        { field: 'metadata.name', message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character` },
      ]);
  }

  /** Defaults, pruning and schema validation for custom resources; spec checks for CRDs. */
  private admit(t: ResourceType, obj: KObj, _current: KObj | undefined, opts: WriteOptions) {
    const md = obj.metadata;
    // Go's omitempty: empty maps and lists in ObjectMeta are not stored (kubectl diff relies on it).
    for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences', 'managedFields']) {
      const v = md[k];
      if (v === null || (Array.isArray(v) && v.length === 0) || (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)) delete md[k];
    }
    for (const [field, value] of [['labels', md.labels], ['annotations', md.annotations]] as const) {
      if (value === undefined || value === null) continue;
      if (typeof value !== 'object' || Object.values(value).some((v) => typeof v !== 'string'))
        throw badRequest(`unable to decode object: metadata.${field} must be a map of strings`);
    }
    if (typeKey(t) === `${CRD_GROUP}/customresourcedefinitions`) {
      const problems = crdProblems(md.name, obj.spec);
      if (problems.length) throw invalid(t.kind, t.group, md.name, problems);
      return;
    }
    const schema = t.schemas[t.versions[0]!];
    if (!t.crd || !schema) return;
    const pruned: string[] = [];
    defaultAndPrune(obj, schema, '', pruned, true);
    if (pruned.length) {
      if (opts.fieldValidation === 'Strict') throw badRequest(`strict decoding error: ${pruned.map((p) => `unknown field "${p}"`).join(', ')}`);
      if (opts.fieldValidation !== 'Ignore') opts.warnings?.push(...pruned.map((p) => `unknown field "${p}"`));
    }
    const causes = validate(obj, schema);
    if (causes.length) throw invalid(t.kind, t.group, md.name, causes);
  }

  private defaultsOnCreate(t: ResourceType, obj: KObj) {
    switch (typeKey(t)) {
      case '/namespaces':
        obj.spec ??= { finalizers: ['kubernetes'] };
        obj.status = { phase: 'Active' };
        break;
      case '/pods':
        obj.status = { phase: 'Pending', ...(obj.status ?? {}) };
        break;
      case '/services':
        obj.spec ??= {};
        obj.spec.type ??= 'ClusterIP';
        if (obj.spec.type !== 'ExternalName' && obj.spec.clusterIP === undefined) {
          const n = this.clusterIp++;
          obj.spec.clusterIP = `10.96.${Math.floor(n / 250)}.${(n % 250) + 1}`;
          obj.spec.clusterIPs = [obj.spec.clusterIP];
        }
        break;
      case `${CRD_GROUP}/customresourcedefinitions`:
        obj.status = {
          conditions: [
            { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: now() },
            { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: now() },
          ],
          acceptedNames: obj.spec.names,
          storedVersions: obj.spec.versions.filter((v: KObj) => v.storage).map((v: KObj) => v.name),
        };
        break;
    }
  }

  private registerCrd(obj: KObj) {
    const t = fromCrd(obj.metadata.name, obj.spec as CrdSpec);
    const existing = this.types.get(typeKey(t));
    if (existing && !existing.crd) throw invalid('CustomResourceDefinition', CRD_GROUP, obj.metadata.name, [{ field: 'spec.names.plural', message: 'conflicts with a built-in resource' }]);
    this.addType(t);
  }

  private store(t: ResourceType, obj: KObj, type: EventType, previous: KObj | undefined) {
    obj.metadata.resourceVersion = String(++this.rv);
    this.bucket(t).set(this.key(obj.metadata.namespace, obj.metadata.name), obj);
    this.uids.add(obj.metadata.uid);
    this.emit(t, type, obj, previous);
  }

  private remove(t: ResourceType, obj: KObj) {
    const gone = clone(obj);
    gone.metadata.resourceVersion = String(++this.rv);
    this.bucket(t).delete(this.key(obj.metadata.namespace, obj.metadata.name));
    this.uids.delete(obj.metadata.uid);
    this.emit(t, 'DELETED', gone, obj);
    if (typeKey(t) === `${CRD_GROUP}/customresourcedefinitions`) {
      const served = this.types.get(`${obj.spec.group}/${obj.spec.names.plural}`);
      if (served && served.crd === obj.metadata.name) {
        for (const cr of [...this.bucket(served).values()]) this.remove(served, cr);
        this.types.delete(typeKey(served));
        this.objects.delete(typeKey(served));
        this.typesEpoch++;
      }
    }
    this.scheduleGc();
  }

  private emit(t: ResourceType, type: EventType, object: KObj, previous: KObj | undefined) {
    const event: LoggedEvent = { rv: Number(object.metadata.resourceVersion), typeKey: typeKey(t), type, object: clone(object), previous: previous && clone(previous) };
    this.log.push(event);
    while (this.log.length > this.eventLogSize) this.compactedThrough = this.log.shift()!.rv;
    for (const w of this.watchers) if (w.typeKey === event.typeKey) deliver(w, event);
  }

  // ---- watches

  /**
   * Registers a watcher and replays what it missed: everything after `since`, or, without `since`, the current
   * objects as ADDED. Throws 410 Gone when `since` is older than the retained log.
   */
  watch(w: Watcher, since: number | undefined, t: ResourceType): () => void {
    if (since === undefined) {
      for (const o of this.list(t, w.filter)) w.send('ADDED', o);
    } else {
      if (since < this.compactedThrough) throw new KubeError('Expired', `too old resource version: ${since} (${this.compactedThrough + 1})`);
      for (const e of this.log) if (e.rv > since && e.typeKey === w.typeKey) deliver(w, e);
    }
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /** Forget every logged event (tests use it to make a watch's resourceVersion too old). */
  compact() {
    if (this.log.length) this.compactedThrough = this.log[this.log.length - 1]!.rv;
    this.log.length = 0;
  }

  get oldestResourceVersion(): number {
    return this.compactedThrough;
  }

  closeAll() {
    clearTimeout(this.gcTimer);
    this.watchers.clear();
  }

  // ---- garbage collection

  private hasDependents(uid: string): boolean {
    for (const bucket of this.objects.values()) for (const o of bucket.values()) if ((o.metadata.ownerReferences ?? []).some((r: KObj) => r.uid === uid)) return true;
    return false;
  }

  private orphanDependents(uid: string) {
    for (const [key, bucket] of this.objects) {
      const t = this.types.get(key)!;
      for (const o of [...bucket.values()]) {
        const refs: KObj[] = o.metadata.ownerReferences ?? [];
        if (!refs.some((r) => r.uid === uid)) continue;
        const next = clone(o);
        next.metadata.ownerReferences = refs.filter((r) => r.uid !== uid);
        if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
        this.store(t, next, 'MODIFIED', o);
      }
    }
  }

  private scheduleGc() {
    if (this.gcTimer) return;
    this.gcTimer = setTimeout(() => {
      this.gcTimer = undefined;
      this.collectGarbage();
    }, this.gcDelayMs);
    this.gcTimer.unref?.();
  }

  /**
   * One pass of the garbage collector: dependents of vanished owners, contents of terminating namespaces, and
   * the `foregroundDeletion` finalizer of owners whose dependents are gone. Repeats until nothing changes.
   */
  collectGarbage() {
    for (let changed = true; changed; ) {
      changed = false;
      const terminatingNs = new Set(
        [...this.bucket(this.type('', 'namespaces')!).values()].filter((n) => n.metadata.deletionTimestamp).map((n) => n.metadata.name as string),
      );
      const foreground = new Set<string>();
      for (const bucket of this.objects.values())
        for (const o of bucket.values()) if (o.metadata.deletionTimestamp && (o.metadata.finalizers ?? []).includes('foregroundDeletion')) foreground.add(o.metadata.uid);
      for (const [key, bucket] of [...this.objects]) {
        const t = this.types.get(key);
        if (!t) continue;
        for (const o of [...bucket.values()]) {
          if (!bucket.has(this.key(o.metadata.namespace, o.metadata.name))) continue;
          const refs: KObj[] = o.metadata.ownerReferences ?? [];
          const orphaned = refs.length > 0 && refs.every((r) => !this.uids.has(r.uid));
          const ownerInForeground = refs.some((r) => foreground.has(r.uid));
          const inTerminatingNs = t.namespaced && terminatingNs.has(o.metadata.namespace);
          if ((orphaned || ownerInForeground || inTerminatingNs) && !o.metadata.deletionTimestamp) {
            this.delete(t, o.metadata.namespace, o.metadata.name, { propagationPolicy: ownerInForeground ? 'Foreground' : 'Background' });
            changed = true;
          }
        }
      }
      for (const [key, bucket] of [...this.objects]) {
        const t = this.types.get(key)!;
        for (const o of [...bucket.values()]) {
          if (!o.metadata.deletionTimestamp) continue;
          const isNs = key === '/namespaces';
          const blocked = isNs ? [...this.objects.entries()].some(([k, b]) => this.types.get(k)?.namespaced && [...b.values()].some((x) => x.metadata.namespace === o.metadata.name)) : this.hasDependents(o.metadata.uid);
          if (blocked) continue;
          if (isNs && (o.spec?.finalizers ?? []).length > 0) {
            const next = clone(o);
            next.spec.finalizers = [];
            this.store(t, next, 'MODIFIED', o);
            changed = true;
          }
          const fins: string[] = (bucket.get(this.key(o.metadata.namespace, o.metadata.name))?.metadata.finalizers ?? []);
          if (fins.includes('foregroundDeletion')) {
            const cur = bucket.get(this.key(o.metadata.namespace, o.metadata.name))!;
            const next = clone(cur);
            next.metadata.finalizers = fins.filter((f) => f !== 'foregroundDeletion');
            if (next.metadata.finalizers.length === 0) this.remove(t, next);
            else this.store(t, next, 'MODIFIED', cur);
            changed = true;
          } else if (isNs && fins.length === 0) {
            this.remove(t, bucket.get(this.key(o.metadata.namespace, o.metadata.name))!);
            changed = true;
          }
        }
      }
    }
  }
}

/** A Secret's `stringData` is write-only: it is merged into `data` (base64) and not stored. */
function foldStringData(obj: KObj) {
  if (!obj.stringData) return;
  obj.data = { ...(obj.data ?? {}) };
  for (const [k, v] of Object.entries(obj.stringData as Record<string, string>)) obj.data[k] = Buffer.from(String(v)).toString('base64');
  delete obj.stringData;
}

export function matches(o: KObj, f: WatchFilter): boolean {
  if (f.namespace !== undefined && o.metadata.namespace !== f.namespace) return false;
  return f.labels(o.metadata.labels ?? {}) && f.fields(o);
}

/** Sends an event through a filtered watch, turning selector transitions into ADDED/DELETED as the server does. */
function deliver(w: Watcher, e: LoggedEvent) {
  const now = matches(e.object, w.filter);
  if (e.type !== 'MODIFIED') {
    if (now) w.send(e.type, clone(e.object));
    return;
  }
  const before = e.previous ? matches(e.previous, w.filter) : false;
  if (now && before) w.send('MODIFIED', clone(e.object));
  else if (now) w.send('ADDED', clone(e.object));
  else if (before) w.send('DELETED', clone(e.object));
}
