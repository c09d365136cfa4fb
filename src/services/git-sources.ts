import { z } from 'zod';
import { GitSourceFieldsSchema, gitSourceProblems } from '../domain/git-sources.ts';
import { gitSourceLabel } from '../gitops/documents.ts';
import { releaseAppliedFrom } from './declared-guard.ts';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { Row } from '../store/schema.ts';
import { newGuid } from '../store/store.ts';
import type { Ctx } from './context.ts';
import { nameInUse } from './name-in-use.ts';

/**
 * GitSources (`/kiln/v1/gitsources`): a repository and path of YAML that the GitSource reconciler
 * (src/gitops/git-source-sync.ts) keeps applied with prune. Admins only: a GitSource creates orgs and spaces.
 * Deleting one stops the syncing; it deletes nothing it applied, which becomes ordinary CF objects (no longer
 * refused to CF API writes, services/declared-guard.ts).
 */
export const CreateGitSourceSchema = GitSourceFieldsSchema.extend({
  name: z.string().min(1).max(250).regex(/^[A-Za-z0-9._-]+$/, 'Name may hold letters, digits, ".", "_" and "-" only'),
})
  .strict()
  .superRefine((b, ctx) => {
    for (const message of gitSourceProblems(b)) ctx.addIssue({ code: 'custom', message });
  });
export { GitSourceFieldsSchema, gitSourceProblems };
export type CreateGitSource = z.infer<typeof CreateGitSourceSchema>;

function requireAdmin(ctx: Ctx) {
  if (!ctx.access.admin) throw notAuthorized();
}

export async function createGitSource(ctx: Ctx, input: CreateGitSource): Promise<Row<'git_sources'>> {
  requireAdmin(ctx);
  const guid = newGuid();
  return ctx.store.write(async (tx) => {
    if (await nameInUse(tx.db, 'git_sources', input.name)) throw unprocessable(`GitSource name '${input.name}' is already taken.`);
    await tx.insert('git_sources', { guid, name: input.name, url: input.url, ref: input.ref ?? null, path: input.path ?? null, org: input.org ?? null, space: input.space ?? null, credential: input.credential ?? null });
    return tx.db.selectFrom('git_sources').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
  });
}

export async function listGitSources(ctx: Ctx): Promise<Row<'git_sources'>[]> {
  requireAdmin(ctx);
  return ctx.store.db.selectFrom('git_sources').selectAll().orderBy('created_at').orderBy('id').execute();
}

export async function getGitSource(ctx: Ctx, guid: string): Promise<Row<'git_sources'>> {
  requireAdmin(ctx);
  const row = await ctx.store.db.selectFrom('git_sources').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!row) throw notFound('GitSource');
  return row;
}

export async function deleteGitSource(ctx: Ctx, guid: string): Promise<void> {
  await getGitSource(ctx, guid);
  await ctx.store.write(async (tx) => {
    await releaseAppliedFrom(tx, gitSourceLabel(guid));
    await tx.delete('git_sources', guid);
  });
}

