import { clearAllBuildpackCaches } from '../../services/admin-actions.ts';
import type { Api, AppDeps } from '../context.ts';
import { acceptedJob, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';

export function registerAdmin(app: Api, deps: AppDeps): void {
  app.post('/v3/admin/actions/clear_buildpack_cache', async (c) => {
    queryOf(c);
    return acceptedJob(c, await clearAllBuildpackCaches(ctxOf(c, deps)));
  });
}
