import type { BackupOps } from '../services/service-backups.ts';
import type { Store } from '../store/store.ts';
import type { Reconciler } from './runtime/controller.ts';

/**
 * Polls the brokers' asynchronous backup creates and restores (src/services/service-backups.ts): every backup whose
 * last operation is `in progress` and was accepted by the broker (`broker_operation` set) is a key. The schedule
 * (`poll_next_at`) and the token live in the row, so after a restart the resync lists the same keys and polling
 * carries on where it stopped; the POLLING job is finished in the transaction that concludes the row.
 */
export function backupOperationController(store: Store, ops: BackupOps): Reconciler {
  return {
    name: 'backup-operations',
    watches: { service_instance_backups: (change) => (change.op === 'delete' ? [] : [change.guid]) },
    concurrency: 2,
    async listKeys() {
      const rows = await store.db
        .selectFrom('service_instance_backups')
        .select('guid')
        .where('last_operation_state', '=', 'in progress')
        .where('broker_operation', 'is not', null)
        .execute();
      return rows.map((r) => r.guid);
    },
    async reconcile(guid) {
      return ops.poll(guid);
    },
  };
}
