import { CreateLockSchema, UpdateLockSchema } from '../../domain/locks.ts';
import * as locks from '../../services/locks.ts';
import { readJson } from '../cf/body.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import type { Api, AppDeps } from '../context.ts';
import { presentLock } from '../presenters/lock.ts';

/** Locks, a Kiln extension of the V3 API (docs/kiln-openapi.json; services/locks.ts says what they do). */
export function registerLocks(app: Api, deps: AppDeps): void {
  const { store } = deps;

  app.get('/v3/locks', async (c) => {
    const params = listParams(c, locks.LOCK_LIST);
    const page = await locks.listLocks(ctxOf(c, deps), params);
    return renderList(c, store.db, { rows: page.rows.map((v) => ({ ...v, guid: v.lock.guid })), total: page.total }, params, (v, m) => presentLock(v, m, c.var.linker), {
      resourceType: 'locks',
    });
  });

  app.post('/v3/locks', async (c) => {
    queryOf(c);
    const input = await readJson(c, CreateLockSchema);
    const { view, metadata } = await locks.createLock(ctxOf(c, deps), input);
    return c.json(presentLock(view, metadata, c.var.linker), 201);
  });

  app.get('/v3/locks/:guid', async (c) => {
    queryOf(c);
    const { view, metadata } = await locks.getLock(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentLock(view, metadata, c.var.linker));
  });

  app.patch('/v3/locks/:guid', async (c) => {
    queryOf(c);
    const input = await readJson(c, UpdateLockSchema);
    const { view, metadata } = await locks.updateLock(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentLock(view, metadata, c.var.linker));
  });

  app.delete('/v3/locks/:guid', async (c) => {
    queryOf(c);
    await locks.deleteLock(ctxOf(c, deps), c.req.param('guid'));
    return c.body(null, 204);
  });
}
