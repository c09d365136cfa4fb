import type { Metadata } from '../../domain/metadata.ts';
import type { ObservedInstance } from '../../services/processes.ts';
import { FDS_LIMIT } from '../../lifecycle/app-env.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** How the `command` of a process is shown: as is, redacted for a single GET, or always redacted in lists. */
export type CommandView = { show: true; detected: string | undefined } | { show: false; redaction: string };

// No spreads in this file: see presentSpace for why.
function healthCheck(p: Row<'processes'>) {
  const data: { timeout: number | null; invocation_timeout: number | null; interval: number | null; endpoint?: string } = {
    timeout: p.health_check_timeout,
    invocation_timeout: p.health_check_invocation_timeout,
    interval: p.health_check_interval,
  };
  if (p.health_check_type === 'http') data.endpoint = p.health_check_endpoint ?? '/';
  return { type: p.health_check_type, data };
}

function readinessCheck(p: Row<'processes'>) {
  const data: { invocation_timeout: number | null; interval: number | null; endpoint?: string } = {
    invocation_timeout: p.readiness_check_invocation_timeout,
    interval: p.readiness_check_interval,
  };
  if (p.readiness_check_type === 'http') data.endpoint = p.readiness_check_endpoint ?? '/';
  return { type: p.readiness_check_type, data };
}

export interface ProcessView {
  app: Pick<Row<'apps'>, 'space_guid' | 'lifecycle_type'> | undefined;
  command: CommandView;
  /** `embed=process_instances`: the instances to embed, or undefined when not asked for. */
  instances?: ObservedInstance[];
}

export function presentProcess(p: Row<'processes'>, metadata: Metadata | undefined, view: ProcessView, l: Linker) {
  const self = `/v3/processes/${p.guid}`;
  const command = view.command.show ? (p.command ?? view.command.detected ?? null) : view.command.redaction;
  const user = view.app?.lifecycle_type === 'docker' ? 'root' : 'vcap';
  const relationships = { app: toOne(p.app_guid), revision: null };
  const scale = l.link(`${self}/actions/scale`, 'POST');
  const app = l.link(`/v3/apps/${p.app_guid}`);
  const stats = l.link(`${self}/stats`);
  const links: { self: Link; scale: Link; app: Link; space?: Link; stats: Link } = view.app
    ? { self: l.link(self), scale, app, space: l.link(`/v3/spaces/${view.app.space_guid}`), stats }
    : { self: l.link(self), scale, app, stats };
  return {
    guid: p.guid,
    created_at: cfTime(p.created_at),
    updated_at: cfTime(p.updated_at),
    version: p.version,
    type: p.type,
    command,
    user,
    instances: p.instances,
    memory_in_mb: p.memory_in_mb,
    disk_in_mb: p.disk_in_mb,
    log_rate_limit_in_bytes_per_second: p.log_rate_limit_in_bytes_per_second,
    health_check: healthCheck(p),
    readiness_health_check: readinessCheck(p),
    // Absent unless embedded: JSON leaves out an undefined member, and one literal keeps one object shape.
    process_instances: view.instances?.map(presentInstanceSummary),
    relationships,
    metadata: metadataOf(metadata),
    links,
  };
}

/**
 * `{index, state, since}`: process_instances entries (embed and `GET …/process_instances`). openapi.json types
 * `since` as a number, so an instance that never ran reports 0 rather than null.
 */
export const presentInstanceSummary = (i: ObservedInstance) => ({ index: i.index, state: i.state, since: i.since ?? 0 });

/** One `GET …/stats` entry (CONVENTIONS.md §17.8); a DOWN entry carries only the basic fields. */
export function presentInstanceStats(p: Row<'processes'>, i: ObservedInstance) {
  if (i.state === 'DOWN') {
    return { type: p.type, index: i.index, state: i.state, routable: i.routable ?? null, uptime: 0, isolation_segment: null, details: i.details ?? null };
  }
  return {
    type: p.type,
    index: i.index,
    instance_guid: i.instanceGuid ?? '',
    state: i.state,
    routable: i.routable ?? i.state === 'RUNNING',
    host: i.host ?? '',
    instance_internal_ip: i.internalIp ?? i.host ?? '',
    uptime: Math.max(0, Math.floor(i.uptime ?? 0)),
    mem_quota: p.memory_in_mb * 1024 * 1024,
    disk_quota: p.disk_in_mb * 1024 * 1024,
    log_rate_limit: p.log_rate_limit_in_bytes_per_second,
    fds_quota: FDS_LIMIT,
    isolation_segment: null,
    details: i.details ?? null,
    instance_ports: (i.ports ?? []).map((port) => ({
      external: port.external,
      internal: port.internal,
      external_tls_proxy_port: null,
      internal_tls_proxy_port: null,
    })),
    usage: i.usage
      ? {
          time: i.usage.time,
          cpu: i.usage.cpu,
          cpu_entitlement: i.usage.cpu_entitlement ?? i.usage.cpu,
          mem: Math.max(0, Math.round(i.usage.mem)),
          disk: Math.max(0, Math.round(i.usage.disk)),
          log_rate: Math.max(0, Math.round(i.usage.log_rate)),
        }
      : {},
  };
}
