import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

/** Where a registry credential applies, most specific last (docs/kiln-openapi.json, `RegistryCredential`). */
export const REGISTRY_SCOPES = ['foundation', 'organization', 'space'] as const;
export type RegistryScope = (typeof REGISTRY_SCOPES)[number];

/** Docker Hub answers under several names; images without a registry component come from it too. */
export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const HOST_RE = /^(?=.{1,253}(:|$))[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/;

/**
 * A registry host as stored and matched: lower case, without scheme or trailing slash, Docker Hub's aliases
 * folded into `docker.io`. Undefined when the text is not a host[:port].
 */
export function normalizeRegistryHost(text: string): string | undefined {
  const host = text.trim().toLowerCase().replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (!HOST_RE.test(host)) return undefined;
  return DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

/**
 * The registry an image reference pulls from, by Docker's rule: the first path component is a registry when it
 * has a `.` or a `:` or is `localhost`; otherwise the image is on Docker Hub (`nginx`, `library/nginx`).
 */
export function registryOfImage(image: string): string {
  const ref = image.trim().replace(/^docker:\/\//, '');
  const slash = ref.indexOf('/');
  if (slash < 0) return DOCKER_HUB;
  const first = ref.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') return normalizeRegistryHost(first) ?? first.toLowerCase();
  return DOCKER_HUB;
}

const guidRef = z.object({ data: z.object({ guid: z.string({ error: 'Guid must be a string' }).min(1, 'Guid must be a string') }).strict() }).strict();
const host = z
  .string({ error: (i) => (i.input === undefined ? "Host can't be blank" : 'Host must be a string') })
  .transform((h, ctx) => {
    const n = normalizeRegistryHost(h);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: 'Host must be a registry host name, optionally with a port (e.g. registry.example.com:5000)' });
      return z.NEVER;
    }
    return n;
  });
const username = z.string({ error: 'Username must be a string' }).min(1, "Username can't be blank").max(255, 'Username is too long (maximum is 255 characters)');
const secret = (label: string) => z.string({ error: `${label} must be a string` }).min(1, `${label} can't be blank`).max(8192, `${label} is too long (maximum is 8192 characters)`);

/** `POST /v3/registry_credentials`: no relationship is the foundation scope; else exactly one of organization/space. */
export const CreateRegistryCredentialSchema = z
  .object({
    host,
    username: username.optional(),
    password: secret('Password').optional(),
    token: secret('Token').optional(),
    relationships: z
      .object({ organization: guidRef.optional(), space: guidRef.optional() })
      .strict()
      .refine((r) => r.organization === undefined || r.space === undefined, 'Relationships may name an organization or a space, not both')
      .optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict()
  .refine((b) => (b.password === undefined) !== (b.token === undefined), 'Exactly one of password or token must be given')
  .refine((b) => b.token !== undefined || b.username !== undefined, "Username can't be blank");
export type CreateRegistryCredential = z.infer<typeof CreateRegistryCredentialSchema>;

/** `PATCH /v3/registry_credentials/:guid`: host and scope are fixed; a new password or token replaces the secret. */
export const UpdateRegistryCredentialSchema = z
  .object({
    username: username.optional(),
    password: secret('Password').optional(),
    token: secret('Token').optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict()
  .refine((b) => b.password === undefined || b.token === undefined, 'Give a password or a token, not both');
export type UpdateRegistryCredential = z.infer<typeof UpdateRegistryCredentialSchema>;
