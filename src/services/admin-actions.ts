import { notAuthorized } from '../domain/errors.ts';
import type { Store } from '../store/store.ts';
import type { Ctx } from './context.ts';
import { enqueueJob, type JobHandlers } from '../lifecycle/jobs.ts';

/**
 * `POST /v3/admin/actions/clear_buildpack_cache` (admins): a job that clears every app's buildpack cache, one app
 * at a time through the per-app clearing (`app.buildpack_cache_delete`). Idempotent: a rerun clears again.
 */
export async function clearAllBuildpackCaches(ctx: Ctx): Promise<string> {
  if (!ctx.access.admin) throw notAuthorized();
  return ctx.store.write((tx) => enqueueJob(tx, { operation: 'buildpack_cache.delete', resourceType: 'admin', resourceGuid: '', userGuid: ctx.principal.guid }));
}

export function registerAdminJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('buildpack_cache.delete', async (jobCtx) => {
    const perApp = handlers.get('app.buildpack_cache_delete');
    if (!perApp) return;
    const apps = await store.db.selectFrom('apps').select('guid').orderBy('id').execute();
    for (const a of apps) await perApp({ ...jobCtx, job: { ...jobCtx.job, resource_guid: a.guid } });
  });
}
