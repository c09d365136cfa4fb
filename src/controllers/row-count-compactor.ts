import type { Logger } from 'pino';
import { compactRowCounts } from '../store/row-counts.ts';
import type { Store } from '../store/store.ts';
import type { Reconciler } from './runtime/controller.ts';

/** The reconciler's name, and its only key. */
export const ROW_COUNT_COMPACTOR = 'row-count-compactor';

/**
 * PostgreSQL only: folds the row-count deltas the triggers of migration 0087 append into `row_counts`, so reading a
 * table's count sums a few recent deltas instead of every insert since the start. Counts are exact whether or not it
 * has run (a missed pass only makes the read a little slower), so it runs at start, every `intervalMs` after.
 */
export function rowCountCompactor(deps: { store: Store; log: Logger; intervalMs?: number }): Reconciler {
  const intervalMs = deps.intervalMs ?? 10_000;
  return {
    name: ROW_COUNT_COMPACTOR,
    watches: [],
    concurrency: 1,
    async listKeys() {
      return [ROW_COUNT_COMPACTOR];
    },
    async reconcile() {
      const folded = await compactRowCounts(deps.store.db);
      if (folded > 0) deps.log.debug({ folded }, 'folded row-count deltas');
      return { requeueAfterMs: intervalMs };
    },
  };
}
