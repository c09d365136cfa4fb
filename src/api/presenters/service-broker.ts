import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** A broker as Cloud Controller renders it: never its credentials; `relationships.space` only when space-scoped. */
export function presentServiceBroker(b: Row<'service_brokers'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/service_brokers/${b.guid}`;
  const links: { self: Link; service_offerings: Link; space?: Link } = {
    self: l.link(self),
    service_offerings: l.link(`/v3/service_offerings?service_broker_guids=${b.guid}`),
  };
  const relationships: { space?: { data: { guid: string } } } = {};
  if (b.space_guid) {
    links.space = l.link(`/v3/spaces/${b.space_guid}`);
    relationships.space = { data: { guid: b.space_guid } };
  }
  return {
    guid: b.guid,
    name: b.name,
    url: b.url,
    created_at: cfTime(b.created_at),
    updated_at: cfTime(b.updated_at),
    relationships,
    metadata: metadataOf(metadata),
    links,
  };
}
