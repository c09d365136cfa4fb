import type { BackupOps } from '../lifecycle/service-operations.ts';
import type { Store } from '../store/store.ts';
import type { Reconciler } from './runtime/controller.ts';

const GONE = 'gone/';

/**
 * Polls the brokers' asynchronous backup creates and restores (src/services/service-backups.ts): every backup whose
 * last operation is `in progress` and was accepted by the broker (`broker_operation` set) is a key. The schedule
 * (`poll_next_at`) and the token live in the row, so after a restart the resync lists the same keys and polling
 * carries on where it stopped; the POLLING job is finished in the transaction that concludes the row.
 *
 * Keys `gone/<instance guid>` drop the backup records of a deleted instance; the resync finds those too (backups
 * whose instance is missing), so a delete that happened while Kiln was down is not missed.
 */
export function backupOperationController(store: Store, ops: BackupOps): Reconciler {
  return {
    name: 'backup-operations',
    watches: {
      service_instance_backups: (change) => (change.op === 'delete' ? [] : [change.guid]),
      service_instances: (change) => (change.op === 'delete' ? [`${GONE}${change.guid}`] : []),
    },
    concurrency: 2,
    async listKeys() {
      const polling = await store.db
        .selectFrom('service_instance_backups')
        .select('guid')
        .where('last_operation_state', '=', 'in progress')
        .where('broker_operation', 'is not', null)
        .execute();
      const orphans = await store.db
        .selectFrom('service_instance_backups')
        .select('service_instance_guid')
        .distinct()
        .where('service_instance_guid', 'not in', (eb) => eb.selectFrom('service_instances').select('guid'))
        .execute();
      return [...polling.map((r) => r.guid), ...orphans.map((r) => `${GONE}${r.service_instance_guid}`)];
    },
    async reconcile(key) {
      if (key.startsWith(GONE)) return ops.forget(key.slice(GONE.length));
      return ops.poll(key);
    },
  };
}
