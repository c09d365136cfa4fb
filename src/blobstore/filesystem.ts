import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  assertValidKey,
  BlobNotFoundError,
  BlobTooLargeError,
  type BlobInfo,
  type BlobKey,
  type BlobSource,
  type Blobstore,
  type PutOptions,
} from './blobstore.ts';

const TMP = '.tmp';

/**
 * Blobs as files under one root directory. Every write goes to `<root>/.tmp/` first and is renamed into
 * place, so the final path only ever holds complete content (rename is atomic on one filesystem).
 */
export class FilesystemBlobstore implements Blobstore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** Creates the root and clears temporary files left by a crash mid-write. */
  async init(): Promise<void> {
    await fs.rm(path.join(this.root, TMP), { recursive: true, force: true });
    await fs.mkdir(path.join(this.root, TMP), { recursive: true });
  }

  pathOf(key: string): string {
    assertValidKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  async put(key: BlobKey, source: BlobSource, options: PutOptions = {}): Promise<BlobInfo> {
    if (typeof key === 'string') assertValidKey(key);
    const tmp = await this.tempPath();
    const sha1 = createHash('sha1');
    const sha256 = createHash('sha256');
    let size = 0;
    const limit = options.maxBytes;
    try {
      const input = typeof source === 'string' || source instanceof Uint8Array ? Readable.from([toBuffer(source)]) : source;
      await pipeline(
        input,
        async function* (chunks: AsyncIterable<Uint8Array | string>) {
          for await (const raw of chunks) {
            const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
            size += chunk.length;
            if (limit !== undefined && size > limit) throw new BlobTooLargeError(limit);
            sha1.update(chunk);
            sha256.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp, { flags: 'wx', mode: 0o644, flush: true }),
      );
      const digests = { size, sha1: sha1.digest('hex'), sha256: sha256.digest('hex') };
      const finalKey = typeof key === 'string' ? key : key(digests);
      await this.commit(tmp, finalKey);
      return { key: finalKey, ...digests };
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  async putFile(key: BlobKey, file: string, options: PutOptions & { move?: boolean } = {}): Promise<BlobInfo> {
    if (!options.move) return this.put(key, createReadStream(file), options);
    // Moving still reads the file once: the digests are part of the answer and the limit must hold.
    const info = await this.hashFile(file, options.maxBytes);
    const finalKey = typeof key === 'string' ? key : key(info);
    assertValidKey(finalKey);
    const tmp = await this.tempPath();
    try {
      await fs.rename(file, tmp);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      return this.put(finalKey, createReadStream(file), options).then(async (r) => {
        await fs.rm(file, { force: true });
        return r;
      });
    }
    try {
      await this.commit(tmp, finalKey);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    return { key: finalKey, ...info };
  }

  async get(key: string): Promise<Readable> {
    const file = this.pathOf(key);
    // Opening first turns a missing blob into a typed error here instead of an 'error' event mid-response.
    const handle = await fs.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new BlobNotFoundError(key);
      throw err;
    });
    return handle.createReadStream();
  }

  async localPath(key: string): Promise<string> {
    const file = this.pathOf(key);
    if (!(await this.exists(key))) throw new BlobNotFoundError(key);
    return file;
  }

  async exists(key: string): Promise<boolean> {
    return (await this.size(key)) !== null;
  }

  async size(key: string): Promise<number | null> {
    try {
      const st = await fs.stat(this.pathOf(key));
      return st.isFile() ? st.size : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async copy(from: string, to: string): Promise<void> {
    const source = this.pathOf(from);
    this.pathOf(to);
    const tmp = await this.tempPath();
    try {
      await fs.copyFile(source, tmp);
      await this.commit(tmp, to);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobNotFoundError(from);
      throw err;
    }
  }

  async delete(key: string): Promise<boolean> {
    const file = this.pathOf(key);
    try {
      await fs.unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    await this.pruneEmptyParents(path.dirname(file));
    return true;
  }

  async deletePrefix(prefix: string): Promise<void> {
    const dir = this.pathOf(prefix);
    await fs.rm(dir, { recursive: true, force: true });
    await this.pruneEmptyParents(path.dirname(dir));
  }

  private async tempPath(): Promise<string> {
    const dir = path.join(this.root, TMP);
    await fs.mkdir(dir, { recursive: true });
    return path.join(dir, randomUUID());
  }

  private async commit(tmp: string, key: string): Promise<void> {
    const final = this.pathOf(key);
    await fs.mkdir(path.dirname(final), { recursive: true });
    await fs.rename(tmp, final);
  }

  private async hashFile(file: string, limit: number | undefined): Promise<Omit<BlobInfo, 'key'>> {
    const sha1 = createHash('sha1');
    const sha256 = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (limit !== undefined && size > limit) throw new BlobTooLargeError(limit);
      sha1.update(chunk);
      sha256.update(chunk);
    }
    return { size, sha1: sha1.digest('hex'), sha256: sha256.digest('hex') };
  }

  /** Keeps the tree from filling with empty shard directories; stops at the root or a non-empty dir. */
  private async pruneEmptyParents(dir: string): Promise<void> {
    let current = dir;
    while (current.startsWith(this.root + path.sep)) {
      try {
        await fs.rmdir(current);
      } catch {
        return;
      }
      current = path.dirname(current);
    }
  }
}

function toBuffer(source: string | Uint8Array): Buffer {
  return typeof source === 'string' ? Buffer.from(source) : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
}
