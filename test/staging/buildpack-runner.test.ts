import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KilnError } from '../../src/domain/errors.ts';
import { stage, stagingErrorText, type BuildpackSource, type StageInput } from '../../src/staging/buildpack-runner.ts';
import { extractDroplet, readStagingInfo } from '../../src/staging/droplet.ts';
import { listTarGz } from '../../src/staging/tarball.ts';
import { tempDir, tree } from './zip-fixtures.ts';

type Scripts = Partial<Record<'detect' | 'supply' | 'finalize' | 'release' | 'compile', string>>;

describe('buildpack runner (CF buildpack contract)', () => {
  let base: string;
  let app: string;
  let lines: string[];
  beforeEach(async () => {
    base = tempDir('kiln-bp-');
    app = path.join(base, 'app-src');
    await fs.mkdir(app);
    await fs.writeFile(path.join(app, 'hello.txt'), 'hello');
    lines = [];
  });
  afterEach(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  async function buildpack(name: string, scripts: Scripts, opts: { version?: string; executable?: boolean } = {}): Promise<BuildpackSource> {
    const dir = path.join(base, 'buildpacks', name);
    await fs.mkdir(path.join(dir, 'bin'), { recursive: true });
    for (const [phase, body] of Object.entries(scripts)) {
      const file = path.join(dir, 'bin', phase);
      await fs.writeFile(file, `#!/bin/sh\n${body}\n`);
      await fs.chmod(file, opts.executable === false ? 0o644 : 0o755);
    }
    if (opts.version) await fs.writeFile(path.join(dir, 'VERSION'), `${opts.version}\n`);
    return { name, dir };
  }

  function input(buildpacks: BuildpackSource[], extra: Partial<StageInput> = {}): StageInput {
    return {
      appDir: app,
      buildpacks,
      workDir: path.join(base, 'work'),
      cacheDir: path.join(base, 'cache'),
      dropletPath: path.join(base, 'droplet.tgz'),
      onOutput: (line) => lines.push(line),
      env: { MY_VAR: 'from-env' },
      ...extra,
    };
  }

  async function failure(p: Promise<unknown>): Promise<KilnError> {
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    return err as KilnError;
  }

  const release = (web: string) => `printf -- '---\\ndefault_process_types:\\n  web: ${web}\\n  worker: ./work\\n'`;

  it('runs supply for every buildpack and finalize + release for the last, and packs a droplet', async () => {
    const supplier = await buildpack('supplier', {
      supply: [
        'echo "supplying idx=$4 var=$MY_VAR stack=$CF_STACK"',
        'mkdir -p "$3/$4/bin" && echo tool > "$3/$4/bin/tool"',
        'printf "name: supplier\\nversion: 9.9.9\\n" > "$3/$4/config.yml"',
        'echo "cache" > "$2/cached"',
      ].join('\n'),
    });
    const final = await buildpack(
      'final',
      {
        supply: 'echo "final supply idx=$4"; test -f "$3/0/bin/tool" || exit 9',
        finalize: [
          'echo "finalize in $(basename "$1") profile=$(basename "$5")"',
          'echo "export FROM_FINALIZE=1" > "$5/final.sh"',
          'echo built > "$1/built.txt"',
          'echo "oops on stderr" >&2',
        ].join('\n'),
        release: release('./start-me'),
      },
      { version: '2.0.0' },
    );
    const result = await stage(input([supplier, final], { skipDetect: true }));
    expect(lines).toEqual([
      'supplying idx=0 var=from-env stack=cflinuxfs4',
      'final supply idx=1',
      'finalize in app profile=profile.d',
      'oops on stderr',
    ]);
    expect(result.processTypes).toEqual({ web: './start-me', worker: './work' });
    expect(result.startCommand).toBe('./start-me');
    expect(result.detectedBuildpack).toBe('final');
    expect(result.buildpacks).toEqual([
      { name: 'supplier', buildpackName: 'supplier', version: '9.9.9', detectOutput: null },
      { name: 'final', buildpackName: null, version: '2.0.0', detectOutput: null },
    ]);
    expect(await fs.readFile(path.join(base, 'cache', 'supplier', 'cached'), 'utf8')).toBe('cache\n');

    const entries = (await listTarGz(result.dropletPath)).map((e) => e.path.replace(/\/$/, ''));
    expect(entries).toEqual(
      expect.arrayContaining(['app/hello.txt', 'app/built.txt', 'deps/0/bin/tool', 'profile.d/final.sh', 'staging_info.yml', 'tmp', 'logs']),
    );
    expect(entries.some((e) => e.includes('.staging-'))).toBe(false);
    const out = path.join(base, 'droplet');
    await extractDroplet(result.dropletPath, out);
    expect(await readStagingInfo(out)).toEqual({ detectedBuildpack: 'final', startCommand: './start-me' });
    // The package itself is never modified.
    expect(await tree(app)).toEqual(['hello.txt']);
  });

  it('detects in priority order and uses only the first buildpack that accepts the app', async () => {
    const no = await buildpack('no', { detect: 'exit 1', compile: 'echo SHOULD-NOT-RUN' });
    const yes = await buildpack('yes', {
      detect: 'test -f "$1/hello.txt" && echo "yes-bp 1.2.3"',
      finalize: 'echo finalized',
      release: release('run-yes'),
    });
    const later = await buildpack('later', { detect: 'echo later', compile: 'echo SHOULD-NOT-RUN' });
    const result = await stage(input([no, yes, later]));
    expect(result.detectedBuildpack).toBe('yes-bp 1.2.3');
    expect(result.buildpacks.map((b) => b.name)).toEqual(['yes']);
    expect(result.buildpacks[0]!.detectOutput).toBe('yes-bp 1.2.3');
    expect(lines).toEqual(['finalized']);
  });

  it('lets the app Procfile override the release process types', async () => {
    await fs.writeFile(path.join(app, 'Procfile'), '# comment\nweb: ./from-procfile --port $PORT\nclock: ./tick\n');
    const bp = await buildpack('bp', { finalize: 'true', release: release('./from-release') });
    const result = await stage(input([bp], { skipDetect: true }));
    expect(result.processTypes).toEqual({ web: './from-procfile --port $PORT', worker: './work', clock: './tick' });
    expect(result.startCommand).toBe('./from-procfile --port $PORT');
  });

  it('runs legacy buildpacks with bin/compile', async () => {
    const legacy = await buildpack('legacy', {
      detect: 'echo legacy',
      compile: 'echo "compile $(basename "$1") cache=$(basename "$2")"; echo compiled > "$1/out.txt"',
      release: release('./legacy'),
    });
    const result = await stage(input([legacy]));
    expect(lines).toEqual(['compile app cache=legacy']);
    expect(result.startCommand).toBe('./legacy');
  });

  it('runs scripts without exec bits through their shebang', async () => {
    const bp = await buildpack('noexec', { detect: 'echo noexec', finalize: 'echo ran', release: release('x') }, { executable: false });
    const result = await stage(input([bp]));
    expect(lines).toEqual(['ran']);
    expect(result.startCommand).toBe('x');
  });

  it('fails with NoAppDetectedError when no buildpack detects the app', async () => {
    const a = await buildpack('a', { detect: 'exit 1', compile: 'true' });
    const err = await failure(stage(input([a])));
    expect(err.errorName).toBe('NoAppDetectedError');
    expect(stagingErrorText(err)).toBe('NoAppDetectedError - An app was not successfully detected by any available buildpack');
  });

  it('fails with NoBuildpacksFound for an empty list', async () => {
    expect((await failure(stage(input([])))).errorName).toBe('NoBuildpacksFound');
  });

  it('fails with BuildpackCompileFailed when supply or finalize fails, streaming its output', async () => {
    const bp = await buildpack('bad', { detect: 'echo bad', finalize: 'echo "about to fail"; echo "npm ERR! nope" >&2; exit 3', release: release('x') });
    const err = await failure(stage(input([bp])));
    expect(err.errorName).toBe('BuildpackCompileFailed');
    expect(lines).toEqual(['about to fail', 'npm ERR! nope']);
    await expect(fs.stat(path.join(base, 'droplet.tgz'))).rejects.toThrow();
  });

  it('fails with BuildpackReleaseFailed when release fails or prints something that is not YAML', async () => {
    const failing = await buildpack('f', { finalize: 'true', release: 'exit 1' });
    expect((await failure(stage(input([failing], { skipDetect: true })))).errorName).toBe('BuildpackReleaseFailed');
    await fs.rm(path.join(base, 'work'), { recursive: true, force: true });
    const garbage = await buildpack('g', { finalize: 'true', release: 'echo "default_process_types: [unclosed"' });
    expect((await failure(stage(input([garbage], { skipDetect: true })))).errorName).toBe('BuildpackReleaseFailed');
  });

  it('requires bin/supply on non-final buildpacks', async () => {
    const noSupply = await buildpack('nosupply', { compile: 'true', release: release('x') });
    const final = await buildpack('final', { finalize: 'true', release: release('x') });
    const err = await failure(stage(input([noSupply, final], { skipDetect: true })));
    expect(err.errorName).toBe('StagingError');
    expect(err.detail).toMatch(/nosupply does not support multi-buildpack/);
  });

  it('times out with StagingTimeExpired and kills the whole process group', async () => {
    const pidFile = path.join(base, 'background.pid');
    const slow = await buildpack('slow', {
      // A background child in the same group; it must not outlive staging.
      finalize: `sleep 30 & echo $! > "${pidFile}"; echo started; sleep 30`,
      release: release('x'),
    });
    const started = Date.now();
    const err = await failure(stage(input([slow], { skipDetect: true, timeoutMs: 500 })));
    expect(err.errorName).toBe('StagingTimeExpired');
    expect(err.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(lines).toEqual(['started']);
    const pid = Number((await fs.readFile(pidFile, 'utf8')).trim());
    // Gone, or a zombie waiting for init to reap it: either way no longer running.
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    expect(stat === null || /^\d+ \(.*\) Z/.test(stat)).toBe(true);
  });

  it('can be cancelled with an AbortSignal', async () => {
    const slow = await buildpack('slow', { finalize: 'echo waiting; sleep 30', release: release('x') });
    const controller = new AbortController();
    const run = stage(input([slow], { skipDetect: true, signal: controller.signal, onOutput: () => controller.abort() }));
    const err = await failure(run);
    expect(err.errorName).toBe('StagingError');
    expect(err.detail).toMatch(/cancelled/);
  });
});
