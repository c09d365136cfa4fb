import type { Kysely } from 'kysely';
import { getJob } from '../../lifecycle/jobs.ts';
import type { Database, Row } from '../../store/schema.ts';
import type { Api, AppDeps } from '../context.ts';
import type { Linker } from '../cf/links.ts';
import { cfTime } from '../cf/timestamps.ts';
import { queryOf } from '../cf/respond.ts';

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

const plural = (type: string) => (type.endsWith('s') ? type : `${type}s`);

async function resourceExists(db: Kysely<Database>, type: string, guid: string): Promise<boolean> {
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

export async function presentJob(db: Kysely<Database>, job: Row<'jobs'>, l: Linker) {
  const links: Record<string, { href: string }> = { self: l.link(`/v3/jobs/${job.guid}`) };
  if (await resourceExists(db, job.resource_type, job.resource_guid)) {
    links[job.resource_type] = l.link(`/v3/${plural(job.resource_type)}/${job.resource_guid}`);
  }
  return {
    guid: job.guid,
    created_at: cfTime(job.created_at),
    updated_at: cfTime(job.updated_at),
    operation: job.operation,
    state: job.state,
    errors: JSON.parse(job.errors) as unknown[],
    warnings: JSON.parse(job.warnings) as unknown[],
    links,
  };
}

export function registerJobs(app: Api, deps: AppDeps): void {
  app.get('/v3/jobs/:guid', async (c) => {
    queryOf(c);
    const job = await getJob(deps.store.db, c.req.param('guid'));
    return c.json(await presentJob(deps.store.db, job, c.var.linker));
  });
}
