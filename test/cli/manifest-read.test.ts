import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildPushManifest, findManifest, parseInstances, parseMemoryMb, PushUsageError } from '../../src/cli/manifest.ts';

const src = (text: string, file = '/apps/demo/manifest.yml') => ({ text, file });

describe('buildPushManifest', () => {
  it('adds default-route and drops the local path, keeping the other keys', () => {
    const { app, yaml } = buildPushManifest(
      src('applications:\n- name: web\n  path: ./site\n  memory: 256M\n  instances: 2\n  env:\n    A: 1\n    B: x\n  buildpacks: [nodejs_buildpack]\n'),
      {},
    );
    expect(parse(yaml)).toEqual({
      applications: [{ name: 'web', memory: '256M', instances: 2, env: { A: 1, B: 'x' }, buildpacks: ['nodejs_buildpack'], 'default-route': true }],
    });
    expect(app).toEqual({
      name: 'web',
      path: path.resolve('/apps/demo/site'),
      instances: 2,
      memoryMb: 256,
      env: { A: '1', B: 'x' },
      noRoute: false,
      randomRoute: false,
      hasRoutes: false,
    });
  });

  it('lets flags override the manifest and renames a single-app manifest, as cf does', () => {
    const { app, yaml } = buildPushManifest(src('version: 1\napplications:\n- name: old\n  memory: 64M\n'), { name: 'new', instances: 3, memory: '1G' });
    expect(parse(yaml)).toEqual({ version: 1, applications: [{ name: 'new', memory: '1G', instances: 3, 'default-route': true }] });
    expect(app).toMatchObject({ name: 'new', instances: 3, memoryMb: 1024 });
  });

  it('puts instance and memory flags on the web process entry when the manifest has one', () => {
    const { app, yaml } = buildPushManifest(
      src('applications:\n- name: a\n  processes:\n  - type: worker\n    instances: 1\n  - type: web\n    instances: 1\n'),
      { instances: 4, memory: '128M' },
    );
    expect(parse(yaml).applications[0].processes).toEqual([
      { type: 'worker', instances: 1 },
      { type: 'web', instances: 4, memory: '128M' },
    ]);
    expect(parse(yaml).applications[0].instances).toBeUndefined();
    expect(app).toMatchObject({ instances: 4, memoryMb: 128 });
  });

  it('adds no default-route with no-route or random-route, and notes routes and disk_quota', () => {
    expect(parse(buildPushManifest(src('applications:\n- name: a\n  no-route: true\n'), {}).yaml).applications[0]).toEqual({ name: 'a', 'no-route': true });
    const random = buildPushManifest(src('applications:\n- name: a\n  random-route: true\n  disk_quota: 512M\n'), {});
    expect(parse(random.yaml).applications[0]).toEqual({ name: 'a', 'random-route': true, 'disk-quota': '512M' });
    expect(random.app.randomRoute).toBe(true);
    const routed = buildPushManifest(src('applications:\n- name: a\n  routes:\n  - route: a.example.com\n'), {});
    expect(routed.app.hasRoutes).toBe(true);
    expect(parse(routed.yaml).applications[0]['default-route']).toBe(true);
  });

  it('builds a minimal manifest from flags when there is no file', () => {
    const { app, yaml } = buildPushManifest(null, { name: 'bare', instances: 2, memory: '256M' });
    expect(parse(yaml)).toEqual({ applications: [{ name: 'bare', instances: 2, memory: '256M', 'default-route': true }] });
    expect(app.path).toBeNull();
    expect(() => buildPushManifest(null, {})).toThrow(/--name/);
  });

  it('selects one app of a multi-app manifest by name and refuses to guess', () => {
    const text = 'applications:\n- name: a\n- name: b\n  instances: 2\n';
    expect(buildPushManifest(src(text), { name: 'b' }).app).toMatchObject({ name: 'b', instances: 2 });
    expect(() => buildPushManifest(src(text), {})).toThrow(/lists 2 apps \(a, b\).*--name/);
    expect(() => buildPushManifest(src(text), { name: 'c' })).toThrow(/'c' is not in manifest/);
  });

  it('reports broken manifests as usage errors', () => {
    const bad = ['applications: [', 'just text', 'applications: []', 'applications:\n- 3', 'applications:\n- memory: 1G', 'applications:\n- name: a\n  memory: lots', 'applications:\n- name: a\n  instances: -1'];
    for (const text of bad) expect(() => buildPushManifest(src(text), {}), text).toThrow(PushUsageError);
  });
});

describe('sizes and counts', () => {
  it('parses memory with M/MB/G/GB units', () => {
    expect(parseMemoryMb('128M')).toBe(128);
    expect(parseMemoryMb('128mb')).toBe(128);
    expect(parseMemoryMb('2G')).toBe(2048);
    expect(parseMemoryMb('1GB')).toBe(1024);
    expect(parseMemoryMb(64)).toBe(64);
    for (const bad of ['128', '0M', '1.5G', 'lots', '']) expect(() => parseMemoryMb(bad), bad).toThrow(PushUsageError);
  });

  it('parses instances as whole numbers', () => {
    expect(parseInstances('0')).toBe(0);
    expect(parseInstances(3)).toBe(3);
    for (const bad of ['-1', '1.5', 'x', '']) expect(() => parseInstances(bad), bad).toThrow(PushUsageError);
  });
});

describe('findManifest', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-manifest-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('prefers manifest.yml over manifest.yaml and accepts an explicit file or folder', async () => {
    expect(await findManifest(dir)).toBeNull();
    fs.writeFileSync(path.join(dir, 'manifest.yaml'), '');
    expect(await findManifest(dir)).toBe(path.join(dir, 'manifest.yaml'));
    fs.writeFileSync(path.join(dir, 'manifest.yml'), '');
    expect(await findManifest(dir)).toBe(path.join(dir, 'manifest.yml'));
    fs.writeFileSync(path.join(dir, 'other.yml'), '');
    expect(await findManifest('/nowhere', path.join(dir, 'other.yml'))).toBe(path.join(dir, 'other.yml'));
    expect(await findManifest('/nowhere', dir)).toBe(path.join(dir, 'manifest.yml'));
    await expect(findManifest(dir, path.join(dir, 'missing.yml'))).rejects.toThrow(/not found/);
  });

  it('parses every example manifest in examples/', async () => {
    const examples = path.resolve(import.meta.dirname, '../../examples');
    for (const name of ['node-hello', 'node-npm-dep', 'static-site']) {
      const file = await findManifest(path.join(examples, name));
      expect(file, name).not.toBeNull();
      const { app } = buildPushManifest({ text: fs.readFileSync(file!, 'utf8'), file: file! }, {});
      expect(app.name).toBe(name);
    }
  });
});
