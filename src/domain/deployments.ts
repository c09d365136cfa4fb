import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';
import { AppRelationship } from './packages.ts';
import { rubyToS } from './value-text.ts';

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

/** One canary step: instances of the new (canary) process and of the original side while the step holds. */
export interface CanaryStepTarget {
  canary: number;
  original: number;
}

/**
 * Upstream's `canary_step_plan`: without steps, one canary beside all `original` instances; with steps, each
 * weight's share of the instances (web_instances when it is smaller) rounded, at least one, while the original side
 * keeps the rest plus one (none at weight 100), so capacity never drops below the original count.
 */
export function canaryStepPlan(original: number, webInstances: number | null, steps: readonly CanaryStep[] | null): CanaryStepTarget[] {
  if (!steps || steps.length === 0) return [{ canary: 1, original }];
  const instances = webInstances !== null && webInstances < original ? webInstances : original;
  return steps.map(({ instance_weight: weight }) => {
    const canary = Math.max(1, Math.round((instances * weight) / 100));
    return { canary, original: weight === 100 ? 0 : instances - canary + 1 };
  });
}

/** The plan's entry for a 1-based step (the last one past the end). */
export function canaryStepTarget(original: number, webInstances: number | null, steps: readonly CanaryStep[] | null, step: number): CanaryStepTarget {
  const plan = canaryStepPlan(original, webInstances, steps);
  return plan[Math.min(Math.max(step, 1), plan.length) - 1]!;
}

export const stepCount = (steps: readonly CanaryStep[] | null) => (steps && steps.length > 0 ? steps.length : 1);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const MAX_DB_INT = 2_147_483_647;
const OPTION_KEYS = ['canary', 'max_in_flight', 'web_instances', 'memory_in_mb', 'disk_in_mb', 'log_rate_limit_in_bytes_per_second'];

export interface DeploymentOptions {
  maxInFlight: number;
  webInstances: number | null;
  memoryInMb: number | null;
  diskInMb: number | null;
  logRateLimit: number | null;
  canarySteps: CanaryStep[] | null;
}

/** A numeric scaling option, worded as upstream's ProcessScaleMessage numericality checks (null = unset). */
function scalingOption(value: unknown, label: string, min: number, minText: string, errors: string[]): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value)) errors.push(`${label} is not a number`);
  else if (!Number.isInteger(value)) errors.push(`${label} must be an integer`);
  else if (value < min) errors.push(`${label} must be ${minText}`);
  else if (value > (min === -1 ? Number.MAX_SAFE_INTEGER : MAX_DB_INT)) errors.push(`${label} must be less than or equal to ${min === -1 ? Number.MAX_SAFE_INTEGER : MAX_DB_INT}`);
  else return value;
  return null;
}

/** Canary steps as upstream's DeploymentCreateMessage checks them, in its wording. */
function canarySteps(steps: unknown, errors: string[]): CanaryStep[] | null {
  if (steps === undefined || steps === null) return null;
  if (!Array.isArray(steps) || steps.some((step) => !isObject(step))) {
    errors.push('Options canary steps must be an array of objects');
    return null;
  }
  const objects = steps as Array<Record<string, unknown>>;
  for (const step of objects) {
    const extra = Object.keys(step).filter((k) => k !== 'instance_weight');
    if (extra.length > 0) errors.push(`Options canary steps has unsupported key(s): ${extra.join(', ')}`);
  }
  if (objects.some((step) => !('instance_weight' in step))) errors.push('Options canary steps missing key: "instance_weight"');
  const weights = objects.map((step) => step.instance_weight);
  const range = 'Options canary steps instance weight must be an Integer between 1-100 (inclusive)';
  if (weights.some((w) => typeof w !== 'number' || !Number.isInteger(w))) {
    errors.push(range);
    return null;
  }
  const numbers = weights as number[];
  if (numbers.some((w) => w < 1 || w > 100)) errors.push(range);
  if (numbers.some((w, i) => i > 0 && w < numbers[i - 1]!)) errors.push('Options canary steps instance weight must be sorted in ascending order');
  return numbers.map((w) => ({ instance_weight: w }));
}

/**
 * `options` of a deployment, checked as upstream's DeploymentCreateMessage does (validate_options): unknown keys,
 * the scaling options, max_in_flight (0 is set, so it is checked; null is not), then canary. The cf CLI sends
 * every option it knows, unset ones as explicit nulls (cf-cli-flows §5.5).
 */
export function parseDeploymentOptions(options: unknown, strategy: string | null | undefined, errors: string[]): DeploymentOptions {
  const none: DeploymentOptions = { maxInFlight: 1, webInstances: null, memoryInMb: null, diskInMb: null, logRateLimit: null, canarySteps: null };
  if (options === undefined || options === null) return none;
  if (!isObject(options)) {
    errors.push('Options must be an object');
    return none;
  }
  if (Object.keys(options).length === 0) return none;
  const extra = Object.keys(options).filter((k) => !OPTION_KEYS.includes(k));
  if (extra.length > 0) errors.push(`Options has unsupported key(s): ${extra.join(', ')}`);
  const out: DeploymentOptions = {
    ...none,
    webInstances: scalingOption(options.web_instances, 'Web instances', 0, 'greater than or equal to 0', errors),
    memoryInMb: scalingOption(options.memory_in_mb, 'Memory in mb', 1, 'greater than 0', errors),
    diskInMb: scalingOption(options.disk_in_mb, 'Disk in mb', 1, 'greater than 0', errors),
    logRateLimit: scalingOption(options.log_rate_limit_in_bytes_per_second, 'Log rate limit in bytes per second', -1, 'greater than or equal to -1', errors),
  };
  const mif = options.max_in_flight;
  if (mif !== undefined && mif !== null && mif !== false) {
    if (typeof mif !== 'number' || !Number.isInteger(mif) || mif < 1) errors.push('Max in flight must be an integer greater than 0');
    else if (mif > MAX_DB_INT) errors.push(`Max in flight must be less than or equal to ${MAX_DB_INT}`);
    else out.maxInFlight = mif;
  }
  const canary = options.canary;
  if (canary !== undefined && canary !== null && canary !== false) {
    if (!isObject(canary)) errors.push('Options canary must be an object');
    else if (strategy !== 'canary') errors.push('Options canary are only valid for Canary deployments');
    else out.canarySteps = canarySteps(canary.steps, errors);
  }
  return out;
}

const GuidRef = (label: string) =>
  z
    .object({ guid: z.string({ error: `${label} guid must be a string` }).min(1, `${label} guid must be a string`) }, { error: `${label} must be an object with a guid` })
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
      .refine((s) => (STRATEGIES as readonly string[]).includes(s), { error: (issue) => `Strategy '${rubyToS(issue.input)}' is not a supported deployment strategy` })
      .nullable()
      .optional(),
    options: z.unknown().optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict()
  .transform((b, ctx) => {
    const errors: string[] = [];
    if (b.droplet && b.revision) errors.push("Cannot set both fields 'droplet' and 'revision'");
    const options = parseDeploymentOptions(b.options, b.strategy, errors);
    for (const message of errors) ctx.issues.push({ code: 'custom', message, input: b });
    if (errors.length > 0) return z.NEVER;
    const strategy = (b.strategy ?? 'rolling') as Strategy;
    return {
      appGuid: b.relationships.app.data.guid,
      dropletGuid: b.droplet?.guid,
      revisionGuid: b.revision?.guid,
      strategy,
      ...options,
      canarySteps: strategy === 'canary' ? options.canarySteps : null,
      metadata: b.metadata,
    };
  });
export type CreateDeployment = z.infer<typeof CreateDeploymentSchema>;

export const UpdateDeploymentSchema = z.object({ metadata: MetadataRequestSchema.optional() }).strict();
export type UpdateDeployment = z.infer<typeof UpdateDeploymentSchema>;

export const cannotContinue = (value: string, reason: string) => `Cannot continue a deployment with status: ${value} and reason: ${reason}`;
export const cannotCancel = (value: string, reason: string) => `Cannot cancel a deployment with status: ${value} and reason: ${reason}`;
export const NO_DROPLET = 'Invalid droplet. Please specify a droplet in the request or set a current droplet for the app.';
export const APP_INVALID = 'Unable to use app. Ensure that the app exists and you have access to it.';
export const REVISION_INVALID = 'The revision does not exist';
export const REVISIONS_DISABLED = 'Cannot create deployment from a revision for an app without revisions enabled';
