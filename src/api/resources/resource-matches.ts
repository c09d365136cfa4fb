import { presentResource } from '../../blobstore/resource-cache.ts';
import { matchResources, ResourceMatchesSchema } from '../../services/resource-matches.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import { bitsOf } from './packages.ts';

export function registerResourceMatches(app: Api, deps: AppDeps): void {
  app.post('/v3/resource_matches', async (c) => {
    queryOf(c);
    const input = await readJson(c, ResourceMatchesSchema);
    const matched = await matchResources(ctxOf(c, deps), input, await bitsOf(deps));
    return c.json({ resources: matched.map(presentResource) }, 201);
  });
}
