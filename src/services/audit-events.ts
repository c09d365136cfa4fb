import type { ExpressionBuilder } from 'kysely';
import { notFound } from '../domain/errors.ts';
import { parseListParams, splitList, type ListParams } from '../domain/list-params.ts';
import { listPage, type Page } from '../store/list-query.ts';
import type { Database, Row } from '../store/schema.ts';
import type { Access } from './access.ts';
import type { Ctx } from './context.ts';

export const AUDIT_EVENT_LIST = {
  filters: ['types', 'target_guids', 'space_guids', 'organization_guids'],
} as const;

const TARGET_GUIDS_NOT = 'target_guids[not]';

export interface AuditEventListParams extends ListParams {
  /** `target_guids[not]=a,b`: only events whose target is none of these (CONVENTIONS.md §4.3). */
  excludedTargetGuids: string[] | undefined;
}

/**
 * Parses the query of `GET /v3/audit_events`. `target_guids[not]` is the one exclusion filter CF has; the
 * shared parser only knows operators on timestamps, so it is taken out first and echoed into the page links.
 */
export function parseAuditEventListParams(search: URLSearchParams): AuditEventListParams {
  const rest = new URLSearchParams();
  let excluded: string[] | undefined;
  for (const [key, value] of search) {
    if (key === TARGET_GUIDS_NOT) excluded = splitList(value);
    else rest.append(key, value);
  }
  const params = parseListParams(rest, AUDIT_EVENT_LIST);
  if (excluded !== undefined) params.echo.push([TARGET_GUIDS_NOT, search.get(TARGET_GUIDS_NOT)!]);
  return { ...params, excludedTargetGuids: excluded };
}

// The condition is used on `audit_events` queries only, but is written against the shared builder type.
type Eb = ExpressionBuilder<Database, 'audit_events'>;

/**
 * Which events a caller sees, as upstream's Event.user_visibility_filter (CONVENTIONS.md §13.2): global
 * readers everything; space developers, auditors and supporters the events of their spaces; org auditors the
 * events of their orgs (including those of the org's spaces). Managers and plain org users see none.
 */
function visible(access: Access, eb: Eb) {
  const me = access.userGuid;
  return eb.or([
    eb(
      'audit_events.space_guid',
      'in',
      eb
        .selectFrom('roles')
        .select('roles.space_guid')
        .where('roles.user_guid', '=', me)
        .where('roles.type', 'in', ['space_developer', 'space_auditor', 'space_supporter'])
        .where('roles.space_guid', 'is not', null),
    ),
    eb(
      'audit_events.organization_guid',
      'in',
      eb
        .selectFrom('roles')
        .select('roles.organization_guid')
        .where('roles.user_guid', '=', me)
        .where('roles.type', '=', 'organization_auditor')
        .where('roles.organization_guid', 'is not', null),
    ),
  ]);
}

export async function listAuditEvents(ctx: Ctx, params: AuditEventListParams): Promise<Page<Row<'audit_events'>>> {
  let q = ctx.store.db.selectFrom('audit_events').selectAll('audit_events');
  if (!ctx.access.global) q = q.where((eb) => visible(ctx.access, eb));
  const f = params.filters;
  // An empty list value (`types=`) is [""], which matches nothing, as upstream's `where(type: [''])`.
  if (f.types) q = q.where('audit_events.type', 'in', f.types);
  if (f.target_guids) q = q.where('audit_events.target_guid', 'in', f.target_guids);
  if (f.space_guids) q = q.where('audit_events.space_guid', 'in', f.space_guids);
  if (f.organization_guids) q = q.where('audit_events.organization_guid', 'in', f.organization_guids);
  if (params.excludedTargetGuids) q = q.where('audit_events.target_guid', 'not in', params.excludedTargetGuids);
  return listPage(q, {
    table: 'audit_events',
    page: params.page,
    perPage: params.perPage,
    guids: f.guids,
    timestamps: params.timestamps,
    orderBy: params.orderBy ? { column: params.orderBy.field, desc: params.orderBy.desc } : undefined,
  });
}

/** An event the caller cannot see is reported exactly like a missing one. */
export async function getAuditEvent(ctx: Ctx, guid: string): Promise<Row<'audit_events'>> {
  let q = ctx.store.db.selectFrom('audit_events').selectAll('audit_events').where('audit_events.guid', '=', guid);
  if (!ctx.access.global) q = q.where((eb) => visible(ctx.access, eb));
  const event = await q.executeTakeFirst();
  if (!event) throw notFound('Event');
  return event;
}
