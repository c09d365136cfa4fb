import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

/** The sources of each route's policies (the router's view), for routes on enforcing domains. */
export async function policySourcesByRoute(db: Kysely<Database>): Promise<Map<string, string[]>> {
  const rows = await db.selectFrom('route_policies').select(['route_guid', 'source_type', 'source_guid']).orderBy('id').execute();
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const list = out.get(r.route_guid) ?? [];
    list.push(r.source_guid === '' ? 'cf:any' : `cf:${r.source_type}:${r.source_guid}`);
    out.set(r.route_guid, list);
  }
  return out;
}
