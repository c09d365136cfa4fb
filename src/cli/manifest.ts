import fs from 'node:fs/promises';
import path from 'node:path';
import { parseDocument, stringify } from 'yaml';

/** A usage mistake (bad flag, unreadable manifest…): reported without a stack trace, exit code 1. */
export class PushUsageError extends Error {}

export interface PushFlags {
  name?: string;
  instances?: number;
  /** As typed (`256M`, `1G`); validated by parseMemoryMb. */
  memory?: string;
}

/** What push needs to know about the one app it pushes, besides the manifest text it sends. */
export interface PushApp {
  name: string;
  /** The app's `path:` resolved against the manifest's folder, when the manifest gives one. */
  path: string | null;
  instances: number | null;
  memoryMb: number | null;
  env: Record<string, string>;
  noRoute: boolean;
  randomRoute: boolean;
  hasRoutes: boolean;
}

export interface PushManifest {
  app: PushApp;
  /** The manifest for `POST /v3/spaces/:guid/actions/apply_manifest`. */
  yaml: string;
}

type Entry = Record<string, unknown>;

const isRecord = (v: unknown): v is Entry => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `manifest.yml`, then `manifest.yaml` (cf's discovery order), or the file given with `-f`. */
export async function findManifest(dir: string, explicit?: string): Promise<string | null> {
  if (explicit !== undefined) {
    const st = await fs.stat(explicit).catch(() => null);
    if (!st) throw new PushUsageError(`Manifest '${explicit}' not found.`);
    if (!st.isDirectory()) return explicit;
    dir = explicit;
  }
  for (const name of ['manifest.yml', 'manifest.yaml']) {
    const file = path.join(dir, name);
    if ((await fs.stat(file).catch(() => null))?.isFile()) return file;
  }
  if (explicit !== undefined) throw new PushUsageError(`No manifest.yml or manifest.yaml in '${explicit}'.`);
  return null;
}

/** Memory as Cloud Controller accepts it in manifests (`128M`, `1G`, `512MB`), in MB. */
export function parseMemoryMb(value: string | number): number {
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  const m = /^\s*(\d+)\s*(M|MB|G|GB)\s*$/i.exec(String(value));
  if (!m || Number(m[1]) === 0) throw new PushUsageError(`Memory '${value}' is invalid: use a size with a unit, like 256M or 1G.`);
  return Number(m[1]) * (m[2]!.toUpperCase().startsWith('G') ? 1024 : 1);
}

export function parseInstances(value: string | number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new PushUsageError(`Instances '${value}' is invalid: use a whole number (0 or more).`);
  return n;
}

/** Reads the `applications` list of a manifest file. */
export function parseManifestText(text: string, file: string): { doc: Entry; apps: Entry[] } {
  const parsed = parseDocument(text, { uniqueKeys: false });
  if (parsed.errors.length > 0) throw new PushUsageError(`Manifest ${file} is not valid YAML: ${parsed.errors[0]!.message}`);
  const doc: unknown = parsed.toJS();
  if (!isRecord(doc)) throw new PushUsageError(`Manifest ${file} must be a YAML mapping with an 'applications' list.`);
  const apps = doc.applications;
  if (!Array.isArray(apps) || apps.length === 0 || !apps.every(isRecord)) {
    throw new PushUsageError(`Manifest ${file} must have an 'applications' list with at least one app.`);
  }
  return { doc, apps };
}

function pickApp(apps: Entry[], file: string, name: string | undefined): Entry {
  if (name !== undefined) {
    const found = apps.find((a) => a.name === name);
    if (found) return found;
    // Like cf: a single-app manifest is renamed by the name argument.
    if (apps.length === 1) return { ...apps[0]!, name };
    throw new PushUsageError(`App '${name}' is not in manifest ${file} (it lists ${apps.map((a) => String(a.name)).join(', ')}).`);
  }
  if (apps.length > 1) {
    throw new PushUsageError(
      `Manifest ${file} lists ${apps.length} apps (${apps.map((a) => String(a.name)).join(', ')}); kiln push pushes one at a time: choose it with --name.`,
    );
  }
  return apps[0]!;
}

/**
 * The manifest push sends for one app, built the way the cf CLI does (cf-cli-flows §5.2): flags override the
 * manifest (going to the `web` process entry when there is one), `path` is dropped (it is local), and
 * `default-route: true` is added unless the app asks for no route or a random one.
 */
export function buildPushManifest(source: { text: string; file: string } | null, flags: PushFlags): PushManifest {
  let entry: Entry;
  let version: unknown;
  if (source) {
    const { doc, apps } = parseManifestText(source.text, source.file);
    version = doc.version;
    entry = { ...pickApp(apps, source.file, flags.name) };
  } else {
    if (flags.name === undefined) throw new PushUsageError('No manifest found: give the app a name with --name NAME.');
    entry = { name: flags.name };
  }
  if (typeof entry.name !== 'string' || entry.name.trim() === '') {
    throw new PushUsageError(`Every app in manifest ${source?.file ?? ''} needs a name.`);
  }
  const name = entry.name;

  const appPath = typeof entry.path === 'string' && source ? path.resolve(path.dirname(source.file), entry.path) : null;
  delete entry.path;
  if ('disk_quota' in entry && !('disk-quota' in entry)) {
    entry['disk-quota'] = entry.disk_quota;
    delete entry.disk_quota;
  }

  const processes = Array.isArray(entry.processes) ? entry.processes.filter(isRecord) : [];
  const webIndex = processes.findIndex((p) => p.type === 'web');
  const target: Entry = webIndex >= 0 ? { ...processes[webIndex]! } : entry;
  if (flags.instances !== undefined) target.instances = flags.instances;
  if (flags.memory !== undefined) {
    parseMemoryMb(flags.memory);
    target.memory = flags.memory;
  }
  if (webIndex >= 0) {
    const copy = [...(entry.processes as unknown[])];
    copy[copy.indexOf(processes[webIndex])] = target;
    entry.processes = copy;
  }

  const noRoute = entry['no-route'] === true;
  const randomRoute = entry['random-route'] === true;
  if (!noRoute && !randomRoute) entry['default-route'] = true;

  const instancesRaw = target.instances;
  const memoryRaw = target.memory;
  const env: Record<string, string> = {};
  if (isRecord(entry.env)) for (const [k, v] of Object.entries(entry.env)) env[k] = typeof v === 'string' ? v : JSON.stringify(v);

  const app: PushApp = {
    name,
    path: appPath,
    instances: instancesRaw === undefined || instancesRaw === null ? null : parseInstances(instancesRaw as string | number),
    memoryMb: memoryRaw === undefined || memoryRaw === null ? null : parseMemoryMb(memoryRaw as string | number),
    env,
    noRoute,
    randomRoute,
    hasRoutes: Array.isArray(entry.routes) && entry.routes.length > 0,
  };
  const out: Entry = {};
  if (version !== undefined) out.version = version;
  out.applications = [entry];
  return { app, yaml: stringify(out) };
}
