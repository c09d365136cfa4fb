import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

// Plain literals rather than `{ ...base(row), … }`: see presentSpace for why.
export function presentOrganization(org: Row<'organizations'>, metadata: Metadata | undefined, l: Linker) {
  const self = l.href(`/v3/organizations/${org.guid}`);
  const links: { self: Link; domains: Link; default_domain: Link; quota?: Link } = {
    self: { href: self },
    domains: { href: `${self}/domains` },
    default_domain: { href: `${self}/domains/default` },
  };
  if (org.quota_guid) links.quota = l.link(`/v3/organization_quotas/${org.quota_guid}`);
  return {
    guid: org.guid,
    created_at: cfTime(org.created_at),
    updated_at: cfTime(org.updated_at),
    name: org.name,
    suspended: org.suspended === 1,
    relationships: { quota: toOne(org.quota_guid) },
    metadata: metadataOf(metadata),
    links,
  };
}
