import { CreateGitSourceSchema, createGitSource, deleteGitSource, getGitSource, listGitSources } from '../../services/git-sources.ts';
import type { Row } from '../../store/schema.ts';
import { readJson } from '../cf/body.ts';
import { queryOf, serviceCtx } from '../cf/respond.ts';
import { cfTime } from '../cf/timestamps.ts';
import type { Api, AppDeps } from '../context.ts';
import { KILN_API_PREFIX } from './conditions.ts';

const BASE = `${KILN_API_PREFIX}/gitsources`;

function present(r: Row<'git_sources'>) {
  return {
    guid: r.guid,
    created_at: cfTime(r.created_at),
    updated_at: cfTime(r.updated_at),
    name: r.name,
    url: r.url,
    ref: r.ref,
    path: r.path,
    org: r.org,
    space: r.space,
    credential: r.credential,
    status: {
      state: r.state,
      message: r.message,
      last_commit: r.last_commit,
      last_applied_at: cfTime(r.last_applied_at),
      errors: JSON.parse(r.errors) as { file: string; message: string }[],
    },
  };
}

/** `/kiln/v1/gitsources`: repositories of YAML Kiln keeps applied, with prune (src/gitops/git-source-sync.ts). */
export function registerGitSources(app: Api, deps: AppDeps): void {
  app.post(BASE, async (c) => {
    queryOf(c);
    const input = await readJson(c, CreateGitSourceSchema);
    return c.json(present(await createGitSource(serviceCtx(c, deps), input)), 201);
  });
  app.get(BASE, async (c) => {
    queryOf(c);
    return c.json({ resources: (await listGitSources(serviceCtx(c, deps))).map(present) });
  });
  app.get(`${BASE}/:guid`, async (c) => {
    queryOf(c);
    return c.json(present(await getGitSource(serviceCtx(c, deps), c.req.param('guid'))));
  });
  app.delete(`${BASE}/:guid`, async (c) => {
    queryOf(c);
    await deleteGitSource(serviceCtx(c, deps), c.req.param('guid'));
    return c.body(null, 204);
  });
}
