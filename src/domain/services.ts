import { z } from 'zod';
import type { ListSpec } from './list-params.ts';
import { MetadataRequestSchema } from './metadata.ts';

/** Services (issue 9): request schemas, list specs and the rules shared by the service use-cases. */

export const SERVICE_BROKER_LIST: ListSpec = { orderBy: ['name'], filters: ['names', 'space_guids'], labelSelector: true };

export const SERVICE_OFFERING_LIST: ListSpec = {
  orderBy: ['name'],
  filters: ['names', 'available', 'service_broker_guids', 'service_broker_names', 'space_guids', 'organization_guids'],
  labelSelector: true,
  fields: { service_broker: ['guid', 'name'] },
};

export const SERVICE_PLAN_LIST: ListSpec = {
  orderBy: ['name'],
  filters: [
    'names',
    'available',
    'broker_catalog_ids',
    'service_broker_guids',
    'service_broker_names',
    'service_offering_guids',
    'service_offering_names',
    'space_guids',
    'organization_guids',
    'service_instance_guids',
  ],
  labelSelector: true,
  include: ['service_offering', 'space.organization'],
  fields: { 'service_offering.service_broker': ['guid', 'name'] },
};

export const SERVICE_INSTANCE_LIST: ListSpec = {
  orderBy: ['name'],
  filters: ['names', 'space_guids', 'organization_guids', 'service_plan_guids', 'service_plan_names', 'type'],
  labelSelector: true,
  fields: {
    space: ['guid', 'name', 'relationships.organization'],
    'space.organization': ['guid', 'name'],
    service_plan: ['guid', 'name', 'relationships.service_offering'],
    'service_plan.service_offering': ['guid', 'name', 'description', 'documentation_url', 'tags', 'relationships.service_broker'],
    'service_plan.service_offering.service_broker': ['guid', 'name'],
  },
};

export const SERVICE_CREDENTIAL_BINDING_LIST: ListSpec = {
  orderBy: ['name'],
  filters: ['names', 'service_instance_guids', 'service_instance_names', 'app_guids', 'app_names', 'service_plan_guids', 'service_plan_names', 'service_offering_guids', 'service_offering_names', 'type'],
  labelSelector: true,
  include: ['app', 'service_instance'],
};

export const SERVICE_USAGE_EVENT_LIST: ListSpec = {
  orderByOnly: ['created_at'],
  filters: ['after_guid', 'service_instance_types', 'service_offering_guids'],
  updatedAts: false,
};

/** CONVENTIONS.md's list table: created_at only, `after_guid`, `updated_ats` rejected. */
export const APP_USAGE_EVENT_LIST: ListSpec = {
  orderByOnly: ['created_at'],
  filters: ['after_guid'],
  updatedAts: false,
};

export const SERVICE_ROUTE_BINDING_LIST: ListSpec = {
  filters: ['route_guids', 'service_instance_guids', 'service_instance_names'],
  labelSelector: true,
  include: ['service_instance'],
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const JsonObject = z.custom<Record<string, unknown>>(isObject, { message: 'must be an object' });
const Relationship = z.object({ data: z.object({ guid: z.string().min(1) }) });
const Tags = z.array(z.string(), { message: 'Tags must be a list of strings' });

export const CreateServiceBrokerSchema = z
  .object({
    name: z.string({ message: 'Name must be a string' }).min(1, "Name can't be blank"),
    url: z.string({ message: 'Url must be a string' }),
    authentication: z.object({
      type: z.literal('basic', { message: 'Authentication type must be one of basic' }),
      credentials: z.object({ username: z.string().min(1), password: z.string().min(1) }).strict(),
    }),
    relationships: z.object({ space: Relationship }).strict().optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();

export const UpdateServiceBrokerSchema = z
  .object({
    name: z.string().min(1).optional(),
    url: z.string().optional(),
    authentication: CreateServiceBrokerSchema.shape.authentication.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();

/** Broker URLs must be absolute http(s) URLs without user info. */
export function brokerUrlError(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `Url must be a valid url`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'Url must be a valid url';
  if (u.username || u.password) return 'Url must not contain credentials';
  return undefined;
}

export const VisibilitySchema = z
  .object({
    type: z.enum(['public', 'admin', 'organization'], { message: "Type must be one of 'public', 'admin', 'organization'" }),
    organizations: z.array(z.object({ guid: z.string() })).optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.type === 'organization' && (!v.organizations || v.organizations.length === 0)) {
      ctx.addIssue({ code: 'custom', message: "Organizations can't be blank", path: ['organizations'] });
    }
    if (v.type !== 'organization' && v.organizations !== undefined) {
      ctx.addIssue({ code: 'custom', message: "Organizations can only be specified when type is 'organization'", path: ['organizations'] });
    }
  });

export const CreateServiceInstanceSchema = z.discriminatedUnion(
  'type',
  [
    z
      .object({
        type: z.literal('managed'),
        name: z.string().min(1, "Name can't be blank").max(255, 'Name is too long (maximum is 255 characters)'),
        relationships: z.object({ space: Relationship, service_plan: Relationship }).strict(),
        parameters: JsonObject.optional(),
        tags: Tags.optional(),
        metadata: MetadataRequestSchema.optional(),
      })
      .strict(),
    z
      .object({
        type: z.literal('user-provided'),
        name: z.string().min(1, "Name can't be blank").max(255, 'Name is too long (maximum is 255 characters)'),
        relationships: z.object({ space: Relationship }).strict(),
        credentials: JsonObject.optional(),
        syslog_drain_url: z.string().optional(),
        route_service_url: z.string().optional(),
        tags: Tags.optional(),
        metadata: MetadataRequestSchema.optional(),
      })
      .strict(),
  ],
  { message: "Type must be one of 'managed', 'user-provided'" },
);

export const UpdateManagedInstanceSchema = z
  .object({
    name: z.string().min(1).max(255).optional(),
    relationships: z.object({ service_plan: Relationship }).strict().optional(),
    parameters: JsonObject.optional(),
    tags: Tags.optional(),
    maintenance_info: z.object({ version: z.string() }).optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();

export const UpdateUserProvidedInstanceSchema = z
  .object({
    name: z.string().min(1).max(255).optional(),
    credentials: JsonObject.optional(),
    syslog_drain_url: z.string().optional(),
    route_service_url: z.string().optional(),
    tags: Tags.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();

export const CreateCredentialBindingSchema = z
  .object({
    type: z.enum(['app', 'key'], { message: "Type must be one of 'app', 'key'" }),
    name: z.string().min(1).max(255).optional(),
    relationships: z.object({ service_instance: Relationship, app: Relationship.optional() }).strict(),
    parameters: JsonObject.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();

export const CreateRouteBindingSchema = z
  .object({
    relationships: z.object({ service_instance: Relationship, route: Relationship }).strict(),
    parameters: JsonObject.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();

export const MetadataOnlySchema = z.object({ metadata: MetadataRequestSchema.optional() }).strict();

export const ShareSchema = z.object({ data: z.array(z.object({ guid: z.string() })) }).strict();

/** Checks a user-provided instance's URLs as Cloud Controller does. */
export function upsiUrlErrors(input: { syslog_drain_url?: string | undefined; route_service_url?: string | undefined }): string[] {
  const errors: string[] = [];
  if (input.route_service_url !== undefined && input.route_service_url !== '') {
    let u: URL | undefined;
    try {
      u = new URL(input.route_service_url);
    } catch {
      errors.push('Route service url must be a valid url');
    }
    if (u && u.protocol !== 'https:') errors.push('Route service url must be https');
  }
  if (input.syslog_drain_url !== undefined && input.syslog_drain_url !== '') {
    try {
      new URL(input.syslog_drain_url);
    } catch {
      errors.push('Syslog drain url must be a valid url');
    }
  }
  return errors;
}

export const INVALID_PLAN = 'Invalid service plan. Ensure that the service plan exists, is available, and you have access to it.';
