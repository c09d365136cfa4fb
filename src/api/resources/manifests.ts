import type { Context } from 'hono';
import { badRequest } from '../../domain/errors.ts';
import { isYamlContentType, MANIFEST_TOO_LARGE, MAX_MANIFEST_BYTES, parseManifestText } from '../../domain/manifest-document.ts';
import * as manifests from '../../services/manifests.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { acceptedJob, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';

/**
 * Reads a manifest body: YAML content type (400 `Content-Type must be yaml`), at most 1 MB (checked on the
 * declared length before reading, and on the bytes read), a YAML mapping of version 1.
 */
async function readManifest(c: Context<Env>): Promise<Record<string, unknown>> {
  if (!isYamlContentType(c.req.header('content-type'))) throw badRequest('Content-Type must be yaml');
  const declared = Number(c.req.header('content-length') ?? 0);
  if (declared > MAX_MANIFEST_BYTES) throw badRequest(MANIFEST_TOO_LARGE);
  const body = c.req.raw.body;
  if (!body) return parseManifestText('');
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_MANIFEST_BYTES) {
      await reader.cancel();
      throw badRequest(MANIFEST_TOO_LARGE);
    }
    chunks.push(value);
  }
  return parseManifestText(Buffer.concat(chunks).toString('utf8'));
}

export function registerManifests(app: Api, deps: AppDeps): void {
  app.post('/v3/spaces/:guid/actions/apply_manifest', async (c) => {
    queryOf(c);
    const doc = await readManifest(c);
    const job = await manifests.applyManifest(ctxOf(c, deps), c.req.param('guid'), doc);
    return acceptedJob(c, job);
  });

  app.post('/v3/spaces/:guid/manifest_diff', async (c) => {
    queryOf(c);
    const doc = await readManifest(c);
    const diff = await manifests.manifestDiff(ctxOf(c, deps), c.req.param('guid'), doc);
    return c.json({ diff }, 201);
  });

  app.get('/v3/apps/:guid/manifest', async (c) => {
    queryOf(c);
    const yaml = await manifests.generateManifest(ctxOf(c, deps), c.req.param('guid'));
    c.header('Content-Type', 'application/x-yaml');
    return c.body(yaml, 200);
  });
}
