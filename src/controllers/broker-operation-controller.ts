import type { Kysely } from 'kysely';
import type { BrokerOps, SubjectKind } from '../lifecycle/service-operations.ts';
import type { Store } from '../store/store.ts';
import type { Reconciler, WatchMapper } from './runtime/controller.ts';

const KINDS: readonly SubjectKind[] = ['service_instances', 'service_credential_bindings', 'service_route_bindings'];
const keyOf = (kind: SubjectKind, guid: string) => `${kind}/${guid}`;

/**
 * Polls the brokers' asynchronous operations (issue 9 §3): every instance, credential binding and route binding
 * whose last operation is `in progress` is a key; `reconcile` asks the broker's `last_operation` when
 * `poll_next_at` has come and returns `{ requeueAfterMs }` until the operation ends, which concludes the row and
 * the POLLING job in one transaction. Nothing lives in memory: after a restart the resync lists the same keys
 * from the rows, and the schedule (`poll_next_at`, `poll_deadline`) is in the rows too.
 */
export function brokerOperationController(store: Store, ops: BrokerOps): Reconciler {
  const watches: Record<string, WatchMapper> = {};
  for (const kind of KINDS) watches[kind] = (change) => (change.op === 'delete' ? [] : [keyOf(kind, change.guid)]);
  return {
    name: 'broker-operations',
    watches,
    concurrency: 4,
    async listKeys() {
      const keys: string[] = [];
      for (const kind of KINDS) {
        // The three tables share the last-operation columns.
        const rows = await (store.db as unknown as Kysely<Record<string, { guid: string; last_operation_state: string }>>)
          .selectFrom(kind)
          .select('guid')
          .where('last_operation_state', '=', 'in progress')
          .execute();
        keys.push(...rows.map((r) => keyOf(kind, r.guid)));
      }
      return keys;
    },
    async reconcile(key) {
      const slash = key.indexOf('/');
      const kind = key.slice(0, slash) as SubjectKind;
      return ops.poll(kind, key.slice(slash + 1));
    },
  };
}
