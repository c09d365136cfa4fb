import type { Metadata } from '../../domain/metadata.ts';
import { parseCommands } from '../../domain/revisions.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** A revision; `deployable` when its droplet can still be deployed. */
export function presentRevision(r: Row<'revisions'>, metadata: Metadata | undefined, deployable: boolean, l: Linker) {
  const self = `/v3/revisions/${r.guid}`;
  return {
    guid: r.guid,
    version: r.version,
    droplet: { guid: r.droplet_guid },
    processes: Object.fromEntries(Object.entries(parseCommands(r.commands)).map(([type, command]) => [type, { command }])),
    sidecars: [],
    description: r.description,
    deployable,
    relationships: { app: toOne(r.app_guid) },
    created_at: cfTime(r.created_at),
    updated_at: cfTime(r.updated_at),
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      app: l.link(`/v3/apps/${r.app_guid}`),
      environment_variables: l.link(`${self}/environment_variables`),
    },
  };
}

export function presentRevisionEnvironmentVariables(r: Row<'revisions'>, vars: Record<string, string>, l: Linker) {
  return {
    var: vars,
    links: {
      self: l.link(`/v3/revisions/${r.guid}/environment_variables`),
      revision: l.link(`/v3/revisions/${r.guid}`),
      app: l.link(`/v3/apps/${r.app_guid}`),
    },
  };
}
