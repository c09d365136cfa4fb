import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';
import { AppRelationship } from './packages.ts';

/** Internal deployment states (CONVENTIONS.md §17.5). */
export const DEPLOYMENT_STATES = ['DEPLOYING', 'PREPAUSED', 'PAUSED', 'CANCELING', 'DEPLOYED', 'CANCELED'] as const;
export type DeploymentState = (typeof DEPLOYMENT_STATES)[number];
export const ACTIVE_STATES: readonly DeploymentState[] = ['DEPLOYING', 'PREPAUSED', 'PAUSED', 'CANCELING'];
export const STATUS_VALUES = ['ACTIVE', 'FINALIZED'] as const;
export const STATUS_REASONS = ['DEPLOYING', 'PAUSED', 'CANCELING', 'DEPLOYED', 'CANCELED', 'SUPERSEDED'] as const;
export const STRATEGIES = ['rolling', 'canary'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const isActive = (state: string) => (ACTIVE_STATES as readonly string[]).includes(state);

/** `status.value` / `status.reason` of a state; SUPERSEDED is recorded separately when a newer deployment wins. */
export function statusOf(state: DeploymentState): { value: (typeof STATUS_VALUES)[number]; reason: (typeof STATUS_REASONS)[number] } {
  switch (state) {
    case 'DEPLOYING':
    case 'PREPAUSED':
      return { value: 'ACTIVE', reason: 'DEPLOYING' };
    case 'PAUSED':
      return { value: 'ACTIVE', reason: 'PAUSED' };
    case 'CANCELING':
      return { value: 'ACTIVE', reason: 'CANCELING' };
    case 'DEPLOYED':
      return { value: 'FINALIZED', reason: 'DEPLOYED' };
    case 'CANCELED':
      return { value: 'FINALIZED', reason: 'CANCELED' };
  }
}

export interface CanaryStep {
  instance_weight: number;
}

/** New instances a canary step runs: round(total × weight / 100), at least one (CONVENTIONS.md §18). */
export function canaryInstances(total: number, steps: readonly CanaryStep[] | null, step: number): number {
  const weight = steps && steps.length > 0 ? steps[Math.min(step, steps.length) - 1]!.instance_weight : undefined;
  if (weight === undefined) return 1;
  return Math.max(1, Math.round((total * weight) / 100));
}

export const stepCount = (steps: readonly CanaryStep[] | null) => (steps && steps.length > 0 ? steps.length : 1);

const optionalInt = (label: string, min: number, minMessage: string) =>
  z
    .number({ error: `${label} must be an integer` })
    .int(`${label} must be an integer`)
    .min(min, minMessage)
    .max(2_147_483_647, `${label} must be less than or equal to 2147483647`)
    .nullable()
    .optional();

const GuidRef = (label: string) =>
  z
    .object({ guid: z.string({ error: `${label} guid must be a string` }).min(1, `${label} guid must be a string`) }, { error: `${label} must be an object with a guid` })
    .strict()
    .nullable()
    .optional();

const OptionsSchema = z
  .object({
    // The cf CLI sends every option it knows, unset ones as explicit nulls (cf-cli-flows §5.5).
    max_in_flight: optionalInt('Max in flight', 1, 'Max in flight must be an integer greater than 0'),
    web_instances: optionalInt('Web instances', 1, 'Web instances must be an integer greater than 0'),
    memory_in_mb: optionalInt('Memory in mb', 1, 'Memory in mb must be an integer greater than 0'),
    disk_in_mb: optionalInt('Disk in mb', 1, 'Disk in mb must be an integer greater than 0'),
    log_rate_limit_in_bytes_per_second: optionalInt(
      'Log rate limit in bytes per second',
      -1,
      'Log rate limit in bytes per second must be an integer greater than or equal to -1',
    ),
    canary: z
      .object(
        {
          steps: z
            .array(
              z
                .object({
                  instance_weight: z
                    .number({ error: 'Canary instance weights must be integers between 1 and 100 inclusive' })
                    .int('Canary instance weights must be integers between 1 and 100 inclusive')
                    .min(1, 'Canary instance weights must be integers between 1 and 100 inclusive')
                    .max(100, 'Canary instance weights must be integers between 1 and 100 inclusive'),
                })
                .strict(),
              { error: 'Canary steps must be an array' },
            )
            .min(1, 'Canary steps must contain at least one step')
            .optional(),
        },
        { error: 'Canary must be an object' },
      )
      .strict()
      .nullable()
      .optional(),
  }, { error: 'Options must be an object' })
  .strict()
  .nullable()
  .optional();

/** `POST /v3/deployments`. */
export const CreateDeploymentSchema = z
  .object({
    relationships: AppRelationship,
    droplet: GuidRef('Droplet'),
    revision: GuidRef('Revision'),
    strategy: z
      .string({ error: 'Strategy must be a string' })
      .refine((s) => (STRATEGIES as readonly string[]).includes(s), { message: "Strategy must be one of 'rolling, canary'" })
      .nullable()
      .optional(),
    options: OptionsSchema,
    metadata: MetadataRequestSchema.optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.droplet && b.revision) ctx.addIssue({ code: 'custom', message: "Cannot set both fields 'droplet' and 'revision'" });
    const steps = b.options?.canary?.steps;
    if (steps && (b.strategy ?? 'rolling') !== 'canary') {
      ctx.addIssue({ code: 'custom', message: "Options canary are only valid for Canary deployments" });
    }
    if (steps) {
      for (let i = 1; i < steps.length; i++) {
        if (steps[i]!.instance_weight < steps[i - 1]!.instance_weight) {
          ctx.addIssue({ code: 'custom', message: 'Canary steps must be sorted in ascending order' });
          break;
        }
      }
    }
  })
  .transform((b) => ({
    appGuid: b.relationships.app.data.guid,
    dropletGuid: b.droplet?.guid,
    revisionGuid: b.revision?.guid,
    strategy: (b.strategy ?? 'rolling') as Strategy,
    maxInFlight: b.options?.max_in_flight ?? 1,
    webInstances: b.options?.web_instances ?? null,
    memoryInMb: b.options?.memory_in_mb ?? null,
    diskInMb: b.options?.disk_in_mb ?? null,
    logRateLimit: b.options?.log_rate_limit_in_bytes_per_second ?? null,
    canarySteps: b.options?.canary?.steps ?? null,
    metadata: b.metadata,
  }));
export type CreateDeployment = z.infer<typeof CreateDeploymentSchema>;

export const UpdateDeploymentSchema = z.object({ metadata: MetadataRequestSchema.optional() }).strict();
export type UpdateDeployment = z.infer<typeof UpdateDeploymentSchema>;

export const cannotContinue = (value: string, reason: string) => `Cannot continue a deployment with status: ${value} and reason: ${reason}`;
export const cannotCancel = (value: string, reason: string) => `Cannot cancel a deployment with status: ${value} and reason: ${reason}`;
export const NO_DROPLET = 'Invalid droplet. Please specify a droplet in the request or set a current droplet for the app.';
export const APP_INVALID = 'Unable to use app. Ensure that the app exists and you have access to it.';
export const REVISION_INVALID = 'The revision does not exist';
export const REVISIONS_DISABLED = 'Cannot create deployment from a revision for an app without revisions enabled';
