import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

export interface TaskView {
  /** Whether `command` is rendered; for other readers the key is absent (CONVENTIONS.md §2). */
  showCommand: boolean;
  /** The container user the task runs as. */
  user: string;
}

/** A task in upstream's key order (CONVENTIONS.md §17.6). */
export function presentTask(t: Row<'tasks'>, metadata: Metadata | undefined, view: TaskView, l: Linker) {
  const self = `/v3/tasks/${t.guid}`;
  const result = { failure_reason: t.state === 'FAILED' ? t.failure_reason : null };
  const relationships = { app: toOne(t.app_guid) };
  const links = {
    self: l.link(self),
    app: l.link(`/v3/apps/${t.app_guid}`),
    cancel: l.link(`${self}/actions/cancel`, 'POST'),
    droplet: l.link(`/v3/droplets/${t.droplet_guid}`),
  };
  return {
    guid: t.guid,
    created_at: cfTime(t.created_at),
    updated_at: cfTime(t.updated_at),
    sequence_id: t.sequence_id,
    name: t.name,
    // Hidden from some readers: JSON leaves out an undefined member, and one literal keeps one object shape.
    command: view.showCommand ? t.command : undefined,
    user: view.user,
    state: t.state,
    memory_in_mb: t.memory_in_mb,
    disk_in_mb: t.disk_in_mb,
    log_rate_limit_in_bytes_per_second: t.log_rate_limit,
    result,
    droplet_guid: t.droplet_guid,
    relationships,
    metadata: metadataOf(metadata),
    links,
  };
}
