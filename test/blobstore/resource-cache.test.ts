import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FilesystemBlobstore } from '../../src/blobstore/filesystem.ts';
import {
  parseResourceMode,
  presentResource,
  ResourceCache,
  resourceListSchema,
} from '../../src/blobstore/resource-cache.ts';
import { KilnError } from '../../src/domain/errors.ts';
import { tempDir } from '../staging/zip-fixtures.ts';

const sha1 = (data: string) => createHash('sha1').update(data).digest('hex');

describe('ResourceCache', () => {
  let dir: string;
  let cache: ResourceCache;
  let store: FilesystemBlobstore;
  beforeEach(async () => {
    dir = tempDir('kiln-rc-');
    store = new FilesystemBlobstore(path.join(dir, 'blobs'));
    await store.init();
    cache = new ResourceCache(store);
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('adds files by SHA-1 and matches only what it holds with the same size', async () => {
    const app = path.join(dir, 'app');
    await fs.mkdir(path.join(app, 'lib'), { recursive: true });
    await fs.writeFile(path.join(app, 'a.js'), 'console.log(1)');
    await fs.writeFile(path.join(app, 'lib', 'b.js'), 'module.exports = 2');
    await fs.writeFile(path.join(app, 'empty'), '');
    await fs.symlink('a.js', path.join(app, 'link.js'));
    expect(await cache.addDirectory(app)).toBe(2);

    const matched = await cache.match([
      { path: 'a.js', sha1: sha1('console.log(1)'), size: 14, mode: '644' },
      { path: 'x/b.js', sha1: sha1('module.exports = 2'), size: 18, mode: '755' },
      { path: 'wrong-size', sha1: sha1('console.log(1)'), size: 99, mode: '644' },
      { path: 'unknown', sha1: sha1('nope'), size: 4, mode: '644' },
      { path: 'empty', sha1: sha1(''), size: 0, mode: '644' },
    ]);
    expect(matched.map((m) => m.path)).toEqual(['a.js', 'x/b.js']);
  });

  it('copies a cached file out with its mode and verifies the checksum', async () => {
    const src = path.join(dir, 'src.sh');
    await fs.writeFile(src, '#!/bin/sh\necho hi\n');
    const digest = await cache.addFile(src);
    expect(digest).toBe(sha1('#!/bin/sh\necho hi\n'));
    const dest = path.join(dir, 'out', 'nested', 'run.sh');
    await cache.copyTo(digest!, dest, 0o755);
    expect(await fs.readFile(dest, 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect((await fs.stat(dest)).mode & 0o777).toBe(0o755);
  });

  it('evicts a corrupted entry and reports ResourceChecksumMismatch', async () => {
    const src = path.join(dir, 'f');
    await fs.writeFile(src, 'good content');
    const digest = (await cache.addFile(src))!;
    await fs.writeFile(store.pathOf(ResourceCache.keyOf(digest)), 'tampered!!!!');
    const err = await cache.copyTo(digest, path.join(dir, 'out'), 0o644).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).errorName).toBe('ResourceChecksumMismatch');
    expect(await cache.has(digest)).toBe(false);
    await expect(fs.stat(path.join(dir, 'out'))).rejects.toThrow();
  });

  it('parses both the V3 and the V2 resource shapes and presents mode as an octal string', () => {
    const parsed = resourceListSchema.parse([
      { path: 'a', checksum: { value: 'A'.repeat(40) }, size_in_bytes: 3, mode: '755' },
      { fn: 'b', sha1: 'b'.repeat(40), size: 4, mode: '0644' },
      { fn: 'c', sha1: 'c'.repeat(40), size: 5 },
      { path: 'd', checksum: { value: 'd'.repeat(40) }, size_in_bytes: 6, mode: 0o600 },
    ]);
    expect(parsed).toEqual([
      { path: 'a', sha1: 'a'.repeat(40), size: 3, mode: '755' },
      { path: 'b', sha1: 'b'.repeat(40), size: 4, mode: '0644' },
      { path: 'c', sha1: 'c'.repeat(40), size: 5, mode: '644' },
      { path: 'd', sha1: 'd'.repeat(40), size: 6, mode: '600' },
    ]);
    expect(presentResource(parsed[0]!)).toEqual({ path: 'a', mode: '755', checksum: { value: 'a'.repeat(40) }, size_in_bytes: 3 });
    expect(resourceListSchema.safeParse([{ path: 'a', checksum: { value: 'xyz' }, size_in_bytes: 1 }]).success).toBe(false);
  });

  it('enforces octal modes with owner read/write like Cloud Controller', () => {
    expect(parseResourceMode('644', 'a')).toBe(0o644);
    expect(parseResourceMode('0755', 'a')).toBe(0o755);
    for (const bad of ['abc', '999', '400', '', '7777777']) {
      const err = (() => {
        try {
          parseResourceMode(bad, 'a');
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err, bad).toBeInstanceOf(KilnError);
      expect((err as KilnError).errorName).toBe('AppResourcesFileModeInvalid');
    }
  });
});
