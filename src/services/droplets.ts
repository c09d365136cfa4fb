import fs from 'node:fs/promises';
import path from 'node:path';
import type { Kysely } from 'kysely';
import { DROPLET_UPLOAD_ONCE, type CopyDroplet, type CreateDroplet, type UpdateDroplet, type DropletState } from '../domain/droplets.ts';
import { badQuery, KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { extractDroplet } from '../staging/droplet.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { auditApp } from './apps.ts';
import { appScopeFor, findVisibleApp, requireAppWriter, type AppScope } from './app-scope.ts';
import { dropletBlobKey, type Bits, failUpload } from '../lifecycle/blobs.ts';
import type { Ctx } from './context.ts';
import { completedJob, type JobHandlers, startDeleteJob } from '../lifecycle/jobs.ts';
import { findVisiblePackage } from './packages.ts';
import { dropletValues } from '../lifecycle/droplets.ts';

const COMMON_FILTERS = ['states'] as const;

export const DROPLET_LIST: ListSpec = {
  filters: [...COMMON_FILTERS, 'app_guids', 'space_guids', 'organization_guids'],
  labelSelector: true,
};
export const APP_DROPLET_LIST: ListSpec = { filters: [...COMMON_FILTERS], params: ['current'], labelSelector: true };
export const PACKAGE_DROPLET_LIST: ListSpec = { filters: [...COMMON_FILTERS], labelSelector: true };

export interface DropletScope extends AppScope {
  droplet: Row<'droplets'>;
}

// ---- reading ----

export async function listDroplets(
  ctx: Ctx,
  params: ListParams,
  opts: { appGuid?: string; packageGuid?: string } = {},
): Promise<Page<Row<'droplets'>>> {
  let currentGuid: string | null | undefined;
  if (opts.appGuid !== undefined) {
    const { app } = await findVisibleApp(ctx, opts.appGuid);
    const current = params.params.current;
    if (current !== undefined && current !== 'true') throw badQuery("Current must be 'true'");
    if (current === 'true') currentGuid = app.droplet_guid;
  }
  if (opts.packageGuid !== undefined) await findVisiblePackage(ctx, opts.packageGuid);
  let q = ctx.store.db
    .selectFrom('droplets')
    .innerJoin('apps', 'apps.guid', 'droplets.app_guid')
    .innerJoin('spaces', 'spaces.guid', 'apps.space_guid')
    .selectAll('droplets')
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.spaceVisible(eb, 'apps.space_guid')));
  const f = params.filters;
  if (opts.appGuid !== undefined) q = q.where('droplets.app_guid', '=', opts.appGuid);
  if (opts.packageGuid !== undefined) q = q.where('droplets.package_guid', '=', opts.packageGuid);
  if (currentGuid !== undefined) q = q.where('droplets.guid', '=', currentGuid ?? '');
  if (f.states) q = q.where('droplets.state', 'in', f.states as DropletState[]); // unknown states match nothing
  if (f.app_guids) q = q.where('droplets.app_guid', 'in', f.app_guids);
  if (f.space_guids) q = q.where('apps.space_guid', 'in', f.space_guids);
  if (f.organization_guids) q = q.where('spaces.organization_guid', 'in', f.organization_guids);
  return listPage(q, listOptions('droplets', params));
}

/** A droplet the caller can read, else 404 `Droplet not found` (the cf CLI matches that detail). */
export async function findVisibleDroplet(ctx: Ctx, guid: string): Promise<DropletScope> {
  const droplet = await ctx.store.db.selectFrom('droplets').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!droplet) throw notFound('Droplet');
  return { droplet, ...(await appScopeFor(ctx, droplet.app_guid, 'Droplet')) };
}

/** Whether the caller sees process types and execution metadata of droplets in this space. */
export const showsDropletSecrets = (ctx: Ctx, spaceGuid: string) => ctx.access.canReadSpaceSecrets(spaceGuid);

const loadDroplet = (db: Kysely<Database>, guid: string) => db.selectFrom('droplets').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

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

const auditDroplet = (tx: WriteTx, ctx: Ctx, verb: string, scope: AppScope, data: Record<string, unknown>) =>
  auditApp(tx, ctx, `droplet.${verb}`, scope, data);

// ---- create / copy / update / delete ----

export async function createDroplet(ctx: Ctx, input: CreateDroplet): Promise<{ droplet: Row<'droplets'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const scope = await appFromBody(ctx, input.appGuid);
  await requireAppWriter(ctx, scope);
  if (scope.app.lifecycle_type === 'docker') throw unprocessable('Droplet creation is not available for apps with docker lifecycles.');
  return ctx.store.write(async (tx) => {
    const guid = newGuid();
    await tx.insert('droplets', 
      dropletValues(tx, {
        guid,
        app_guid: scope.app.guid,
        state: 'AWAITING_UPLOAD',
        lifecycle_type: scope.app.lifecycle_type,
        process_types: JSON.stringify(input.processTypes),
        stack: scope.app.lifecycle_stack,
      }),
    );
    const metadata = await saveMetadata(tx, 'droplets', guid, input.metadata);
    await auditDroplet(tx, ctx, 'create', scope, { droplet_guid: guid, request: { relationships: { app: { data: { guid: scope.app.guid } } } } });
    return { droplet: await loadDroplet(tx.db, guid), metadata };
  });
}

/**
 * `POST /v3/droplets?source_guid=…`: the copy shares nothing with its source but the content. Cloud Controller
 * (droplets_controller#create_copy) answers a source the caller cannot read with 404 "Droplet not found" and then
 * a destination app they cannot read with 404 "App not found" — not the 422 of other body guids — before any
 * bits are touched.
 */
export async function copyDroplet(ctx: Ctx, sourceGuid: string, input: CopyDroplet, bits: Bits): Promise<{ droplet: Row<'droplets'>; metadata: Metadata }> {
  const source = await findVisibleDroplet(ctx, sourceGuid);
  const dest = await findVisibleApp(ctx, input.appGuid);
  await requireAppWriter(ctx, dest);
  if (source.droplet.state !== 'STAGED') throw unprocessable('Source droplet must be in STAGED state to copy.');
  const guid = newGuid();
  const blobKey = source.droplet.blob_key ? dropletBlobKey(guid) : null;
  if (source.droplet.blob_key && blobKey) await bits.blobstore.copy(source.droplet.blob_key, blobKey);
  try {
    return await ctx.store.write(async (tx) => {
      const s = source.droplet;
      await tx.insert('droplets', 
        dropletValues(tx, {
          guid,
          app_guid: dest.app.guid,
          state: 'STAGED',
          lifecycle_type: s.lifecycle_type,
          process_types: s.process_types,
          execution_metadata: s.execution_metadata,
          buildpacks: s.buildpacks,
          stack: s.stack,
          image: s.image,
          checksum_sha256: s.checksum_sha256,
          checksum_sha1: s.checksum_sha1,
          blob_key: blobKey,
          size_in_bytes: s.size_in_bytes,
          source_droplet_guid: s.guid,
        }),
      );
      await auditDroplet(tx, ctx, 'create', dest, { droplet_guid: guid, request: { source_droplet_guid: s.guid } });
      return { droplet: await loadDroplet(tx.db, guid), metadata: { labels: {}, annotations: {} } };
    });
  } catch (err) {
    if (blobKey) await bits.blobstore.delete(blobKey);
    throw err;
  }
}

export async function updateDroplet(ctx: Ctx, guid: string, input: UpdateDroplet): Promise<{ droplet: Row<'droplets'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const scope = await findVisibleDroplet(ctx, guid);
  await requireAppWriter(ctx, scope);
  if (input.image !== undefined) {
    if (!ctx.access.admin) throw notAuthorized();
    if (scope.droplet.lifecycle_type === 'buildpack') throw unprocessable('Images can only be set on droplets of docker or cnb lifecycles.');
  }
  return ctx.store.write(async (tx) => {
    if (input.image !== undefined) await tx.update('droplets', scope.droplet.guid, { image: input.image }, { expectedGeneration: scope.droplet.generation });
    else if (input.metadata) tx.changed('droplets', scope.droplet.guid, 'update');
    const metadata = await saveMetadata(tx, 'droplets', scope.droplet.guid, input.metadata);
    await auditDroplet(tx, ctx, 'update', scope, { droplet_guid: scope.droplet.guid, request: input });
    return { droplet: await loadDroplet(tx.db, scope.droplet.guid), metadata };
  });
}

export async function deleteDroplet(ctx: Ctx, guid: string): Promise<string> {
  const scope = await findVisibleDroplet(ctx, guid);
  await requireAppWriter(ctx, scope);
  return startDeleteJob(ctx, 'droplet', scope.droplet.guid, (tx) => auditDroplet(tx, ctx, 'delete', scope, { droplet_guid: scope.droplet.guid }));
}

/** Deletes droplet rows (and unsets them as their apps' current droplet); blobs go via the blob collector. */
export async function deleteDropletRows(tx: WriteTx, guids: string[]): Promise<void> {
  if (guids.length === 0) return;
  const apps = await tx.db.selectFrom('apps').select(['guid', 'generation']).where('droplet_guid', 'in', guids).execute();
  for (const a of apps) await tx.update('apps', a.guid, { droplet_guid: null }, { expectedGeneration: a.generation });
  await deleteMetadata(tx, 'droplets', guids);
  await tx.deleteWhere('droplets', (eb) => eb('guid', 'in', guids));
}

export function registerDropletJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('droplet.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const row = await tx.db.selectFrom('droplets').select('guid').where('guid', '=', job.resource_guid).executeTakeFirst();
      if (row) await deleteDropletRows(tx, [row.guid]);
    });
  });
  // Uploads are processed before the response; the job only reports that (cf push --droplet polls it).
  handlers.register('droplet.upload', async () => {});
}

// ---- upload / download ----

/** Checks before the body is read: visible, A SD, and still waiting for its one upload. */
export async function authorizeDropletUpload(ctx: Ctx, guid: string): Promise<DropletScope> {
  const scope = await findVisibleDroplet(ctx, guid);
  await requireAppWriter(ctx, scope);
  if (scope.droplet.state !== 'AWAITING_UPLOAD') throw unprocessable(DROPLET_UPLOAD_ONCE);
  return scope;
}

/**
 * Stores an uploaded droplet tarball after checking it extracts safely (no escaping paths or links, within
 * the size limits): PROCESSING_UPLOAD → STAGED, or FAILED with the reason (and nothing stored). Answers the
 * droplet and a completed `droplet.upload` job for the Location header.
 */
export async function processDropletUpload(ctx: Ctx, scope: DropletScope, tgz: string, bits: Bits): Promise<{ droplet: Row<'droplets'>; job: string }> {
  const guid = scope.droplet.guid;
  await ctx.store.write(async (tx) => {
    // Uploading bits is the user's write, so generation moves (as for a PATCH).
    const claimed = await tx.update('droplets', guid, { state: 'PROCESSING_UPLOAD' }, { where: (eb) => eb('state', '=', 'AWAITING_UPLOAD') });
    if (!claimed) throw unprocessable(DROPLET_UPLOAD_ONCE);
  });
  const check = await fs.mkdtemp(path.join(bits.workRoot, 'droplet-'));
  let storedKey: string | null = null;
  try {
    await extractDroplet(tgz, path.join(check, 'root'));
    await fs.rm(check, { recursive: true, force: true });
    const info = await bits.blobstore.putFile(dropletBlobKey(guid), tgz, { maxBytes: bits.maxPackageBytes });
    storedKey = info.key;
    const out = await ctx.store.write(async (tx) => {
      const stored = await tx.update(
        'droplets',
        guid,
        { state: 'STAGED', error: null, checksum_sha256: info.sha256, checksum_sha1: info.sha1, blob_key: info.key, size_in_bytes: info.size },
        { where: (eb) => eb('state', '=', 'PROCESSING_UPLOAD') },
      );
      if (!stored) return undefined;
      await auditDroplet(tx, ctx, 'upload', scope, { droplet_guid: guid });
      const job = await completedJob(tx, { operation: 'droplet.upload', resourceType: 'droplet', resourceGuid: guid, userGuid: ctx.principal.guid });
      return { droplet: await loadDroplet(tx.db, guid), job };
    });
    if (!out) throw notFound('Droplet');
    storedKey = null;
    return out;
  } catch (err) {
    await failUpload(ctx.store, bits, { table: 'droplets', guid, storedKey, err });
    throw err;
  } finally {
    await fs.rm(check, { recursive: true, force: true });
  }
}

/** The droplet blob to download: A AR GA OM SM SD SA (not supporters), STAGED buildpack droplets only. */
export async function dropletDownload(ctx: Ctx, guid: string): Promise<{ key: string; scope: DropletScope }> {
  const scope = await findVisibleDroplet(ctx, guid);
  const allowed =
    ctx.access.global ||
    (await ctx.access.hasSpaceRole(scope.space.guid, 'space_developer', 'space_manager', 'space_auditor')) ||
    (await ctx.access.hasOrgRole(scope.space.organization_guid, 'organization_manager'));
  if (!allowed) throw notAuthorized();
  if (scope.droplet.lifecycle_type === 'docker') throw unprocessable("Cannot download droplets with 'docker' lifecycle.");
  if (scope.droplet.state !== 'STAGED' || !scope.droplet.blob_key) throw unprocessable('Only staged droplets can be downloaded.');
  await ctx.store.write((tx) => auditDroplet(tx, ctx, 'download', scope, { droplet_guid: scope.droplet.guid }));
  return { key: scope.droplet.blob_key, scope };
}
