import type { Principal } from '../domain/principal.ts';
import { newGuid, type WriteTx } from '../store/store.ts';

export interface AuditTarget {
  type: string;
  guid: string;
  name: string;
}

export interface AuditEntry {
  /** e.g. `audit.organization.create`. */
  type: string;
  actor: Principal;
  target: AuditTarget;
  data?: Record<string, unknown>;
  spaceGuid?: string | null;
  organizationGuid?: string | null;
  /** For events the platform records on behalf of an app or process (crashes): `app` or `process`. */
  actorType?: string;
}

/** Emitted on `Store.events` after the recording transaction commits (the API log lines of apps use it). */
export const AUDIT_EVENT = 'audit';
export interface CommittedAudit {
  type: string;
  actorName: string;
  target: AuditTarget;
  data: Record<string, unknown>;
}

/** Records an audit event in the same transaction as the mutation it describes. */
export async function recordAudit(tx: WriteTx, e: AuditEntry): Promise<void> {
  const name = e.actor.username ?? e.actor.guid;
  tx.emitAfterCommit(AUDIT_EVENT, { type: e.type, actorName: name, target: e.target, data: e.data ?? {} } satisfies CommittedAudit);
  await tx.db
    .insertInto('audit_events')
    .values({
      guid: newGuid(),
      created_at: tx.now,
      updated_at: tx.now,
      type: e.type,
      actor_guid: e.actor.guid,
      actor_type: e.actorType ?? (e.actor.isClient ? 'client' : 'user'),
      actor_name: name,
      actor_username: e.actor.username ?? '',
      target_guid: e.target.guid,
      target_type: e.target.type,
      target_name: e.target.name,
      data: JSON.stringify(e.data ?? {}),
      space_guid: e.spaceGuid ?? null,
      organization_guid: e.organizationGuid ?? null,
    })
    .execute();
}
