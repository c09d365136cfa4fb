import type { MetadataRequest } from './metadata.ts';
import type { Principal } from './principal.ts';

/**
 * Objects declared by a resource (a kiln.dev custom resource, or a file in a GitSource's repository) and the CF
 * API writes refused on them. What Kiln made for a declaration carries:
 *
 * - the label `kiln.dev/managed-by` (`kubernetes` or `gitsource`);
 * - `kiln.dev/resource: <Kind>/<namespace>/<name>` (custom resources) or `kiln.dev/git-source: <source>` and
 *   `kiln.dev/applied-from-path: <file>` (GitSources);
 * - `kiln.dev/owns` on apps (and on routes whose resource declares destinations): the fields the declaration
 *   owns, comma-separated — `name`, `lifecycle`, `<process>.<manifest field>` (`web.instances`, `web.memory`…),
 *   `env.<KEY>`, `routes`, `services`, `service:<instance>`; `*` (or no annotation) means everything.
 *
 * A CF API write that would change an owned field is refused (422 CF-UnprocessableEntity) naming the declaring
 * resource, unless it comes from Kiln's own reconcilers (which apply the declarations). Writes the declaration
 * does not speak for stay allowed: start/stop/restart (a resource declares no state), pushing bits, scaling a
 * field it does not name, env keys it does not name.
 */
export const MANAGED_LABEL = 'kiln.dev/managed-by';
export const RESOURCE_ANNOTATION = 'kiln.dev/resource';
export const GIT_SOURCE_ANNOTATION = 'kiln.dev/git-source';
export const GIT_PATH_ANNOTATION = 'kiln.dev/applied-from-path';
/** What `kiln apply` and GitSources label their objects with: a hash naming the source (gitops/documents.ts). */
export const APPLIED_FROM_LABEL = 'kiln.dev/applied-from';
export const OWNS_ANNOTATION = 'kiln.dev/owns';

/** The principals of Kiln's own declarative reconcilers: the CRD sync and the GitSource reconciler. */
export const KUBE_SYNC_PRINCIPAL_GUID = 'kiln-kube-sync';
export const GITSOURCE_PRINCIPAL_GUID = 'kiln-gitsource';
const RECONCILERS = new Set([KUBE_SYNC_PRINCIPAL_GUID, GITSOURCE_PRINCIPAL_GUID]);

/** Process fields in the manifest's spelling (what `<process>.<field>` names). */
export const PROCESS_FIELDS = [
  'instances',
  'memory',
  'disk_quota',
  'log-rate-limit-per-second',
  'command',
  'health-check-type',
  'health-check-http-endpoint',
  'health-check-invocation-timeout',
  'timeout',
] as const;

const MAX_OWNS = 4500;

const dashed = (k: string) => (k === 'disk_quota' ? k : k.replace(/_/g, '-'));

/** `kiln.dev/owns` for a manifest `applications[]` entry: what applying it sets. */
export function ownedFields(entry: Record<string, unknown>): string {
  const out = ['name'];
  if (['buildpacks', 'buildpack', 'stack', 'docker'].some((k) => entry[k] !== undefined)) out.push('lifecycle');
  const fieldsOf = (type: string, o: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(o)) {
      const f = k === 'disk-quota' ? 'disk_quota' : dashed(k);
      if (v !== undefined && (PROCESS_FIELDS as readonly string[]).includes(f)) out.push(`${type}.${f}`);
    }
  };
  fieldsOf('web', entry);
  for (const p of Array.isArray(entry.processes) ? entry.processes : []) {
    if (p && typeof p === 'object' && typeof (p as { type?: unknown }).type === 'string') fieldsOf((p as { type: string }).type, p as Record<string, unknown>);
  }
  if (entry.env && typeof entry.env === 'object') for (const k of Object.keys(entry.env)) out.push(`env.${k}`);
  if (Array.isArray(entry.routes)) {
    out.push('routes');
    for (const r of entry.routes) if (r && typeof r === 'object' && typeof (r as { route?: unknown }).route === 'string') out.push(`route:${(r as { route: string }).route}`);
  }
  if (Array.isArray(entry.services)) {
    out.push('services');
    for (const s of entry.services) {
      const name = typeof s === 'string' ? s : s && typeof s === 'object' ? (s as { name?: unknown }).name : undefined;
      if (typeof name === 'string') out.push(`service:${name}`);
    }
  }
  const text = [...new Set(out)].join(',');
  // An annotation holds 5,000 characters: a declaration too large to list owns everything.
  return text.length > MAX_OWNS ? '*' : text;
}

export interface Declaration {
  /** `kiln.dev/v1alpha1 App default/hello`, `GitSource shop (file deploy/a.yaml)`. */
  owner: string;
  /** What to change instead. */
  instead: 'resource' | 'repository';
  owns: Set<string> | '*';
}

/** The declaration behind an object, from its labels and annotations; undefined when none declares it. */
export function declarationOf(meta: { labels: Record<string, string>; annotations: Record<string, string> }): Declaration | undefined {
  const by = meta.labels[MANAGED_LABEL];
  const owns = meta.annotations[OWNS_ANNOTATION];
  const fields: Set<string> | '*' = owns === undefined || owns === '*' ? '*' : new Set(owns.split(',').filter(Boolean));
  if (by === 'kubernetes' && meta.annotations[RESOURCE_ANNOTATION]) {
    const [kind, ns, ...name] = meta.annotations[RESOURCE_ANNOTATION].split('/');
    return { owner: `kiln.dev/v1alpha1 ${kind} ${ns ? `${ns}/` : ''}${name.join('/')}`, instead: 'resource', owns: fields };
  }
  if (by === 'gitsource' && meta.annotations[GIT_SOURCE_ANNOTATION]) {
    const source = meta.annotations[GIT_SOURCE_ANNOTATION];
    // A GitSource resource is named by its reference (`GitSource/ns/name`), one of /kiln/v1/gitsources by its name.
    const named = source.startsWith('GitSource/') ? `GitSource ${source.slice('GitSource/'.length)}` : `GitSource ${source}`;
    const file = meta.annotations[GIT_PATH_ANNOTATION];
    return { owner: `${named}${file ? ` (file ${file})` : ''}`, instead: 'repository', owns: fields };
  }
  return undefined;
}

export const isReconciler = (p: Pick<Principal, 'guid'>) => RECONCILERS.has(p.guid);

/** The `kiln.dev/…` keys a metadata request sets or removes (the ownership marks themselves). */
export function ownershipKeys(request: MetadataRequest | undefined, admin = false): string[] {
  // Admins may detach an object whose declaration is gone (a deleted CRD, a Kiln without its kube sync) by
  // removing `kiln.dev/managed-by`; while the resource exists, its next apply marks the object again.
  if (admin) return [];
  const keys = [...Object.keys(request?.labels ?? {}), ...Object.keys(request?.annotations ?? {})];
  return keys.filter((k) => k.startsWith('kiln.dev/')).map((k) => `metadata.${k}`);
}

/** The owned-field name (as in `kiln.dev/owns`) a manifest diff path (`/applications/0/env/A`) changes. */
export function manifestDiffField(path: string, raw: unknown): string {
  const seg = path
    .split('/')
    .slice(3)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const norm = (k: string | undefined) => (k === undefined ? '' : k === 'disk-quota' || k === 'disk_quota' ? 'disk_quota' : k.replace(/_/g, '-'));
  const key = norm(seg[0]);
  if ((PROCESS_FIELDS as readonly string[]).includes(key)) return `web.${key}`;
  if (key === 'processes') {
    const list = raw && typeof raw === 'object' ? (raw as { processes?: unknown }).processes : undefined;
    const p = Array.isArray(list) ? list[Number(seg[1])] : undefined;
    const type = p && typeof p === 'object' && typeof (p as { type?: unknown }).type === 'string' ? (p as { type: string }).type : undefined;
    // A whole process added (no field): every field it sets.
    return type && seg[2] ? `${type}.${norm(seg[2])}` : type ? `${type}.instances` : 'processes';
  }
  if (key === 'env') return `env.${seg[1] ?? ''}`;
  if (['buildpacks', 'buildpack', 'stack', 'docker'].includes(key)) return 'lifecycle';
  if (key === 'metadata') return seg[2] ? `metadata.${seg[2]}` : 'metadata';
  return key;
}
