import { CreateLockSchema, UpdateLockSchema } from '../../domain/locks.ts';
import * as locks from '../../services/locks.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import type { Api, AppDeps } from '../context.ts';
import { presentLock } from '../presenters/lock.ts';

/** Locks, a Kiln extension of the V3 API (docs/kiln-openapi.json; services/locks.ts says what they do). */
export function registerLocks(app: Api, deps: AppDeps): void {
  // Not through renderList: the list cache keeps pages while the database is unchanged, but a lock expires with
  // time alone, and a cached page would go on showing it.
  app.get('/v3/locks', async (c) => {
    const params = listParams(c, locks.LOCK_LIST);
    const page = await locks.listLocks(ctxOf(c, deps), params);
    return c.json({
      pagination: pagination(c.var.linker, c.req.path, params, page.total),
      resources: page.rows.map((v) => presentLock(v, v.metadata, c.get('linker'))),
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
