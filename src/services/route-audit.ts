/** Audit events of routes and of app-to-route mappings. */
import type { Principal } from '../domain/principal.ts';
import type { Row } from '../store/schema.ts';
import type { WriteTx } from '../store/store.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';

type RouteRow = Row<'routes'>;

type DestinationRow = Row<'route_destinations'>;

export interface AppRef {
  guid: string;
  name: string;
  space_guid: string;
  organization_guid: string;
}

// ---- audit ----

export function auditRoute(tx: WriteTx, ctx: Ctx, type: string, route: Pick<RouteRow, 'guid' | 'host' | 'space_guid'>, orgGuid: string, data: Record<string, unknown>) {
  return recordAudit(tx, {
    type: `audit.route.${type}`,
    actor: ctx.principal,
    target: { type: 'route', guid: route.guid, name: route.host },
    data,
    spaceGuid: route.space_guid,
    organizationGuid: orgGuid,
  });
}

/** `audit.app.map-route` / `unmap-route` for one destination (also written by manifest apply). */
export function auditMapping(tx: WriteTx, actor: Principal, type: 'map-route' | 'unmap-route', app: AppRef, d: DestinationRow) {
  return recordAudit(tx, {
    type: `audit.app.${type}`,
    actor,
    target: { type: 'app', guid: app.guid, name: app.name },
    data: {
      route_guid: d.route_guid,
      app_port: d.port,
      destination_guid: d.guid,
      process_type: d.process_type,
      weight: d.weight,
      protocol: d.protocol,
    },
    spaceGuid: app.space_guid,
    organizationGuid: app.organization_guid,
  });
}
