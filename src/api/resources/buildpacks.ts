import fs from 'node:fs/promises';
import { CreateBuildpackSchema, MISSING_BITS, UpdateBuildpackSchema, uploadInvalid } from '../../domain/buildpacks.ts';
import { unprocessable } from '../../domain/errors.ts';
import * as buildpacks from '../../services/buildpacks.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { receiveMultipart } from '../cf/multipart.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentBuildpack } from '../presenters/buildpack.ts';
import { bitsOf } from './packages.ts';

export function registerBuildpacks(app: Api, deps: AppDeps): void {
  app.get('/v3/buildpacks', async (c) => {
    const params = listParams(c, buildpacks.BUILDPACK_LIST);
    const page = await buildpacks.listBuildpacks(ctxOf(c, deps), params);
    return renderList(c, deps, page, params, (b, m) => presentBuildpack(b, m, c.get('linker')), { resourceType: 'buildpacks' });
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
    return c.json(presentBuildpack(bp, await metadataOf(deps, 'buildpacks', bp.guid), c.var.linker));
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
    if (!/^multipart\/form-data/i.test(c.req.header('content-type') ?? '') || !c.req.raw.body) throw unprocessable(uploadInvalid(MISSING_BITS));
    const received = await receiveMultipart(c, bits.workRoot, 'bits', { fileBytes: bits.maxPackageBytes, fieldBytes: deps.config.maxJsonBytes });
    try {
      const { buildpack, metadata, job } = await buildpacks.processBuildpackUpload(ctx, bp, received, bits);
      // Upstream answers 202 with the buildpack and a job to poll (cf create-buildpack waits on it).
      c.header('Location', c.var.linker.href(`/v3/jobs/${job}`));
      return c.json(presentBuildpack(buildpack, metadata, c.var.linker), 202);
    } finally {
      await fs.rm(received.dir, { recursive: true, force: true });
      await buildpacks.sweepBuildpackBits(deps, bits).catch(() => undefined);
    }
  });
}
