import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

/** Resources whose `name` is unique, platform-wide or within a parent. */
export type NamedTable =
  | 'apps'
  | 'spaces'
  | 'organizations'
  | 'isolation_segments'
  | 'security_groups'
  | 'organization_quotas'
  | 'space_quotas'
  | 'service_instances'
  | 'service_brokers'
  | 'git_sources'
  | 'stacks'
  | 'sidecars'
  | 'service_credential_bindings'
  | 'service_plans';

export interface NameQuery {
  /** The parent the name is unique in, as column → guid (an app's space, a space's org…); omitted: platform-wide. */
  within?: Record<string, string>;
  /** Compare case-insensitively, as Cloud Controller does for orgs, spaces, apps and isolation segments. */
  anyCase?: boolean;
  /** The row being renamed, which does not clash with itself. */
  except?: string;
}

/**
 * Whether another row of `table` already has this name in its scope: the friendly check a create or rename
 * makes inside its write before the unique index would refuse it. Each caller keeps its own CF error text.
 */
export async function nameInUse(db: Kysely<Database>, table: NamedTable, name: string, q: NameQuery = {}): Promise<boolean> {
  let query = db.selectFrom(table).select('guid');
  query = q.anyCase ? query.where((eb) => eb(eb.fn('lower', ['name']), '=', name.toLowerCase())) : query.where('name', '=', name);
  for (const [column, value] of Object.entries(q.within ?? {})) query = query.where(db.dynamic.ref(column), '=', value);
  if (q.except) query = query.where('guid', '!=', q.except);
  return (await query.executeTakeFirst()) !== undefined;
}
