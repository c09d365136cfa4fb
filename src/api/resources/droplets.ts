import fs from 'node:fs/promises';
import type { Context } from 'hono';
import { CopyDropletSchema, CreateDropletSchema, UpdateDropletSchema } from '../../domain/droplets.ts';
import { KilnError } from '../../domain/errors.ts';
import * as droplets from '../../services/droplets.ts';
import { metadataOf, metadataOfMany } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import { pagination } from '../cf/pagination.ts';
import type { ListParams } from '../../domain/list-params.ts';
import type { Page } from '../../store/list-query.ts';
import { presentDroplet } from '../presenters/droplet.ts';
import { receiveMultipart } from '../cf/multipart.ts';
import { bitsOf } from './packages.ts';

/** A page of droplets; secrets are shown in lists only to callers who read every space's secrets. */
async function renderDroplets(c: Context<Env>, deps: AppDeps, page: Page<Row<'droplets'>>, params: ListParams) {
  const metadata = await metadataOfMany(deps, 'droplets', page.rows.map((d) => d.guid));
  const secrets = c.var.access.globalSecrets;
  return c.json({
    pagination: pagination(c.var.linker, c.req.path, params, page.total),
    resources: page.rows.map((d) => presentDroplet(d, metadata.get(d.guid), secrets, c.get('linker'), true)),
  });
}

export function registerDroplets(app: Api, deps: AppDeps): void {
  const one = async (c: Context<Env>, scope: { droplet: Row<'droplets'>; space: Row<'spaces'> }) => {
    const ctx = ctxOf(c, deps);
    const metadata = await metadataOf(deps, 'droplets', scope.droplet.guid);
    return presentDroplet(scope.droplet, metadata, await droplets.showsDropletSecrets(ctx, scope.space.guid), c.var.linker);
  };

  app.get('/v3/droplets', async (c) => {
    const params = listParams(c, droplets.DROPLET_LIST);
    return renderDroplets(c, deps, await droplets.listDroplets(ctxOf(c, deps), params), params);
  });

  app.get('/v3/apps/:guid/droplets', async (c) => {
    const params = listParams(c, droplets.APP_DROPLET_LIST);
    return renderDroplets(c, deps, await droplets.listDroplets(ctxOf(c, deps), params, { appGuid: c.req.param('guid') }), params);
  });

  app.get('/v3/packages/:guid/droplets', async (c) => {
    const params = listParams(c, droplets.PACKAGE_DROPLET_LIST);
    return renderDroplets(c, deps, await droplets.listDroplets(ctxOf(c, deps), params, { packageGuid: c.req.param('guid') }), params);
  });

  app.post('/v3/droplets', async (c) => {
    const { source_guid: source } = queryOf(c, ['source_guid']);
    const ctx = ctxOf(c, deps);
    const result =
      source !== undefined
        ? await droplets.copyDroplet(ctx, source, await readJson(c, CopyDropletSchema), await bitsOf(deps))
        : await droplets.createDroplet(ctx, await readJson(c, CreateDropletSchema));
    const space = (await droplets.findVisibleDroplet(ctx, result.droplet.guid)).space;
    const secrets = await droplets.showsDropletSecrets(ctx, space.guid);
    return c.json(presentDroplet(result.droplet, result.metadata, secrets, c.var.linker), 201);
  });

  app.get('/v3/droplets/:guid', async (c) => {
    queryOf(c);
    return c.json(await one(c, await droplets.findVisibleDroplet(ctxOf(c, deps), c.req.param('guid'))));
  });

  app.patch('/v3/droplets/:guid', async (c) => {
    const input = await readJson(c, UpdateDropletSchema);
    const ctx = ctxOf(c, deps);
    const { droplet } = await droplets.updateDroplet(ctx, c.req.param('guid'), input);
    return c.json(await one(c, await droplets.findVisibleDroplet(ctx, droplet.guid)));
  });

  app.delete('/v3/droplets/:guid', async (c) => {
    queryOf(c);
    return acceptedJob(c, await droplets.deleteDroplet(ctxOf(c, deps), c.req.param('guid')));
  });

  app.post('/v3/droplets/:guid/upload', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    const scope = await droplets.authorizeDropletUpload(ctx, c.req.param('guid'));
    const bits = await bitsOf(deps);
    if (!/^multipart\/form-data/i.test(c.req.header('content-type') ?? '')) {
      throw new KilnError('UnprocessableEntity', 'Upload must include bits (multipart/form-data with a `bits` file)');
    }
    const received = await receiveMultipart(c, bits.workRoot, 'bits', { fileBytes: bits.maxPackageBytes, fieldBytes: deps.config.maxJsonBytes });
    try {
      if (received.file === null) throw new KilnError('UnprocessableEntity', 'Upload must include bits');
      const { droplet, job } = await droplets.processDropletUpload(ctx, scope, received.file, bits);
      // Upstream answers 202 with the droplet and a job to poll (cf push --droplet waits on it).
      c.header('Location', c.var.linker.href(`/v3/jobs/${job}`));
      return c.json(await one(c, { droplet, space: scope.space }), 202);
    } finally {
      await fs.rm(received.dir, { recursive: true, force: true });
    }
  });

  app.get('/v3/droplets/:guid/download', async (c) => {
    queryOf(c);
    const { key } = await droplets.dropletDownload(ctxOf(c, deps), c.req.param('guid'));
    const bits = await bitsOf(deps);
    return c.redirect(c.var.linker.href(bits.urls.sign(key)), 302);
  });
}
