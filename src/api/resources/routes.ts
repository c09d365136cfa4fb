import type { Context } from 'hono';
import { z } from 'zod';
import { parseListParams, splitList, type ListParams } from '../../domain/list-params.ts';
import {
  createRouteSchema,
  DESTINATION_FILTERS,
  destinationsSchema,
  ROUTE_INCLUDES,
  ROUTE_LIST,
  TransferOwnerSchema,
  UpdateDestinationSchema,
  updateRouteSchema,
} from '../../domain/routes.ts';
import { visibleSharedOrgs } from '../../services/domains.ts';
import { platformNamesOf } from '../../router/api-hosts.ts';
import { policiesOfRoutes } from '../../services/route-policies.ts';
import * as dests from '../../services/route-destinations.ts';
import * as reads from '../../services/route-reads.ts';
import * as sharing from '../../services/route-sharing.ts';
import * as routes from '../../services/routes.ts';
import type { Page } from '../../store/list-query.ts';
import { metadataOf, metadataOfMany } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import { pagination } from '../cf/pagination.ts';
import { presentDomain } from '../presenters/domain.ts';
import { presentOrganization } from '../presenters/organization.ts';
import {
  presentDestinations,
  presentDestinationWithLinks,
  presentRoute,
  presentSharedSpaces,
} from '../presenters/route.ts';
import { presentRoutePolicy } from '../presenters/route-policy.ts';
import { presentSpace } from '../presenters/space.ts';

/** Bodies whose validation upstream runs after the route checks are read as-is and validated by the service. */
const AnyObject = z.record(z.string(), z.unknown());

export function registerRoutes(app: Api, deps: AppDeps): void {
  /** `included` for `include=domain,space,space.organization,route_policies`. */
  const includedFor = async (c: Context<Env>, rows: Array<Row<'routes'>>, include: string[]) => {
    const { spaces, organizations, domains } = await reads.includedOf(deps, rows, include);
    const out: Record<string, unknown[]> = {};
    if (include.includes('domain')) {
      const shared = await visibleSharedOrgs(ctxOf(c, deps), domains.map((d) => d.guid));
      const m = await metadataOfMany(deps, 'domains', domains.map((d) => d.guid));
      out.domains = domains.map((d) => presentDomain(d, shared.get(d.guid) ?? [], m.get(d.guid), c.get('linker')));
    }
    if (include.includes('space') || include.includes('space.organization')) {
      const m = await metadataOfMany(deps, 'spaces', spaces.map((s) => s.guid));
      out.spaces = spaces.map((s) => presentSpace(s, m.get(s.guid), c.get('linker')));
    }
    if (include.includes('space.organization')) {
      const m = await metadataOfMany(deps, 'organizations', organizations.map((o) => o.guid));
      out.organizations = organizations.map((o) => presentOrganization(o, m.get(o.guid), c.get('linker')));
    }
    if (include.includes('route_policies')) {
      const policies = await policiesOfRoutes(deps, rows.map((r) => r.guid));
      const m = await metadataOfMany(deps, 'route_policies', policies.map((p) => p.guid));
      out.route_policies = policies.map((p) => presentRoutePolicy(p, m.get(p.guid), c.get('linker')));
    }
    return out;
  };

  const renderPage = async (c: Context<Env>, page: Page<Row<'routes'>>, params: ListParams) => {
    const views = await reads.viewsOf(deps, page.rows);
    const metadata = await metadataOfMany(deps, 'routes', page.rows.map((r) => r.guid));
    return c.json({
      pagination: pagination(c.var.linker, c.req.path, params, page.total),
      resources: views.map((v) => presentRoute(v, metadata.get(v.route.guid), c.get('linker'))),
      ...(params.include.length > 0 ? { included: await includedFor(c, page.rows, params.include) } : {}),
    });
  };

  app.get('/v3/routes', async (c) => {
    const params = listParams(c, ROUTE_LIST);
    return renderPage(c, await reads.listRoutes(ctxOf(c, deps), params), params);
  });

  app.get('/v3/apps/:guid/routes', async (c) => {
    const params = listParams(c, ROUTE_LIST);
    return renderPage(c, await reads.listAppRoutes(ctxOf(c, deps), c.req.param('guid'), params), params);
  });

  app.post('/v3/routes', async (c) => {
    const ctx = ctxOf(c, deps);
    await routes.assertRouteCreationAllowed(ctx);
    const input = await readJson(c, createRouteSchema(await routes.hashRoutingEnabled(ctx)));
    const { metadata, ...view } = await routes.createRoute(ctx, input, platformNamesOf(deps.config));
    return c.json(presentRoute(view, metadata, c.var.linker), 201);
  });

  app.get('/v3/routes/:guid', async (c) => {
    const { include } = queryOf(c, ['include']);
    const parsed = parseListParams(new URLSearchParams(include === undefined ? {} : { include }), { include: ROUTE_INCLUDES }).include;
    const view = await reads.getRoute(ctxOf(c, deps), c.req.param('guid'));
    const body = presentRoute(view, await metadataOf(deps, 'routes', view.route.guid), c.var.linker);
    if (parsed.length === 0) return c.json(body);
    return c.json({ ...body, included: await includedFor(c, [view.route], parsed) });
  });

  app.patch('/v3/routes/:guid', async (c) => {
    const ctx = ctxOf(c, deps);
    const input = await readJson(c, updateRouteSchema(await routes.hashRoutingEnabled(ctx)));
    const { metadata, ...view } = await routes.updateRoute(ctx, c.req.param('guid'), input);
    return c.json(presentRoute(view, metadata, c.var.linker));
  });

  app.delete('/v3/routes/:guid', async (c) => {
    queryOf(c);
    return acceptedJob(c, await routes.deleteRoute(ctxOf(c, deps), c.req.param('guid')));
  });

  // ---- destinations ----

  app.get('/v3/routes/:guid/destinations', async (c) => {
    const q = queryOf(c, DESTINATION_FILTERS);
    const filters = {
      ...(q.guids !== undefined ? { guids: splitList(q.guids) } : {}),
      ...(q.app_guids !== undefined ? { app_guids: splitList(q.app_guids) } : {}),
    };
    const { route, destinations } = await dests.listDestinations(ctxOf(c, deps), c.req.param('guid'), filters);
    return c.json(presentDestinations(route.guid, destinations, c.var.linker));
  });

  app.post('/v3/routes/:guid/destinations', async (c) => {
    const input = await readJson(c, destinationsSchema(false));
    const { route, destinations } = await dests.insertDestinations(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentDestinations(route.guid, destinations, c.var.linker));
  });

  app.patch('/v3/routes/:guid/destinations', async (c) => {
    const input = await readJson(c, destinationsSchema(true));
    const { route, destinations } = await dests.replaceDestinations(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentDestinations(route.guid, destinations, c.var.linker));
  });

  app.patch('/v3/routes/:guid/destinations/:destination_guid', async (c) => {
    const input = await readJson(c, UpdateDestinationSchema);
    const d = await dests.updateDestination(ctxOf(c, deps), c.req.param('guid'), c.req.param('destination_guid'), input);
    return c.json(presentDestinationWithLinks(d, c.var.linker));
  });

  app.delete('/v3/routes/:guid/destinations/:destination_guid', async (c) => {
    queryOf(c);
    await dests.removeDestination(ctxOf(c, deps), c.req.param('guid'), c.req.param('destination_guid'));
    return c.body(null, 204);
  });

  // ---- sharing and ownership ----

  app.get('/v3/routes/:guid/relationships/shared_spaces', async (c) => {
    queryOf(c);
    const { route, spaceGuids } = await sharing.listSharedSpaces(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentSharedSpaces(route.guid, spaceGuids, c.var.linker));
  });

  app.post('/v3/routes/:guid/relationships/shared_spaces', async (c) => {
    const body = await readJson(c, AnyObject);
    const { route, spaceGuids } = await sharing.shareRoute(ctxOf(c, deps), c.req.param('guid'), body);
    return c.json(presentSharedSpaces(route.guid, spaceGuids, c.var.linker));
  });

  app.delete('/v3/routes/:guid/relationships/shared_spaces/:space_guid', async (c) => {
    queryOf(c);
    await sharing.unshareRoute(ctxOf(c, deps), c.req.param('guid'), c.req.param('space_guid'));
    return c.body(null, 204);
  });

  app.patch('/v3/routes/:guid/relationships/space', async (c) => {
    const ctx = ctxOf(c, deps);
    await sharing.assertRouteSharingEnabled(ctx);
    const { spaceGuid } = await readJson(c, TransferOwnerSchema);
    await sharing.transferRouteOwnership(ctx, c.req.param('guid'), spaceGuid);
    // Upstream answers 200 {"status":"ok"}, although its docs say 204 (CONVENTIONS.md §7, OPERATIONS.md notes).
    return c.json({ status: 'ok' });
  });
}
