import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';
import { AppRelationship } from './packages.ts';

export const DROPLET_STATES = ['AWAITING_UPLOAD', 'PROCESSING_UPLOAD', 'STAGED', 'COPYING', 'FAILED', 'EXPIRED'] as const;
export type DropletState = (typeof DROPLET_STATES)[number];

/** One buildpack that took part in staging, as droplets render it. */
export interface DropletBuildpack {
  name: string;
  detect_output: string | null;
  buildpack_name: string | null;
  version: string | null;
}

const ProcessTypes = z.unknown().transform((value, ctx) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    ctx.issues.push({ code: 'custom', message: 'Process types must be an object', input: value });
    return z.NEVER;
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string' || v.trim() === '') {
      ctx.issues.push({ code: 'custom', message: `Process types value for '${k}' must be a non-empty string`, input: value });
      return z.NEVER;
    }
    if (k === '' || k.length > 255) {
      ctx.issues.push({ code: 'custom', message: 'Process types keys must be between 1 and 255 characters', input: value });
      return z.NEVER;
    }
    out[k] = v;
  }
  return out;
});

/** `POST /v3/droplets`: a droplet for externally built bits, uploaded afterwards. */
export const CreateDropletSchema = z
  .object({
    relationships: AppRelationship,
    process_types: ProcessTypes.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict()
  .transform((b) => ({ appGuid: b.relationships.app.data.guid, processTypes: b.process_types ?? { web: '' }, metadata: b.metadata }));
export type CreateDroplet = z.infer<typeof CreateDropletSchema>;

/** `POST /v3/droplets?source_guid=…`. */
export const CopyDropletSchema = z
  .object({ relationships: AppRelationship })
  .strict()
  .transform((b) => ({ appGuid: b.relationships.app.data.guid }));
export type CopyDroplet = z.infer<typeof CopyDropletSchema>;

export const UpdateDropletSchema = z
  .object({
    metadata: MetadataRequestSchema.optional(),
    image: z.string({ error: 'Image must be a string' }).min(1, 'Image must be between 1 and 4096 characters').max(4096).optional(),
  })
  .strict();
export type UpdateDroplet = z.infer<typeof UpdateDropletSchema>;

export const DROPLET_UPLOAD_ONCE = 'Droplet may be uploaded only once. Create a new droplet to upload bits.';
