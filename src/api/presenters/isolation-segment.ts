import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

export function presentIsolationSegment(segment: Row<'isolation_segments'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/isolation_segments/${segment.guid}`;
  return {
    guid: segment.guid,
    created_at: cfTime(segment.created_at),
    updated_at: cfTime(segment.updated_at),
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
  // `related` is assigned rather than spread in: see presentSpace for why.
  const links: { self: Link; related?: Link } = { self: l.link(`/v3/${ownerPath}/relationships/${name}`) };
  if (withRelated) links.related = l.link(`/v3/${ownerPath}/${name}`);
  return { data: guids.map((guid) => ({ guid })), links };
}

/** A to-one relationship document; `related` is present only while something is assigned. */
export function presentIsolationSegmentToOne(ownerPath: string, name: string, segmentGuid: string | null, l: Linker) {
  const links: { self: Link; related?: Link } = { self: l.link(`/v3/${ownerPath}/relationships/${name}`) };
  if (segmentGuid) links.related = l.link(`/v3/isolation_segments/${segmentGuid}`);
  return { data: segmentGuid ? { guid: segmentGuid } : null, links };
}
