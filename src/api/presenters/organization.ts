import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { base, metadataOf, toOne } from '../cf/presenter.ts';

export function presentOrganization(org: Row<'organizations'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/organizations/${org.guid}`;
  return {
    ...base(org),
    name: org.name,
    suspended: org.suspended === 1,
    relationships: { quota: toOne(org.quota_guid) },
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      domains: l.link(`${self}/domains`),
      default_domain: l.link(`${self}/domains/default`),
      ...(org.quota_guid ? { quota: l.link(`/v3/organization_quotas/${org.quota_guid}`) } : {}),
    },
  };
}
