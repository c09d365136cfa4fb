import type { Metadata } from '../../domain/metadata.ts';
import { HIDDEN_PASSWORD } from '../../domain/packages.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** A package in Cloud Controller's shape; a docker registry password is never shown. */
export function presentPackage(p: Row<'packages'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/packages/${p.guid}`;
  const bits = p.type === 'bits';
  const data = bits
    ? { checksum: { type: 'sha256', value: p.checksum_sha256 }, error: p.error }
    : { image: p.docker_image ?? '', username: p.docker_username, password: p.docker_password ? HIDDEN_PASSWORD : null };
  const app = l.link(`/v3/apps/${p.app_guid}`);
  // Two literals, because upload/download sit before `app`; no spreads: see presentSpace for why.
  const links = bits
    ? { self: l.link(self), upload: l.link(`${self}/upload`, 'POST'), download: l.link(`${self}/download`, 'GET'), app }
    : { self: l.link(self), app };
  return {
    guid: p.guid,
    created_at: cfTime(p.created_at),
    updated_at: cfTime(p.updated_at),
    type: p.type,
    data,
    state: p.state,
    relationships: { app: toOne(p.app_guid) },
    metadata: metadataOf(metadata),
    links,
  };
}
