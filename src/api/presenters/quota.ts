import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { toMany, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

type QuotaRow = Row<'organization_quotas'> | Row<'space_quotas'>;

/** The limit groups both quota kinds share; NULL columns are "unlimited" and render as null. */
function limits(q: QuotaRow) {
  return {
    apps: {
      total_memory_in_mb: q.total_memory_in_mb,
      per_process_memory_in_mb: q.per_process_memory_in_mb,
      total_instances: q.total_instances,
      per_app_tasks: q.per_app_tasks,
      log_rate_limit_in_bytes_per_second: q.log_rate_limit_in_bytes_per_second,
    },
    services: {
      paid_services_allowed: q.paid_services_allowed === 1,
      total_service_instances: q.total_service_instances,
      total_service_keys: q.total_service_keys,
    },
    routes: {
      total_routes: q.total_routes,
      total_reserved_ports: q.total_reserved_ports,
    },
  };
}

/**
 * An organization quota. `orgGuids` are the orgs using it that the caller may see. Quotas carry no
 * metadata upstream (their messages accept none), so none is rendered.
 */
export function presentOrganizationQuota(q: Row<'organization_quotas'>, orgGuids: string[], l: Linker) {
  // Destructured rather than spread in: see presentSpace for why.
  const { apps, services, routes } = limits(q);
  return {
    guid: q.guid,
    created_at: cfTime(q.created_at),
    updated_at: cfTime(q.updated_at),
    name: q.name,
    apps,
    services,
    routes,
    domains: { total_domains: q.total_domains },
    relationships: { organizations: toMany(orgGuids) },
    links: { self: l.link(`/v3/organization_quotas/${q.guid}`) },
  };
}

/** A space quota. `spaceGuids` are the spaces using it that the caller may see. */
export function presentSpaceQuota(q: Row<'space_quotas'>, spaceGuids: string[], l: Linker) {
  const { apps, services, routes } = limits(q);
  return {
    guid: q.guid,
    created_at: cfTime(q.created_at),
    updated_at: cfTime(q.updated_at),
    name: q.name,
    apps,
    services,
    routes,
    relationships: {
      organization: toOne(q.organization_guid),
      spaces: toMany(spaceGuids),
    },
    links: {
      self: l.link(`/v3/space_quotas/${q.guid}`),
      organization: l.link(`/v3/organizations/${q.organization_guid}`),
    },
  };
}

/** The answer of a to-many relationship POST: the full list, with only a `self` link (as upstream). */
export function presentQuotaRelationship(path: string, guids: string[], l: Linker) {
  return { data: guids.map((guid) => ({ guid })), links: { self: l.link(path) } };
}
