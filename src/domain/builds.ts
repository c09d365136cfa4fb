import { z } from 'zod';
import { parseLifecycle, type LifecycleRequest } from './apps.ts';
import { MetadataRequestSchema } from './metadata.ts';

export const BUILD_STATES = ['STAGING', 'STAGED', 'FAILED'] as const;
export type BuildState = (typeof BUILD_STATES)[number];

/** Staging limits when neither the build nor the app's web process says otherwise (CF's defaults). */
export const STAGING_DEFAULTS = { memoryInMb: 1024, diskInMb: 1024, logRateLimit: -1 } as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const Lifecycle = z.unknown().transform((value, ctx): LifecycleRequest => {
  const { errors, lifecycle } = parseLifecycle(value);
  for (const message of errors) ctx.issues.push({ code: 'custom', message, input: value });
  return lifecycle ?? z.NEVER;
});

const positiveInt = (label: string) =>
  z
    .number({ error: `${label} must be an integer` })
    .int(`${label} must be an integer`)
    .positive(`${label} must be greater than 0`);

const PackageRef = z.unknown().transform((value, ctx) => {
  if (!isObject(value)) {
    ctx.issues.push({ code: 'custom', message: 'Package must be an object', input: value });
    return z.NEVER;
  }
  const extra = Object.keys(value).filter((k) => k !== 'guid');
  if (extra.length > 0) {
    ctx.issues.push({ code: 'custom', message: `Package Unknown field(s): ${extra.map((k) => `'${k}'`).join(', ')}`, input: value });
  }
  if (typeof value.guid !== 'string' || value.guid.length === 0 || value.guid.length > 200) {
    ctx.issues.push({ code: 'custom', message: 'Package guid must be a string between 1 and 200 characters', input: value });
    return z.NEVER;
  }
  return { guid: value.guid };
});

/** `POST /v3/builds`. */
export const CreateBuildSchema = z
  .object({
    package: PackageRef,
    lifecycle: Lifecycle.optional(),
    staging_memory_in_mb: positiveInt('Staging memory in mb').optional(),
    staging_disk_in_mb: positiveInt('Staging disk in mb').optional(),
    staging_log_rate_limit_bytes_per_second: z
      .number({ error: 'Staging log rate limit bytes per second must be an integer' })
      .int('Staging log rate limit bytes per second must be an integer')
      .min(-1, 'Staging log rate limit bytes per second must be greater than or equal to -1')
      .optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type CreateBuild = z.infer<typeof CreateBuildSchema>;

/**
 * `PATCH /v3/builds/:guid`. Everyone with write access may change metadata; `state`, `error` and `lifecycle`
 * are for the Build State Updater (an external staging backend) and admins.
 */
export const UpdateBuildSchema = z
  .object({
    metadata: MetadataRequestSchema.optional(),
    state: z.enum(['STAGED', 'FAILED'], { error: "State must be one of 'STAGED, FAILED'" }).optional(),
    error: z.string({ error: 'Error must be a string' }).max(4096).optional(),
    lifecycle: z
      .object({
        type: z.string().optional(),
        data: z.object({ image: z.string().optional(), process_types: z.record(z.string(), z.string()).optional() }).passthrough(),
      })
      .passthrough()
      .optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.state === 'STAGED' && !b.lifecycle) ctx.addIssue({ code: 'custom', message: "Lifecycle can't be blank when state is STAGED" });
    if (b.state === 'FAILED' && !b.error) ctx.addIssue({ code: 'custom', message: "Error can't be blank when state is FAILED" });
  });
export type UpdateBuild = z.infer<typeof UpdateBuildSchema>;

/** The lifecycle a build stages with, stored as JSON in `builds.lifecycle_data`. */
export interface BuildLifecycleData {
  buildpacks: string[];
  stack: string | null;
}

export function parseBuildLifecycleData(text: string): BuildLifecycleData {
  try {
    const v: unknown = JSON.parse(text);
    if (isObject(v)) {
      const buildpacks = Array.isArray(v.buildpacks) ? v.buildpacks.filter((b): b is string => typeof b === 'string') : [];
      return { buildpacks, stack: typeof v.stack === 'string' ? v.stack : null };
    }
  } catch {
    // A damaged value stages with auto-detection rather than failing to render.
  }
  return { buildpacks: [], stack: null };
}
