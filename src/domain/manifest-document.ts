/** Reading a manifest document (CONVENTIONS.md §21): size, YAML rules, schema version, its `applications`, key spelling. */
import { parseDocument, visit } from 'yaml';
import { badRequest, KilnError, unprocessable } from './errors.ts';

export const MAX_MANIFEST_BYTES = 1024 * 1024;
export const MANIFEST_TOO_LARGE = 'Manifest size is too large. The maximum supported size is 1MB.';
export const NO_APPLICATIONS = "Cannot parse manifest with no 'applications' field.";
export const UNSUPPORTED_VERSION = 'Unsupported manifest schema version. Currently supported versions: [1].';

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Manifest keys may be written with `-` or `_`; the canonical form here is dashed, as the cf CLI writes them. */
export const dashed = (key: string) => key.replace(/_/g, '-');

/** An object's keys in canonical (dashed) form; on a clash the later spelling wins, as a YAML re-key would. */
export function dashKeys(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[dashed(k)] = v;
  return out;
}

// ---- reading the document ----

/** Whether a request Content-Type is YAML (the cf CLI sends `application/x-yaml`). */
export function isYamlContentType(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return ['application/x-yaml', 'application/yaml', 'text/yaml', 'text/x-yaml'].includes(type);
}

/**
 * Parses a manifest body into a plain object: 400 for anything that is not a YAML mapping (anchors and aliases
 * are refused, as Cloud Controller loads YAML without them), 422 for a version other than 1.
 */
export function parseManifestText(text: string): Record<string, unknown> {
  if (Buffer.byteLength(text, 'utf8') > MAX_MANIFEST_BYTES) throw badRequest(MANIFEST_TOO_LARGE);
  // YAML 1.1 like Ruby's Psych (yes/no are booleans); duplicate keys are tolerated as Psych does (last wins).
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: false, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) throw new KilnError('MessageParseError', syntax.message.split('\n')[0] ?? 'invalid YAML');
  let aliases = false;
  visit(doc, {
    Alias() {
      aliases = true;
      return visit.BREAK;
    },
  });
  if (aliases) throw badRequest('Manifest does not support Anchors and Aliases');
  const value: unknown = doc.toJS({ maxAliasCount: 0 });
  if (!isObject(value)) throw new KilnError('MessageParseError', 'invalid request body');
  const version = value.version;
  if (version !== undefined && version !== null && version !== 1 && version !== '1') throw unprocessable(UNSUPPORTED_VERSION);
  return value;
}

/** The `applications` of a parsed manifest, or 422 when there are none. */
export function manifestApplications(doc: Record<string, unknown>): unknown[] {
  const apps = doc.applications;
  if (!Array.isArray(apps) || apps.length === 0) throw unprocessable(NO_APPLICATIONS);
  return apps;
}
