import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { base, metadataOf } from '../cf/presenter.ts';

export function presentIsolationSegment(segment: Row<'isolation_segments'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/isolation_segments/${segment.guid}`;
  return {
    ...base(segment),
    name: segment.name,
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      organizations: l.link(`${self}/organizations`),
    },
  };
}

/**
 * A to-many relationship document (`{"data": [{"guid"}…], "links": {"self", "related"?}}`) for
 * `/v3/<ownerPath>/relationships/<name>`; `related` points at `/v3/<ownerPath>/<name>` when that exists.
 */
export function presentToMany(ownerPath: string, name: string, guids: string[], l: Linker, withRelated: boolean) {
  return {
    data: guids.map((guid) => ({ guid })),
    links: {
      self: l.link(`/v3/${ownerPath}/relationships/${name}`),
      ...(withRelated ? { related: l.link(`/v3/${ownerPath}/${name}`) } : {}),
    },
  };
}

/** A to-one relationship document; `related` is present only while something is assigned. */
export function presentIsolationSegmentToOne(ownerPath: string, name: string, segmentGuid: string | null, l: Linker) {
  return {
    data: segmentGuid ? { guid: segmentGuid } : null,
    links: {
      self: l.link(`/v3/${ownerPath}/relationships/${name}`),
      ...(segmentGuid ? { related: l.link(`/v3/isolation_segments/${segmentGuid}`) } : {}),
    },
  };
}
