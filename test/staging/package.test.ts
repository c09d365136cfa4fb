import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FilesystemBlobstore } from '../../src/blobstore/filesystem.ts';
import { ResourceCache } from '../../src/blobstore/resource-cache.ts';
import { KilnError } from '../../src/domain/errors.ts';
import { ArchiveError } from '../../src/staging/archive.ts';
import { buildPackage } from '../../src/staging/package.ts';
import { extractZip, listZip } from '../../src/staging/zip.ts';
import { makeZip, tempDir, tree } from './zip-fixtures.ts';

const sha1 = (data: string) => createHash('sha1').update(data).digest('hex');

describe('buildPackage', () => {
  let base: string;
  let cache: ResourceCache;
  beforeEach(async () => {
    base = tempDir('kiln-pkg-');
    const store = new FilesystemBlobstore(path.join(base, 'blobs'));
    await store.init();
    cache = new ResourceCache(store);
  });
  afterEach(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  const work = (name: string) => path.join(base, 'work', name);

  it('merges cached resources into the uploaded zip, preserving modes, and caches uploaded files', async () => {
    // First push: everything uploaded.
    const first = await makeZip(path.join(base, 'first.zip'), [
      { type: 'file', name: 'server.js', content: 'require("./lib/util")', mode: 0o644 },
      { type: 'file', name: 'lib/util.js', content: 'module.exports = 42', mode: 0o644 },
      { type: 'file', name: 'bin/start', content: '#!/bin/sh\nnode server.js\n', mode: 0o755 },
    ]);
    await buildPackage({ bitsZip: first, resources: [], cache, workDir: work('1') });
    expect(await cache.has(sha1('module.exports = 42'))).toBe(true);

    // Second push: the CLI matched lib/util.js and bin/start and left them out of the zip.
    const second = await makeZip(path.join(base, 'second.zip'), [
      { type: 'dir', name: 'lib/' },
      { type: 'file', name: 'server.js', content: 'require("./lib/util") // v2', mode: 0o644 },
    ]);
    const built = await buildPackage({
      bitsZip: second,
      resources: [
        { path: 'lib/util.js', sha1: sha1('module.exports = 42'), size: 19, mode: '644' },
        { path: 'bin/start', sha1: sha1('#!/bin/sh\nnode server.js\n'), size: 25, mode: '755' },
      ],
      cache,
      workDir: work('2'),
    });
    expect(built.files).toBe(5);
    const entries = await listZip(built.zipPath);
    expect(entries.map((e) => e.name).sort()).toEqual(['bin/', 'bin/start', 'lib/', 'lib/util.js', 'server.js']);
    expect(entries.find((e) => e.name === 'bin/start')?.mode).toBe(0o755);
    const out = path.join(base, 'check');
    await extractZip(built.zipPath, out);
    expect(await fs.readFile(path.join(out, 'server.js'), 'utf8')).toBe('require("./lib/util") // v2');
    expect(await fs.readFile(path.join(out, 'lib/util.js'), 'utf8')).toBe('module.exports = 42');
    expect((await fs.stat(path.join(out, 'bin/start'))).mode & 0o777).toBe(0o755);
  });

  it('builds a package from resources alone (no bits part)', async () => {
    const src = path.join(base, 'index.html');
    await fs.writeFile(src, '<h1>hi</h1>');
    await cache.addFile(src);
    const built = await buildPackage({
      bitsZip: null,
      resources: [{ path: 'public/index.html', sha1: sha1('<h1>hi</h1>'), size: 11, mode: '0644' }],
      cache,
      workDir: work('r'),
    });
    expect((await listZip(built.zipPath)).map((e) => e.name)).toEqual(['public/', 'public/index.html']);
  });

  it('rejects a resource the cache does not hold', async () => {
    const err = await buildPackage({
      bitsZip: null,
      resources: [{ path: 'a.js', sha1: sha1('never cached'), size: 12, mode: '644' }],
      cache,
      workDir: work('m'),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveError);
    expect((err as ArchiveError).reason).toBe('missing-resource');
    expect((err as ArchiveError).status).toBe(422);
  });

  it('rejects resource paths outside the app and invalid modes before touching the disk', async () => {
    for (const p of ['../escape.js', '/etc/passwd', 'a/../../b', 'C:/x', '']) {
      const err = await buildPackage({
        bitsZip: null,
        resources: [{ path: p, sha1: sha1('x'), size: 1, mode: '644' }],
        cache,
        workDir: work('p'),
      }).catch((e: unknown) => e);
      expect((err as KilnError).errorName, p).toBe('AppResourcesFilePathInvalid');
    }
    const err = await buildPackage({
      bitsZip: null,
      resources: [{ path: 'ok.js', sha1: sha1('x'), size: 1, mode: '999' }],
      cache,
      workDir: work('p'),
    }).catch((e: unknown) => e);
    expect((err as KilnError).errorName).toBe('AppResourcesFileModeInvalid');
    expect(await tree(path.join(base, 'work'))).toEqual([]);
  });

  it('does not write a resource through a symlink planted by the zip', async () => {
    const src = path.join(base, 'payload');
    await fs.writeFile(src, 'payload!');
    await cache.addFile(src);
    const zip = await makeZip(path.join(base, 'link.zip'), [
      { type: 'dir', name: 'real/' },
      { type: 'symlink', name: 'alias', target: 'real' },
    ]);
    const err = await buildPackage({
      bitsZip: zip,
      resources: [{ path: 'alias/x.txt', sha1: sha1('payload!'), size: 8, mode: '644' }],
      cache,
      workDir: work('l'),
    }).catch((e: unknown) => e);
    expect((err as KilnError).errorName).toBe('AppResourcesFilePathInvalid');
    expect(await tree(path.join(work('l'), 'package', 'real'))).toEqual([]);
  });

  it('passes zip rejections through and leaves no extracted files', async () => {
    const zip = await makeZip(path.join(base, 'evil.zip'), [
      { type: 'file', name: 'fine.txt', content: 'ok' },
      { type: 'file', name: '../../evil.txt', content: 'x' },
    ]);
    const err = await buildPackage({ bitsZip: zip, resources: [], cache, workDir: work('e') }).catch((e: unknown) => e);
    expect((err as ArchiveError).reason).toBe('path-traversal');
    expect(await tree(work('e'))).toEqual([]);
    expect(await cache.has(sha1('ok'))).toBe(false);
  });
});
