import type { Context } from 'hono';
import { KilnError, unprocessable } from '../../domain/errors.ts';
import { parseListParams } from '../../domain/list-params.ts';
import { CreateRoutePolicySchema, ROUTE_POLICY_INCLUDES, UpdateRoutePolicySchema } from '../../domain/route-policies.ts';
import * as policies from '../../services/route-policies.ts';
import * as routes from '../../services/route-reads.ts';
import { metadataOf, metadataOfMany } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import { readJson } from '../cf/body.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { presentApp } from '../presenters/app.ts';
import { presentOrganization } from '../presenters/organization.ts';
import { presentRoute } from '../presenters/route.ts';
import { presentRoutePolicy } from '../presenters/route-policy.ts';
import { presentSpace } from '../presenters/space.ts';

/**
 * The five route policy operations (issue 12 item 17). CC routes and documents them but the vendored
 * openapi.json lacks them; their responses are checked in tests against ROUTE_POLICY_SCHEMA instead.
 */
export function registerRoutePolicies(app: Api, deps: AppDeps): void {
  /**
   * `included` for `include=route,source,app,space,organization`: `source` resolves each policy's source to its
   * app, space or org (cf:any and guids that name nothing add nothing, as CC's decorator). Only what the caller
   * could read on its own is included.
   */
  const includedFor = async (c: Context<Env>, rows: Array<Row<'route_policies'>>, include: string[]) => {
    const ctx = ctxOf(c, deps);
    const found = await policies.includedOf(deps, rows, include);
    const out: Record<string, unknown[]> = {};
    const l = c.var.linker;
    if (found.routes) {
      const views = await routes.viewsOf(deps, found.routes);
      const m = await metadataOfMany(deps, 'routes', found.routes.map((r) => r.guid));
      out.routes = views.map((v) => presentRoute(v, m.get(v.route.guid), l));
    }
    if (found.apps) {
      const spaces = await policies.spacesOfApps(deps, found.apps);
      const visible = [];
      for (const a of found.apps) {
        const s = spaces.get(a.space_guid);
        if (s && (await ctx.access.canReadSpace(s))) visible.push(a);
      }
      const m = await metadataOfMany(deps, 'apps', visible.map((a) => a.guid));
      out.apps = visible.map((a) => presentApp(a, m.get(a.guid), l));
    }
    if (found.spaces) {
      const visible = [];
      for (const s of found.spaces) if (await ctx.access.canReadSpace(s)) visible.push(s);
      const m = await metadataOfMany(deps, 'spaces', visible.map((s) => s.guid));
      out.spaces = visible.map((s) => presentSpace(s, m.get(s.guid), l));
    }
    if (found.organizations) {
      const visible = [];
      for (const o of found.organizations) if (await ctx.access.canReadOrg(o.guid)) visible.push(o);
      const m = await metadataOfMany(deps, 'organizations', visible.map((o) => o.guid));
      out.organizations = visible.map((o) => presentOrganization(o, m.get(o.guid), l));
    }
    return out;
  };

  app.get('/v3/route_policies', async (c) => {
    const params = listParams(c, policies.ROUTE_POLICY_LIST);
    const page = await policies.listRoutePolicies(ctxOf(c, deps), params);
    return renderList(c, deps, page, params, (p, m) => presentRoutePolicy(p, m, c.get('linker')), {
      resourceType: 'route_policies',
      ...(params.include.length > 0 ? { included: await includedFor(c, page.rows, params.include) } : {}),
    });
  });

  app.get('/v3/route_policies/:guid', async (c) => {
    const { include } = queryOf(c, ['include']);
    // CC's RoutePolicyShowMessage answers a bad include with 422 (its list, like every list, with 400).
    let parsed: string[];
    try {
      parsed = parseListParams(new URLSearchParams(include === undefined ? {} : { include }), { include: ROUTE_POLICY_INCLUDES }).include;
    } catch (err) {
      throw err instanceof KilnError ? unprocessable(err.detail) : err;
    }
    const policy = await policies.getRoutePolicy(ctxOf(c, deps), c.req.param('guid'));
    const body = presentRoutePolicy(policy, await metadataOf(deps, 'route_policies', policy.guid), c.var.linker);
    if (parsed.length === 0) return c.json(body);
    return c.json({ ...body, included: await includedFor(c, [policy], parsed) });
  });

  app.post('/v3/route_policies', async (c) => {
    queryOf(c);
    const input = await readJson(c, CreateRoutePolicySchema);
    const { policy, metadata } = await policies.createRoutePolicy(ctxOf(c, deps), input);
    return c.json(presentRoutePolicy(policy, metadata, c.var.linker), 201);
  });

  app.patch('/v3/route_policies/:guid', async (c) => {
    queryOf(c);
    const input = await readJson(c, UpdateRoutePolicySchema);
    const { policy, metadata } = await policies.updateRoutePolicy(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentRoutePolicy(policy, metadata, c.var.linker));
  });

  app.delete('/v3/route_policies/:guid', async (c) => {
    queryOf(c);
    await policies.deleteRoutePolicy(ctxOf(c, deps), c.req.param('guid'));
    return c.body(null, 204);
  });
}
