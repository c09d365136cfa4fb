import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parse as parseYaml } from 'yaml';
import { KilnError } from '../domain/errors.ts';
import { DEFAULT_PATH } from '../runtime/local/environment.ts';
import { sandboxPasswd } from '../runtime/local/launch.ts';
import { bwrapArgs, type Identity, type Sandbox } from '../runtime/local/sandbox.ts';
import { parseProcfile } from './procfile.ts';
import { createTarGz } from './tarball.ts';
import { clientSafeMessage } from '../domain/client-safe.ts';

/** A buildpack on disk: a directory with `bin/detect`, `bin/supply`, `bin/finalize`, `bin/release` or `bin/compile`. */
export interface BuildpackSource {
  /** The name Kiln knows it by (the buildpack resource's name, or a URL/dir for custom ones). */
  name: string;
  dir: string;
}

export type OutputStream = 'stdout' | 'stderr';

export interface StageInput {
  /** The extracted package; only read (copied into the scratch build directory). */
  appDir: string;
  /** Candidates in priority order (auto-detection), or the app's buildpacks in order (with `skipDetect`). */
  buildpacks: BuildpackSource[];
  /**
   * Use every buildpack given, in order, the last one as final — what CF does when an app names its
   * buildpacks. Otherwise run detect in order and use the first that accepts the app.
   */
  skipDetect?: boolean;
  /** Scratch directory (must be absent or empty); the caller removes it afterwards. */
  workDir: string;
  /** Persistent per-app cache; each buildpack gets its own subdirectory. */
  cacheDir: string;
  /** Where to write the droplet tarball. */
  dropletPath: string;
  /** Staging environment (app env, VCAP_APPLICATION, VCAP_SERVICES, MEMORY_LIMIT ...). */
  env?: Record<string, string>;
  stack?: string;
  /** Each line buildpacks print (they become STG log lines). */
  onOutput?: (line: string, stream: OutputStream) => void;
  /** Whole staging, all phases together. Default 15 minutes, Cloud Controller's default. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Runs every buildpack phase in a bubblewrap sandbox that sees the system read-only, the buildpack read-only,
   * and only this staging's work directory and the app's cache writable; `identity` is the app's own uid/gid
   * (Kiln running as root), which then owns the work and cache directories.
   */
  sandbox?: { sandbox: Extract<Sandbox, { kind: 'bwrap' }>; identity?: Identity };
}

export interface StagedBuildpack {
  /** The name the buildpack was given as (BuildpackSource.name). */
  name: string;
  /** The name the buildpack reports for itself (deps/<i>/config.yml), if any. */
  buildpackName: string | null;
  version: string | null;
  detectOutput: string | null;
}

export interface StageResult {
  dropletPath: string;
  processTypes: Record<string, string>;
  startCommand: string;
  /** What CF shows as the droplet's detected buildpack: the final buildpack's detect output, else its name. */
  detectedBuildpack: string;
  /** The buildpacks that ran, in order; the last is the final one. */
  buildpacks: StagedBuildpack[];
}

interface Deadline {
  at: number;
  totalMs: number;
  signal: AbortSignal | undefined;
}

/**
 * Runs the Cloud Foundry buildpack contract in a scratch directory and packs the result as a droplet
 * (`app/`, `deps/`, `profile.d/`, `tmp/`, `logs/`, `staging_info.yml`). Failures raise the KilnError Cloud
 * Controller would record on the build (NoAppDetectedError, BuildpackCompileFailed, BuildpackReleaseFailed,
 * StagingTimeExpired, NoBuildpacksFound, StagingError).
 */
export async function stage(input: StageInput): Promise<StageResult> {
  if (input.buildpacks.length === 0) throw new KilnError('NoBuildpacksFound');
  const totalMs = input.timeoutMs ?? 15 * 60 * 1000;
  const deadline: Deadline = { at: Date.now() + totalMs, totalMs, signal: input.signal };
  const work = path.resolve(input.workDir);
  const buildDir = path.join(work, 'app');
  const depsDir = path.join(work, 'deps');
  const profileDir = path.join(work, 'profile.d');
  const home = path.join(work, '.staging-home');
  const tmp = path.join(work, '.staging-tmp');
  const existing = await fs.readdir(work).catch(() => []);
  if (existing.length > 0) throw new Error(`staging work directory is not empty: ${work}`);
  for (const d of [depsDir, profileDir, home, tmp, path.join(work, 'tmp'), path.join(work, 'logs')]) {
    await fs.mkdir(d, { recursive: true });
  }
  await fs.cp(input.appDir, buildDir, { recursive: true, verbatimSymlinks: true });
  await fs.mkdir(input.cacheDir, { recursive: true });
  const identity = input.sandbox?.identity;
  if (identity) {
    await chownTree(work, identity);
    await chownTree(input.cacheDir, identity);
    // Outside the droplet's entries, so it is not packed; gives the app uid its name (vcap) during staging too.
    await fs.writeFile(path.join(work, '.staging-passwd'), sandboxPasswd(identity), { mode: 0o644 });
  }

  const env: Record<string, string> = {
    // Built from scratch, nothing of Kiln's environment; DEFAULT_PATH includes the node running Kiln, which the
    // built-in buildpacks (Node/sh scripts) need whatever PATH says.
    PATH: DEFAULT_PATH,
    LANG: 'C.UTF-8',
    CF_STACK: input.stack ?? 'cflinuxfs4',
    ...input.env,
    // Private to this staging, whatever the app's env says: buildpacks hand files from finalize to release
    // through TMPDIR, and a shared HOME would mix npm/user caches between apps.
    HOME: home,
    TMPDIR: tmp,
  };
  const cacheOf = (bp: BuildpackSource) => path.join(input.cacheDir, cacheName(bp.name));
  const run = async (bp: BuildpackSource, phase: string, args: string[], capture = false) => {
    // The buildpack's cache must exist to be bound into the sandbox (detect runs before supply creates it).
    if (input.sandbox) await ensureOwnedDir(cacheOf(bp), identity);
    return runPhase(path.join(bp.dir, 'bin', phase), args, {
      cwd: buildDir,
      env,
      deadline,
      onOutput: input.onOutput,
      capture,
      ...(input.sandbox
        ? {
            jail: {
              ...input.sandbox,
              writable: [work, cacheOf(bp)],
              readable: [bp.dir],
              ...(identity ? { files: [{ source: path.join(work, '.staging-passwd'), dest: '/etc/passwd' }] } : {}),
            },
          }
        : {}),
    });
  };

  // Detection.
  let selected: BuildpackSource[];
  let detectOutput: string | null = null;
  if (input.skipDetect) {
    selected = input.buildpacks;
  } else {
    const found = await detect(input.buildpacks, buildDir, run);
    if (!found) throw new KilnError('NoAppDetectedError');
    selected = [found.buildpack];
    detectOutput = found.output;
  }

  // Supply for every buildpack, finalize (or legacy compile) for the last.
  for (const [index, bp] of selected.entries()) {
    const final = index === selected.length - 1;
    const cache = cacheOf(bp);
    await ensureOwnedDir(cache, identity);
    await ensureOwnedDir(path.join(depsDir, String(index)), identity);
    const hasSupply = await isFile(path.join(bp.dir, 'bin', 'supply'));
    if (!final) {
      if (!hasSupply) {
        throw new KilnError('StagingError', `buildpack ${bp.name} does not support multi-buildpack apps (no bin/supply)`);
      }
      await expectSuccess(await run(bp, 'supply', [buildDir, cache, depsDir, String(index)]), 'BuildpackCompileFailed');
      continue;
    }
    if (await isFile(path.join(bp.dir, 'bin', 'finalize'))) {
      if (hasSupply) {
        await expectSuccess(await run(bp, 'supply', [buildDir, cache, depsDir, String(index)]), 'BuildpackCompileFailed');
      }
      await expectSuccess(
        await run(bp, 'finalize', [buildDir, cache, depsDir, String(index), profileDir]),
        'BuildpackCompileFailed',
      );
    } else if (await isFile(path.join(bp.dir, 'bin', 'compile'))) {
      await expectSuccess(await run(bp, 'compile', [buildDir, cache]), 'BuildpackCompileFailed');
    } else {
      throw new KilnError('StagingError', `buildpack ${bp.name} has neither bin/finalize nor bin/compile`);
    }
  }

  // Release: the final buildpack's default process types, overridden by the app's Procfile.
  const finalBp = selected[selected.length - 1]!;
  const release = await run(finalBp, 'release', [buildDir], true);
  await expectSuccess(release, 'BuildpackReleaseFailed');
  const processTypes = { ...parseRelease(release.stdout), ...(await readProcfile(buildDir)) };
  const startCommand = processTypes.web ?? '';

  const staged: StagedBuildpack[] = [];
  for (const [index, bp] of selected.entries()) {
    const meta = await buildpackMetadata(bp, path.join(depsDir, String(index)));
    staged.push({ name: bp.name, ...meta, detectOutput: index === selected.length - 1 ? detectOutput : null });
  }
  const last = staged[staged.length - 1]!;
  const detectedBuildpack = detectOutput ?? last.buildpackName ?? last.name;

  await fs.writeFile(
    path.join(work, 'staging_info.yml'),
    `${JSON.stringify({ detected_buildpack: detectedBuildpack, start_command: startCommand })}\n`,
  );
  checkDeadline(deadline);
  await createTarGz(work, ['app', 'deps', 'profile.d', 'tmp', 'logs', 'staging_info.yml'], input.dropletPath);
  return { dropletPath: input.dropletPath, processTypes, startCommand, detectedBuildpack, buildpacks: staged };
}

/** `build_error_text` the way Cloud Controller stores it on a failed build: "<Name> - <message>". */
export function stagingErrorText(err: unknown): string {
  if (err instanceof KilnError) return `${err.errorName} - ${err.detail}`;
  return `StagingError - Staging error: ${clientSafeMessage(err)}`;
}

type Runner = (bp: BuildpackSource, phase: string, args: string[], capture?: boolean) => Promise<PhaseResult>;

async function detect(
  candidates: BuildpackSource[],
  buildDir: string,
  run: Runner,
): Promise<{ buildpack: BuildpackSource; output: string } | null> {
  for (const bp of candidates) {
    if (!(await isFile(path.join(bp.dir, 'bin', 'detect')))) continue;
    const result = await run(bp, 'detect', [buildDir], true);
    if (result.code === 0) {
      const output = result.stdout.trim().split(/\r?\n/)[0]?.trim();
      return { buildpack: bp, output: output || bp.name };
    }
  }
  return null;
}

interface PhaseResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  phase: string;
}

interface PhaseOptions {
  cwd: string;
  env: Record<string, string>;
  deadline: Deadline;
  onOutput: ((line: string, stream: OutputStream) => void) | undefined;
  /** Collect stdout instead of streaming it (detect and release answer on stdout). */
  capture: boolean;
  /** Sandbox of the phase: host paths bound at the same path, writable or read-only. */
  jail?: {
    sandbox: Extract<Sandbox, { kind: 'bwrap' }>;
    identity?: Identity;
    writable: string[];
    readable: string[];
    /** Read-only files bound over system ones. */
    files?: Array<{ source: string; dest: string }>;
  };
}

async function runPhase(script: string, args: string[], options: PhaseOptions): Promise<PhaseResult> {
  checkDeadline(options.deadline);
  const phase = path.basename(script);
  const [file, ...prefix] = await commandFor(script);
  const jail = options.jail;
  const [program, argv] = jail
    ? [
        jail.sandbox.bwrapPath,
        bwrapArgs(jail.sandbox, {
          // Same paths inside as outside: buildpacks get their directories as arguments.
          mounts: [
            ...jail.readable.map((source) => ({ source, dest: source, writable: false })),
            ...(jail.files ?? []).map((f) => ({ ...f, writable: false })),
            ...jail.writable.map((source) => ({ source, dest: source, writable: true })),
          ],
          scratch: [{ dest: '/tmp' }],
          cwd: options.cwd,
          hostname: 'staging',
          ...(jail.identity ? { identity: jail.identity } : {}),
          argv: [file!, ...prefix, ...args],
        }),
      ]
    : [file!, [...prefix, ...args]];
  const child = spawn(program, argv, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group, so a timeout kills everything the buildpack started, not only its shell.
    detached: true,
  });
  let stdout = '';
  const readers: Array<Promise<unknown>> = [];
  const follow = (stream: NodeJS.ReadableStream, name: OutputStream, collect: boolean) => {
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on('line', (line) => {
      if (collect) stdout += `${line}\n`;
      else options.onOutput?.(line, name);
    });
    readers.push(once(rl, 'close'));
  };
  follow(child.stdout, 'stdout', options.capture);
  follow(child.stderr, 'stderr', false);

  let killedFor: 'timeout' | 'abort' | null = null;
  const kill = (why: 'timeout' | 'abort') => {
    killedFor ??= why;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  const timer = setTimeout(() => kill('timeout'), Math.max(0, options.deadline.at - Date.now()));
  const onAbort = () => kill('abort');
  options.deadline.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    await Promise.all(readers);
    if (killedFor === 'timeout') throw timeoutError(options.deadline);
    if (killedFor === 'abort') throw new KilnError('StagingError', 'staging was cancelled');
    return { code, signal, stdout, phase };
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError('StagingError', `could not run ${phase}: ${clientSafeMessage(err)}`);
  } finally {
    clearTimeout(timer);
    options.deadline.signal?.removeEventListener('abort', onAbort);
    // Background processes a phase left behind must not outlive staging.
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is already empty.
      }
    }
  }
}

function checkDeadline(deadline: Deadline): void {
  if (deadline.signal?.aborted) throw new KilnError('StagingError', 'staging was cancelled');
  if (Date.now() >= deadline.at) throw timeoutError(deadline);
}

function timeoutError(deadline: Deadline): KilnError {
  return new KilnError('StagingTimeExpired', `staging took longer than ${Math.round(deadline.totalMs / 1000)} seconds`);
}

async function expectSuccess(result: PhaseResult, failure: 'BuildpackCompileFailed' | 'BuildpackReleaseFailed') {
  if (result.code !== 0) throw new KilnError(failure);
}

/**
 * How to run a buildpack script. Buildpacks uploaded from zips made on Windows (or extracted by tools that
 * drop modes) lose their exec bits; Cloud Foundry still runs them, so fall back to the shebang line.
 */
async function commandFor(script: string): Promise<string[]> {
  const st = await fs.stat(script);
  if ((st.mode & 0o111) !== 0) return [script];
  const head = (await fs.readFile(script)).subarray(0, 256).toString('utf8').split('\n')[0] ?? '';
  if (head.startsWith('#!')) {
    const parts = head.slice(2).trim().split(/\s+/);
    return [...parts, script];
  }
  return ['/bin/sh', script];
}

function parseRelease(stdout: string): Record<string, string> {
  let doc: unknown;
  try {
    doc = parseYaml(stdout);
  } catch {
    throw new KilnError('BuildpackReleaseFailed');
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object') throw new KilnError('BuildpackReleaseFailed');
  const types = (doc as { default_process_types?: unknown }).default_process_types;
  if (types === undefined || types === null) return {};
  if (typeof types !== 'object') throw new KilnError('BuildpackReleaseFailed');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(types as Record<string, unknown>)) {
    if (typeof v === 'string' && v.trim() !== '') out[k] = v;
  }
  return out;
}

async function readProcfile(buildDir: string): Promise<Record<string, string>> {
  const text = await fs.readFile(path.join(buildDir, 'Procfile'), 'utf8').catch(() => null);
  return text === null ? {} : parseProcfile(text);
}

async function buildpackMetadata(
  bp: BuildpackSource,
  depDir: string,
): Promise<{ buildpackName: string | null; version: string | null }> {
  let buildpackName: string | null = null;
  let version: string | null = null;
  // libbuildpack-style buildpacks describe themselves in deps/<index>/config.yml.
  const config = await fs.readFile(path.join(depDir, 'config.yml'), 'utf8').catch(() => null);
  if (config !== null) {
    try {
      const doc = parseYaml(config) as { name?: unknown; version?: unknown } | null;
      if (typeof doc?.name === 'string') buildpackName = doc.name;
      if (typeof doc?.version === 'string' || typeof doc?.version === 'number') version = String(doc.version);
    } catch {
      // A malformed config.yml only loses the metadata.
    }
  }
  if (version === null) {
    const file = await fs.readFile(path.join(bp.dir, 'VERSION'), 'utf8').catch(() => null);
    if (file !== null && file.trim() !== '') version = file.trim();
  }
  return { buildpackName, version };
}

/** Hands a staging directory to the app's uid (lchown: symlinks from the app must not redirect it). */
async function chownTree(dir: string, identity: Identity): Promise<void> {
  await fs.lchown(dir, identity.uid, identity.gid);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(p, identity);
    else await fs.lchown(p, identity.uid, identity.gid);
  }
}

async function ensureOwnedDir(dir: string, identity: Identity | undefined): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  if (identity) await fs.lchown(dir, identity.uid, identity.gid);
}

function cacheName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || 'buildpack';
}

async function isFile(p: string): Promise<boolean> {
  return fs.stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}
