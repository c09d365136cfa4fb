import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitSourceCache } from '../../src/gitops/git-source.ts';
import { TestRepo } from './git-repo.ts';

let root: string;
let repo: TestRepo;
let cache: GitSourceCache;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'git-source-'));
  repo = new TestRepo(root);
  cache = new GitSourceCache({ cacheDir: path.join(root, 'cache'), allowLocal: true });
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('git sources without Kubernetes', () => {
  it('resolves a branch, a tag, a full and an abbreviated commit, and HEAD', async () => {
    const first = repo.commit({ 'app/index.js': 'v1', 'README': 'top' }, 'one');
    repo.tag('v1');
    const second = repo.commit({ 'app/index.js': 'v2' }, 'two');
    expect(await cache.resolve(repo.url, 'main')).toBe(second);
    expect(await cache.resolve(repo.url, undefined)).toBe(second);
    expect(await cache.resolve(repo.url, 'v1')).toBe(first);
    expect(await cache.resolve(repo.url, first)).toBe(first);
    expect(await cache.resolve(repo.url, first.slice(0, 10))).toBe(first);
    await expect(cache.resolve(repo.url, 'nope')).rejects.toThrow(/names no branch, tag or commit/);
  });

  it('sees a new commit on the branch at the next resolve (a local path works as well as file://)', async () => {
    const before = await cache.resolve(repo.bare, 'main');
    const after = repo.commit({ 'app/index.js': 'v3' }, 'three');
    expect(after).not.toBe(before);
    expect(await cache.resolve(repo.bare, 'main')).toBe(after);
  });

  it('checks a commit out once and serves it from the cache by commit', async () => {
    const v1 = await cache.resolve(repo.url, 'v1');
    const tree = await cache.checkout(repo.url, v1);
    expect(tree).toBe(path.join(root, 'cache', 'trees', path.basename(path.dirname(tree)), v1));
    expect(fs.readFileSync(path.join(tree, 'app', 'index.js'), 'utf8')).toBe('v1');
    expect(fs.existsSync(path.join(tree, '.git'))).toBe(false);
    fs.writeFileSync(path.join(tree, 'marker'), 'cached');
    expect(await cache.checkout(repo.url, v1)).toBe(tree);
    expect(fs.existsSync(path.join(tree, 'marker'))).toBe(true);
    expect(await cache.subdir(tree, 'app')).toBe(fs.realpathSync(path.join(tree, 'app')));
    await expect(cache.subdir(tree, '../..')).rejects.toThrow(/leaves the repository/);
    await expect(cache.subdir(tree, 'missing')).rejects.toThrow(/does not exist/);
  });

  it('refuses credentials written into the URL, and reports a repository that is not there', async () => {
    await expect(cache.resolve('https://user:secret@git.example.invalid/x.git', 'main')).rejects.toThrow(/may not be written into the URL/);
    await expect(cache.resolve(`file://${root}/missing.git`, 'main')).rejects.toThrow(/git clone failed/);
  });

  it("refuses repositories on Kiln's own machine unless local sources are allowed", async () => {
    const strict = new GitSourceCache({ cacheDir: path.join(root, 'strict-cache') });
    for (const url of [repo.url, repo.bare, `file://${repo.bare}`, '../../etc'])
      await expect(strict.resolve(url, 'main'), url).rejects.toThrow(/not allowed/);
    await expect(strict.resolve('ext::sh -c id', 'main')).rejects.toThrow(/not allowed/);
  });
});
