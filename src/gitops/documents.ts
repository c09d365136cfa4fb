import { APPLIED_FROM_LABEL, GIT_PATH_ANNOTATION, OWNS_ANNOTATION, ownedFields } from '../domain/declared.ts';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { AppSpecSchema, OrganizationSpecSchema, SpaceSpecSchema } from '../kube/schemas.ts';

/**
 * The declarative documents `kiln apply` (and a GitSource) read: `kiln.dev/v1alpha1` Organization, Space and
 * App resources, as `kubectl apply` takes them, or plain CF manifests (`applications:`), which land in a
 * default space. What they declare becomes a plan: orgs and spaces to exist, and per space one
 * `applications:` manifest for apply_manifest. Errors are per file; a file with an error contributes nothing.
 */
export const SOURCE_LABEL = APPLIED_FROM_LABEL;
export const SOURCE_PATH_ANNOTATION = GIT_PATH_ANNOTATION;
export const API_VERSION = 'kiln.dev/v1alpha1';

export interface DeclaredApp {
  org: string;
  space: string;
  name: string;
  /** The manifest `applications[]` entry. */
  entry: Record<string, unknown>;
  file: string;
  /** Set when the App declares `source.git` (deployed only by a Kiln server's git deployer). */
  git?: { url: string; ref?: string; path?: string };
}

export interface Declared {
  orgs: { name: string; file: string }[];
  spaces: { org: string; name: string; file: string }[];
  apps: DeclaredApp[];
  errors: { file: string; message: string }[];
}

/** A label value (≤ 63 characters) naming where documents came from: a hash of a path or of a repo+path. */
/** The source id of a GitSource of `/kiln/v1/gitsources` (its apps' `kiln.dev/applied-from`). */
export const gitSourceLabel = (guid: string) => sourceId(`gitsource:${guid}`);
export const sourceId = (where: string) => `src-${createHash('sha256').update(where).digest('hex').slice(0, 20)}`;

/** The `.yml`/`.yaml` files of FILE or DIR (a directory is walked, hidden entries skipped, sorted). */
export async function documentFiles(target: string): Promise<string[]> {
  const stat = await fs.stat(target);
  if (!stat.isDirectory()) return [target];
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const e of (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && /\.ya?ml$/i.test(e.name)) out.push(p);
    }
  };
  await walk(target);
  return out;
}

export interface ReadOptions {
  /** Where plain CF manifests go. */
  defaultSpace?: { org: string; space: string };
  /** Labels every declared app gets (the source label, for --prune). */
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function parseDocuments(files: { name: string; text: string }[], opts: ReadOptions = {}): Declared {
  const out: Declared = { orgs: [], spaces: [], apps: [], errors: [] };
  for (const f of files) {
    const part: Declared = { orgs: [], spaces: [], apps: [], errors: [] };
    try {
      const docs = parseAllDocuments(f.text);
      for (const [i, d] of docs.entries()) {
        if (d.errors.length > 0) throw new Error(`document ${i + 1}: ${d.errors[0]!.message}`);
        const v = d.toJS() as Record<string, unknown> | null;
        if (v === null || v === undefined) continue;
        if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`document ${i + 1} is not a mapping`);
        readOne(v, f.name, i + 1, part, opts);
      }
    } catch (err) {
      out.errors.push({ file: f.name, message: (err as Error).message });
      continue;
    }
    out.orgs.push(...part.orgs);
    out.spaces.push(...part.spaces);
    out.apps.push(...part.apps);
  }
  const seen = new Map<string, string>();
  for (const a of out.apps) {
    const key = `${a.org}/${a.space}/${a.name.toLowerCase()}`;
    if (seen.has(key)) out.errors.push({ file: a.file, message: `app ${a.org}/${a.space}/${a.name} is also declared in ${seen.get(key)}` });
    seen.set(key, a.file);
  }
  return out;
}

function readOne(v: Record<string, unknown>, file: string, n: number, out: Declared, opts: ReadOptions) {
  const where = `document ${n}`;
  if ('applications' in v && !('kind' in v)) {
    if (!opts.defaultSpace) throw new Error(`${where}: a plain CF manifest needs a target space (kiln target -o ORG -s SPACE, or a GitSource's org and space)`);
    const apps = v.applications;
    if (!Array.isArray(apps)) throw new Error(`${where}: applications must be a list`);
    for (const a of apps as Record<string, unknown>[]) {
      if (!a || typeof a !== 'object' || typeof a.name !== 'string' || !a.name) throw new Error(`${where}: every application needs a name`);
      const entry = withMetadata({ ...a }, opts);
      out.apps.push({ org: opts.defaultSpace.org, space: opts.defaultSpace.space, name: a.name, entry, file });
    }
    return;
  }
  if (v.apiVersion !== API_VERSION) throw new Error(`${where}: apiVersion must be ${API_VERSION} (or the document a CF manifest with applications:)`);
  const meta = (v.metadata ?? {}) as { name?: unknown };
  if (typeof meta.name !== 'string' || !meta.name) throw new Error(`${where}: metadata.name is required`);
  const issues = (e: { issues: { path: PropertyKey[]; message: string }[] }) => e.issues.map((i) => `spec.${i.path.map(String).join('.')}: ${i.message}`).join('; ');
  switch (v.kind) {
    case 'Organization': {
      const spec = OrganizationSpecSchema.safeParse(v.spec ?? {});
      if (!spec.success) throw new Error(`${where}: ${issues(spec.error)}`);
      out.orgs.push({ name: spec.data.name ?? meta.name, file });
      return;
    }
    case 'Space': {
      const spec = SpaceSpecSchema.safeParse(v.spec ?? {});
      if (!spec.success) throw new Error(`${where}: ${issues(spec.error)}`);
      out.spaces.push({ org: spec.data.org, name: spec.data.name ?? meta.name, file });
      return;
    }
    case 'App': {
      const spec = AppSpecSchema.safeParse(v.spec ?? {});
      if (!spec.success) throw new Error(`${where}: ${issues(spec.error)}`);
      const { org, space, source, name, metadata, services, ...rest } = spec.data;
      const appName = name ?? meta.name;
      const entry: Record<string, unknown> = { name: appName, ...rest };
      if (services) entry.services = services.map((s) => (s.binding_name || s.parameters ? s : s.name));
      if (source?.image) entry.docker = { image: source.image };
      entry.metadata = { labels: { ...metadata?.labels }, annotations: { ...metadata?.annotations } };
      out.apps.push({ org, space, name: appName, entry: withMetadata(entry, opts), file, ...(source?.git ? { git: source.git } : {}) });
      return;
    }
    default:
      throw new Error(`${where}: kind ${String(v.kind)} is not one of Organization, Space, App`);
  }
}

function withMetadata(entry: Record<string, unknown>, opts: ReadOptions): Record<string, unknown> {
  const m = (entry.metadata ?? {}) as { labels?: Record<string, string>; annotations?: Record<string, string> };
  return { ...entry, metadata: { labels: { ...m.labels, ...opts.labels }, annotations: { ...m.annotations, ...opts.annotations, [OWNS_ANNOTATION]: ownedFields(entry) } } };
}
