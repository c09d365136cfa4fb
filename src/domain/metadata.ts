import { z } from 'zod';
import { KilnError, unprocessable } from './errors.ts';

/** `metadata` as clients send it: string values set a key, null deletes it. */
export const MetadataRequestSchema = z
  .object({
    labels: z.record(z.string(), z.string().nullable()).optional(),
    annotations: z.record(z.string(), z.string().nullable()).optional(),
  })
  .strict();
export type MetadataRequest = z.infer<typeof MetadataRequestSchema>;

export interface Metadata {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export const MAX_LABELS = 50;
export const MAX_ANNOTATIONS = 200;

const PREFIX_RE = /^(([a-z0-9]|[a-z0-9][a-z0-9-]{0,61}[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]{0,61}[a-z0-9])$/i;
const NAME_CHARS = /^[A-Za-z0-9_.-]*$/;
const NAME_ENDS = /^[A-Za-z0-9](.*[A-Za-z0-9])?$/;

export function splitKey(key: string): { prefix: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { prefix: '', name: key } : { prefix: key.slice(0, i), name: key.slice(i + 1) };
}

export const joinKey = (prefix: string, name: string) => (prefix ? `${prefix}/${name}` : name);

function keyErrors(kind: 'label' | 'annotation', key: string): string[] {
  const label = `Metadata ${kind} key error`;
  if (key === '') return [`${label}: key cannot be empty string`];
  if ((key.match(/\//g) ?? []).length > 1) return [`${label}: key has more than one '/'`];
  const { prefix, name } = splitKey(key);
  const errors: string[] = [];
  if (key.includes('/')) {
    if (prefix.length > 253 || !PREFIX_RE.test(prefix)) errors.push(`${label}: prefix '${prefix}' must be in valid dns format`);
    else if (prefix.toLowerCase() === 'cloudfoundry.org') errors.push(`${label}: prefix 'cloudfoundry.org' is reserved`);
  }
  if (name === '') errors.push(`${label}: key cannot be empty string`);
  else if (!NAME_CHARS.test(name)) errors.push(`${label}: '${name}' contains invalid characters`);
  else if (!NAME_ENDS.test(name)) errors.push(`${label}: '${name}' starts or ends with invalid characters`);
  else if (name.length > 63) errors.push(`${label}: '${name.slice(0, 8)}...' is greater than 63 characters`);
  return errors;
}

export const labelKeyErrors = (key: string) => keyErrors('label', key);

export function labelValueErrors(value: string): string[] {
  if (value === '') return [];
  const label = 'Metadata label value error';
  if (!NAME_CHARS.test(value)) return [`${label}: '${value}' contains invalid characters`];
  if (!NAME_ENDS.test(value)) return [`${label}: '${value}' starts or ends with invalid characters`];
  if (value.length > 63) return [`${label}: '${value.slice(0, 8)}...' is greater than 63 characters`];
  return [];
}

/** Validates keys and values of a metadata request; throws one CF 422 listing every problem. */
export function validateMetadataRequest(m: MetadataRequest | undefined): void {
  if (!m) return;
  const errors: string[] = [];
  for (const [k, v] of Object.entries(m.labels ?? {})) {
    errors.push(...labelKeyErrors(k));
    if (v !== null) errors.push(...labelValueErrors(v));
  }
  for (const [k, v] of Object.entries(m.annotations ?? {})) {
    if (v === null) continue; // deleting an odd key is accepted, as upstream does
    errors.push(...keyErrors('annotation', k));
    if (v.length > 5000) errors.push(`Metadata annotation value error: '${v.slice(0, 8)}...' is greater than 5000 characters`);
  }
  if (errors.length > 0) throw unprocessable(errors.join(', '));
}

/** Applies a request (set / delete per key) to current metadata and enforces the per-resource limits. */
export function mergeMetadata(current: Metadata, request: MetadataRequest | undefined): Metadata {
  const labels = { ...current.labels };
  const annotations = { ...current.annotations };
  for (const [k, v] of Object.entries(request?.labels ?? {})) {
    if (v === null) delete labels[k];
    else labels[k] = v;
  }
  for (const [k, v] of Object.entries(request?.annotations ?? {})) {
    if (v === null) delete annotations[k];
    else annotations[k] = v;
  }
  const labelCount = Object.keys(labels).length;
  if (labelCount > MAX_LABELS && labelCount > Object.keys(current.labels).length) {
    throw new KilnError('LabelLimitExceeded', labelCount, MAX_LABELS);
  }
  const annotationCount = Object.keys(annotations).length;
  if (annotationCount > MAX_ANNOTATIONS && annotationCount > Object.keys(current.annotations).length) {
    throw new KilnError('AnnotationLimitExceeded', annotationCount, MAX_ANNOTATIONS);
  }
  return { labels, annotations };
}
