import { UpdateEnvironmentVariableGroupSchema } from '../../domain/environment-variable-groups.ts';
import * as groups from '../../services/environment-variable-groups.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentEnvironmentVariableGroup } from '../presenters/environment-variable-group.ts';

export function registerEnvironmentVariableGroups(app: Api, deps: AppDeps): void {
  app.get('/v3/environment_variable_groups/:name', async (c) => {
    queryOf(c);
    const group = await groups.getEnvironmentVariableGroup(ctxOf(c, deps), c.req.param('name'));
    return c.json(presentEnvironmentVariableGroup(group, c.var.linker));
  });

  // Upstream validates the body first (422), then the caller (403), then the name (404).
  app.patch('/v3/environment_variable_groups/:name', async (c) => {
    const input = await readJson(c, UpdateEnvironmentVariableGroupSchema);
    const group = await groups.updateEnvironmentVariableGroup(ctxOf(c, deps), c.req.param('name'), input);
    return c.json(presentEnvironmentVariableGroup(group, c.var.linker));
  });
}
