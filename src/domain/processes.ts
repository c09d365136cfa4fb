import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

export const HEALTH_CHECK_TYPES = ['port', 'process', 'http'] as const;
export type HealthCheckType = (typeof HEALTH_CHECK_TYPES)[number];

/**
 * Defaults of a new process (CONVENTIONS.md §15). Upstream takes memory/disk/log rate from operator settings;
 * Kiln's local runtime uses the sample config's memory and disk and an unlimited (-1) log rate.
 */
export const PROCESS_DEFAULTS = {
  memoryInMb: 1024,
  diskInMb: 1024,
  logRateLimit: -1,
} as const;

export const WEB = 'web';

/** `web` gets one instance and a port check; any other type starts at zero instances with a process check. */
export function defaultsForType(type: string): { instances: number; healthCheckType: HealthCheckType } {
  return type === WEB ? { instances: 1, healthCheckType: 'port' } : { instances: 0, healthCheckType: 'process' };
}

export const REDACTED = '[PRIVATE DATA HIDDEN]';
export const REDACTED_IN_LISTS = '[PRIVATE DATA HIDDEN IN LISTS]';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Seconds-valued settings are integers ≥ 1 (or null to use the platform default). */
function positiveSeconds(value: unknown, label: string, errors: string[]): number | null | undefined {
  if (value === undefined || value === null) return value as null | undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    errors.push(`${label} must be an integer`);
    return undefined;
  }
  if (value < 1) {
    errors.push(`${label} must be greater than or equal to 1`);
    return undefined;
  }
  if (value > 2_147_483_647) {
    errors.push(`${label} must be less than or equal to 2147483647`);
    return undefined;
  }
  return value;
}

export interface HealthCheckRequest {
  type: HealthCheckType | undefined;
  timeout: number | null | undefined;
  invocationTimeout: number | null | undefined;
  interval: number | null | undefined;
  endpoint: string | null | undefined;
}

/** A health check (`readiness` = the readiness check, whose data has no `timeout`), with upstream's wording. */
export function parseHealthCheck(value: unknown, readiness: boolean): { errors: string[]; check?: HealthCheckRequest } {
  const label = readiness ? 'Readiness health check' : 'Health check';
  if (!isObject(value)) return { errors: [`${label} must be an object`] };
  const errors: string[] = [];
  const extra = Object.keys(value).filter((k) => k !== 'type' && k !== 'data');
  if (extra.length > 0) errors.push(`Unknown field(s): ${extra.map((k) => `'${k}'`).join(', ')}`);
  const type = value.type;
  if (type !== undefined && !(typeof type === 'string' && (HEALTH_CHECK_TYPES as readonly string[]).includes(type))) {
    errors.push(`${label} type must be "port", "process", or "http"`);
  }
  const data = value.data ?? {};
  if (!isObject(data)) return { errors: [...errors, `${label} data must be an object`] };
  const allowed = readiness ? ['invocation_timeout', 'interval', 'endpoint'] : ['timeout', 'invocation_timeout', 'interval', 'endpoint'];
  const unknown = Object.keys(data).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) errors.push(`Unknown field(s): ${unknown.map((k) => `'${k}'`).join(', ')}`);
  const timeout = readiness ? undefined : positiveSeconds(data.timeout, `${label} timeout`, errors);
  const invocationTimeout = positiveSeconds(data.invocation_timeout, `${label} invocation timeout`, errors);
  const interval = positiveSeconds(data.interval, `${label} interval`, errors);
  let endpoint: string | null | undefined;
  if (data.endpoint !== undefined && data.endpoint !== null) {
    if (typeof data.endpoint !== 'string') errors.push(`${label} endpoint must be a string`);
    else if (!/^\/[^\s]*$/.test(data.endpoint) || data.endpoint.length > 255) errors.push(`${label} endpoint must be a valid URI path`);
    else endpoint = data.endpoint;
    if (type !== 'http') errors.push(`${label} type must be "http" to set a health check HTTP endpoint`);
  } else if (data.endpoint === null) {
    endpoint = null;
  }
  if (errors.length > 0) return { errors };
  return { errors, check: { type: type as HealthCheckType | undefined, timeout, invocationTimeout, interval, endpoint } };
}

const HealthCheck = (readiness: boolean) =>
  z.unknown().transform((value, ctx) => {
    const { errors, check } = parseHealthCheck(value, readiness);
    for (const message of errors) ctx.issues.push({ code: 'custom', message, input: value });
    return check ?? z.NEVER;
  });

const Command = z
  .string({ error: 'Command must be a string' })
  .min(1, 'Command must be between 1 and 4096 characters')
  .max(4096, 'Command must be between 1 and 4096 characters')
  .nullable();

export const UpdateProcessSchema = z
  .object({
    command: Command.optional(),
    health_check: HealthCheck(false).optional(),
    readiness_health_check: HealthCheck(true).optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type UpdateProcess = z.infer<typeof UpdateProcessSchema>;

const intField = (label: string, min: number, minMessage: string) =>
  z
    .number({ error: `${label} is not a number` })
    .int(`${label} must be an integer`)
    .min(min, minMessage)
    .max(2_147_483_647, `${label} must be less than or equal to 2147483647`)
    .nullable()
    .optional();

/** `POST …/actions/scale`; upstream's ProcessScaleMessage wording. `null` members are left unchanged. */
export const ScaleProcessSchema = z
  .object({
    instances: intField('Instances', 0, 'Instances must be greater than or equal to 0'),
    memory_in_mb: intField('Memory in mb', 1, 'Memory in mb must be greater than 0'),
    disk_in_mb: intField('Disk in mb', 1, 'Disk in mb must be greater than 0'),
    log_rate_limit_in_bytes_per_second: z
      .number({ error: 'Log rate limit in bytes per second is not a number' })
      .int('Log rate limit in bytes per second must be an integer')
      .min(-1, 'Log rate limit in bytes per second must be greater than or equal to -1')
      .max(Number.MAX_SAFE_INTEGER, 'Log rate limit in bytes per second is too large')
      .nullable()
      .optional(),
  })
  .strict();
export type ScaleProcess = z.infer<typeof ScaleProcessSchema>;

/** An instance index from a URL: a non-negative integer, else the instance cannot exist. */
export function parseInstanceIndex(raw: string): number | undefined {
  if (!/^\d{1,9}$/.test(raw)) return undefined;
  return Number(raw);
}
