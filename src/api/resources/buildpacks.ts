import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import busboy from 'busboy';
import type { Context } from 'hono';
import { BlobTooLargeError } from '../../blobstore/blobstore.ts';
import { CreateBuildpackSchema, MISSING_BITS, UpdateBuildpackSchema, uploadInvalid } from '../../domain/buildpacks.ts';
import { KilnError, unprocessable } from '../../domain/errors.ts';
import * as buildpacks from '../../services/buildpacks.ts';
import { loadOneMetadata } from '../../store/metadata.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentBuildpack } from '../presenters/buildpack.ts';
import { bitsOf } from './packages.ts';

interface ReceivedBuildpack {
  dir: string;
  file: string | null;
  filename: string | null;
}

/**
 * Streams the `bits` part of a multipart body to a scratch file, cut off (422) past `maxBytes`, keeping the
 * client's filename: upstream records it on the buildpack and checks it ends in `.zip`. (The packages
 * receiver does not report filenames, hence this small variant.)
 */
async function receiveBits(c: Context<Env>, workRoot: string, maxBytes: number): Promise<ReceivedBuildpack> {
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: { 'content-type': c.req.header('content-type') ?? '' }, limits: { files: 1, fields: 16, parts: 32, fieldSize: 1024 * 1024 } });
  } catch {
    throw new KilnError('MessageParseError', 'invalid multipart body');
  }
  const raw = c.req.raw.body;
  if (!raw) throw unprocessable(uploadInvalid(MISSING_BITS));
  const input = Readable.fromWeb(raw as unknown as WebReadableStream<Uint8Array>);
  const dir = await fs.mkdtemp(path.join(workRoot, 'recv-'));
  try {
    return await new Promise<ReceivedBuildpack>((resolve, reject) => {
      const out: ReceivedBuildpack = { dir, file: null, filename: null };
      const writes: Array<Promise<void>> = [];
      let failed = false;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        input.unpipe(parser);
        input.destroy();
        reject(err);
      };
      parser.on('file', (name, stream, info) => {
        if (name !== 'bits' || out.file !== null) {
          stream.resume();
          return;
        }
        out.file = path.join(dir, 'bits');
        out.filename = info.filename ?? null;
        let size = 0;
        const limit = async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            size += chunk.length;
            if (size > maxBytes) throw new BlobTooLargeError(maxBytes);
            yield chunk;
          }
        };
        writes.push(pipeline(stream, limit, createWriteStream(out.file, { flags: 'wx' })).catch(fail));
      });
      parser.on('error', () => fail(new KilnError('MessageParseError', 'invalid multipart body')));
      parser.on('close', () => {
        void Promise.all(writes).then(() => {
          if (!failed) resolve(out);
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

export function registerBuildpacks(app: Api, deps: AppDeps): void {
  const { store } = deps;

  app.get('/v3/buildpacks', async (c) => {
    const params = listParams(c, buildpacks.BUILDPACK_LIST);
    const page = await buildpacks.listBuildpacks(ctxOf(c, deps), params);
    return renderList(c, store.db, page, params, (b, m) => presentBuildpack(b, m, c.var.linker), { resourceType: 'buildpacks' });
  });

  app.post('/v3/buildpacks', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    buildpacks.requireBuildpackAdmin(ctx);
    const input = await readJson(c, CreateBuildpackSchema);
    const { buildpack, metadata } = await buildpacks.createBuildpack(ctx, input);
    return c.json(presentBuildpack(buildpack, metadata, c.var.linker), 201);
  });

  app.get('/v3/buildpacks/:guid', async (c) => {
    queryOf(c);
    const bp = await buildpacks.getBuildpack(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentBuildpack(bp, await loadOneMetadata(store.db, 'buildpacks', bp.guid), c.var.linker));
  });

  app.patch('/v3/buildpacks/:guid', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    const bp = await buildpacks.getBuildpackForWrite(ctx, c.req.param('guid'));
    const input = await readJson(c, UpdateBuildpackSchema);
    const { buildpack, metadata } = await buildpacks.updateBuildpack(ctx, bp, input);
    return c.json(presentBuildpack(buildpack, metadata, c.var.linker));
  });

  app.delete('/v3/buildpacks/:guid', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    const bp = await buildpacks.getBuildpackForWrite(ctx, c.req.param('guid'));
    return acceptedJob(c, await buildpacks.deleteBuildpack(ctx, bp));
  });

  app.post('/v3/buildpacks/:guid/upload', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    const bp = await buildpacks.getBuildpackForWrite(ctx, c.req.param('guid'));
    const bits = await bitsOf(deps);
    if (!/^multipart\/form-data/i.test(c.req.header('content-type') ?? '')) throw unprocessable(uploadInvalid(MISSING_BITS));
    const received = await receiveBits(c, bits.workRoot, bits.maxPackageBytes);
    try {
      const { buildpack, metadata, job } = await buildpacks.processBuildpackUpload(ctx, bp, received, bits);
      // Upstream answers 202 with the buildpack and a job to poll (cf create-buildpack waits on it).
      c.header('Location', c.var.linker.href(`/v3/jobs/${job}`));
      return c.json(presentBuildpack(buildpack, metadata, c.var.linker), 202);
    } finally {
      await fs.rm(received.dir, { recursive: true, force: true });
      await buildpacks.sweepBuildpackBits(store.db, bits).catch(() => undefined);
    }
  });
}
