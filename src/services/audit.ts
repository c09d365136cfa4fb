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
}

/** Records an audit event in the same transaction as the mutation it describes. */
export async function recordAudit(tx: WriteTx, e: AuditEntry): Promise<void> {
  const name = e.actor.username ?? e.actor.guid;
  await tx.db
    .insertInto('audit_events')
    .values({
      guid: newGuid(),
      created_at: tx.now,
      updated_at: tx.now,
      type: e.type,
      actor_guid: e.actor.guid,
      actor_type: e.actor.isClient ? 'client' : 'user',
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
