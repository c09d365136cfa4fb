import type { Metadata } from '../../domain/metadata.ts';
import { routeUrl } from '../../domain/routes.ts';
import { parseOptions, type RouteView } from '../../services/route-reads.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** A destination as it appears inside a route and in destination lists (upstream's `destination_hash`). */
export function presentDestination(d: Row<'route_destinations'>) {
  return {
    guid: d.guid,
    app: { guid: d.app_guid, process: { type: d.process_type } },
    weight: d.weight,
    port: d.port,
    protocol: d.protocol,
    created_at: cfTime(d.created_at),
    updated_at: cfTime(d.updated_at),
  };
}

/** `PATCH /v3/routes/:guid/destinations/:destination_guid` answers with the destination plus links. */
export function presentDestinationWithLinks(d: Row<'route_destinations'>, l: Linker) {
  return Object.assign(presentDestination(d), {
    links: {
      destinations: l.link(`/v3/routes/${d.route_guid}/destinations`),
      route: l.link(`/v3/routes/${d.route_guid}`),
    },
  });
}

const byGuid = (a: { guid: string }, b: { guid: string }) => (a.guid < b.guid ? -1 : a.guid > b.guid ? 1 : 0);

/** `{"destinations": […], "links": {self, route}}` — destinations are not paginated and come sorted by guid. */
export function presentDestinations(routeGuid: string, destinations: Array<Row<'route_destinations'>>, l: Linker) {
  return {
    destinations: [...destinations].sort(byGuid).map(presentDestination),
    links: {
      self: l.link(`/v3/routes/${routeGuid}/destinations`),
      route: l.link(`/v3/routes/${routeGuid}`),
    },
  };
}

/** A route in upstream key order; `port` is null for HTTP routes (stored as 0). */
export function presentRoute(v: RouteView, metadata: Metadata | undefined, l: Linker) {
  const { route } = v;
  const self = `/v3/routes/${route.guid}`;
  return {
    guid: route.guid,
    created_at: cfTime(route.created_at),
    updated_at: cfTime(route.updated_at),
    protocol: route.protocol,
    host: route.host,
    path: route.path,
    port: route.port > 0 ? route.port : null,
    url: routeUrl(route, v.domainName),
    destinations: [...v.destinations].sort(byGuid).map(presentDestination),
    options: parseOptions(route.options),
    metadata: metadataOf(metadata),
    relationships: {
      space: { data: { guid: route.space_guid } },
      domain: { data: { guid: route.domain_guid } },
    },
    links: {
      self: l.link(self),
      space: l.link(`/v3/spaces/${route.space_guid}`),
      destinations: l.link(`${self}/destinations`),
      domain: l.link(`/v3/domains/${route.domain_guid}`),
    },
  };
}

/** `…/relationships/shared_spaces` (GET and POST): the spaces, with a self link only (no `related`). */
export function presentSharedSpaces(routeGuid: string, spaceGuids: string[], l: Linker) {
  return {
    data: spaceGuids.map((guid) => ({ guid })),
    links: { self: l.link(`/v3/routes/${routeGuid}/relationships/shared_spaces`) },
  };
}
