import type { SidecarView } from '../../services/sidecars.ts';
import type { Linker } from '../cf/links.ts';
import { toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

export function presentSidecar({ sidecar: s, processTypes }: SidecarView, l: Linker) {
  return {
    guid: s.guid,
    name: s.name,
    command: s.command,
    process_types: processTypes,
    memory_in_mb: s.memory_in_mb,
    origin: s.origin,
    relationships: { app: toOne(s.app_guid) },
    created_at: cfTime(s.created_at),
    updated_at: cfTime(s.updated_at),
    links: {
      self: l.link(`/v3/sidecars/${s.guid}`),
      app: l.link(`/v3/apps/${s.app_guid}`),
    },
  };
}
