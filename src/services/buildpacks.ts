import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { parse as parseYaml } from 'yaml';
import {
  BUILDPACK_LOCKED,
  DEFAULT_BUILDPACK_LIFECYCLE,
  insertPosition,
  isBuildpackUrl,
  manifestStack,
  MISSING_BITS,
  movePosition,
  nameTaken,
  redactUrl,
  STACK_CANNOT_CHANGE,
  stackMissing,
  uploadInvalid,
  type CreateBuildpack,
  type UpdateBuildpack,
  type BuildpackState,
} from '../domain/buildpacks.ts';
import { badQuery, KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import type { BuildpackSource } from '../staging/buildpack-runner.ts';
import { BUILTIN_BUILDPACKS, builtinBuildpack } from '../staging/builtin-buildpacks.ts';
import { extractZip } from '../staging/zip.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, loadOneMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Bits } from '../lifecycle/blobs.ts';
import type { Ctx } from './context.ts';
import { completedJob, type JobHandlers, startDeleteJob } from '../lifecycle/jobs.ts';

export const BUILDPACK_LIST: ListSpec = {
  orderBy: ['position', 'lifecycle'],
  filters: ['names', 'stacks'],
  params: ['lifecycle'],
  labelSelector: true,
};

type Buildpack = Row<'buildpacks'>;
type Db = Kysely<Database>;

// ---- reading (every authenticated user sees every buildpack) ----

export async function listBuildpacks(ctx: Ctx, params: ListParams): Promise<Page<Buildpack>> {
  let q = ctx.store.db.selectFrom('buildpacks').selectAll('buildpacks');
  const f = params.filters;
  if (f.names) q = q.where('buildpacks.name', 'in', f.names);
  if (f.stacks) {
    // `stacks=` (an empty item) asks for buildpacks without a stack.
    const named = f.stacks.filter((s) => s !== '');
    const unassigned = f.stacks.includes('');
    q = q.where((eb) =>
      eb.or([...(named.length ? [eb('buildpacks.stack', 'in', named)] : []), ...(unassigned ? [eb('buildpacks.stack', 'is', null)] : [])]),
    );
  }
  const lifecycle = params.params.lifecycle;
  if (lifecycle !== undefined) {
    if (lifecycle !== 'buildpack' && lifecycle !== 'cnb') throw badQuery('Lifecycle must be either "buildpack" or "cnb"');
    q = q.where('buildpacks.lifecycle', '=', lifecycle);
  }
  // Upstream's default order: lifecycle, then position (listPage appends the id tie-break).
  if (!params.orderBy) q = q.orderBy('buildpacks.lifecycle').orderBy('buildpacks.position');
  return listPage(q, listOptions('buildpacks', params));
}

export async function getBuildpack(ctx: Ctx, guid: string): Promise<Buildpack> {
  const bp = await ctx.store.db.selectFrom('buildpacks').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!bp) throw notFound('Buildpack');
  return bp;
}

// ---- writing (admins only) ----

/** Buildpack writes need admin; create checks it before looking at the body, as upstream does. */
export function requireBuildpackAdmin(ctx: Ctx): void {
  if (!ctx.access.admin) throw notAuthorized();
}

/** The buildpack an update, delete or upload is about: 404 when missing, then 403 for non-admins. */
export async function getBuildpackForWrite(ctx: Ctx, guid: string): Promise<Buildpack> {
  const bp = await getBuildpack(ctx, guid);
  requireBuildpackAdmin(ctx);
  return bp;
}

const loadBuildpack = (db: Db, guid: string) => db.selectFrom('buildpacks').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

function auditBuildpack(tx: WriteTx, ctx: Ctx, verb: string, bp: Pick<Buildpack, 'guid' | 'name'>, data?: Record<string, unknown>) {
  return recordAudit(tx, {
    type: `audit.buildpack.${verb}`,
    actor: ctx.principal,
    target: { type: 'buildpack', guid: bp.guid, name: bp.name },
    data: data ?? {},
  });
}

/**
 * Serializes position changes (upstream's `Locking[name: 'buildpacks']`): SQLite runs one write transaction
 * at a time anyway; PostgreSQL needs a transaction-scoped advisory lock, since an empty table has no rows to lock.
 */
async function lockPositions(tx: WriteTx, store: Store): Promise<void> {
  if (store.dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext('kiln.buildpacks'))`.execute(tx.db);
}

async function countLifecycle(tx: WriteTx, lifecycle: string): Promise<number> {
  const row = await tx.db
    .selectFrom('buildpacks')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('lifecycle', '=', lifecycle)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Shifts the positions in [from, to] of a lifecycle by `delta`, bumping each row's generation. */
async function shiftPositions(tx: WriteTx, lifecycle: string, from: number, to: number | null, delta: 1 | -1): Promise<void> {
  let q = tx.db
    .selectFrom('buildpacks')
    .select('guid')
    .where('lifecycle', '=', lifecycle)
    .where('position', '>=', from);
  if (to !== null) q = q.where('position', '<=', to);
  const moved = await q.execute();
  if (moved.length === 0) return;
  await tx.updateWhere('buildpacks', (eb) => eb('guid', 'in', moved.map((m) => m.guid)), { position: sql<number>`position + ${delta}` });
}

async function stackExists(db: Db, name: string): Promise<boolean> {
  return (await db.selectFrom('stacks').select('guid').where('name', '=', name).executeTakeFirst()) !== undefined;
}

/** Whether another buildpack already has this name (any case) for the stack ("no stack" included) and lifecycle. */
async function nameInUse(db: Db, name: string, stack: string | null, lifecycle: string, exceptGuid?: string): Promise<boolean> {
  let q = db
    .selectFrom('buildpacks')
    .select('guid')
    .where(sql<boolean>`lower(name) = lower(${name})`)
    .where(sql<boolean>`coalesce(stack, '') = ${stack ?? ''}`)
    .where('lifecycle', '=', lifecycle);
  if (exceptGuid) q = q.where('guid', '!=', exceptGuid);
  return (await q.executeTakeFirst()) !== undefined;
}

/** Inserts a buildpack row at `position` (clamped), shifting the others of its lifecycle down. */
async function insertBuildpack(
  tx: WriteTx,
  v: { guid: string; name: string; stack: string | null; lifecycle: string; position: number | null | undefined; enabled: boolean; locked: boolean; state: BuildpackState; builtin: string | null },
): Promise<void> {
  const position = insertPosition(v.position, await countLifecycle(tx, v.lifecycle));
  await shiftPositions(tx, v.lifecycle, position, null, 1);
  await tx.insert('buildpacks', {
    guid: v.guid,
    name: v.name,
    stack: v.stack,
    position,
    enabled: v.enabled ? 1 : 0,
    locked: v.locked ? 1 : 0,
    state: v.state,
    filename: null,
    blob_key: null,
    checksum: null,
    lifecycle: v.lifecycle,
    builtin: v.builtin,
  });
}

export async function createBuildpack(ctx: Ctx, input: CreateBuildpack): Promise<{ buildpack: Buildpack; metadata: Metadata }> {
  requireBuildpackAdmin(ctx);
  validateMetadataRequest(input.metadata);
  const stack = input.stack ?? null;
  const lifecycle = input.lifecycle ?? DEFAULT_BUILDPACK_LIFECYCLE;
  try {
    return await ctx.store.write(async (tx) => {
      await lockPositions(tx, ctx.store);
      if (stack !== null && !(await stackExists(tx.db, stack))) throw unprocessable(stackMissing(stack));
      if (await nameInUse(tx.db, input.name, stack, lifecycle)) throw unprocessable(nameTaken(input.name, stack, lifecycle));
      const guid = newGuid();
      await insertBuildpack(tx, {
        guid,
        name: input.name,
        stack,
        lifecycle,
        position: input.position,
        enabled: input.enabled ?? true,
        locked: input.locked ?? false,
        state: 'AWAITING_UPLOAD',
        builtin: null,
      });
      const metadata = await saveMetadata(tx, 'buildpacks', guid, input.metadata);
      await auditBuildpack(tx, ctx, 'create', { guid, name: input.name }, { request: input });
      return { buildpack: await loadBuildpack(tx.db, guid), metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw unprocessable(nameTaken(input.name, stack, lifecycle));
    throw err;
  }
}

export async function updateBuildpack(ctx: Ctx, bp: Buildpack, input: UpdateBuildpack): Promise<{ buildpack: Buildpack; metadata: Metadata }> {
  requireBuildpackAdmin(ctx);
  validateMetadataRequest(input.metadata);
  const name = input.name ?? bp.name;
  const stack = input.stack === undefined ? bp.stack : input.stack;
  try {
    return await ctx.store.write(async (tx) => {
      await lockPositions(tx, ctx.store);
      const current = await tx.db.selectFrom('buildpacks').selectAll().where('guid', '=', bp.guid).executeTakeFirst();
      if (!current) throw notFound('Buildpack');
      // A stack, once set, stays: the uploaded bits were built for it.
      if (input.stack !== undefined && current.stack !== null && input.stack !== current.stack) throw unprocessable(STACK_CANNOT_CHANGE);
      if (stack !== null && stack !== current.stack && !(await stackExists(tx.db, stack))) throw unprocessable(stackMissing(stack));
      if (await nameInUse(tx.db, name, stack, current.lifecycle, current.guid)) throw unprocessable(nameTaken(name, stack, current.lifecycle));
      let position = current.position;
      if (input.position !== undefined && input.position !== null) {
        position = movePosition(input.position, await countLifecycle(tx, current.lifecycle));
        if (position < current.position) await shiftPositions(tx, current.lifecycle, position, current.position - 1, 1);
        if (position > current.position) await shiftPositions(tx, current.lifecycle, current.position + 1, position, -1);
      }
      const patch = {
        name,
        stack,
        position,
        ...(input.enabled !== undefined && input.enabled !== null ? { enabled: input.enabled ? 1 : 0 } : {}),
        ...(input.locked !== undefined && input.locked !== null ? { locked: input.locked ? 1 : 0 } : {}),
      };
      await tx.update('buildpacks', current.guid, patch, { expectedGeneration: current.generation });
      const metadata = await saveMetadata(tx, 'buildpacks', current.guid, input.metadata);
      await auditBuildpack(tx, ctx, 'update', { guid: current.guid, name }, { request: input });
      return { buildpack: await loadBuildpack(tx.db, current.guid), metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw unprocessable(nameTaken(name, stack, bp.lifecycle));
    throw err;
  }
}

/** Starts the asynchronous delete; a repeated request while one is in flight gets the same job back. */
export async function deleteBuildpack(ctx: Ctx, bp: Buildpack): Promise<string> {
  requireBuildpackAdmin(ctx);
  return startDeleteJob(ctx, 'buildpack', bp.guid, (tx) => auditBuildpack(tx, ctx, 'delete', bp));
}

/**
 * The job half of buildpack operations. Deleting removes the row and closes the gap in the positions; the
 * bits are removed by `sweepBuildpackBits` (job handlers have no blobstore), which uploads and staging run.
 */
export function registerBuildpackJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('buildpack.delete', async ({ job }) => {
    await store.write(async (tx) => {
      await lockPositions(tx, store);
      const row = await tx.db.selectFrom('buildpacks').select(['guid', 'lifecycle', 'position']).where('guid', '=', job.resource_guid).executeTakeFirst();
      if (!row) return;
      await deleteMetadata(tx, 'buildpacks', [row.guid]);
      await tx.delete('buildpacks', row.guid);
      await shiftPositions(tx, row.lifecycle, row.position + 1, null, -1);
    });
  });
  // Uploads are processed before the response; the job only reports that (clients poll it).
  handlers.register('buildpack.upload', async () => {});
}

// ---- bits: upload, extraction cache, resolution for staging ----

export const buildpackBlobKey = (guid: string, sha256: string) => `buildpacks/${guid}/${sha256}`;

/** Extracted uploaded buildpacks, one directory per blob, next to the blobstore in the data directory. */
export const extractedRoot = (bits: Bits) => path.join(path.dirname(bits.workRoot), 'admin-buildpacks');
const extractedDir = (bits: Bits, blobKey: string) => path.join(extractedRoot(bits), blobKey.split('/').slice(1).join('-'));

/** Blob keys being written right now: the sweeper must not take them for orphans before their row commits. */
const pendingKeys = new Set<string>();

export interface BuildpackUpload {
  /** The received `bits` file, or null when the request had none. */
  file: string | null;
  /** The client's name for it (multipart filename). */
  filename: string | null;
}

/** Checks an upload request as upstream's BuildpackUploadMessage does, then the lock; 422 on failure. */
export async function checkBuildpackUpload(bp: Buildpack, upload: BuildpackUpload): Promise<{ file: string; filename: string }> {
  if (!upload.file) throw unprocessable(uploadInvalid(MISSING_BITS));
  const filename = path.basename(upload.filename || 'buildpack.zip');
  const problems: string[] = [];
  if (path.extname(filename) !== '.zip') problems.push(`${filename} is not a zip`);
  if ((await fs.stat(upload.file)).size === 0) problems.push(`${filename} cannot be empty`);
  if (problems.length > 0) throw unprocessable(uploadInvalid(...problems));
  if (bp.locked === 1) throw unprocessable(BUILDPACK_LOCKED);
  return { file: upload.file, filename };
}

/**
 * Makes an extracted zip usable as a buildpack directory: zips made by GitHub and friends wrap everything in one
 * top-level folder, and zips made on Windows carry no execute bits. Answers the buildpack's root directory.
 */
async function buildpackRoot(extracted: string): Promise<string> {
  let root = extracted;
  const hasBin = async (dir: string) => (await fs.stat(path.join(dir, 'bin')).catch(() => null))?.isDirectory() === true;
  if (!(await hasBin(root))) {
    const entries = await fs.readdir(root, { withFileTypes: true });
    const dirs = entries.filter((e) => e.isDirectory());
    if (dirs.length === 1 && entries.length === 1 && (await hasBin(path.join(root, dirs[0]!.name)))) root = path.join(root, dirs[0]!.name);
  }
  const bin = path.join(root, 'bin');
  const scripts = await fs.readdir(bin).catch(() => [] as string[]);
  if (!scripts.some((s) => ['supply', 'finalize', 'compile'].includes(s))) {
    throw new KilnError('UnprocessableEntity', 'Buildpack zip error: no bin/supply, bin/finalize or bin/compile found');
  }
  for (const s of scripts) {
    const file = path.join(bin, s);
    const st = await fs.lstat(file);
    if (st.isFile() && (st.mode & 0o111) === 0) await fs.chmod(file, st.mode | 0o755);
  }
  return root;
}

/** Extracts a buildpack zip safely into `dest` (which must not exist), `dest` becoming the buildpack's root. */
async function extractBuildpack(zipPath: string, dest: string, scratchRoot: string): Promise<void> {
  const scratch = path.join(scratchRoot, `buildpack-${randomUUID()}`);
  try {
    await extractZip(zipPath, scratch, { kind: 'buildpack' });
    const root = await buildpackRoot(scratch);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    try {
      await fs.rename(root, dest);
    } catch (err) {
      // Another staging extracted the same blob first: theirs is identical.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

async function readManifestStack(dir: string): Promise<string | null> {
  const text = await fs.readFile(path.join(dir, 'manifest.yml'), 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    return manifestStack(parseYaml(text));
  } catch {
    throw unprocessable('Buildpack zip error: manifest.yml is not valid YAML');
  }
}

/**
 * Stores an uploaded buildpack zip after checking it extracts safely (paths, links, entry count and size
 * limits) and holds a buildpack: AWAITING_UPLOAD/READY → READY with the new bits, filename and checksum.
 * A stack declared in the zip's manifest.yml must exist and match the buildpack's (an unset stack adopts it).
 * Nothing is kept when any check fails. Answers the buildpack and a completed `buildpack.upload` job.
 */
export async function processBuildpackUpload(
  ctx: Ctx,
  bp: Buildpack,
  upload: BuildpackUpload,
  bits: Bits,
): Promise<{ buildpack: Buildpack; metadata: Metadata; job: string }> {
  requireBuildpackAdmin(ctx);
  const { file, filename } = await checkBuildpackUpload(bp, upload);
  const staged = path.join(bits.workRoot, `buildpack-upload-${randomUUID()}`);
  let blobKey: string | null = null;
  let committed = false;
  try {
    await extractBuildpack(file, staged, bits.workRoot);
    const zipStack = await readManifestStack(staged);
    const info = await bits.blobstore.putFile((d) => {
      blobKey = buildpackBlobKey(bp.guid, d.sha256);
      pendingKeys.add(blobKey);
      return blobKey;
    }, file, { maxBytes: bits.maxPackageBytes });
    const cache = extractedDir(bits, info.key);
    await fs.rm(cache, { recursive: true, force: true });
    await fs.mkdir(path.dirname(cache), { recursive: true });
    await fs.rename(staged, cache);

    const out = await ctx.store.write(async (tx) => {
      const current = await tx.db.selectFrom('buildpacks').selectAll().where('guid', '=', bp.guid).executeTakeFirst();
      if (!current) throw notFound('Buildpack');
      if (current.locked === 1) throw unprocessable(BUILDPACK_LOCKED);
      let stack = current.stack;
      if (zipStack !== null) {
        if (current.stack === null) {
          if (!(await stackExists(tx.db, zipStack))) throw new KilnError('BuildpackStackDoesNotExist', zipStack);
          if (await nameInUse(tx.db, current.name, zipStack, current.lifecycle, current.guid)) {
            throw new KilnError('BuildpackNameStackLifecycleTaken', current.name, zipStack, current.lifecycle);
          }
          stack = zipStack;
        } else if (current.stack !== zipStack) {
          throw new KilnError('BuildpackStacksDontMatch', zipStack, current.stack);
        }
      }
      await tx.update('buildpacks', current.guid, {
        state: 'READY',
        filename,
        blob_key: info.key,
        checksum: info.sha256,
        stack,
        builtin: null,
      }, { expectedGeneration: current.generation });
      await auditBuildpack(tx, ctx, 'upload', current, { filename, checksum: info.sha256 });
      const job = await completedJob(tx, { operation: 'buildpack.upload', resourceType: 'buildpack', resourceGuid: current.guid, userGuid: ctx.principal.guid });
      return {
        buildpack: await loadBuildpack(tx.db, current.guid),
        metadata: await loadOneMetadata(tx.db, 'buildpacks', current.guid),
        job,
        previous: current.blob_key,
      };
    });
    committed = true;
    if (out.previous && out.previous !== out.buildpack.blob_key) await dropBits(bits, out.previous);
    return { buildpack: out.buildpack, metadata: out.metadata, job: out.job };
  } finally {
    if (blobKey) pendingKeys.delete(blobKey);
    if (!committed && blobKey) {
      // The same bits may already be the buildpack's current ones (a repeated upload): keep those.
      const current = await ctx.store.db.selectFrom('buildpacks').select('blob_key').where('guid', '=', bp.guid).executeTakeFirst();
      if (current?.blob_key !== blobKey) await dropBits(bits, blobKey);
    }
    await fs.rm(staged, { recursive: true, force: true });
  }
}

async function dropBits(bits: Bits, blobKey: string): Promise<void> {
  await bits.blobstore.delete(blobKey).catch(() => false);
  await fs.rm(extractedDir(bits, blobKey), { recursive: true, force: true });
}

/**
 * Removes stored and extracted bits no buildpack refers to any more (deleted buildpacks, replaced uploads that
 * were interrupted). Cheap: one query and two small directory listings.
 */
export async function sweepBuildpackBits(ctx: Pick<Ctx, 'store'>, bits: Bits): Promise<void> {
  const db = ctx.store.db;
  const rows = await db.selectFrom('buildpacks').select('blob_key').where('blob_key', 'is not', null).execute();
  const live = new Set(rows.map((r) => r.blob_key!));
  const isLive = (key: string) => live.has(key) || pendingKeys.has(key);
  const guids = await fs.readdir(path.join(bits.blobstore.root, 'buildpacks')).catch(() => [] as string[]);
  for (const guid of guids) {
    const shas = await fs.readdir(path.join(bits.blobstore.root, 'buildpacks', guid)).catch(() => [] as string[]);
    for (const sha of shas) {
      const key = buildpackBlobKey(guid, sha);
      if (!isLive(key)) await bits.blobstore.delete(key).catch(() => false);
    }
    await fs.rmdir(path.join(bits.blobstore.root, 'buildpacks', guid)).catch(() => undefined);
  }
  const extracted = await fs.readdir(extractedRoot(bits)).catch(() => [] as string[]);
  const liveDirs = new Set([...live, ...pendingKeys].map((k) => path.basename(extractedDir(bits, k))));
  for (const name of extracted) {
    if (!liveDirs.has(name)) await fs.rm(path.join(extractedRoot(bits), name), { recursive: true, force: true });
  }
}

/** The directory of a READY buildpack: its built-in source, or its uploaded zip extracted (once) into the cache. */
async function materialize(bits: Bits, bp: Buildpack): Promise<string | null> {
  if (bp.blob_key) {
    const dir = extractedDir(bits, bp.blob_key);
    if (!(await fs.stat(path.join(dir, 'bin')).catch(() => null))) {
      await fs.rm(dir, { recursive: true, force: true });
      await extractBuildpack(await bits.blobstore.localPath(bp.blob_key), dir, bits.workRoot);
    }
    return dir;
  }
  if (bp.builtin) return builtinBuildpack(bp.builtin)?.dir ?? null;
  return null;
}

/** Classic buildpacks usable for `stack`: those for that stack, then stackless ones (a name's stack match wins). */
async function candidatesFor(db: Db, stack: string | null | undefined): Promise<Buildpack[]> {
  let q = db.selectFrom('buildpacks').selectAll().where('lifecycle', '=', 'buildpack');
  if (stack) q = q.where((eb) => eb.or([eb('stack', '=', stack), eb('stack', 'is', null)]));
  const rows = await q.orderBy('position').orderBy('id').execute();
  const byName = new Map<string, Buildpack>();
  for (const r of rows) {
    const key = r.name.toLowerCase();
    const seen = byName.get(key);
    if (!seen || (seen.stack === null && r.stack !== null)) byName.set(key, r);
  }
  return rows.filter((r) => byName.get(r.name.toLowerCase()) === r);
}

/**
 * The buildpacks a build of `stack` stages with, in order. With names requested (an app's or build's
 * `lifecycle.data.buildpacks`): each must be an enabled, READY admin buildpack for the stack (or stackless);
 * URLs are refused, as Kiln does not fetch buildpacks. With none: every enabled, READY buildpack for the
 * stack in position order, for auto-detection. Uploaded buildpacks are extracted on first use and cached.
 * Failures are StagingErrors, which the build records.
 */
export async function stagingBuildpacks(db: Db, bits: Bits, requested: string[] | undefined, stack: string | null | undefined): Promise<BuildpackSource[]> {
  const candidates = await candidatesFor(db, stack);
  const sources: BuildpackSource[] = [];
  if (requested && requested.length > 0) {
    for (const name of requested) {
      if (isBuildpackUrl(name)) {
        throw new KilnError('StagingError', `buildpack URLs are not supported (${redactUrl(name)}); upload the buildpack as an admin buildpack and name it instead`);
      }
      const bp = candidates.find((c) => c.name === name) ?? candidates.find((c) => c.name.toLowerCase() === name.toLowerCase());
      const where = stack ? ` for stack '${stack}'` : '';
      if (!bp) throw new KilnError('StagingError', `buildpack "${name}" must be an existing admin buildpack${where}`);
      if (bp.enabled !== 1) throw new KilnError('StagingError', `buildpack "${name}" is disabled`);
      const dir = bp.state === 'READY' ? await materialize(bits, bp) : null;
      if (!dir) throw new KilnError('StagingError', `buildpack "${name}" has no bits uploaded`);
      sources.push({ name: bp.name, dir });
    }
    return sources;
  }
  for (const bp of candidates) {
    if (bp.enabled !== 1 || bp.state !== 'READY') continue;
    const dir = await materialize(bits, bp);
    if (dir) sources.push({ name: bp.name, dir });
  }
  return sources;
}

// ---- bootstrap ----

const seededKey = (name: string) => `buildpacks.builtin.${name}`;

/**
 * Adds the buildpacks shipped with Kiln as READY admin buildpacks (stackless: the local runtime runs any
 * stack), in BUILTIN_BUILDPACKS order. Each is seeded once, ever: one an admin deleted stays deleted, and
 * one added in a later Kiln version is inserted at its position on the next start.
 */
export async function seedBuiltinBuildpacks(store: Store): Promise<void> {
  await store.write(async (tx) => {
    await lockPositions(tx, store);
    for (const builtin of BUILTIN_BUILDPACKS) {
      const done = await tx.db.selectFrom('settings').select('value').where('key', '=', seededKey(builtin.name)).executeTakeFirst();
      if (done) continue;
      if (!(await nameInUse(tx.db, builtin.name, null, 'buildpack'))) {
        await insertBuildpack(tx, {
          guid: newGuid(),
          name: builtin.name,
          stack: null,
          lifecycle: 'buildpack',
          position: builtin.position,
          enabled: true,
          locked: false,
          state: 'READY',
          builtin: builtin.name,
        });
      }
      await tx.db.insertInto('settings').values({ key: seededKey(builtin.name), value: tx.now }).execute();
    }
  });
}
