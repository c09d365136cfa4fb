import { isActive, stepCount, type DeploymentState } from '../../domain/deployments.ts';
import type { Metadata } from '../../domain/metadata.ts';
import { canarySteps } from '../../services/deployments.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { base, metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** A deployment (CONVENTIONS.md §18); `revisionVersion` is the version of its revision, when it has one. */
export function presentDeployment(d: Row<'deployments'>, metadata: Metadata | undefined, revisionVersion: number | undefined, l: Linker) {
  const self = `/v3/deployments/${d.guid}`;
  const steps = canarySteps(d);
  const canary = d.strategy === 'canary';
  const options: Record<string, unknown> = { max_in_flight: d.max_in_flight };
  if (d.web_instances !== null) options.web_instances = d.web_instances;
  if (d.memory_in_mb !== null) options.memory_in_mb = d.memory_in_mb;
  if (d.disk_in_mb !== null) options.disk_in_mb = d.disk_in_mb;
  if (d.log_rate_limit_in_bytes_per_second !== null) options.log_rate_limit_in_bytes_per_second = Number(d.log_rate_limit_in_bytes_per_second);
  if (canary && steps) options.canary = { steps };
  return {
    ...base(d),
    status: {
      value: d.status_value,
      reason: d.status_reason,
      details: {
        last_successful_healthcheck: cfTime(d.last_healthy_at),
        last_status_change: cfTime(d.last_status_change),
        ...(d.error ? { error: d.error } : {}),
      },
      ...(canary ? { canary: { steps: { current: d.canary_step, total: stepCount(steps) } } } : {}),
    },
    strategy: d.strategy,
    options,
    droplet: { guid: d.droplet_guid },
    previous_droplet: { guid: d.previous_droplet_guid },
    new_processes: [{ guid: d.process_guid, type: d.process_type }],
    revision: d.revision_guid && revisionVersion !== undefined ? { guid: d.revision_guid, version: revisionVersion } : null,
    relationships: { app: toOne(d.app_guid) },
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      app: l.link(`/v3/apps/${d.app_guid}`),
      ...(isActive(d.state) ? { cancel: l.link(`${self}/actions/cancel`, 'POST') } : {}),
      ...((d.state as DeploymentState) === 'PAUSED' ? { continue: l.link(`${self}/actions/continue`, 'POST') } : {}),
    },
  };
}
