import type { Context } from 'hono';
import { z } from 'zod';
import { KilnError, unprocessable } from '../../domain/errors.ts';
import type { ListParams, ListSpec } from '../../domain/list-params.ts';
import { booleanParamError, SECURITY_GROUP_LIST, SPACE_SECURITY_GROUP_LIST, type Lifecycle } from '../../domain/security-groups.ts';
import * as groups from '../../services/security-groups.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { acceptedJob, listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentToMany } from '../presenters/isolation-segment.ts';
import { presentSecurityGroup } from '../presenters/security-group.ts';

/** Write bodies are checked by the services, after the visibility and permission checks upstream runs first. */
const AnyBody = z.record(z.string(), z.unknown());
const QUERY_PREFIX = 'The query parameter is invalid: ';

/**
 * Upstream reports bad query parameters of the security group lists as 422 UnprocessableEntity (its
 * controllers call `unprocessable!` there), not as the usual 400 BadQueryParameter.
 */
function groupListParams(c: Context<Env>, spec: ListSpec): ListParams {
  let params: ListParams;
  try {
    params = listParams(c, spec);
  } catch (err) {
    if (err instanceof KilnError && err.errorName === 'BadQueryParameter') {
      throw unprocessable(err.detail.startsWith(QUERY_PREFIX) ? err.detail.slice(QUERY_PREFIX.length) : err.detail);
    }
    throw err;
  }
  const problems = ['globally_enabled_running', 'globally_enabled_staging']
    .map((name) => booleanParamError(name, params.params[name]))
    .filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw unprocessable(problems.join(', '));
  return params;
}

function renderGroups(c: Context<Env>, params: ListParams, result: Awaited<ReturnType<typeof groups.listSecurityGroups>>) {
  return c.json({
    pagination: pagination(c.var.linker, c.req.path, params, result.page.total),
    resources: result.page.rows.map((g) => presentSecurityGroup(g, result.bindings.get(g.guid), c.get('linker'))),
  });
}

export function registerSecurityGroups(app: Api, deps: AppDeps): void {
  app.get('/v3/security_groups', async (c) => {
    const params = groupListParams(c, SECURITY_GROUP_LIST);
    return renderGroups(c, params, await groups.listSecurityGroups(ctxOf(c, deps), params));
  });

  app.post('/v3/security_groups', async (c) => {
    const body = await readJson(c, AnyBody);
    const { group, bindings } = await groups.createSecurityGroup(ctxOf(c, deps), body);
    return c.json(presentSecurityGroup(group, bindings, c.var.linker), 201);
  });

  app.get('/v3/security_groups/:guid', async (c) => {
    queryOf(c);
    const { group, bindings } = await groups.getSecurityGroup(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentSecurityGroup(group, bindings, c.var.linker));
  });

  app.patch('/v3/security_groups/:guid', async (c) => {
    const body = await readJson(c, AnyBody);
    const { group, bindings } = await groups.updateSecurityGroup(ctxOf(c, deps), c.req.param('guid'), body);
    return c.json(presentSecurityGroup(group, bindings, c.var.linker));
  });

  app.delete('/v3/security_groups/:guid', async (c) => {
    queryOf(c);
    const job = await groups.deleteSecurityGroup(ctxOf(c, deps), c.req.param('guid'));
    return acceptedJob(c, job);
  });

  for (const lifecycle of ['running', 'staging'] as const satisfies readonly Lifecycle[]) {
    const rel = `${lifecycle}_spaces`;

    app.post(`/v3/security_groups/:guid/relationships/${rel}`, async (c) => {
      const body = await readJson(c, AnyBody);
      const { group, guids } = await groups.bindSpaces(ctxOf(c, deps), c.req.param('guid'), lifecycle, body);
      return c.json(presentToMany(`security_groups/${group.guid}`, rel, guids, c.var.linker, false));
    });

    app.delete(`/v3/security_groups/:guid/relationships/${rel}/:space_guid`, async (c) => {
      await groups.unbindSpace(ctxOf(c, deps), c.req.param('guid'), lifecycle, c.req.param('space_guid'));
      return c.body(null, 204);
    });

    // Served here rather than by the spaces router: these lists are about security groups.
    app.get(`/v3/spaces/:guid/${lifecycle}_security_groups`, async (c) => {
      const params = groupListParams(c, SPACE_SECURITY_GROUP_LIST);
      return renderGroups(c, params, await groups.listSpaceSecurityGroups(ctxOf(c, deps), c.req.param('guid'), lifecycle, params));
    });
  }
}
