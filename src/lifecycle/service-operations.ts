/** What the broker and backup operation controllers drive: the service-broker side registers the implementations. */

export type SubjectKind = 'service_instances' | 'service_credential_bindings' | 'service_route_bindings';

export type OpType = 'create' | 'update' | 'delete';

export interface BrokerOps {
  /** Runs the operation the instance's last operation names (create/update/delete) against the broker. */
  instanceJob(instanceGuid: string, type: OpType, userGuid: string | null): Promise<void | 'polling'>;
  bindingJob(kind: 'service_credential_bindings' | 'service_route_bindings', bindingGuid: string, type: 'create' | 'delete', userGuid: string | null): Promise<void | 'polling'>;
  poll(kind: SubjectKind, guid: string): Promise<{ requeueAfterMs?: number } | void>;
  /** Polls at once, whatever the schedule says (for operations waited for inside another job). */
  pollNow(kind: SubjectKind, guid: string): Promise<{ requeueAfterMs?: number } | void>;
}

export interface BackupOps {
  /** One poll of the backup's async create or restore; the delay before the next, or nothing when it ended. */
  poll(guid: string): Promise<{ requeueAfterMs: number } | void>;
  /** Drops the backup records of a deleted instance (their jobs, if any, fail); nothing while it exists. */
  forget(instanceGuid: string): Promise<void>;
}
