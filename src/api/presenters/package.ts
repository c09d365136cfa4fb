import type { Metadata } from '../../domain/metadata.ts';
import { HIDDEN_PASSWORD } from '../../domain/packages.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { base, metadataOf, toOne } from '../cf/presenter.ts';

/** A package in Cloud Controller's shape; a docker registry password is never shown. */
export function presentPackage(p: Row<'packages'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/packages/${p.guid}`;
  const bits = p.type === 'bits';
  const data = bits
    ? { checksum: { type: 'sha256', value: p.checksum_sha256 }, error: p.error }
    : { image: p.docker_image ?? '', username: p.docker_username, password: p.docker_password ? HIDDEN_PASSWORD : null };
  return {
    ...base(p),
    type: p.type,
    data,
    state: p.state,
    relationships: { app: toOne(p.app_guid) },
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      ...(bits ? { upload: l.link(`${self}/upload`, 'POST'), download: l.link(`${self}/download`, 'GET') } : {}),
      app: l.link(`/v3/apps/${p.app_guid}`),
    },
  };
}
