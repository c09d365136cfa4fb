import { z } from 'zod';
import { resourceEntrySchema, type ResourceFingerprint } from '../blobstore/resource-cache.ts';
import type { Bits } from '../lifecycle/blobs.ts';
import type { Ctx } from './context.ts';
import { getFeatureFlag } from './feature-flags.ts';

/** The cf CLI sends at most 5000 fingerprints per request (cf-cli-flows §5.4). */
export const MAX_RESOURCE_MATCHES = 5000;

/** `POST /v3/resource_matches` body: `{resources: [{path, mode, checksum: {value}, size_in_bytes}]}`. */
export const ResourceMatchesSchema = z
  .object({
    resources: z
      .array(resourceEntrySchema, { error: 'Resources must be an array' })
      .min(1, 'Resources must have at least 1 resource')
      .max(MAX_RESOURCE_MATCHES, `Resources array can have at most ${MAX_RESOURCE_MATCHES} resources`),
  })
  .strict();
export type ResourceMatchesRequest = z.infer<typeof ResourceMatchesSchema>;

/**
 * Which of the given files the resource cache already holds (same SHA-1 and size), so the client can leave them
 * out of its zip. Any authenticated writer may ask; with the `resource_matching` flag off nothing matches.
 */
export async function matchResources(ctx: Ctx, input: ResourceMatchesRequest, bits: Bits): Promise<ResourceFingerprint[]> {
  const flag = await getFeatureFlag(ctx.store.db, 'resource_matching');
  if (!flag.enabled) return [];
  return bits.resourceCache.match(input.resources);
}
