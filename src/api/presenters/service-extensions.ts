import type { DefinitionView, SchemaView } from '../../services/plan-definitions.ts';
import type { BackupRow } from '../../services/service-backups.ts';
import type { Linker } from '../cf/links.ts';
import { toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** A backup in the shape docs/kiln-openapi.json declares (`ServiceInstanceBackup`). */
export function presentBackup(b: BackupRow, l: Linker) {
  const instance = `/v3/service_instances/${b.service_instance_guid}`;
  return {
    guid: b.guid,
    created_at: cfTime(b.created_at),
    updated_at: cfTime(b.updated_at),
    state: b.state,
    size_in_bytes: b.size_in_bytes,
    completed_at: cfTime(b.completed_at),
    restored_at: cfTime(b.restored_at),
    last_operation: {
      type: b.last_operation_type,
      state: b.last_operation_state,
      description: b.last_operation_description,
      updated_at: cfTime(b.last_operation_updated_at),
    },
    relationships: { service_instance: toOne(b.service_instance_guid) },
    links: {
      service_instance: l.link(instance),
      restore: l.link(`${instance}/backups/${b.guid}/actions/restore`, 'POST'),
    },
  };
}

/** `PlanDefinitionSchema`: keyed by its offering's guid; `schema` null when the broker has none to give. */
export function presentPlanDefinitionSchema(v: SchemaView, l: Linker) {
  return {
    guid: v.offering.guid,
    schema: v.schema,
    relationships: { service_offering: toOne(v.offering.guid) },
    links: { self: l.link(`/v3/plan_definition_schemas/${v.offering.guid}`), service_offering: l.link(`/v3/service_offerings/${v.offering.guid}`) },
  };
}

/** `ServicePlanDefinition`: keyed by its plan's guid; `created_at` and `resource_version` are the broker's. */
export function presentPlanDefinition(v: DefinitionView, l: Linker) {
  return {
    guid: v.plan.guid,
    definition: v.definition,
    created_at: v.createdAt,
    resource_version: v.resourceVersion,
    relationships: { service_plan: toOne(v.plan.guid), service_offering: toOne(v.plan.service_offering_guid) },
    links: {
      self: l.link(`/v3/service_plan_definitions/${v.plan.guid}`),
      service_plan: l.link(`/v3/service_plans/${v.plan.guid}`),
      service_offering: l.link(`/v3/service_offerings/${v.plan.service_offering_guid}`),
    },
  };
}
