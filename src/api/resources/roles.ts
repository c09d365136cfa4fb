import type { Context } from 'hono';
import { parseListParams } from '../../domain/list-params.ts';
import { CreateRoleSchema } from '../../domain/roles.ts';
import * as roles from '../../services/roles.ts';
import { metadataOfMany } from '../../services/metadata-reads.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentOrganization } from '../presenters/organization.ts';
import { presentRole } from '../presenters/role.ts';
import { presentSpace } from '../presenters/space.ts';
import { presentUser } from '../presenters/user.ts';

/** `included` for `include=user,space,organization`: full parent objects, one key per requested parent. */
async function included(c: Context<Env>, deps: AppDeps, rows: roles.RoleRow[], include: readonly string[]) {
  const inc = await roles.roleIncludes(deps, rows, include);
  const l = c.var.linker;
  const out: Record<string, unknown[]> = {};
  if (inc.users) {
    const m = await metadataOfMany(deps, 'users', inc.users.map((u) => u.guid));
    out.users = inc.users.map((u) => presentUser(u, m.get(u.guid), l));
  }
  if (inc.organizations) {
    const m = await metadataOfMany(deps, 'organizations', inc.organizations.map((o) => o.guid));
    out.organizations = inc.organizations.map((o) => presentOrganization(o, m.get(o.guid), l));
  }
  if (inc.spaces) {
    const m = await metadataOfMany(deps, 'spaces', inc.spaces.map((s) => s.guid));
    out.spaces = inc.spaces.map((s) => presentSpace(s, m.get(s.guid), l));
  }
  return out;
}

export function registerRoles(app: Api, deps: AppDeps): void {
  app.get('/v3/roles', async (c) => {
    const params = listParams(c, roles.ROLE_LIST);
    const page = await roles.listRoles(ctxOf(c, deps), params);
    const inc = params.include.length > 0 ? await included(c, deps, page.rows, params.include) : undefined;
    return renderList(c, deps, page, params, (r) => presentRole(r, c.get('linker')), { included: inc });
  });

  app.post('/v3/roles', async (c) => {
    const input = await readJson(c, CreateRoleSchema);
    const role = await roles.createRole(ctxOf(c, deps), input);
    return c.json(presentRole(role, c.var.linker), 201);
  });

  app.get('/v3/roles/:guid', async (c) => {
    const { include } = queryOf(c, ['include']);
    // The single GET validates `include` exactly as the list does (400 on unknown or repeated values).
    const wanted = parseListParams(new URLSearchParams(include === undefined ? {} : { include }), { include: roles.ROLE_INCLUDES }).include;
    const role = await roles.getRole(ctxOf(c, deps), c.req.param('guid'));
    const body = presentRole(role, c.var.linker);
    if (wanted.length === 0) return c.json(body);
    return c.json({ ...body, included: await included(c, deps, [role], wanted) });
  });

  app.delete('/v3/roles/:guid', async (c) => {
    queryOf(c);
    return acceptedJob(c, await roles.deleteRole(ctxOf(c, deps), c.req.param('guid')));
  });
}
