import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobNotFoundError, BlobTooLargeError, InvalidBlobKeyError } from '../../src/blobstore/blobstore.ts';
import { FilesystemBlobstore } from '../../src/blobstore/filesystem.ts';
import { tempDir, tree } from '../staging/zip-fixtures.ts';

const sha = (algo: string, data: string | Buffer) => createHash(algo).update(data).digest('hex');

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

describe('FilesystemBlobstore', () => {
  let root: string;
  let store: FilesystemBlobstore;
  beforeEach(async () => {
    root = tempDir('kiln-blobs-');
    store = new FilesystemBlobstore(root);
    await store.init();
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('stores a stream atomically and reports size, sha1 and sha256 computed while writing', async () => {
    const info = await store.put('packages/abc/bits', Readable.from([Buffer.from('hello '), Buffer.from('world')]));
    expect(info).toEqual({ key: 'packages/abc/bits', size: 11, sha1: sha('sha1', 'hello world'), sha256: sha('sha256', 'hello world') });
    expect(await store.exists('packages/abc/bits')).toBe(true);
    expect(await store.size('packages/abc/bits')).toBe(11);
    expect(await readAll(await store.get('packages/abc/bits'))).toBe('hello world');
    expect(await fs.readFile(await store.localPath('packages/abc/bits'), 'utf8')).toBe('hello world');
    expect(await tree(path.join(root, '.tmp'))).toEqual([]);
  });

  it('accepts buffers, strings and async iterables, and overwrites an existing key', async () => {
    await store.put('a', 'one');
    await store.put('a', Buffer.from('two'));
    async function* gen() {
      yield new TextEncoder().encode('thr');
      yield new TextEncoder().encode('ee');
    }
    await store.put('b', gen());
    expect(await readAll(await store.get('a'))).toBe('two');
    expect(await readAll(await store.get('b'))).toBe('three');
  });

  it('aborts an upload over the byte limit with a typed 422 and leaves nothing behind', async () => {
    let produced = 0;
    const endless = new Readable({
      read() {
        produced += 1024;
        this.push(Buffer.alloc(1024, 1));
      },
    });
    const err = await store.put('packages/big/bits', endless, { maxBytes: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobTooLargeError);
    expect((err as BlobTooLargeError).status).toBe(422);
    expect((err as BlobTooLargeError).limit).toBe(10_000);
    expect(endless.destroyed).toBe(true);
    expect(produced).toBeLessThan(100_000);
    expect(await store.exists('packages/big/bits')).toBe(false);
    expect(await tree(root)).toEqual(['.tmp']);
  });

  it('accepts an upload of exactly the limit', async () => {
    const info = await store.put('x', Buffer.alloc(100), { maxBytes: 100 });
    expect(info.size).toBe(100);
  });

  it('keeps the previous blob when a replacement write fails', async () => {
    await store.put('k', 'original');
    await expect(store.put('k', Buffer.alloc(50), { maxBytes: 10 })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await readAll(await store.get('k'))).toBe('original');
  });

  it('removes the temporary file when the source stream fails', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('client went away'));
      },
    });
    await expect(store.put('k', failing)).rejects.toThrow('client went away');
    expect(await tree(root)).toEqual(['.tmp']);
  });

  it('rejects keys that could escape the root or collide with temporary files', async () => {
    for (const key of ['../x', 'a/../../x', '/etc/passwd', '.tmp/x', 'a//b', '', 'a/./b', 'a\\b', 'a/.hidden']) {
      await expect(store.put(key, 'x'), key).rejects.toBeInstanceOf(InvalidBlobKeyError);
      expect(() => store.pathOf(key)).toThrow(InvalidBlobKeyError);
    }
    await expect(store.get('../../etc/passwd')).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store.delete('..')).rejects.toBeInstanceOf(InvalidBlobKeyError);
  });

  it('reports missing blobs with a typed error', async () => {
    await expect(store.get('nope')).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.localPath('nope')).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.copy('nope', 'other')).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.size('nope')).toBeNull();
  });

  it('deletes blobs idempotently and prunes empty shard directories', async () => {
    await store.put('droplets/d1/droplet.tgz', 'x');
    expect(await store.delete('droplets/d1/droplet.tgz')).toBe(true);
    expect(await store.delete('droplets/d1/droplet.tgz')).toBe(false);
    expect(await tree(root)).toEqual(['.tmp']);
  });

  it('deletes a prefix and copies blobs', async () => {
    await store.put('cache/app1/a', 'a');
    await store.put('cache/app1/b', 'b');
    await store.put('cache/app2/a', 'c');
    await store.copy('cache/app2/a', 'copied/a');
    await store.deletePrefix('cache/app1');
    expect(await store.exists('cache/app1/a')).toBe(false);
    expect(await store.exists('cache/app2/a')).toBe(true);
    expect(await readAll(await store.get('copied/a'))).toBe('c');
  });

  it('chooses a content-addressed key from the digests', async () => {
    const info = await store.put((d) => `by-sha/${d.sha1}`, 'content');
    expect(info.key).toBe(`by-sha/${sha('sha1', 'content')}`);
    expect(await store.exists(info.key)).toBe(true);
  });

  it('moves a local file into the store (with digests and limit)', async () => {
    const src = path.join(root, '..', `${path.basename(root)}-src`);
    await fs.writeFile(src, 'moved content');
    try {
      const info = await store.putFile('m', src, { move: true });
      expect(info.sha256).toBe(sha('sha256', 'moved content'));
      await expect(fs.stat(src)).rejects.toThrow();
      await fs.writeFile(src, 'too long for the limit');
      await expect(store.putFile('m2', src, { move: true, maxBytes: 5 })).rejects.toBeInstanceOf(BlobTooLargeError);
      expect(await fs.readFile(src, 'utf8')).toBe('too long for the limit');
      expect(await store.exists('m2')).toBe(false);
    } finally {
      await fs.rm(src, { force: true });
    }
  });

  it('init clears temporary files left by a crash', async () => {
    await fs.writeFile(path.join(root, '.tmp', 'leftover'), 'partial');
    await store.init();
    expect(await tree(path.join(root, '.tmp'))).toEqual([]);
  });
});
