import { CreateStackSchema, UpdateStackSchema } from '../../domain/stacks.ts';
import * as stacks from '../../services/stacks.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { addWarning } from '../cf/warnings.ts';
import { presentStack } from '../presenters/stack.ts';
import { renderApps } from './apps.ts';

export function registerStacks(app: Api, deps: AppDeps): void {
  app.get('/v3/stacks', async (c) => {
    const params = listParams(c, stacks.STACK_LIST);
    const page = await stacks.listStacks(ctxOf(c, deps), params);
    return renderList(c, deps, page, params, (s, m) => presentStack(s, m, c.get('linker')), { resourceType: 'stacks' });
  });

  app.post('/v3/stacks', async (c) => {
    const ctx = ctxOf(c, deps);
    stacks.requireStackAdmin(ctx);
    const input = await readJson(c, CreateStackSchema);
    const { stack, metadata } = await stacks.createStack(ctx, input);
    return c.json(presentStack(stack, metadata, c.var.linker), 201);
  });

  app.get('/v3/stacks/:guid', async (c) => {
    queryOf(c);
    const stack = await stacks.getStack(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentStack(stack, await metadataOf(deps, 'stacks', stack.guid), c.var.linker));
  });

  app.patch('/v3/stacks/:guid', async (c) => {
    const ctx = ctxOf(c, deps);
    const stack = await stacks.getStackForWrite(ctx, c.req.param('guid'));
    const input = await readJson(c, UpdateStackSchema);
    const updated = await stacks.updateStack(ctx, stack, input);
    if (updated.warning) addWarning(c, updated.warning);
    return c.json(presentStack(updated.stack, updated.metadata, c.var.linker));
  });

  app.delete('/v3/stacks/:guid', async (c) => {
    queryOf(c);
    const ctx = ctxOf(c, deps);
    await stacks.deleteStack(ctx, await stacks.getStackForWrite(ctx, c.req.param('guid')));
    return c.body(null, 204);
  });

  app.get('/v3/stacks/:guid/apps', async (c) => {
    const ctx = ctxOf(c, deps);
    const stack = await stacks.getStack(ctx, c.req.param('guid'));
    const params = listParams(c, stacks.STACK_APPS_LIST);
    return renderApps(c, deps, params, await stacks.listStackApps(ctx, stack, params));
  });
}
