import type { Context } from 'hono';
import { unprocessable } from '../../domain/errors.ts';
import { parseListParams } from '../../domain/list-params.ts';
import { CreateSpaceSchema, UpdateSpaceFeatureSchema, UpdateSpaceSchema, unmappedRoutesParamError } from '../../domain/spaces.ts';
import * as spaces from '../../services/spaces.ts';
import { metadataOf, metadataOfMany } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentOrganization } from '../presenters/organization.ts';
import { presentSpace, presentSpaceFeature, presentUsageSummary } from '../presenters/space.ts';

/** `included.organizations` for `include=organization` (or its alias `org`): full org objects. */
async function includedOrganizations(c: Context<Env>, deps: AppDeps, rows: Array<Row<'spaces'>>) {
  const orgs = await spaces.organizationsOf(deps, rows);
  const metadata = await metadataOfMany(deps, 'organizations', orgs.map((o) => o.guid));
  return { organizations: orgs.map((o) => presentOrganization(o, metadata.get(o.guid), c.get('linker'))) };
}

/** The `include` of a single-space GET, validated like the list's (400 on unknown or repeated values). */
function singleInclude(c: Context<Env>): string[] {
  const { include } = queryOf(c, ['include']);
  const search = new URLSearchParams(include === undefined ? {} : { include });
  return parseListParams(search, { include: spaces.SPACE_INCLUDES }).include;
}

export function registerSpaces(app: Api, deps: AppDeps): void {
  app.get('/v3/spaces', async (c) => {
    const params = listParams(c, spaces.SPACE_LIST);
    const page = await spaces.listSpaces(ctxOf(c, deps), params);
    const included = params.include.length > 0 ? await includedOrganizations(c, deps, page.rows) : undefined;
    // c.var rebuilds an object on every access, so the linker is read once, not once per row.
    const linker = c.get('linker');
    return renderList(c, deps, page, params, (s, m) => presentSpace(s, m, linker), {
      resourceType: 'spaces',
      included,
    });
  });

  app.post('/v3/spaces', async (c) => {
    const input = await readJson(c, CreateSpaceSchema);
    const { space, metadata } = await spaces.createSpace(ctxOf(c, deps), input);
    return c.json(presentSpace(space, metadata, c.var.linker), 201);
  });

  app.get('/v3/spaces/:guid', async (c) => {
    const include = singleInclude(c);
    const space = await spaces.getSpace(ctxOf(c, deps), c.req.param('guid'));
    const metadata = await metadataOf(deps, 'spaces', space.guid);
    const body = presentSpace(space, metadata, c.var.linker);
    if (include.length === 0) return c.json(body);
    return c.json({ ...body, included: await includedOrganizations(c, deps, [space]) });
  });

  app.patch('/v3/spaces/:guid', async (c) => {
    const input = await readJson(c, UpdateSpaceSchema);
    const { space, metadata } = await spaces.updateSpace(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentSpace(space, metadata, c.var.linker));
  });

  app.delete('/v3/spaces/:guid', async (c) => {
    queryOf(c);
    const job = await spaces.deleteSpace(ctxOf(c, deps), c.req.param('guid'));
    return acceptedJob(c, job);
  });

  app.get('/v3/spaces/:guid/features', async (c) => {
    queryOf(c);
    const features = await spaces.listSpaceFeatures(ctxOf(c, deps), c.req.param('guid'));
    return c.json({ resources: features.map(presentSpaceFeature) });
  });

  app.get('/v3/spaces/:guid/features/:name', async (c) => {
    queryOf(c);
    const feature = await spaces.getSpaceFeature(ctxOf(c, deps), c.req.param('guid'), c.req.param('name'));
    return c.json(presentSpaceFeature(feature));
  });

  app.patch('/v3/spaces/:guid/features/:name', async (c) => {
    const input = await readJson(c, UpdateSpaceFeatureSchema);
    const feature = await spaces.updateSpaceFeature(ctxOf(c, deps), c.req.param('guid'), c.req.param('name'), input);
    return c.json(presentSpaceFeature(feature));
  });

  app.get('/v3/spaces/:guid/usage_summary', async (c) => {
    queryOf(c);
    const { space, usage } = await spaces.spaceUsageSummary(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentUsageSummary({ type: 'space', guid: space.guid }, usage, c.var.linker));
  });

  app.get('/v3/organizations/:guid/usage_summary', async (c) => {
    queryOf(c);
    const { org, usage } = await spaces.organizationUsageSummary(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentUsageSummary({ type: 'organization', guid: org.guid }, usage, c.var.linker));
  });

  app.delete('/v3/spaces/:guid/routes', async (c) => {
    // The query is checked before the space is looked up, as upstream does.
    const problem = unmappedRoutesParamError(queryOf(c, ['unmapped']).unmapped);
    if (problem) throw unprocessable(problem);
    const job = await spaces.deleteUnmappedRoutes(ctxOf(c, deps), c.req.param('guid'));
    return acceptedJob(c, job);
  });
}
