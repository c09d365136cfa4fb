import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Context } from 'hono';
import { KilnError, notFound } from '../../domain/errors.ts';
import { CopyPackageSchema, CreatePackageSchema, UpdatePackageSchema } from '../../domain/packages.ts';
import { bitsFor, stagingDropletBlobKey, stagingInputBlobKey, type Bits } from '../../lifecycle/blobs.ts';
import * as packages from '../../services/packages.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { receiveMultipart } from '../cf/multipart.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentPackage } from '../presenters/package.ts';

/** The shared Bits of this API: the server's, or the data directory's default instance. */
export const bitsOf = (deps: AppDeps): Promise<Bits> => (deps.bits ? Promise.resolve(deps.bits) : bitsFor(deps.config));

/** Serves a blob by key as a download (the target of the signed redirect). */
async function sendBlob(c: Context<Env>, bits: Bits, key: string, contentType: string, filename: string): Promise<Response> {
  const size = await bits.blobstore.size(key);
  if (size === null) throw notFound('Blob');
  const stream = createReadStream(bits.blobstore.pathOf(key));
  return new Response(Readable.toWeb(stream) as unknown as ReadableStream, {
    status: 200,
    headers: {
      'content-type': contentType,
      'content-length': String(size),
      'content-disposition': `attachment; filename="${filename}"`,
    },
  });
}

export function registerPackages(app: Api, deps: AppDeps): void {
  const one = async (c: Context<Env>, row: Parameters<typeof presentPackage>[0]) =>
    presentPackage(row, await metadataOf(deps, 'packages', row.guid), c.var.linker);

  app.get('/v3/packages', async (c) => {
    const params = listParams(c, packages.PACKAGE_LIST);
    const page = await packages.listPackages(ctxOf(c, deps), params);
    return renderList(c, deps, page, params, (p, m) => presentPackage(p, m, c.get('linker')), { resourceType: 'packages' });
  });

  app.get('/v3/apps/:guid/packages', async (c) => {
    const params = listParams(c, packages.APP_PACKAGE_LIST);
    const page = await packages.listPackages(ctxOf(c, deps), params, { appGuid: c.req.param('guid') });
    return renderList(c, deps, page, params, (p, m) => presentPackage(p, m, c.get('linker')), { resourceType: 'packages' });
  });

  app.post('/v3/packages', async (c) => {
    const { source_guid: source } = queryOf(c, ['source_guid']);
    if (source !== undefined) {
      const input = await readJson(c, CopyPackageSchema);
      const { pkg, metadata } = await packages.copyPackage(ctxOf(c, deps), source, input, await bitsOf(deps));
      return c.json(presentPackage(pkg, metadata, c.var.linker), 201);
    }
    const input = await readJson(c, CreatePackageSchema);
    const { pkg, metadata } = await packages.createPackage(ctxOf(c, deps), input);
    return c.json(presentPackage(pkg, metadata, c.var.linker), 201);
  });

  app.get('/v3/packages/:guid', async (c) => {
    queryOf(c);
    const { pkg } = await packages.findVisiblePackage(ctxOf(c, deps), c.req.param('guid'));
    return c.json(await one(c, pkg));
  });

  app.patch('/v3/packages/:guid', async (c) => {
    const input = await readJson(c, UpdatePackageSchema);
    const { pkg, metadata } = await packages.updatePackage(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentPackage(pkg, metadata, c.var.linker));
  });

  app.delete('/v3/packages/:guid', async (c) => {
    queryOf(c);
    return acceptedJob(c, await packages.deletePackage(ctxOf(c, deps), c.req.param('guid')));
  });

  app.post('/v3/packages/:guid/upload', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    const scope = await packages.authorizeUpload(ctx, c.req.param('guid'));
    const bits = await bitsOf(deps);
    const contentType = c.req.header('content-type') ?? '';
    // The cf CLI always sends multipart; a JSON body with only `resources` is accepted too, as upstream does.
    if (!/^multipart\/form-data/i.test(contentType)) {
      const text = await c.req.text();
      let resources: string | undefined;
      if (text.trim() !== '') {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          throw new KilnError('MessageParseError', 'invalid request body');
        }
        const value = (body as { resources?: unknown } | null)?.resources;
        if (value !== undefined) resources = JSON.stringify(value);
      }
      const pkg = await packages.processUpload(ctx, scope, { bitsFile: null, resources: packages.parseUploadResources(resources) }, bits);
      return c.json(await one(c, pkg));
    }
    const received = await receiveMultipart(c, bits.workRoot, 'bits', { fileBytes: bits.maxPackageBytes, fieldBytes: deps.config.maxJsonBytes });
    try {
      const resources = packages.parseUploadResources(received.fields.resources);
      const pkg = await packages.processUpload(ctx, scope, { bitsFile: received.file, resources }, bits);
      return c.json(await one(c, pkg));
    } finally {
      await fs.rm(received.dir, { recursive: true, force: true });
    }
  });

  app.get('/v3/packages/:guid/download', async (c) => {
    queryOf(c);
    const { key } = await packages.packageDownload(ctxOf(c, deps), c.req.param('guid'));
    const bits = await bitsOf(deps);
    return c.redirect(c.var.linker.href(bits.urls.sign(key)), 302);
  });

  // Remote staging (a Kubernetes Job): its input, and the droplet it uploads. No token: the signature authorizes.
  app.get('/blobs/staging-input/:guid', async (c) => {
    const guid = c.req.param('guid');
    if (!/^[0-9a-f-]{36}$/.test(guid)) throw notFound('Blob');
    const bits = await bitsOf(deps);
    const key = stagingInputBlobKey(guid);
    if (!bits.urls.verify(key, c.req.query('expires'), c.req.query('signature'))) throw new KilnError('NotAuthorized');
    return sendBlob(c, bits, key, 'application/gzip', `staging_${guid}.tgz`);
  });
  app.put('/blobs/staging-droplets/:guid', async (c) => {
    const guid = c.req.param('guid');
    if (!/^[0-9a-f-]{36}$/.test(guid)) throw notFound('Blob');
    const bits = await bitsOf(deps);
    const key = stagingDropletBlobKey(guid);
    if (!bits.urls.verifyUpload(key, c.req.query('expires'), c.req.query('signature'))) throw new KilnError('NotAuthorized');
    const body = c.req.raw.body;
    if (!body) throw new KilnError('UnprocessableEntity', 'the droplet is missing');
    const info = await bits.blobstore.put(key, Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>), { maxBytes: bits.maxPackageBytes });
    return c.json({ size: info.size, sha256: info.sha256 }, 201);
  });

  // Targets of the signed download redirects (packages and droplets): no token, the signature authorizes.
  app.get('/blobs/:kind/:guid', async (c) => {
    const kind = c.req.param('kind');
    const guid = c.req.param('guid');
    if ((kind !== 'packages' && kind !== 'droplets') || !/^[0-9a-f-]{36}$/.test(guid)) throw notFound('Blob');
    const key = `${kind}/${guid}`;
    const bits = await bitsOf(deps);
    if (!bits.urls.verify(key, c.req.query('expires'), c.req.query('signature'))) {
      throw new KilnError('NotAuthorized');
    }
    return kind === 'packages'
      ? sendBlob(c, bits, key, 'application/zip', `${guid}.zip`)
      : sendBlob(c, bits, key, 'application/gzip', `droplet_${guid}.tgz`);
  });
}
