import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toMany, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/**
 * A domain as Cloud Controller renders it. `sharedOrganizationGuids` must already be limited to the
 * orgs the caller can read. Kiln has no routing API, so `router_group` is always null and no
 * `router_group` link is emitted; every domain carries HTTP routes.
 */
export function presentDomain(domain: Row<'domains'>, sharedOrganizationGuids: string[], metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/domains/${domain.guid}`;
  const org = domain.owning_organization_guid;
  // Optional members are assigned rather than spread in: see presentSpace for why.
  const links: { self: Link; route_reservations: Link; organization?: Link; shared_organizations?: Link } = {
    self: l.link(self),
    route_reservations: l.link(`${self}/route_reservations`),
  };
  if (org) {
    links.organization = l.link(`/v3/organizations/${org}`);
    links.shared_organizations = l.link(`${self}/relationships/shared_organizations`);
  }
  return {
    guid: domain.guid,
    created_at: cfTime(domain.created_at),
    updated_at: cfTime(domain.updated_at),
    name: domain.name,
    internal: domain.internal === 1,
    router_group: domain.router_group_guid ? { guid: domain.router_group_guid } : null,
    supported_protocols: ['http'],
    // CC's route policy fields (issue 12 item 17); the Domain schema of openapi.json allows extra properties.
    enforce_route_policies: domain.enforce_route_policies === 1,
    route_policies_scope: domain.route_policies_scope,
    relationships: {
      organization: toOne(org),
      shared_organizations: toMany(sharedOrganizationGuids),
    },
    metadata: metadataOf(metadata),
    links,
  };
}

/** `POST /v3/domains/:guid/relationships/shared_organizations` answers with the (visible) shared orgs. */
export const presentSharedOrganizations = (guids: string[]) => toMany(guids);
