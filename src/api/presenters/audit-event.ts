import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { cfTime } from '../cf/timestamps.ts';

function dataOf(json: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Upstream renders `space`/`organization` as null when the event happened outside one (empty or missing guid). */
const scope = (guid: string | null) => (guid ? { guid } : null);

export function presentAuditEvent(e: Row<'audit_events'>, l: Linker) {
  return {
    guid: e.guid,
    created_at: cfTime(e.created_at),
    updated_at: cfTime(e.updated_at),
    type: e.type,
    actor: { guid: e.actor_guid, type: e.actor_type, name: e.actor_name },
    target: { guid: e.target_guid, type: e.target_type, name: e.target_name },
    data: dataOf(e.data),
    space: scope(e.space_guid),
    organization: scope(e.organization_guid),
    links: { self: l.link(`/v3/audit_events/${e.guid}`) },
  };
}
