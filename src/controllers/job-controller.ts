import type { Store } from '../store/store.ts';
import { runJob, type JobHandlers } from '../lifecycle/jobs.ts';
import { self, type Reconciler } from './runtime/controller.ts';

/** Drives PROCESSING jobs (asynchronous deletes, manifest applies…) to COMPLETE or FAILED. */
export function jobController(store: Store, handlers: JobHandlers): Reconciler {
  return {
    name: 'jobs',
    watches: { jobs: self },
    concurrency: 2,
    async listKeys() {
      const rows = await store.db.selectFrom('jobs').select('guid').where('state', '=', 'PROCESSING').execute();
      return rows.map((r) => r.guid);
    },
    async reconcile(guid) {
      await runJob(store, handlers, guid);
    },
  };
}
