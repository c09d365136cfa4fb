import type { Metadata } from '../../domain/metadata.ts';
import type { LockView } from '../../services/locks.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** A lock in the shape docs/kiln-openapi.json declares (`Lock`). */
export function presentLock({ lock: k, organizationGuid }: LockView, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/locks/${k.guid}`;
  const links: { self: Link; renew: Link; release: Link; app?: Link; space: Link; organization: Link } = {
    self: l.link(self),
    renew: l.link(self, 'PATCH'),
    release: l.link(self, 'DELETE'),
    space: l.link(`/v3/spaces/${k.space_guid}`),
    organization: l.link(`/v3/organizations/${organizationGuid}`),
  };
  if (k.resource_type === 'app') links.app = l.link(`/v3/apps/${k.resource_guid}`);
  return {
    guid: k.guid,
    created_at: cfTime(k.created_at),
    updated_at: cfTime(k.updated_at),
    name: k.name,
    reason: k.reason,
    resource_type: k.resource_type,
    owner: { guid: k.owner_guid, name: k.owner_name },
    ttl_in_seconds: k.ttl_seconds,
    expires_at: cfTime(k.expires_at),
    relationships: {
      app: toOne(k.resource_type === 'app' ? k.resource_guid : null),
      space: toOne(k.space_guid),
    },
    metadata: metadataOf(metadata),
    links,
  };
}
