import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { KilnError } from '../domain/errors.ts';
import type { FilesystemBlobstore } from './filesystem.ts';

/** One app file as the CLI describes it: relative path, SHA-1, size and octal mode string ("644"). */
export interface ResourceFingerprint {
  path: string;
  sha1: string;
  size: number;
  mode: string;
}

const sha1Schema = z.string().regex(/^[0-9a-f]{40}$/i, 'must be a SHA-1 hex digest').transform((s) => s.toLowerCase());
const modeSchema = z.union([z.string(), z.number().int().nonnegative()]).optional();

/** V3 shape used by `POST /v3/resource_matches` and by the CLI's `resources` upload field. */
const v3Entry = z.object({
  path: z.string(),
  checksum: z.object({ value: sha1Schema }),
  size_in_bytes: z.number().int().nonnegative(),
  mode: modeSchema,
});

/** V2 shape (`fn`/`sha1`/`size`) that older clients still send in the upload's `resources` field. */
const v2Entry = z.object({
  fn: z.string(),
  sha1: sha1Schema,
  size: z.number().int().nonnegative(),
  mode: modeSchema,
});

export const resourceEntrySchema = z.union([v3Entry, v2Entry]).transform((e): ResourceFingerprint => {
  const mode = e.mode === undefined ? '644' : typeof e.mode === 'number' ? e.mode.toString(8) : e.mode;
  return 'fn' in e
    ? { path: e.fn, sha1: e.sha1, size: e.size, mode }
    : { path: e.path, sha1: e.checksum.value, size: e.size_in_bytes, mode };
});
export const resourceListSchema = z.array(resourceEntrySchema);

/** The V3 JSON shape a fingerprint is answered in (`mode` as an octal string: the CLI requires it). */
export function presentResource(r: ResourceFingerprint): {
  path: string;
  mode: string;
  checksum: { value: string };
  size_in_bytes: number;
} {
  return { path: r.path, mode: r.mode, checksum: { value: r.sha1 }, size_in_bytes: r.size };
}

/** Parses an octal mode string and enforces Cloud Controller's rule that the owner can read and write. */
export function parseResourceMode(mode: string, filePath: string): number {
  if (!/^0?[0-7]{3,4}$/.test(mode)) {
    throw new KilnError('AppResourcesFileModeInvalid', `File mode '${mode}' with path '${filePath}' is invalid.`);
  }
  const value = Number.parseInt(mode, 8) & 0o7777;
  if ((value & 0o600) !== 0o600) {
    throw new KilnError(
      'AppResourcesFileModeInvalid',
      `File mode '${mode}' with path '${filePath}' is invalid. Minimum file mode is '0600'`,
    );
  }
  return value & 0o777;
}

export interface ResourceCacheOptions {
  /** Files smaller than this are not worth matching (the CLI zips them faster than it would match them). */
  minimumSize?: number;
  maximumSize?: number;
}

/**
 * App files stored by SHA-1 so a later push can leave unchanged files out of its zip
 * (`POST /v3/resource_matches`). Entries are content-addressed, so concurrent adds of one file are harmless.
 */
export class ResourceCache {
  private readonly minimumSize: number;
  private readonly maximumSize: number;

  constructor(
    private readonly store: FilesystemBlobstore,
    options: ResourceCacheOptions = {},
  ) {
    this.minimumSize = options.minimumSize ?? 1;
    this.maximumSize = options.maximumSize ?? 512 * 1024 * 1024;
  }

  static keyOf(sha1: string): string {
    const s = sha1.toLowerCase();
    if (!/^[0-9a-f]{40}$/.test(s)) throw new Error(`not a SHA-1: ${sha1}`);
    return `resources/${s.slice(0, 2)}/${s.slice(2, 4)}/${s}`;
  }

  private eligible(size: number): boolean {
    return size >= this.minimumSize && size <= this.maximumSize;
  }

  /** The fingerprints whose content the cache holds (same SHA-1 and size), in request order. */
  async match(resources: ResourceFingerprint[]): Promise<ResourceFingerprint[]> {
    const out: ResourceFingerprint[] = [];
    for (const r of resources) {
      if (!this.eligible(r.size)) continue;
      const size = await this.store.size(ResourceCache.keyOf(r.sha1));
      if (size === r.size) out.push(r);
    }
    return out;
  }

  async has(sha1: string): Promise<boolean> {
    return this.store.exists(ResourceCache.keyOf(sha1));
  }

  /** Adds one file; answers its SHA-1, or null when its size makes it ineligible. */
  async addFile(file: string): Promise<string | null> {
    const st = await fs.stat(file);
    if (!st.isFile() || !this.eligible(st.size)) return null;
    const info = await this.store.putFile((d) => ResourceCache.keyOf(d.sha1), file);
    return info.sha1;
  }

  /** Adds every regular file under `dir` (symlinks are not followed); answers how many were added. */
  async addDirectory(dir: string): Promise<number> {
    let added = 0;
    const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      if ((await this.addFile(path.join(entry.parentPath, entry.name))) !== null) added++;
    }
    return added;
  }

  /**
   * Writes the cached content of `sha1` to `dest` with `mode`, verifying the digest on the way. A corrupt
   * entry is evicted and reported with Cloud Controller's ResourceChecksumMismatch so the client retries.
   */
  async copyTo(sha1: string, dest: string, mode: number): Promise<void> {
    const key = ResourceCache.keyOf(sha1);
    const source = await this.store.localPath(key);
    const hash = createHash('sha1');
    await fs.mkdir(path.dirname(dest), { recursive: true });
    await pipeline(
      createReadStream(source),
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(dest, { mode }),
    );
    if (hash.digest('hex') !== sha1.toLowerCase()) {
      await fs.rm(dest, { force: true });
      await this.store.delete(key);
      throw new KilnError('ResourceChecksumMismatch');
    }
    // The umask may have narrowed the mode given at creation.
    await fs.chmod(dest, mode);
  }
}
