import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CfIgnore, gatherAppEntries, matchCandidates, splitByMatches, writeAppZip } from '../../src/cli/zip-app.ts';
import { extractZip, listZip } from '../../src/staging/zip.ts';

let dir: string;
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');
const write = (rel: string, content: string, mode?: number) => {
  const abs = path.join(dir, ...rel.split('/'));
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  fs.writeFileSync(abs, content);
  if (mode !== undefined) fs.chmodSync(abs, mode);
};
const paths = async () => (await gatherAppEntries(dir)).map((e) => (e.type === 'directory' ? `${e.path}/` : e.path));

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-zip-app-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('CfIgnore', () => {
  const ig = (text: string) => CfIgnore.fromText(text, false);

  it('matches a bare name at any depth, files and directories alike', () => {
    const rules = ig('*.log\ntmp');
    expect(rules.ignores('a.log', false)).toBe(true);
    expect(rules.ignores('deep/er/b.log', false)).toBe(true);
    expect(rules.ignores('tmp', true)).toBe(true);
    expect(rules.ignores('src/tmp', false)).toBe(true);
    expect(rules.ignores('a.log.txt', false)).toBe(false);
  });

  it('anchors patterns with a leading or inner slash to the app root', () => {
    const rules = ig('/build\ndocs/*.md');
    expect(rules.ignores('build', true)).toBe(true);
    expect(rules.ignores('src/build', true)).toBe(false);
    expect(rules.ignores('docs/a.md', false)).toBe(true);
    expect(rules.ignores('docs/sub/a.md', false)).toBe(false);
    expect(rules.ignores('x/docs/a.md', false)).toBe(false);
  });

  it('applies a trailing slash to directories only', () => {
    const rules = ig('cache/');
    expect(rules.ignores('cache', true)).toBe(true);
    expect(rules.ignores('cache', false)).toBe(false);
  });

  it('supports **, ?, character classes, negation (last rule wins), comments and escapes', () => {
    const rules = ig('# comment\n**/fixtures/**\nlogs/**/*.txt\nfile?.js\n[ab].css\n*.env\n!keep.env\n\\#hash');
    expect(rules.ignores('fixtures/x', false)).toBe(true);
    expect(rules.ignores('a/b/fixtures/c/d', false)).toBe(true);
    expect(rules.ignores('logs/a.txt', false)).toBe(true);
    expect(rules.ignores('logs/x/y/a.txt', false)).toBe(true);
    expect(rules.ignores('file1.js', false)).toBe(true);
    expect(rules.ignores('file10.js', false)).toBe(false);
    expect(rules.ignores('a.css', false)).toBe(true);
    expect(rules.ignores('c.css', false)).toBe(false);
    expect(rules.ignores('prod.env', false)).toBe(true);
    expect(rules.ignores('keep.env', false)).toBe(false);
    expect(rules.ignores('#hash', false)).toBe(true);
    expect(rules.ignores('# comment', false)).toBe(false);
  });

  it('ignores trailing blanks and CRLF line ends', () => {
    const rules = ig('dist  \r\nout\r\n');
    expect(rules.ignores('dist', true)).toBe(true);
    expect(rules.ignores('out', true)).toBe(true);
  });
});

describe('gatherAppEntries', () => {
  it('leaves out the built-in ignores but keeps node_modules unless .cfignore lists it', async () => {
    write('server.js', 'x');
    write('manifest.yml', 'applications: []');
    write('manifest.yaml', 'applications: []');
    write('.cfignore', '');
    write('.gitignore', 'node_modules');
    write('.DS_Store', '');
    write('.git/HEAD', 'ref');
    write('.svn/x', '');
    write('.hg/x', '');
    write('_darcs/x', '');
    write('node_modules/dep/index.js', 'dep');
    write('lib/.DS_Store', '');
    expect(await paths()).toEqual(['lib/', 'node_modules/', 'node_modules/dep/', 'node_modules/dep/index.js', 'server.js']);
  });

  it('honours .cfignore: ignored directories drop their whole subtree, negations re-include files', async () => {
    write('.cfignore', 'node_modules/\n*.log\n!important.log\n/secret.txt\n');
    write('node_modules/dep/index.js', 'dep');
    write('a.log', 'log');
    write('important.log', 'keep');
    write('secret.txt', 'no');
    write('sub/secret.txt', 'yes');
    write('sub/b.log', 'no');
    expect(await paths()).toEqual(['important.log', 'sub/', 'sub/secret.txt']);
  });

  it('computes SHA-1, size and an octal mode with owner read/write for each file; records symlinks unfollowed', async () => {
    write('a.txt', 'hello');
    write('bin/run', '#!/bin/sh\n', 0o755);
    write('ro.txt', 'read only', 0o444);
    write('empty', '');
    fs.symlinkSync('a.txt', path.join(dir, 'link'));
    const entries = await gatherAppEntries(dir);
    const by = Object.fromEntries(entries.map((e) => [e.path, e]));
    expect(by['a.txt']).toMatchObject({ type: 'file', size: 5, sha1: sha1('hello'), mode: 0o644 });
    expect(by['bin/run']).toMatchObject({ type: 'file', mode: 0o755, sha1: sha1('#!/bin/sh\n') });
    expect(by['ro.txt']!.mode).toBe(0o644);
    expect(by['empty']).toMatchObject({ size: 0, sha1: sha1('') });
    expect(by['link']).toMatchObject({ type: 'symlink', linkTarget: 'a.txt', sha1: null });
    expect(by['bin']).toMatchObject({ type: 'directory' });

    // Only non-empty regular files are offered for matching, modes as octal strings.
    expect(matchCandidates(entries)).toEqual([
      { path: 'a.txt', mode: '644', checksum: { value: sha1('hello') }, size_in_bytes: 5 },
      { path: 'bin/run', mode: '755', checksum: { value: sha1('#!/bin/sh\n') }, size_in_bytes: 10 },
      { path: 'ro.txt', mode: '644', checksum: { value: sha1('read only') }, size_in_bytes: 9 },
    ]);
  });

  it('rejects something that is not a directory', async () => {
    write('file', 'x');
    await expect(gatherAppEntries(path.join(dir, 'file'))).rejects.toThrow(/not a directory/);
    await expect(gatherAppEntries(path.join(dir, 'missing'))).rejects.toThrow(/not a directory/);
  });
});

describe('splitByMatches and writeAppZip', () => {
  it('leaves every file with a matched SHA-1 out of the zip and lists it under resources', async () => {
    write('same1.txt', 'shared content');
    write('sub/same2.txt', 'shared content');
    write('new.txt', 'new');
    write('empty.txt', '');
    fs.symlinkSync('new.txt', path.join(dir, 'link'));
    const entries = await gatherAppEntries(dir);
    const { matched, toZip } = splitByMatches(entries, [{ checksum: { value: sha1('shared content').toUpperCase() } }]);
    expect(matched.map((m) => m.path)).toEqual(['same1.txt', 'sub/same2.txt']);
    expect(toZip.map((e) => e.path)).toEqual(['empty.txt', 'link', 'new.txt', 'sub']);

    const zipFile = path.join(os.tmpdir(), `kiln-zip-app-${process.pid}.zip`);
    try {
      const size = await writeAppZip(dir, toZip, zipFile);
      expect(size).toBeGreaterThan(0);
      const listed = await listZip(zipFile);
      expect(listed.map((e) => [e.name, e.type])).toEqual([
        ['empty.txt', 'file'],
        ['link', 'symlink'],
        ['new.txt', 'file'],
        ['sub/', 'directory'],
      ]);
      expect(listed.find((e) => e.name === 'new.txt')!.mode).toBe(0o644);

      // The server's own (safe) extractor accepts it and gets the same bytes back.
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-zip-out-'));
      try {
        await extractZip(zipFile, path.join(out, 'app'));
        expect(fs.readFileSync(path.join(out, 'app', 'new.txt'), 'utf8')).toBe('new');
        expect(fs.readlinkSync(path.join(out, 'app', 'link'))).toBe('new.txt');
        expect(fs.statSync(path.join(out, 'app', 'sub')).isDirectory()).toBe(true);
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    } finally {
      fs.rmSync(zipFile, { force: true });
    }
  });

  it('writes the same bytes for the same tree', async () => {
    write('a.txt', 'a');
    write('d/b.txt', 'b');
    const entries = await gatherAppEntries(dir);
    const z1 = path.join(os.tmpdir(), `kiln-zip-a-${process.pid}.zip`);
    const z2 = path.join(os.tmpdir(), `kiln-zip-b-${process.pid}.zip`);
    try {
      await writeAppZip(dir, entries, z1);
      await writeAppZip(dir, entries, z2);
      expect(fs.readFileSync(z1).equals(fs.readFileSync(z2))).toBe(true);
    } finally {
      fs.rmSync(z1, { force: true });
      fs.rmSync(z2, { force: true });
    }
  });
});
