import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import busboy from 'busboy';
import type { Context } from 'hono';
import { BlobTooLargeError } from '../../blobstore/blobstore.ts';
import { KilnError, notFound, unprocessable } from '../../domain/errors.ts';
import { CopyPackageSchema, CreatePackageSchema, UpdatePackageSchema } from '../../domain/packages.ts';
import { bitsFor, type Bits } from '../../services/blobs.ts';
import * as packages from '../../services/packages.ts';
import { loadOneMetadata } from '../../store/metadata.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentPackage } from '../presenters/package.ts';

/** The shared Bits of this API: the server's, or the data directory's default instance. */
export const bitsOf = (deps: AppDeps): Promise<Bits> => (deps.bits ? Promise.resolve(deps.bits) : bitsFor(deps.config));

export interface ReceivedUpload {
  /** Scratch directory holding the received file; the caller removes it. */
  dir: string;
  /** The file part (named `fileField`) on disk, or null when the request had none. */
  file: string | null;
  fields: Record<string, string>;
}

const MAX_FIELD_BYTES = 64 * 1024 * 1024;

/**
 * Reads a multipart/form-data body as it arrives: the file part is streamed to a scratch file and cut off
 * (422) once it exceeds `maxFileBytes`, so a large upload never sits in memory and an oversized one stops
 * being read at the limit. Other file parts are discarded; text fields are kept.
 */
export async function receiveMultipart(c: Context<Env>, workRoot: string, fileField: string, maxFileBytes: number): Promise<ReceivedUpload> {
  const contentType = c.req.header('content-type') ?? '';
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: { 'content-type': contentType }, limits: { fieldSize: MAX_FIELD_BYTES, files: 1, fields: 16, parts: 32 } });
  } catch {
    throw new KilnError('MessageParseError', 'invalid multipart body');
  }
  const raw = c.req.raw.body;
  if (!raw) throw new KilnError('MessageParseError', 'empty multipart body');
  const input = Readable.fromWeb(raw as unknown as WebReadableStream<Uint8Array>);
  const dir = await fs.mkdtemp(path.join(workRoot, 'recv-'));
  try {
    return await new Promise<ReceivedUpload>((resolve, reject) => {
      let file: string | null = null;
      const fields: Record<string, string> = {};
      const writes: Array<Promise<void>> = [];
      let failed = false;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        input.unpipe(parser);
        input.destroy();
        reject(err);
      };
      parser.on('file', (name, stream) => {
        if (name !== fileField || file !== null) {
          stream.resume();
          return;
        }
        const target = path.join(dir, 'upload');
        file = target;
        let size = 0;
        const limit = async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            size += chunk.length;
            if (size > maxFileBytes) throw new BlobTooLargeError(maxFileBytes);
            yield chunk;
          }
        };
        writes.push(pipeline(stream, limit, createWriteStream(target, { flags: 'wx' })).catch(fail));
      });
      parser.on('field', (name, value, info) => {
        if (info.valueTruncated) fail(unprocessable(`The ${name} field is too large`));
        else fields[name] = value;
      });
      parser.on('error', () => fail(new KilnError('MessageParseError', 'invalid multipart body')));
      parser.on('close', () => {
        void Promise.all(writes).then(() => {
          if (!failed) resolve({ dir, file, fields });
        });
      });
      input.on('error', fail);
      input.pipe(parser);
    });
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

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
  const { store } = deps;
  const one = async (c: Context<Env>, row: Parameters<typeof presentPackage>[0]) =>
    presentPackage(row, await loadOneMetadata(store.db, 'packages', row.guid), c.var.linker);

  app.get('/v3/packages', async (c) => {
    const params = listParams(c, packages.PACKAGE_LIST);
    const page = await packages.listPackages(ctxOf(c, deps), params);
    return renderList(c, store.db, page, params, (p, m) => presentPackage(p, m, c.var.linker), { resourceType: 'packages' });
  });

  app.get('/v3/apps/:guid/packages', async (c) => {
    const params = listParams(c, packages.APP_PACKAGE_LIST);
    const page = await packages.listPackages(ctxOf(c, deps), params, { appGuid: c.req.param('guid') });
    return renderList(c, store.db, page, params, (p, m) => presentPackage(p, m, c.var.linker), { resourceType: 'packages' });
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
    const received = await receiveMultipart(c, bits.workRoot, 'bits', bits.maxPackageBytes);
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
