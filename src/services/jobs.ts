import type { Kysely } from 'kysely';
import { getJob } from '../lifecycle/jobs.ts';
import type { Database, Row } from '../store/schema.ts';
import type { Ctx } from './context.ts';

/** One job by guid (404 CF-ResourceNotFound when unknown). */
export function jobOf(ctx: Pick<Ctx, 'store'>, guid: string): Promise<Row<'jobs'>> {
  return getJob(ctx.store.db, guid);
}

/** Job resource types → the table holding them (for the "link only while it exists" rule). */
const RESOURCE_TABLES: Record<string, keyof Database> = {
  organization: 'organizations',
  space: 'spaces',
  role: 'roles',
  user: 'users',
  domain: 'domains',
  organization_quota: 'organization_quotas',
  space_quota: 'space_quotas',
  security_group: 'security_groups',
  isolation_segment: 'isolation_segments',
  stack: 'stacks',
  app: 'apps',
  route: 'routes',
  package: 'packages',
  droplet: 'droplets',
  build: 'builds',
  buildpack: 'buildpacks',
  service_broker: 'service_brokers',
  service_instance: 'service_instances',
  service_credential_binding: 'service_credential_bindings',
  service_route_binding: 'service_route_bindings',
};

/** Whether the resource a job names still exists (its link is shown only then). */
export async function jobResourceExists(ctx: Pick<Ctx, 'store'>, type: string, guid: string): Promise<boolean> {
  const db = ctx.store.db;
  const table = RESOURCE_TABLES[type];
  if (!table) return false;
  // Every table in RESOURCE_TABLES has a guid column; kysely cannot see that through the union.
  const row = await (db as unknown as Kysely<Record<string, { guid: string }>>)
    .selectFrom(table)
    .select('guid')
    .where('guid', '=', guid)
    .executeTakeFirst();
  return row !== undefined;
}

