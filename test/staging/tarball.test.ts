import fs from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArchiveError, type ArchiveRejection } from '../../src/staging/archive.ts';
import { extractDroplet, launchSpec, readStagingInfo } from '../../src/staging/droplet.ts';
import { createTarGz, extractTarGz, listTarGz } from '../../src/staging/tarball.ts';
import { tempDir, tree } from './zip-fixtures.ts';

type RawEntry = { path: string; type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice'; body?: string | Buffer; linkpath?: string; mode?: number };

/** Hand-made tarballs: node-tar refuses to write the hostile names these tests need. */
function rawTarGz(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const type = e.type ?? 'File';
    const header = new tar.Header({
      path: e.path,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      size: type === 'File' ? body.length : 0,
      type,
      linkpath: e.linkpath ?? '',
      mtime: new Date(0),
      uid: 0,
      gid: 0,
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && body.length > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

describe('extractTarGz / droplets', () => {
  let base: string;
  let file: string;
  let dest: string;
  beforeEach(async () => {
    base = tempDir('kiln-tar-');
    file = path.join(base, 'droplet.tgz');
    dest = path.join(base, 'sandbox', 'out');
    await fs.mkdir(path.join(base, 'sandbox', 'sibling'), { recursive: true });
  });
  afterEach(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  async function expectRejected(entries: RawEntry[] | null, reason: ArchiveRejection, limits = {}) {
    if (entries) await fs.writeFile(file, rawTarGz(entries));
    const before = await tree(base);
    const err = await extractTarGz(file, dest, { limits }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveError);
    expect((err as ArchiveError).reason).toBe(reason);
    expect((err as ArchiveError).detail).toMatch(/^The droplet upload is invalid: /);
    expect(await tree(base)).toEqual(before);
  }

  it('round-trips a droplet layout with modes and inside symlinks', async () => {
    const src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'app', 'node_modules', '.bin'), { recursive: true });
    await fs.mkdir(path.join(src, 'deps', '0'), { recursive: true });
    await fs.mkdir(path.join(src, 'profile.d'), { recursive: true });
    await fs.writeFile(path.join(src, 'app', 'run'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    await fs.chmod(path.join(src, 'app', 'run'), 0o755);
    await fs.symlink('../../run', path.join(src, 'app', 'node_modules', '.bin', 'run'));
    await fs.writeFile(path.join(src, 'staging_info.yml'), '{"detected_buildpack":"x","start_command":"./run"}\n');
    await createTarGz(src, ['app', 'deps', 'profile.d', 'staging_info.yml'], file);
    expect((await listTarGz(file)).map((e) => e.path)).toContain('app/run');

    await extractDroplet(file, dest);
    expect((await fs.stat(path.join(dest, 'app', 'run'))).mode & 0o777).toBe(0o755);
    expect(await fs.readlink(path.join(dest, 'app', 'node_modules', '.bin', 'run'))).toBe('../../run');
    expect(await readStagingInfo(dest)).toEqual({ detectedBuildpack: 'x', startCommand: './run' });
  });

  it('rejects ../ and absolute entries', async () => {
    await expectRejected([{ path: 'app/ok', body: 'x' }, { path: '../sibling/evil', body: 'x' }], 'path-traversal');
    await expectRejected([{ path: '/tmp/kiln-tar-evil', body: 'x' }], 'absolute-path');
  });

  it('rejects symlinks out of the root, and files written through them', async () => {
    await expectRejected([{ path: 'app/link', type: 'SymbolicLink', linkpath: '../../sibling' }], 'symlink-escape');
    await expectRejected([{ path: 'link', type: 'SymbolicLink', linkpath: '/etc' }], 'symlink-escape');
  });

  it('rejects device entries and hard links out of the archive', async () => {
    await expectRejected([{ path: 'dev', type: 'CharacterDevice' }], 'unsupported-entry');
    await expectRejected([{ path: 'hard', type: 'Link', linkpath: '../sibling/x' }], 'path-traversal');
  });

  it('enforces entry and size limits', async () => {
    await expectRejected(
      Array.from({ length: 12 }, (_, i) => ({ path: `f${i}`, body: 'x' })),
      'too-many-entries',
      { maxEntries: 10 },
    );
    // Incompressible data: only the byte count can stop it.
    let x = 1;
    const noise = Buffer.from(new Uint8Array(2 * 1024 * 1024).map(() => (x = (x * 1103515245 + 12345) >>> 0) >>> 24));
    await expectRejected([{ path: 'big', body: noise }], 'too-large', { maxTotalBytes: 1024 * 1024 });
    // Zeros: node-tar's decompression-ratio guard trips first; same rejection.
    await expectRejected([{ path: 'bomb', body: Buffer.alloc(8 * 1024 * 1024) }], 'too-large');
  });

  it('rejects truncated and non-tar input', async () => {
    const good = rawTarGz([{ path: 'a', body: 'a'.repeat(10_000) }, { path: 'b', body: 'b'.repeat(10_000) }]);
    await fs.writeFile(file, good.subarray(0, Math.floor(good.length / 2)));
    await expectRejected(null, 'corrupt');
    await fs.writeFile(file, 'not a tarball');
    await expectRejected(null, 'corrupt');
  });

  it('launchSpec sources profile scripts in CF order and execs the command in app/', async () => {
    await fs.mkdir(path.join(dest, 'app', '.profile.d'), { recursive: true });
    await fs.mkdir(path.join(dest, 'deps', '0', 'profile.d'), { recursive: true });
    await fs.mkdir(path.join(dest, 'profile.d'), { recursive: true });
    await fs.writeFile(path.join(dest, 'deps', '0', 'profile.d', 'a.sh'), 'export ORDER="deps"\n');
    await fs.writeFile(path.join(dest, 'profile.d', 'b.sh'), 'export ORDER="$ORDER,profile"\n');
    await fs.writeFile(path.join(dest, 'app', '.profile.d', 'c.sh'), 'export ORDER="$ORDER,app"\n');
    const spec = launchSpec(dest, 'echo "$ORDER|$PWD|$PORT"', { PORT: '1234' });
    const { execFile } = await import('node:child_process');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(spec.file, spec.args, { cwd: spec.cwd, env: spec.env }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    expect(out.trim()).toBe(`deps,profile,app|${await fs.realpath(path.join(dest, 'app'))}|1234`);
  });
});
