import fs from 'node:fs/promises';
import path from 'node:path';
import type { Kysely } from 'kysely';
import { resourceListSchema, type ResourceFingerprint } from '../blobstore/resource-cache.ts';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { UPLOAD_NEEDS_CONTENT, type CopyPackage, type CreatePackage, type UpdatePackage, type PackageState } from '../domain/packages.ts';
import { buildPackage } from '../staging/package.ts';
import { zipExpandedSize } from '../staging/zip.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { auditApp } from './apps.ts';
import { appScopeFor, findVisibleApp, requireAppWriter, type AppScope } from './app-scope.ts';
import { packageBlobKey, type Bits, failUpload } from '../lifecycle/blobs.ts';
import type { Ctx } from './context.ts';
import { requireFeature } from './feature-flags.ts';
import { type JobHandlers, startDeleteJob } from '../lifecycle/jobs.ts';
import { uploadsInFlight } from '../lifecycle/uploads.ts';

const COMMON_FILTERS = ['states', 'types'] as const;

export const PACKAGE_LIST: ListSpec = {
  filters: [...COMMON_FILTERS, 'app_guids', 'space_guids', 'organization_guids'],
  labelSelector: true,
};
export const APP_PACKAGE_LIST: ListSpec = { filters: [...COMMON_FILTERS], labelSelector: true };

export interface PackageScope extends AppScope {
  pkg: Row<'packages'>;
}

// ---- reading ----

export async function listPackages(ctx: Ctx, params: ListParams, opts: { appGuid?: string } = {}): Promise<Page<Row<'packages'>>> {
  if (opts.appGuid !== undefined) await findVisibleApp(ctx, opts.appGuid);
  let q = ctx.store.db
    .selectFrom('packages')
    .innerJoin('apps', 'apps.guid', 'packages.app_guid')
    .innerJoin('spaces', 'spaces.guid', 'apps.space_guid')
    .selectAll('packages')
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.spaceVisible(eb, 'apps.space_guid')));
  const f = params.filters;
  if (opts.appGuid !== undefined) q = q.where('packages.app_guid', '=', opts.appGuid);
  if (f.states) q = q.where('packages.state', 'in', f.states as PackageState[]); // unknown states match nothing
  if (f.types) q = q.where('packages.type', 'in', f.types);
  if (f.app_guids) q = q.where('packages.app_guid', 'in', f.app_guids);
  if (f.space_guids) q = q.where('apps.space_guid', 'in', f.space_guids);
  if (f.organization_guids) q = q.where('spaces.organization_guid', 'in', f.organization_guids);
  return listPage(q, listOptions('packages', params));
}

/** A package the caller can read (a reader of its app's space), else 404 `Package not found`. */
export async function findVisiblePackage(ctx: Ctx, guid: string): Promise<PackageScope> {
  const pkg = await ctx.store.db.selectFrom('packages').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!pkg) throw notFound('Package');
  return { pkg, ...(await appScopeFor(ctx, pkg.app_guid, 'Package')) };
}

const loadPackage = (db: Kysely<Database>, guid: string) => db.selectFrom('packages').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

/** The destination app of a create/copy, named in the body: invisible or missing is a 422, not a 404. */
async function appFromBody(ctx: Ctx, appGuid: string): Promise<AppScope> {
  try {
    return await findVisibleApp(ctx, appGuid);
  } catch (err) {
    if (err instanceof KilnError && err.errorName === 'ResourceNotFound') {
      throw unprocessable('App is invalid. Ensure it exists and you have access to it.');
    }
    throw err;
  }
}

/** The package a copy reads from: missing or invisible is CC's 422, so a copy never reveals another tenant's guids. */
async function sourcePackage(ctx: Ctx, guid: string): Promise<PackageScope> {
  try {
    return await findVisiblePackage(ctx, guid);
  } catch (err) {
    if (err instanceof KilnError && err.errorName === 'ResourceNotFound') {
      throw unprocessable('Source package is invalid. Ensure it exists and you have access to it.');
    }
    throw err;
  }
}

function auditPackage(tx: WriteTx, ctx: Ctx, verb: string, scope: AppScope, data: Record<string, unknown>) {
  return auditApp(tx, ctx, `package.${verb}`, scope, data);
}

// ---- create / copy / update / delete ----

export async function createPackage(ctx: Ctx, input: CreatePackage): Promise<{ pkg: Row<'packages'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const scope = await appFromBody(ctx, input.appGuid);
  await requireAppWriter(ctx, scope);
  if (input.type === 'docker') {
    if (!ctx.access.admin) await requireFeature(ctx.store.db, 'diego_docker');
    if (scope.app.lifecycle_type !== 'docker') throw unprocessable('Docker packages can only be created for apps with a docker lifecycle.');
  } else if (scope.app.lifecycle_type === 'docker') {
    throw unprocessable('Bits packages cannot be created for apps with a docker lifecycle.');
  }
  return ctx.store.write(async (tx) => {
    const guid = newGuid();
    await tx.insert('packages', {
      guid,
      app_guid: scope.app.guid,
      type: input.type,
      // Docker packages point at an image; there is nothing to upload.
      state: input.type === 'docker' ? 'READY' : 'AWAITING_UPLOAD',
      error: null,
      checksum_sha256: null,
      checksum_sha1: null,
      docker_image: input.docker?.image ?? null,
      docker_username: input.docker?.username ?? null,
      docker_password: input.docker?.password ?? null,
      blob_key: null,
      size_in_bytes: null,
      source_package_guid: null,
    });
    const metadata = await saveMetadata(tx, 'packages', guid, input.metadata);
    const request = { type: input.type, ...(input.docker ? { data: { image: input.docker.image } } : {}) };
    await auditPackage(tx, ctx, 'create', scope, { package_guid: guid, request });
    return { pkg: await loadPackage(tx.db, guid), metadata };
  });
}

/**
 * `POST /v3/packages?source_guid=…`: a new package of the destination app with the source's bits (or image).
 * The blob is copied before the row exists, so a failure leaves neither a half-copied package nor a stray blob.
 */
export async function copyPackage(ctx: Ctx, sourceGuid: string, input: CopyPackage, bits: Bits): Promise<{ pkg: Row<'packages'>; metadata: Metadata }> {
  const dest = await appFromBody(ctx, input.appGuid);
  await requireAppWriter(ctx, dest);
  const source = await sourcePackage(ctx, sourceGuid);
  // Copying bits out of a space takes the same right as changing its apps (Cloud Controller asks for both).
  await requireAppWriter(ctx, source);
  if (source.pkg.type === 'bits' && source.pkg.state !== 'READY') throw unprocessable('Source package must be in READY state to copy.');
  if ((source.pkg.type === 'docker') !== (dest.app.lifecycle_type === 'docker')) {
    throw unprocessable(`Cannot copy a ${source.pkg.type} package to an app with a ${dest.app.lifecycle_type} lifecycle.`);
  }
  const guid = newGuid();
  const blobKey = source.pkg.blob_key ? packageBlobKey(guid) : null;
  if (source.pkg.blob_key && blobKey) await bits.blobstore.copy(source.pkg.blob_key, blobKey);
  try {
    return await ctx.store.write(async (tx) => {
      await tx.insert('packages', {
        guid,
        app_guid: dest.app.guid,
        type: source.pkg.type,
        state: 'READY',
        error: null,
        checksum_sha256: source.pkg.checksum_sha256,
        checksum_sha1: source.pkg.checksum_sha1,
        docker_image: source.pkg.docker_image,
        docker_username: source.pkg.docker_username,
        docker_password: source.pkg.docker_password,
        blob_key: blobKey,
        size_in_bytes: source.pkg.size_in_bytes,
        source_package_guid: source.pkg.guid,
      });
      await auditPackage(tx, ctx, 'create', dest, { package_guid: guid, request: { source_package_guid: source.pkg.guid } });
      return { pkg: await loadPackage(tx.db, guid), metadata: { labels: {}, annotations: {} } };
    });
  } catch (err) {
    if (blobKey) await bits.blobstore.delete(blobKey);
    throw err;
  }
}

export async function updatePackage(ctx: Ctx, guid: string, input: UpdatePackage): Promise<{ pkg: Row<'packages'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const scope = await findVisiblePackage(ctx, guid);
  await requireAppWriter(ctx, scope);
  const credentials = input.username !== undefined || input.password !== undefined;
  if (credentials && scope.pkg.type !== 'docker') throw unprocessable('Username and password can only be set for docker packages.');
  return ctx.store.write(async (tx) => {
    if (credentials) {
      await tx.update('packages', scope.pkg.guid, {
        ...(input.username !== undefined ? { docker_username: input.username } : {}),
        ...(input.password !== undefined ? { docker_password: input.password } : {}),
      }, { expectedGeneration: scope.pkg.generation });
    }
    const metadata = await saveMetadata(tx, 'packages', scope.pkg.guid, input.metadata);
    if (!credentials && input.metadata) tx.changed('packages', scope.pkg.guid, 'update');
    const request = { ...input, ...(input.password !== undefined ? { password: '[PRIVATE DATA HIDDEN]' } : {}) };
    await auditPackage(tx, ctx, 'update', scope, { package_guid: scope.pkg.guid, request });
    return { pkg: await loadPackage(tx.db, scope.pkg.guid), metadata };
  });
}

export async function deletePackage(ctx: Ctx, guid: string): Promise<string> {
  const scope = await findVisiblePackage(ctx, guid);
  await requireAppWriter(ctx, scope);
  return startDeleteJob(ctx, 'package', scope.pkg.guid, (tx) => auditPackage(tx, ctx, 'delete', scope, { package_guid: scope.pkg.guid }));
}

/** Deletes package rows; their blobs are collected by the blob collector when it sees the delete. */
export async function deletePackageRows(tx: WriteTx, guids: string[]): Promise<void> {
  if (guids.length === 0) return;
  await deleteMetadata(tx, 'packages', guids);
  await tx.deleteWhere('packages', (eb) => eb('guid', 'in', guids));
}

export function registerPackageJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('package.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const row = await tx.db.selectFrom('packages').select('guid').where('guid', '=', job.resource_guid).executeTakeFirst();
      if (row) await deletePackageRows(tx, [row.guid]);
    });
  });
}

// ---- upload ----

/**
 * Checks that come before the request body is read: visibility, permission, and that the package is a bits
 * package still waiting for its bits. The body (possibly a gigabyte) is only consumed when these pass.
 */
export async function authorizeUpload(ctx: Ctx, guid: string): Promise<PackageScope> {
  const scope = await findVisiblePackage(ctx, guid);
  await requireAppWriter(ctx, scope);
  if (scope.pkg.type !== 'bits') throw unprocessable('Package type must be bits.');
  if (scope.pkg.state !== 'AWAITING_UPLOAD') throw new KilnError('PackageBitsAlreadyUploaded');
  return scope;
}

/** Parses the upload's `resources` field (JSON text) into fingerprints; a malformed value is a 422. */
export function parseUploadResources(text: string | undefined): ResourceFingerprint[] | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw unprocessable('Resources must be a JSON array');
  }
  const parsed = resourceListSchema.safeParse(value);
  if (!parsed.success) {
    throw unprocessable(Array.isArray(value) ? 'Resources entries must have path, checksum value (SHA-1) and size_in_bytes' : 'Resources must be an array');
  }
  return parsed.data;
}

export interface PackageUpload {
  /** The received `bits` zip on local disk (owned by the caller, who removes it), or null. */
  bitsFile: string | null;
  resources: ResourceFingerprint[] | undefined;
}

/**
 * Processes an upload: the package goes PROCESSING_UPLOAD, the zip is extracted safely and merged with the
 * matched resources from the cache, re-zipped and stored; then READY with its SHA-256. Any failure leaves no
 * blob and no scratch files, marks the package FAILED with the reason and is rethrown (a bad zip → 422).
 */
export async function processUpload(ctx: Ctx, scope: PackageScope, upload: PackageUpload, bits: Bits): Promise<Row<'packages'>> {
  if (upload.bitsFile === null && upload.resources === undefined) throw unprocessable(UPLOAD_NEEDS_CONTENT);
  const guid = scope.pkg.guid;
  // Registered before the state changes, so the crash sweep never mistakes this upload for an abandoned one.
  uploadsInFlight.add(guid);
  try {
    return await receive(ctx, scope, upload, bits);
  } finally {
    uploadsInFlight.delete(guid);
  }
}

async function receive(ctx: Ctx, scope: PackageScope, upload: PackageUpload, bits: Bits): Promise<Row<'packages'>> {
  const guid = scope.pkg.guid;
  await ctx.store.write(async (tx) => {
    // Uploading bits is the user's write, so generation moves (as for a PATCH).
    const claimed = await tx.update('packages', guid, { state: 'PROCESSING_UPLOAD' }, { where: (eb) => eb('state', '=', 'AWAITING_UPLOAD') });
    // A concurrent upload got there first.
    if (!claimed) throw new KilnError('PackageBitsAlreadyUploaded');
  });
  const workDir = await fs.mkdtemp(path.join(bits.workRoot, 'upload-'));
  let storedKey: string | null = null;
  try {
    // shared_bits_packer.rb's validate_size!: the expanded size counts, judged before anything is inflated.
    if (upload.bitsFile !== null && (await zipExpandedSize(upload.bitsFile)) > bits.maxPackageBytes) {
      throw new KilnError('AppPackageInvalid', `Package may not be larger than ${bits.maxPackageBytes} bytes`);
    }
    const built = await buildPackage({
      bitsZip: upload.bitsFile,
      resources: upload.resources ?? [],
      cache: bits.resourceCache,
      workDir,
      limits: { maxTotalBytes: bits.maxPackageBytes },
    });
    // …and again once the matched resources are in, as upstream validates the package it will store.
    if ((await zipExpandedSize(built.zipPath)) > bits.maxPackageBytes) {
      throw new KilnError('AppPackageInvalid', `Package may not be larger than ${bits.maxPackageBytes} bytes`);
    }
    const info = await bits.blobstore.putFile(packageBlobKey(guid), built.zipPath, { move: true, maxBytes: bits.maxPackageBytes });
    storedKey = info.key;
    const done = await ctx.store.write(async (tx) => {
      const stored = await tx.update(
        'packages',
        guid,
        { state: 'READY', error: null, checksum_sha256: info.sha256, checksum_sha1: info.sha1, blob_key: info.key, size_in_bytes: info.size },
        { where: (eb) => eb('state', '=', 'PROCESSING_UPLOAD') },
      );
      if (!stored) return undefined; // deleted meanwhile
      await auditPackage(tx, ctx, 'upload', scope, { package_guid: guid });
      return loadPackage(tx.db, guid);
    });
    if (!done) throw notFound('Package');
    storedKey = null;
    return done;
  } catch (err) {
    await failUpload(ctx.store, bits, { table: 'packages', guid, storedKey, err });
    throw err;
  } finally {
    await fs.rm(workDir, { recursive: true, force: true });
  }
}

// ---- download ----

/** The blob to download (A SD only); bits packages that are READY. */
export async function packageDownload(ctx: Ctx, guid: string): Promise<{ key: string; scope: PackageScope }> {
  const scope = await findVisiblePackage(ctx, guid);
  if (!(await ctx.access.canWriteSpace(scope.space.guid))) throw notAuthorized();
  if (scope.pkg.type !== 'bits') throw unprocessable('Package type must be bits.');
  if (scope.pkg.state !== 'READY' || !scope.pkg.blob_key) throw unprocessable('Package has no bits to download.');
  await ctx.store.write((tx) => auditPackage(tx, ctx, 'download', scope, { package_guid: scope.pkg.guid }));
  return { key: scope.pkg.blob_key, scope };
}
