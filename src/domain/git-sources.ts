import { z } from 'zod';

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
