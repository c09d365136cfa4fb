import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArchiveError, type ArchiveRejection } from '../../src/staging/archive.ts';
import { extractZip, listZip, zipDirectory } from '../../src/staging/zip.ts';
import { makeZip, tempDir, tree, type FixtureEntry } from './zip-fixtures.ts';

describe('extractZip', () => {
  let base: string;
  let dest: string;
  let zipFile: string;
  beforeEach(async () => {
    // base/ holds the zip, the target dir and a sentinel sibling that an escape would hit.
    base = tempDir('kiln-zip-');
    dest = path.join(base, 'sandbox', 'out');
    zipFile = path.join(base, 'upload.zip');
    await fs.mkdir(path.join(base, 'sandbox', 'sibling'), { recursive: true });
  });
  afterEach(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  async function expectRejected(entries: FixtureEntry[] | null, reason: ArchiveRejection, limits = {}) {
    if (entries) await makeZip(zipFile, entries);
    const before = await tree(base);
    const err = await extractZip(zipFile, dest, { limits }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveError);
    expect((err as ArchiveError).reason).toBe(reason);
    expect((err as ArchiveError).status).toBe(422);
    expect((err as ArchiveError).errorName).toBe('UnprocessableEntity');
    expect((err as ArchiveError).detail).toMatch(/^The app upload is invalid: /);
    // Nothing written anywhere: not in the target (removed), not beside it, not above it.
    expect(await tree(base)).toEqual(before);
    return err as ArchiveError;
  }

  it('extracts files, directories, modes and inside symlinks', async () => {
    await makeZip(zipFile, [
      { type: 'dir', name: 'lib/' },
      { type: 'file', name: 'lib/index.js', content: 'module.exports = 1', mode: 0o644 },
      { type: 'file', name: 'bin/run', content: '#!/bin/sh\n', mode: 0o755 },
      { type: 'file', name: 'readonly.txt', content: 'r', mode: 0o400 },
      { type: 'symlink', name: 'current', target: 'lib' },
      { type: 'symlink', name: 'lib/self.js', target: './index.js' },
      { type: 'dir', name: 'empty/' },
    ]);
    const result = await extractZip(zipFile, dest);
    expect(result).toEqual({ files: 3, directories: 2, symlinks: 2, bytes: 'module.exports = 1'.length + 10 + 1 + 3 + 10 });
    expect(await fs.readFile(path.join(dest, 'current', 'index.js'), 'utf8')).toBe('module.exports = 1');
    expect((await fs.stat(path.join(dest, 'bin/run'))).mode & 0o777).toBe(0o755);
    expect((await fs.stat(path.join(dest, 'lib/index.js'))).mode & 0o777).toBe(0o644);
    // Owner read/write is always kept, so Kiln can clean up what it extracted.
    expect((await fs.stat(path.join(dest, 'readonly.txt'))).mode & 0o777).toBe(0o600);
    expect(await fs.readlink(path.join(dest, 'current'))).toBe('lib');
    expect((await fs.stat(path.join(dest, 'empty'))).isDirectory()).toBe(true);
  });

  it('extracts into an existing empty directory and refuses a non-empty one', async () => {
    await makeZip(zipFile, [{ type: 'file', name: 'a.txt', content: 'a' }]);
    await fs.mkdir(dest, { recursive: true });
    await extractZip(zipFile, dest);
    expect(await tree(dest)).toEqual(['a.txt']);
    await expect(extractZip(zipFile, dest)).rejects.toThrow(/not empty/);
  });

  it('rejects ../ entries', async () => {
    await expectRejected(
      [
        { type: 'file', name: 'ok.txt', content: 'fine' },
        { type: 'file', name: '../sibling/evil.txt', content: 'pwned' },
      ],
      'path-traversal',
    );
  });

  it('rejects nested ../ that climbs out', async () => {
    await expectRejected(
      [
        { type: 'file', name: 'ok.txt', content: 'fine' },
        { type: 'file', name: 'a/b/../../../../x.txt', content: 'pwned' },
      ],
      'path-traversal',
    );
  });

  it('rejects absolute paths and drive letters', async () => {
    await expectRejected([{ type: 'file', name: '/tmp/kiln-absolute-evil.txt', content: 'x' }], 'absolute-path');
    await expect(fs.stat('/tmp/kiln-absolute-evil.txt')).rejects.toThrow();
    await expectRejected([{ type: 'file', name: 'C:/evil.txt', content: 'x' }], 'absolute-path');
  });

  it('rejects backslash traversal written by Windows tools', async () => {
    await expectRejected([{ type: 'file', name: '..\\sibling\\evil.txt', content: 'x' }], 'path-traversal');
  });

  it('rejects symlinks pointing outside the root, absolute or relative', async () => {
    await expectRejected(
      [
        { type: 'file', name: 'ok.txt', content: 'fine' },
        { type: 'symlink', name: 'escape', target: '../sibling' },
      ],
      'symlink-escape',
    );
    await expectRejected([{ type: 'symlink', name: 'etc', target: '/etc' }], 'symlink-escape');
  });

  it('never writes through a symlink, even one created earlier in the archive', async () => {
    // Classic two-step attack: a link to the outside, then a file "inside" the link.
    await expectRejected(
      [
        { type: 'symlink', name: 'link', target: '../sibling' },
        { type: 'file', name: 'link/evil.txt', content: 'pwned' },
      ],
      'symlink-escape',
    );
  });

  it('rejects symlink chains that only escape when resolved', async () => {
    // d/l -> .. is the root itself (fine alone); x -> d/l/.. looks like "d" lexically but really is root/..
    await expectRejected(
      [
        { type: 'dir', name: 'd/' },
        { type: 'symlink', name: 'd/l', target: '..' },
        { type: 'symlink', name: 'x', target: 'd/l/..' },
      ],
      'symlink-escape',
    );
  });

  it('rejects archives with too many entries', async () => {
    const entries: FixtureEntry[] = Array.from({ length: 20 }, (_, i) => ({ type: 'file', name: `f${i}.txt`, content: 'x' }));
    await expectRejected(entries, 'too-many-entries', { maxEntries: 10 });
  });

  it('rejects zip bombs by the bytes really decompressed', async () => {
    // 8 MiB of zeros deflate to a few KiB.
    await makeZip(zipFile, [
      { type: 'file', name: 'small.txt', content: 'x' },
      { type: 'file', name: 'bomb.bin', content: Buffer.alloc(8 * 1024 * 1024) },
    ]);
    expect((await fs.stat(zipFile)).size).toBeLessThan(64 * 1024);
    await expectRejected(null, 'too-large', { maxTotalBytes: 1024 * 1024 });
  });

  it('counts real bytes even when the headers understate the size', async () => {
    const content = Buffer.alloc(256 * 1024, 7);
    await makeZip(zipFile, [{ type: 'file', name: 'liar.bin', content }]);
    // Patch the declared uncompressed size (local header offset 22, central directory offset 24) down to 1.
    const buf = await fs.readFile(zipFile);
    buf.writeUInt32LE(1, 22);
    const cd = buf.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    buf.writeUInt32LE(1, cd + 24);
    await fs.writeFile(zipFile, buf);
    const err = await expectRejected(null, 'corrupt', { maxTotalBytes: 1024 });
    expect(err.detail).toMatch(/Invalid zip/);
  });

  it('rejects truncated archives', async () => {
    await makeZip(zipFile, [
      { type: 'file', name: 'a.txt', content: 'a'.repeat(5000) },
      { type: 'file', name: 'b.txt', content: 'b'.repeat(5000) },
    ]);
    const buf = await fs.readFile(zipFile);
    await fs.writeFile(zipFile, buf.subarray(0, Math.floor(buf.length / 2)));
    await expectRejected(null, 'corrupt');
  });

  it('rejects data that is not a zip at all, and empty files', async () => {
    await fs.writeFile(zipFile, 'this is not a zip file, just text');
    await expectRejected(null, 'corrupt');
    await fs.writeFile(zipFile, '');
    await expectRejected(null, 'corrupt');
  });

  it('rejects an entry whose data was corrupted (CRC/inflate failure) and removes earlier files', async () => {
    await makeZip(zipFile, [
      { type: 'file', name: 'first.txt', content: 'first file is fine' },
      { type: 'file', name: 'second.txt', content: 'second '.repeat(200) },
    ]);
    const buf = await fs.readFile(zipFile);
    const second = buf.indexOf(Buffer.from('second.txt'));
    // Flip bytes in the compressed data right after the local header of the second entry.
    for (let i = second + 20; i < second + 40; i++) buf[i] = buf[i]! ^ 0xff;
    await fs.writeFile(zipFile, buf);
    await expectRejected(null, 'corrupt');
  });

  it('rejects entries that contradict each other (a file used as a directory, a link over a file)', async () => {
    await expectRejected(
      [
        { type: 'file', name: 'a', content: 'file' },
        { type: 'file', name: 'a/b.txt', content: 'below a file' },
      ],
      'corrupt',
    );
    await expectRejected(
      [
        { type: 'file', name: 'x', content: 'file' },
        { type: 'symlink', name: 'x', target: 'y' },
      ],
      'corrupt',
    );
  });

  it('uses the catalogue wording for buildpack zips', async () => {
    await makeZip(zipFile, [{ type: 'file', name: '../x.txt', content: 'x' }]);
    const err = await extractZip(zipFile, dest, { kind: 'buildpack' }).catch((e: unknown) => e);
    expect((err as ArchiveError).detail).toMatch(/^Buildpack zip error: Relative path/);
  });
});

describe('zipDirectory', () => {
  let base: string;
  beforeEach(() => {
    base = tempDir('kiln-zipdir-');
  });
  afterEach(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  it('round-trips files, directories, modes and symlinks like the cf CLI zips them', async () => {
    const src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'lib', 'deep'), { recursive: true });
    await fs.writeFile(path.join(src, 'lib', 'a.js'), 'a');
    await fs.writeFile(path.join(src, 'run.sh'), '#!/bin/sh', { mode: 0o755 });
    await fs.chmod(path.join(src, 'run.sh'), 0o755);
    await fs.symlink('lib/a.js', path.join(src, 'link.js'));
    const out = path.join(base, 'out.zip');
    expect(await zipDirectory(src, out, { exclude: (rel) => rel === 'skip.txt' })).toBe(5);
    const listing = await listZip(out);
    expect(listing.map((e) => [e.name, e.type])).toEqual([
      ['lib/', 'directory'],
      ['lib/a.js', 'file'],
      ['lib/deep/', 'directory'],
      ['link.js', 'symlink'],
      ['run.sh', 'file'],
    ]);
    const dest = path.join(base, 'dest');
    await extractZip(out, dest);
    expect((await fs.stat(path.join(dest, 'run.sh'))).mode & 0o777).toBe(0o755);
    expect(await fs.readlink(path.join(dest, 'link.js'))).toBe('lib/a.js');
    expect(await tree(dest)).toEqual(await tree(src));
  });
});
