import fs from 'node:fs/promises';
import path from 'node:path';
import PQueue from 'p-queue';
import type { Config } from '../config/config.ts';
import { parseJsonObject } from '../domain/apps.ts';
import { parseBuildLifecycleData } from '../domain/builds.ts';
import type { DropletBuildpack } from '../domain/droplets.ts';
import { KilnError, type ErrorName } from '../domain/errors.ts';
import type { LogStore } from '../logs/log-store.ts';
import { environmentVariableGroupVars, vcapApplication } from '../lifecycle/app-env.ts';
import { buildpackCacheClearers } from '../lifecycle/buildpack-cache.ts';
import { blobKeyOwner, dropletBlobKey, packageBlobKey, stagingDropletBlobKey, stagingInputBlobKey, type Bits } from '../lifecycle/blobs.ts';
import { dropletValues } from '../lifecycle/droplets.ts';
import { failAbandonedUploads } from '../lifecycle/uploads.ts';
import type { z } from 'zod';
import { stage, stagingErrorText, type BuildpackSource, type StageInput, type StageResult } from '../staging/buildpack-runner.ts';
import { ERROR_PREFIX, RESULT_PREFIX, StagingErrorSchema, StagingResultSchema, type StagingInput } from '../staging/stage-job.ts';
import { createTarGz } from '../staging/tarball.ts';
import { BUILTIN_BUILDPACKS, builtinBuildpack } from '../staging/builtin-buildpacks.ts';
import { extractZip } from '../staging/zip.ts';
import type { Row } from '../store/schema.ts';
import { newGuid, type Store } from '../store/store.ts';
import { self, type ReconcileContext, type Reconciler } from './runtime/controller.ts';
import { NOT_ISOLATED_WARNING, type Identity, type Sandbox } from '../runtime/local/sandbox.ts';
import type { ImageConfig, ImagePull, Runtime } from '../runtime/runtime.ts';
import { dockerImagePull } from '../lifecycle/image-pull.ts';
import type { SecretBox } from '../store/secret-box.ts';
import { openEnvVars } from '../store/env-vars.ts';

export interface BuildControllerOptions {
  /** Builds staged at the same time (each runs buildpacks, e.g. `npm install`). Default 2. */
  concurrency?: number;
  /** Buildpacks an app names, in order; default: the built-in ones by name. Unknown names fail staging. */
  resolveBuildpacks?: (names: string[], stack: string | null) => Promise<BuildpackSource[]>;
  /** Auto-detection candidates in priority order; default: the built-in buildpacks. */
  detectionCandidates?: (stack: string | null) => Promise<BuildpackSource[]>;
  /** Whole-staging time limit; default the runner's (15 minutes). */
  timeoutMs?: number;
  /** Where buildpacks run (see runtime/local/sandbox.ts); default: unsandboxed, which every staging log says. */
  sandbox?: Sandbox;
  /** The app's own uid/gid for its sandbox (Kiln running as root). */
  identityFor?: (appGuid: string) => Promise<Identity>;
  /** Opens registry credentials for docker builds (services/registry-credentials.ts). */
  secrets?: SecretBox;
  /** The runtime's image inspection (Runtime.inspectImage); absent → docker builds fail, as the local runtime cannot run images. */
  inspectImage?: (pull: ImagePull) => Promise<ImageConfig>;
  /** Stages on the runtime (Runtime.runStaging) instead of on Kiln's machine. */
  runStaging?: NonNullable<Runtime['runStaging']>;
}

/** A build error text as the remote buildpack runner reported it (already Cloud Controller's wording). */
class RemoteStagingError extends Error {}

/** Errors a failed build reports as themselves; anything else is reported as a StagingError. */
const STAGING_ERRORS = new Set<ErrorName>([
  'StagingError',
  'NoAppDetectedError',
  'NoBuildpacksFound',
  'BuildpackCompileFailed',
  'BuildpackReleaseFailed',
  'StagingTimeExpired',
  'InsufficientResources',
]);

function buildError(err: unknown): string {
  if (err instanceof KilnError && !STAGING_ERRORS.has(err.errorName)) return stagingErrorText(new KilnError('StagingError', err.detail));
  return stagingErrorText(err);
}

async function defaultResolve(names: string[]): Promise<BuildpackSource[]> {
  return names.map((name) => {
    const bp = builtinBuildpack(name);
    if (!bp) throw new KilnError('StagingError', `buildpack "${name}" is not available (known: ${BUILTIN_BUILDPACKS.map((b) => b.name).join(', ')})`);
    return bp;
  });
}

const registeredClearers = new WeakSet<Bits>();

const stagingNow = new WeakMap<Bits, Map<string, Promise<void>>>();

export type BuildController = Reconciler & {
  /** Stages one build now (what reconcile does), for tests and tools. */
  stageBuild(guid: string): Promise<void>;
};

/**
 * Turns builds in STAGING into droplets: extracts the package, runs the buildpacks (the app's, or
 * auto-detection over the candidates in priority order), streams their output as STG log lines, stores the
 * droplet tarball and records the droplet, then marks the build STAGED — or FAILED with a CF-style error.
 * Level-triggered and idempotent: a build still STAGING when Kiln starts (its worker died) is staged again from
 * scratch, and a build deleted or finished meanwhile is left alone (its droplet blob is discarded).
 */
export function buildController(store: Store, bits: Bits, logs: LogStore, config: Config, opts: BuildControllerOptions = {}): BuildController {
  const queue = new PQueue({ concurrency: opts.concurrency ?? 2 });
  const resolve = opts.resolveBuildpacks ?? defaultResolve;
  const candidates = opts.detectionCandidates ?? (async () => [...BUILTIN_BUILDPACKS]);
  const cfApi = `http://${config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host}:${config.port}`;
  let swept = false;

  if (!registeredClearers.has(bits)) {
    registeredClearers.add(bits);
    buildpackCacheClearers.push((appGuid) => fs.rm(path.join(bits.buildpackCacheRoot, appGuid), { recursive: true, force: true }));
  }

  async function stagingEnvironment(build: Row<'builds'>, app: Row<'apps'>, stack: string | null): Promise<Record<string, string>> {
    const space = await store.db.selectFrom('spaces').selectAll().where('guid', '=', app.space_guid).executeTakeFirstOrThrow();
    const org = await store.db.selectFrom('organizations').selectAll().where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
    const vcap = await vcapApplication(store.db, { app, space, org, cfApi });
    return {
      ...(await environmentVariableGroupVars(store.db, 'staging')),
      ...openEnvVars(store.secrets, app.environment_variables),
      VCAP_APPLICATION: JSON.stringify({ ...vcap, limits: { ...(vcap.limits as object), mem: build.staging_memory_in_mb, disk: build.staging_disk_in_mb } }),
      VCAP_SERVICES: '{}',
      MEMORY_LIMIT: `${build.staging_memory_in_mb}m`,
      ...(stack ? { CF_STACK: stack } : {}),
    };
  }

  async function stagingSandbox(sandbox: Extract<Sandbox, { kind: 'bwrap' }>, appGuid: string) {
    const identity = await opts.identityFor?.(appGuid);
    return { sandbox, ...(identity ? { identity } : {}) };
  }

  async function markFailed(buildGuid: string, error: string): Promise<void> {
    await store.write(async (tx) => {
      const current = await tx.db.selectFrom('builds').select(['state', 'generation']).where('guid', '=', buildGuid).executeTakeFirst();
      if (!current || current.state !== 'STAGING') return;
      await tx.update('builds', buildGuid, { state: 'FAILED', error }, { expectedGeneration: current.generation });
    });
  }

  /** The build's `Succeeded` condition, and its app's `Staged` one once the build has an outcome. */
  async function reportStatus(guid: string, ctx: ReconcileContext): Promise<void> {
    const build = await store.db.selectFrom('builds').select(['state', 'error', 'app_guid']).where('guid', '=', guid).executeTakeFirst();
    if (!build) return;
    const app = { kind: 'app' as const, guid: build.app_guid };
    if (build.state === 'STAGED') {
      ctx.condition({ type: 'Succeeded', status: 'True', reason: 'Staged' });
      ctx.condition({ type: 'Staged', status: 'True', reason: 'BuildStaged', message: `build ${guid} staged` }, app);
    } else if (build.state === 'FAILED') {
      ctx.condition({ type: 'Succeeded', status: 'False', reason: 'StagingFailed', message: build.error ?? '' });
      ctx.condition({ type: 'Staged', status: 'False', reason: 'StagingFailed', message: build.error ?? '' }, app);
    } else {
      ctx.condition({ type: 'Succeeded', status: 'Unknown', reason: 'Staging' });
    }
  }

  /** One staging per build at a time in this process, even if two controllers share the data dir. */
  function stageBuild(guid: string): Promise<void> {
    let running = stagingNow.get(bits);
    if (!running) stagingNow.set(bits, (running = new Map()));
    const existing = running.get(guid);
    if (existing) return existing;
    const p = stageBuildOnce(guid).finally(() => running.delete(guid));
    running.set(guid, p);
    return p;
  }

  async function stageBuildOnce(guid: string): Promise<void> {
    const build = await store.db.selectFrom('builds').selectAll().where('guid', '=', guid).executeTakeFirst();
    if (!build || build.state !== 'STAGING') return;
    const app = await store.db.selectFrom('apps').selectAll().where('guid', '=', build.app_guid).executeTakeFirst();
    if (!app) return;
    const emit = (payload: string, type: 'OUT' | 'ERR' = 'OUT') =>
      logs.append({ sourceId: app.guid, instanceId: '0', sourceType: 'STG', type, payload });
    const work = path.join(bits.workRoot, 'staging', build.guid);
    // Whatever an earlier attempt left (a crash mid-staging) is discarded: staging always starts from scratch.
    await fs.rm(work, { recursive: true, force: true });
    await fs.mkdir(work, { recursive: true });
    let storedKey: string | null = null;
    try {
      if (build.lifecycle_type === 'docker') {
        await stageImage(build, app, emit);
        return;
      }
      if (build.lifecycle_type === 'cnb') throw new KilnError('StagingError', 'Cloud Native Buildpacks are not supported by the local runtime');
      const pkg = await store.db.selectFrom('packages').selectAll().where('guid', '=', build.package_guid).executeTakeFirst();
      if (!pkg || pkg.state !== 'READY' || !pkg.blob_key) throw new KilnError('StagingError', 'the package is no longer available');
      if (opts.sandbox?.kind !== 'bwrap') emit(`WARNING: ${NOT_ISOLATED_WARNING}`, 'ERR');
      emit('Downloading app package...');
      const appDir = path.join(work, 'package');
      await extractZip(await bits.blobstore.localPath(pkg.blob_key), appDir, { kind: 'app' });

      const lifecycle = parseBuildLifecycleData(build.lifecycle_data);
      const named = lifecycle.buildpacks.length > 0;
      const buildpacks = named ? await resolve(lifecycle.buildpacks, lifecycle.stack) : await candidates(lifecycle.stack);
      emit(named ? `Staging with buildpacks: ${lifecycle.buildpacks.join(', ')}` : 'Detecting buildpack...');
      const input: StageInput = {
        appDir,
        buildpacks,
        skipDetect: named,
        workDir: path.join(work, 'build'),
        cacheDir: path.join(bits.buildpackCacheRoot, app.guid),
        dropletPath: path.join(work, 'droplet.tgz'),
        env: await stagingEnvironment(build, app, lifecycle.stack),
        ...(lifecycle.stack ? { stack: lifecycle.stack } : {}),
        onOutput: (line, stream) => emit(line, stream === 'stderr' ? 'ERR' : 'OUT'),
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      };
      const result = opts.runStaging
        ? await stageOnRuntime(opts.runStaging, build, input, work, emit)
        : await stage({ ...input, ...(opts.sandbox?.kind === 'bwrap' ? { sandbox: await stagingSandbox(opts.sandbox, app.guid) } : {}) });

      emit('Uploading droplet...');
      const dropletGuid = newGuid();
      const info = await bits.blobstore.putFile(dropletBlobKey(dropletGuid), result.dropletPath, { move: true });
      storedKey = info.key;
      const buildpacksJson: DropletBuildpack[] = result.buildpacks.map((b) => ({
        name: b.name,
        detect_output: b.detectOutput,
        buildpack_name: b.buildpackName,
        version: b.version,
      }));
      const committed = await commitDroplet(build.guid, app.guid, {
        guid: dropletGuid,
        package_guid: build.package_guid,
        lifecycle_type: 'buildpack',
        process_types: JSON.stringify(result.processTypes),
        execution_metadata: '',
        buildpacks: JSON.stringify(buildpacksJson),
        stack: lifecycle.stack,
        checksum_sha256: info.sha256,
        checksum_sha1: info.sha1,
        blob_key: info.key,
        size_in_bytes: info.size,
      });
      if (committed) {
        storedKey = null;
        emit(`Staging complete (detected ${result.detectedBuildpack})`);
      }
    } catch (err) {
      const error = err instanceof RemoteStagingError ? err.message : buildError(err);
      emit(`Staging failed: ${error}`, 'ERR');
      await markFailed(build.guid, error);
    } finally {
      if (storedKey) await bits.blobstore.delete(storedKey).catch(() => undefined);
      await fs.rm(work, { recursive: true, force: true });
    }
  }

  /**
   * Staging as a runtime workload: the package, the buildpacks and the settings go into one blob the run downloads
   * by signed URL; the run uploads the droplet by signed URL and prints its outcome as its last line. The
   * buildpack cache stays empty (each remote run starts without one).
   */
  async function stageOnRuntime(
    runStaging: NonNullable<Runtime['runStaging']>,
    build: Row<'builds'>,
    input: StageInput,
    work: string,
    emit: (line: string, type?: 'OUT' | 'ERR') => void,
  ): Promise<StageResult> {
    const dir = path.join(work, 'remote');
    await fs.cp(input.appDir, path.join(dir, 'package'), { recursive: true, verbatimSymlinks: true });
    const settings: StagingInput = {
      buildpacks: input.buildpacks.map((bp, i) => ({ name: bp.name, dir: `buildpacks/${i}` })),
      skipDetect: input.skipDetect ?? false,
      env: input.env ?? {},
      ...(input.stack ? { stack: input.stack } : {}),
      ...(input.timeoutMs !== undefined ? { timeoutMs: input.timeoutMs } : {}),
    };
    for (const [i, bp] of input.buildpacks.entries()) await fs.cp(bp.dir, path.join(dir, 'buildpacks', String(i)), { recursive: true, verbatimSymlinks: true });
    await fs.writeFile(path.join(dir, 'staging.json'), JSON.stringify(settings));
    const tgz = path.join(work, 'staging-input.tgz');
    await createTarGz(dir, ['package', 'buildpacks', 'staging.json'], tgz);
    const inputKey = stagingInputBlobKey(build.guid);
    const dropletKey = stagingDropletBlobKey(build.guid);
    await bits.blobstore.putFile(inputKey, tgz, { move: true });
    try {
      let result: z.infer<typeof StagingResultSchema> | undefined;
      let failure: string | undefined;
      const outcome = await runStaging(
        {
          buildGuid: build.guid,
          appGuid: build.app_guid,
          inputBlobKey: inputKey,
          dropletBlobKey: dropletKey,
          memoryMb: build.staging_memory_in_mb,
          diskMb: build.staging_disk_in_mb,
          timeoutMs: input.timeoutMs ?? 15 * 60_000,
        },
        (line, stream) => {
          if (line.startsWith(RESULT_PREFIX)) result = StagingResultSchema.parse(JSON.parse(line.slice(RESULT_PREFIX.length)));
          else if (line.startsWith(ERROR_PREFIX)) failure = StagingErrorSchema.parse(JSON.parse(line.slice(ERROR_PREFIX.length))).message;
          else emit(line, stream === 'stderr' ? 'ERR' : 'OUT');
        },
      );
      if (failure) throw new RemoteStagingError(failure);
      if (!result) throw new KilnError('StagingError', `the staging run ended without a result (exit ${outcome.exitCode ?? 'unknown'}${outcome.reason ? `: ${outcome.reason}` : ''})`);
      await fs.copyFile(await bits.blobstore.localPath(dropletKey), input.dropletPath);
      return { dropletPath: input.dropletPath, ...result };
    } finally {
      await bits.blobstore.delete(inputKey).catch(() => undefined);
      await bits.blobstore.delete(dropletKey).catch(() => undefined);
    }
  }

  /**
   * The docker lifecycle: resolve how to pull the package's image (its own login, else the most specific registry
   * credential), let the runtime read the image's config, and record a droplet that names the image. The secret
   * is handed to the runtime only; the log says which credential was used, never its content.
   */
  async function stageImage(build: Row<'builds'>, app: Row<'apps'>, emit: (line: string, type?: 'OUT' | 'ERR') => void): Promise<void> {
    const pkg = await store.db.selectFrom('packages').selectAll().where('guid', '=', build.package_guid).executeTakeFirst();
    if (!pkg || pkg.type !== 'docker' || !pkg.docker_image) throw new KilnError('StagingError', 'the docker package is no longer available');
    const space = await store.db.selectFrom('spaces').select(['guid', 'organization_guid']).where('guid', '=', app.space_guid).executeTakeFirstOrThrow();
    const pull = await dockerImagePull(store.db, opts.secrets, pkg, { spaceGuid: space.guid, organizationGuid: space.organization_guid });
    const src = pull.auth?.source;
    emit(
      `Pulling image ${pull.image}` +
        (src?.kind === 'package' ? ` as ${pull.auth!.username} (the package's credentials)` : '') +
        (src?.kind === 'registry_credential' ? ` as ${pull.auth!.username} (${src.scope} registry credential ${src.guid} for ${pull.auth!.registry})` : ''),
    );
    if (!opts.inspectImage) throw new KilnError('StagingError', 'docker images cannot be staged: the local runtime runs processes, not container images');
    const image = await opts.inspectImage(pull);
    const dropletGuid = newGuid();
    const committed = await commitDroplet(build.guid, app.guid, {
      guid: dropletGuid,
      package_guid: build.package_guid,
      lifecycle_type: 'docker',
      process_types: JSON.stringify({ web: image.command }),
      image: pull.image,
    });
    if (committed) emit('Staging complete');
  }

  /**
   * Records a staged droplet and marks its build STAGED in one transaction — unless the build stopped STAGING
   * meanwhile (canceled, failed) or its app is gone; false then, and the caller keeps nothing.
   */
  async function commitDroplet(buildGuid: string, appGuid: string, droplet: Omit<Parameters<typeof dropletValues>[1], 'app_guid' | 'build_guid' | 'state'>): Promise<boolean> {
    return store.write(async (tx) => {
      const current = await tx.db.selectFrom('builds').select(['state', 'generation']).where('guid', '=', buildGuid).executeTakeFirst();
      if (!current || current.state !== 'STAGING') return false;
      if (!(await tx.db.selectFrom('apps').select('guid').where('guid', '=', appGuid).executeTakeFirst())) return false;
      await tx.insert('droplets', dropletValues(tx, { ...droplet, app_guid: appGuid, build_guid: buildGuid, state: 'STAGED' }));
      await tx.update('builds', buildGuid, { state: 'STAGED', error: null, droplet_guid: droplet.guid }, { expectedGeneration: current.generation });
      return true;
    });
  }

  return {
    name: 'builds',
    resource: 'build',
    watches: { builds: self },
    // Waiting keys hold no resources; the p-queue below limits how many actually stage at once.
    concurrency: 16,
    async listKeys() {
      if (!swept) {
        swept = true;
        await failAbandonedUploads(store);
      }
      const rows = await store.db.selectFrom('builds').select('guid').where('state', '=', 'STAGING').execute();
      return rows.map((r) => r.guid);
    },
    async reconcile(guid, ctx) {
      await queue.add(() => stageBuild(guid));
      if (ctx) await reportStatus(guid, ctx);
    },
    stageBuild,
  };
}

/** Blobs younger than this are never collected by the resync scan: their row may be about to be committed. */
const ORPHAN_GRACE_MS = 10 * 60 * 1000;

/**
 * Removes the blobs of deleted packages and droplets. Row deletes happen in transactions all over the code (app
 * and space cascades); the change feed tells this collector, and its resync scan catches anything missed while
 * Kiln was down. Its keys are blob keys (`packages/<guid>`, `droplets/<guid>`).
 */
export function blobCollector(store: Store, bits: Bits): Reconciler {
  const onDelete = (blobKey: (guid: string) => string) => (c: { guid: string; op: string }) => (c.op === 'delete' ? [blobKey(c.guid)] : []);
  return {
    name: 'blob-collector',
    watches: { packages: onDelete(packageBlobKey), droplets: onDelete(dropletBlobKey) },
    concurrency: 2,
    async listKeys() {
      const keys: string[] = [];
      for (const kind of ['packages', 'droplets'] as const) {
        const dir = path.join(bits.blobstore.root, kind);
        for (const name of await filesOlderThan(dir, ORPHAN_GRACE_MS)) keys.push(`${kind}/${name}`);
      }
      return keys;
    },
    async reconcile(key) {
      const owner = blobKeyOwner(key);
      if (!owner) return;
      const row = await store.db.selectFrom(owner.table).select('guid').where('guid', '=', owner.guid).executeTakeFirst();
      if (!row) await bits.blobstore.delete(key);
    },
  };
}

/**
 * Removes the buildpack cache of deleted apps (keys: app guids): at once when the change feed reports the delete,
 * and from the resync scan for caches left while Kiln was down.
 */
export function buildpackCacheCollector(store: Store, bits: Bits): Reconciler {
  return {
    name: 'buildpack-cache-collector',
    watches: { apps: (c) => (c.op === 'delete' ? [c.guid] : []) },
    concurrency: 1,
    listKeys: () => filesOlderThan(bits.buildpackCacheRoot, ORPHAN_GRACE_MS, 'directories'),
    async reconcile(appGuid) {
      const app = await store.db.selectFrom('apps').select('guid').where('guid', '=', appGuid).executeTakeFirst();
      if (!app) await fs.rm(path.join(bits.buildpackCacheRoot, appGuid), { recursive: true, force: true });
    },
  };
}

/** Names of the entries of `dir` (files, or directories) not modified for `ageMs`; none if `dir` is missing. */
async function filesOlderThan(dir: string, ageMs: number, what: 'files' | 'directories' = 'files'): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  const names: string[] = [];
  for (const e of entries) {
    if (what === 'files' ? !e.isFile() : !e.isDirectory()) continue;
    const st = await fs.stat(path.join(dir, e.name)).catch(() => null);
    if (st && Date.now() - st.mtimeMs > ageMs) names.push(e.name);
  }
  return names;
}
