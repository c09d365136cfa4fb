import type { Readable } from 'node:stream';
import { KilnError } from '../domain/errors.ts';

/** What a stored blob is: its key, length and the digests computed while it was written. */
export interface BlobInfo {
  key: string;
  size: number;
  sha1: string;
  sha256: string;
}

export type BlobSource = Readable | AsyncIterable<Uint8Array> | Uint8Array | string;

/** Key of a blob, or a function choosing it once the digests are known (content-addressed stores). */
export type BlobKey = string | ((digests: Omit<BlobInfo, 'key'>) => string);

export interface PutOptions {
  /** Abort the write (and discard what was written) as soon as more than this many bytes arrive. */
  maxBytes?: number;
}

/**
 * Where packages, droplets, buildpacks and caches live. Writes are atomic: a reader sees either no blob or the
 * whole blob, never a partial one, and a failed write leaves nothing behind.
 */
export interface Blobstore {
  put(key: BlobKey, source: BlobSource, options?: PutOptions): Promise<BlobInfo>;
  /** Stores a local file; with `move` the file is renamed into place when possible instead of copied. */
  putFile(key: BlobKey, file: string, options?: PutOptions & { move?: boolean }): Promise<BlobInfo>;
  get(key: string): Promise<Readable>;
  /** A local path to read the blob from (filesystem stores return the blob itself; do not modify it). */
  localPath(key: string): Promise<string>;
  exists(key: string): Promise<boolean>;
  size(key: string): Promise<number | null>;
  copy(from: string, to: string): Promise<void>;
  /** Removes the blob; answers whether there was one. */
  delete(key: string): Promise<boolean>;
  /** Removes every blob whose key starts with `prefix/` (e.g. an app's buildpack cache). */
  deletePrefix(prefix: string): Promise<void>;
}

/**
 * The upload went over the configured limit. It is the client's mistake, so it maps to a 422 rather than a
 * server error; callers that know what was uploaded may rephrase it.
 */
export class BlobTooLargeError extends KilnError {
  readonly limit: number;
  constructor(limit: number) {
    super('UnprocessableEntity', `Upload may not be larger than ${limit} bytes`);
    this.limit = limit;
  }
}

export class BlobNotFoundError extends KilnError {
  readonly key: string;
  constructor(key: string) {
    super('ResourceNotFound', 'Blob not found');
    this.key = key;
  }
}

/** A key that is not a plain relative path: always a programming error, never client input. */
export class InvalidBlobKeyError extends Error {
  constructor(key: string) {
    super(`invalid blob key: ${JSON.stringify(key)}`);
  }
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/**
 * Keys are `/`-separated segments of letters, digits, `.`, `_` and `-`, none starting with a dot, so no key
 * can climb out of the store or collide with its own temporary files.
 */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) throw new InvalidBlobKeyError(key);
  for (const segment of key.split('/')) {
    if (!SEGMENT.test(segment)) throw new InvalidBlobKeyError(key);
  }
}
