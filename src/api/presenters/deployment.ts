import { isActive, stepCount, type DeploymentState } from '../../domain/deployments.ts';
import type { Metadata } from '../../domain/metadata.ts';
import { canarySteps } from '../../lifecycle/deployments.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** The processes a deployment created, still listed after they are gone (upstream's historical_related_processes). */
function newProcesses(d: Row<'deployments'>): Array<{ guid: string; type: string }> {
  try {
    const list: unknown = JSON.parse(d.new_processes);
    return Array.isArray(list) ? (list as Array<{ guid: string; type: string }>) : [];
  } catch {
    return [];
  }
}

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
  // Optional members are assigned rather than spread in: see presentSpace for why.
  const details: { last_successful_healthcheck: string; last_status_change: string; error?: string } = {
    last_successful_healthcheck: cfTime(d.last_healthy_at),
    last_status_change: cfTime(d.last_status_change),
  };
  if (d.error) details.error = d.error;
  const status: {
    value: string;
    reason: string;
    details: typeof details;
    canary?: { steps: { current: number; total: number } };
  } = { value: d.status_value, reason: d.status_reason, details };
  if (canary) status.canary = { steps: { current: d.canary_step, total: stepCount(steps) } };
  const links: { self: Link; app: Link; cancel?: Link; continue?: Link } = {
    self: l.link(self),
    app: l.link(`/v3/apps/${d.app_guid}`),
  };
  if (isActive(d.state)) links.cancel = l.link(`${self}/actions/cancel`, 'POST');
  if ((d.state as DeploymentState) === 'PAUSED') links.continue = l.link(`${self}/actions/continue`, 'POST');
  return {
    guid: d.guid,
    created_at: cfTime(d.created_at),
    updated_at: cfTime(d.updated_at),
    status,
    strategy: d.strategy,
    options,
    droplet: { guid: d.droplet_guid },
    previous_droplet: { guid: d.previous_droplet_guid },
    new_processes: newProcesses(d),
    revision: d.revision_guid && revisionVersion !== undefined ? { guid: d.revision_guid, version: revisionVersion } : null,
    relationships: { app: toOne(d.app_guid) },
    metadata: metadataOf(metadata),
    links,
  };
}
