import type { Context } from 'hono';
import { CreateUserSchema, UpdateUserSchema } from '../../domain/users.ts';
import * as users from '../../services/users.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentUser } from '../presenters/user.ts';

export function registerUsers(app: Api, deps: AppDeps): void {
  /** The three user lists differ only in which users they start from. */
  const list = async (c: Context<Env>, scope?: users.UserListScope) => {
    const params = listParams(c, users.USER_LIST);
    const page = await users.listUsers(ctxOf(c, deps), params, scope);
    return renderList(c, deps, page, params, (u, m) => presentUser(u, m, c.get('linker')), { resourceType: 'users' });
  };

  app.get('/v3/users', (c) => list(c));
  app.get('/v3/organizations/:guid/users', (c) => list(c, { organizationGuid: c.req.param('guid') }));
  app.get('/v3/spaces/:guid/users', (c) => list(c, { spaceGuid: c.req.param('guid') }));

  app.post('/v3/users', async (c) => {
    const ctx = ctxOf(c, deps);
    users.requireUserCreator(ctx); // upstream refuses non-admins before looking at the body
    const input = await readJson(c, CreateUserSchema);
    const { user, metadata } = await users.createUser(ctx, input);
    return c.json(presentUser(user, metadata, c.var.linker), 201);
  });

  app.get('/v3/users/:guid', async (c) => {
    queryOf(c);
    const user = await users.getUser(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentUser(user, await metadataOf(deps, 'users', user.guid), c.var.linker));
  });

  app.patch('/v3/users/:guid', async (c) => {
    const input = await readJson(c, UpdateUserSchema);
    const { user, metadata } = await users.updateUser(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentUser(user, metadata, c.var.linker));
  });

  app.delete('/v3/users/:guid', async (c) => {
    queryOf(c);
    return acceptedJob(c, await users.deleteUser(ctxOf(c, deps), c.req.param('guid')));
  });
}
