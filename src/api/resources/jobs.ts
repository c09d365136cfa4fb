import { jobOf, jobResourceExists } from '../../services/jobs.ts';
import type { Row } from '../../store/schema.ts';
import type { Ctx } from '../../services/context.ts';
import type { Api, AppDeps } from '../context.ts';
import type { Linker } from '../cf/links.ts';
import { cfTime } from '../cf/timestamps.ts';
import { queryOf } from '../cf/respond.ts';

const plural = (type: string) => (type.endsWith('s') ? type : `${type}s`);

export async function presentJob(ctx: Pick<Ctx, 'store'>, job: Row<'jobs'>, l: Linker) {
  const links: Record<string, { href: string }> = { self: l.link(`/v3/jobs/${job.guid}`) };
  if (await jobResourceExists(ctx, job.resource_type, job.resource_guid)) {
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
    const job = await jobOf(deps, c.req.param('guid'));
    return c.json(await presentJob(deps, job, c.var.linker));
  });
}
