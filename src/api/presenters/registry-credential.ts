import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/**
 * A registry credential in the shape docs/kiln-openapi.json declares (`RegistryCredential`). The secret is
 * write-only: the row's ciphertext is not read here, and only its kind (`password` or `token`) is shown.
 */
export function presentRegistryCredential(r: Row<'registry_credentials'>, metadata: Metadata | undefined, l: Linker) {
  const links: { self: Link; organization?: Link; space?: Link } = { self: l.link(`/v3/registry_credentials/${r.guid}`) };
  if (r.organization_guid) links.organization = l.link(`/v3/organizations/${r.organization_guid}`);
  if (r.space_guid) links.space = l.link(`/v3/spaces/${r.space_guid}`);
  return {
    guid: r.guid,
    created_at: cfTime(r.created_at),
    updated_at: cfTime(r.updated_at),
    scope: r.scope,
    host: r.host,
    username: r.username,
    secret_type: r.secret_type,
    relationships: {
      organization: toOne(r.organization_guid),
      space: toOne(r.space_guid),
    },
    metadata: metadataOf(metadata),
    links,
  };
}
