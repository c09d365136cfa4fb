import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

type LastOp = Pick<Row<'service_instances'>, 'last_operation_type' | 'last_operation_state' | 'last_operation_description' | 'last_operation_created_at' | 'last_operation_updated_at'>;

export function presentLastOperation(r: LastOp) {
  return {
    type: r.last_operation_type,
    state: r.last_operation_state,
    description: r.last_operation_description ?? '',
    created_at: cfTime(r.last_operation_created_at),
    updated_at: cfTime(r.last_operation_updated_at),
  };
}

/**
 * A service instance in CC's shape: managed ones carry plan, dashboard and maintenance info (`upgrade_available`
 * when the plan's maintenance_info version differs); user-provided ones carry their drain and route service URLs.
 */
export function presentServiceInstance(i: Row<'service_instances'>, metadata: Metadata | undefined, l: Linker, planMaintenance?: string | null) {
  const self = `/v3/service_instances/${i.guid}`;
  const common = {
    guid: i.guid,
    created_at: cfTime(i.created_at),
    updated_at: cfTime(i.updated_at),
    name: i.name,
    tags: JSON.parse(i.tags) as string[],
    last_operation: presentLastOperation(i),
  };
  if (i.type === 'user-provided') {
    return {
      ...common,
      type: 'user-provided' as const,
      syslog_drain_url: i.syslog_drain_url,
      route_service_url: i.route_service_url,
      relationships: { space: { data: { guid: i.space_guid } } },
      metadata: metadataOf(metadata),
      links: {
        self: l.link(self),
        space: l.link(`/v3/spaces/${i.space_guid}`),
        credentials: l.link(`${self}/credentials`),
        service_credential_bindings: l.link(`/v3/service_credential_bindings?service_instance_guids=${i.guid}`),
        service_route_bindings: l.link(`/v3/service_route_bindings?service_instance_guids=${i.guid}`),
      },
    };
  }
  const mi = i.maintenance_info ? (JSON.parse(i.maintenance_info) as { version: string; description?: string }) : undefined;
  const planMi = planMaintenance ? (JSON.parse(planMaintenance) as { version: string }) : undefined;
  return {
    ...common,
    type: 'managed' as const,
    maintenance_info: mi ?? {},
    upgrade_available: planMi !== undefined && planMi.version !== mi?.version,
    dashboard_url: i.dashboard_url,
    relationships: { space: { data: { guid: i.space_guid } }, service_plan: { data: { guid: i.service_plan_guid! } } },
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      space: l.link(`/v3/spaces/${i.space_guid}`),
      service_plan: l.link(`/v3/service_plans/${i.service_plan_guid}`),
      parameters: l.link(`${self}/parameters`),
      shared_spaces: l.link(`${self}/relationships/shared_spaces`),
      service_credential_bindings: l.link(`/v3/service_credential_bindings?service_instance_guids=${i.guid}`),
      service_route_bindings: l.link(`/v3/service_route_bindings?service_instance_guids=${i.guid}`),
    },
  };
}

export function presentCredentialBinding(b: Row<'service_credential_bindings'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/service_credential_bindings/${b.guid}`;
  const relationships: Record<string, { data: { guid: string } }> = { service_instance: { data: { guid: b.service_instance_guid } } };
  const links: Record<string, { href: string }> = {
    self: l.link(self),
    details: l.link(`${self}/details`),
    service_instance: l.link(`/v3/service_instances/${b.service_instance_guid}`),
    parameters: l.link(`${self}/parameters`),
  };
  if (b.app_guid) {
    relationships.app = { data: { guid: b.app_guid } };
    links.app = l.link(`/v3/apps/${b.app_guid}`);
  }
  return {
    guid: b.guid,
    created_at: cfTime(b.created_at),
    updated_at: cfTime(b.updated_at),
    name: b.name,
    type: b.type,
    last_operation: presentLastOperation(b),
    metadata: metadataOf(metadata),
    relationships,
    links,
  };
}

export function presentRouteBinding(b: Row<'service_route_bindings'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/service_route_bindings/${b.guid}`;
  return {
    guid: b.guid,
    created_at: cfTime(b.created_at),
    updated_at: cfTime(b.updated_at),
    route_service_url: b.route_service_url,
    last_operation: presentLastOperation(b),
    metadata: metadataOf(metadata),
    relationships: { service_instance: { data: { guid: b.service_instance_guid } }, route: { data: { guid: b.route_guid } } },
    links: {
      self: l.link(self),
      service_instance: l.link(`/v3/service_instances/${b.service_instance_guid}`),
      route: l.link(`/v3/routes/${b.route_guid}`),
      parameters: l.link(`${self}/parameters`),
    },
  };
}
