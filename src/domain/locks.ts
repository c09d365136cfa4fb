import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

/** The kinds of resource a lock can hold (docs/kiln-openapi.json, `Lock`). */
export const LOCK_RESOURCE_TYPES = ['app', 'space'] as const;
export type LockResourceType = (typeof LOCK_RESOURCE_TYPES)[number];

/** A lease shorter than a second cannot be renewed in time; one longer than a day is not a lease. */
export const LOCK_TTL_MIN = 1;
export const LOCK_TTL_MAX = 86_400;
export const LOCK_TTL_DEFAULT = 300;

const guidRef = z.object({ data: z.object({ guid: z.string({ error: 'Guid must be a string' }).min(1, 'Guid must be a string') }).strict() }).strict();

const ttl = z
  .number({ error: 'Ttl in seconds must be an integer' })
  .int('Ttl in seconds must be an integer')
  .min(LOCK_TTL_MIN, `Ttl in seconds must be between ${LOCK_TTL_MIN} and ${LOCK_TTL_MAX}`)
  .max(LOCK_TTL_MAX, `Ttl in seconds must be between ${LOCK_TTL_MIN} and ${LOCK_TTL_MAX}`);
const reason = z.string({ error: 'Reason must be a string' }).max(4096, 'Reason is too long (maximum is 4096 characters)').nullable();

/** `POST /v3/locks`: exactly one of `relationships.app` / `relationships.space`. */
export const CreateLockSchema = z
  .object({
    name: z
      .string({ error: (i) => (i.input === undefined ? "Name can't be blank" : 'Name must be a string') })
      .min(1, "Name can't be blank")
      .max(255, 'Name is too long (maximum is 255 characters)'),
    reason: reason.optional(),
    ttl_in_seconds: ttl.optional(),
    relationships: z
      .object({ app: guidRef.optional(), space: guidRef.optional() }, { error: "Relationships can't be blank" })
      .strict()
      .refine((r) => (r.app === undefined) !== (r.space === undefined), 'Relationships must name exactly one of app or space'),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type CreateLock = z.infer<typeof CreateLockSchema>;

/** `PATCH /v3/locks/:guid`: renews the lease (every PATCH does, `{}` included) and may change reason, ttl, metadata. */
export const UpdateLockSchema = z
  .object({ reason: reason.optional(), ttl_in_seconds: ttl.optional(), metadata: MetadataRequestSchema.optional() })
  .strict();
export type UpdateLock = z.infer<typeof UpdateLockSchema>;

/** What a refused write says: who holds the lock, until when, and why (the same text for every refused operation). */
export function lockedMessage(l: { resourceKind: string; resourceName: string; name: string; ownerName: string; expiresAt: string; reason: string | null }): string {
  const why = l.reason ? `: ${l.reason}` : '';
  return (
    `${l.resourceKind} '${l.resourceName}' is locked by ${l.ownerName} until ${l.expiresAt} (lock '${l.name}'${why}). ` +
    `Wait until the lock is released or expires.`
  );
}

/** `expires_at` of a lease of `ttlSeconds` starting at `nowIso`. */
export const leaseEnd = (nowIso: string, ttlSeconds: number): string => new Date(Date.parse(nowIso) + ttlSeconds * 1000).toISOString();
