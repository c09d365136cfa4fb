import { z } from 'zod';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { Row } from '../store/schema.ts';
import { newGuid } from '../store/store.ts';
import type { Ctx } from './context.ts';
import { nameInUse } from './name-in-use.ts';

/**
 * GitSources (`/kiln/v1/gitsources`): a repository and path of YAML that the GitSource reconciler
 * (src/gitops/git-source-sync.ts) keeps applied with prune. Admins only: a GitSource creates orgs and spaces.
 * Deleting one stops the syncing; it deletes nothing it applied.
 */
/** Where a GitSource reads from: the fields `/kiln/v1/gitsources` takes besides its name, and a GitSource resource's spec. */
export const GitSourceFieldsSchema = z.object({
  url: z.string().min(1).max(2000),
  ref: z.string().min(1).max(250).optional(),
  path: z.string().min(1).max(1000).optional(),
  /** The org and space of plain CF manifests in the repository (documents of the kiln.dev kinds name their own). */
  org: z.string().min(1).optional(),
  space: z.string().min(1).optional(),
  /** A named credential of KILN_GIT_CREDENTIALS_FILE. */
  credential: z.string().min(1).optional(),
});

/** What the fields must also satisfy (one message each, as the API answers them). */
export function gitSourceProblems(b: { url: string; org?: string; space?: string }): string[] {
  const out: string[] = [];
  if (b.space && !b.org) out.push('Space needs org');
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(b.url)) out.push('Url may not hold credentials; name a credential instead');
  if (b.url.startsWith('-') || /^ext::/i.test(b.url)) out.push('Url is not a repository URL');
  return out;
}

export const CreateGitSourceSchema = GitSourceFieldsSchema.extend({
  name: z.string().min(1).max(250).regex(/^[A-Za-z0-9._-]+$/, 'Name may hold letters, digits, ".", "_" and "-" only'),
})
  .strict()
  .superRefine((b, ctx) => {
    for (const message of gitSourceProblems(b)) ctx.addIssue({ code: 'custom', message });
  });
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
    await tx.delete('git_sources', guid);
  });
}

