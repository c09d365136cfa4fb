/** The routing table: every route with its destinations, as the router is fed. */
import type { Kysely } from 'kysely';
import { routeUrl } from '../domain/routes.ts';
import type { Database } from '../store/schema.ts';
import { parseOptions } from './route-reads.ts';

/** One route as the router needs it. */
export interface RoutingEntry {
  routeGuid: string;
  host: string;
  domain: string;
  /** '' or `/…`. */
  path: string;
  /** 0 for HTTP routes. */
  port: number;
  protocol: string;
  internal: boolean;
  /** `host.domain/path`, as the API renders it. */
  url: string;
  /** Load-balancing algorithm requested for the route, if any. */
  loadbalancing: string | undefined;
  destinations: Array<{ guid: string; appGuid: string; processType: string; port: number; protocol: string; weight: number | null }>;
}

/** Every route with its destinations, oldest first: what the router is fed from. */
export async function routingTable(db: Kysely<Database>): Promise<RoutingEntry[]> {
  const rows = await db
    .selectFrom('routes')
    .innerJoin('domains', 'domains.guid', 'routes.domain_guid')
    .select([
      'routes.guid',
      'routes.host',
      'routes.path',
      'routes.port',
      'routes.protocol',
      'routes.options',
      'domains.name as domain',
      'domains.internal',
    ])
    .orderBy('routes.id')
    .execute();
  const dests = await db.selectFrom('route_destinations').selectAll().orderBy('id').execute();
  const byRoute = new Map<string, RoutingEntry['destinations']>();
  for (const d of dests) {
    const list = byRoute.get(d.route_guid) ?? [];
    list.push({ guid: d.guid, appGuid: d.app_guid, processType: d.process_type, port: d.port, protocol: d.protocol, weight: d.weight });
    byRoute.set(d.route_guid, list);
  }
  return rows.map((r) => ({
    routeGuid: r.guid,
    host: r.host,
    domain: r.domain,
    path: r.path,
    port: r.port,
    protocol: r.protocol,
    internal: r.internal === 1,
    url: routeUrl(r, r.domain),
    loadbalancing: parseOptions(r.options).loadbalancing,
    destinations: byRoute.get(r.guid) ?? [],
  }));
}
