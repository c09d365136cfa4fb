import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

const bool = (f: number | null | undefined) => f === 1;
const json = (s: string) => JSON.parse(s) as unknown;

export function presentServiceOffering(o: Row<'service_offerings'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/service_offerings/${o.guid}`;
  return {
    guid: o.guid,
    name: o.name,
    description: o.description,
    available: bool(o.available),
    tags: json(o.tags),
    requires: json(o.requires),
    created_at: cfTime(o.created_at),
    updated_at: cfTime(o.updated_at),
    shareable: bool(o.shareable),
    documentation_url: o.documentation_url,
    broker_catalog: {
      id: o.broker_catalog_id,
      metadata: json(o.catalog_metadata),
      features: {
        plan_updateable: bool(o.plan_updateable),
        bindable: bool(o.bindable),
        instances_retrievable: bool(o.instances_retrievable),
        bindings_retrievable: bool(o.bindings_retrievable),
        allow_context_updates: bool(o.allow_context_updates),
      },
    },
    relationships: { service_broker: { data: { guid: o.service_broker_guid } } },
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      service_plans: l.link(`/v3/service_plans?service_offering_guids=${o.guid}`),
      service_broker: l.link(`/v3/service_brokers/${o.service_broker_guid}`),
    },
  };
}

/** A plan; `bindable`/`plan_updateable` fall back to the offering's when the catalog left them out. */
export function presentServicePlan(p: Row<'service_plans'>, metadata: Metadata | undefined, l: Linker, offering?: Pick<Row<'service_offerings'>, 'bindable' | 'plan_updateable'>) {
  const self = `/v3/service_plans/${p.guid}`;
  const schemas = json(p.schemas) as Record<string, any>;
  const params = (v: unknown) => ({ parameters: (v as { parameters?: unknown } | undefined)?.parameters ?? {} });
  return {
    guid: p.guid,
    created_at: cfTime(p.created_at),
    updated_at: cfTime(p.updated_at),
    name: p.name,
    visibility_type: p.visibility_type,
    available: bool(p.available),
    free: bool(p.free),
    costs: json(p.costs),
    description: p.description,
    maintenance_info: p.maintenance_info ? json(p.maintenance_info) : {},
    broker_catalog: {
      id: p.broker_catalog_id,
      metadata: json(p.catalog_metadata),
      maximum_polling_duration: p.maximum_polling_duration,
      features: {
        bindable: p.bindable === null ? bool(offering?.bindable ?? 1) : bool(p.bindable),
        plan_updateable: p.plan_updateable === null ? bool(offering?.plan_updateable ?? 0) : bool(p.plan_updateable),
      },
    },
    schemas: {
      service_instance: { create: params(schemas.service_instance?.create), update: params(schemas.service_instance?.update) },
      service_binding: { create: params(schemas.service_binding?.create) },
    },
    relationships: { service_offering: { data: { guid: p.service_offering_guid } } },
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      service_offering: l.link(`/v3/service_offerings/${p.service_offering_guid}`),
      visibility: l.link(`${self}/visibility`),
    },
  };
}

/** A related resource reduced to the `fields[...]` asked for (`relationships.x` keeps that relationship). */
export function pickFields(full: Record<string, any>, fields: string[]): Record<string, unknown> {
  const out: Record<string, any> = {};
  for (const f of fields) {
    if (f.startsWith('relationships.')) {
      const rel = f.slice('relationships.'.length);
      out.relationships ??= {};
      out.relationships[rel] = full.relationships?.[rel];
    } else {
      out[f] = full[f];
    }
  }
  return out;
}
