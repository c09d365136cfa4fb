import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

export function presentBuildpack(bp: Row<'buildpacks'>, metadata: Metadata | undefined, l: Linker) {
  return {
    guid: bp.guid,
    created_at: cfTime(bp.created_at),
    updated_at: cfTime(bp.updated_at),
    name: bp.name,
    state: bp.state,
    filename: bp.filename,
    stack: bp.stack,
    position: bp.position,
    lifecycle: bp.lifecycle,
    enabled: bp.enabled === 1,
    locked: bp.locked === 1,
    metadata: metadataOf(metadata),
    links: {
      self: l.link(`/v3/buildpacks/${bp.guid}`),
      upload: l.link(`/v3/buildpacks/${bp.guid}/upload`, 'POST'),
    },
  };
}
