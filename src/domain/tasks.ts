import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

export const TASK_STATES = ['PENDING', 'RUNNING', 'CANCELING', 'SUCCEEDED', 'FAILED'] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const TERMINAL_TASK_STATES: readonly TaskState[] = ['SUCCEEDED', 'FAILED'];
/** States a task may still be cancelled from (CONVENTIONS.md §17.6); CANCELING again is accepted, as upstream. */
export const CANCELABLE_TASK_STATES: readonly TaskState[] = ['PENDING', 'RUNNING', 'CANCELING'];

export const isTerminalTaskState = (state: string) => (TERMINAL_TASK_STATES as readonly string[]).includes(state);

/** failure_reason of a cancelled task (Diego's wording; the local runtime uses the same). */
export const TASK_CANCELLED = 'task was cancelled';
/** failure_reason of a task that was RUNNING when Kiln stopped: its process died with the old Kiln. */
export const TASK_INTERRUPTED = 'task was interrupted by a Kiln restart';
/** failure_reason when the runtime refuses to start a task (upstream: "Unable to request task to be run"). */
export const TASK_UNABLE_TO_RUN = 'Unable to request task to be run';

export const NO_DROPLET = 'Task must have a droplet. Specify droplet or assign current droplet to app.';
export const COMMAND_MAX_LENGTH = 4096;
/** Container users a task may ask for (upstream: `vcap` plus the operator's additional_allowed_process_users). */
export const PERMITTED_TASK_USERS = ['vcap'] as const;

export const cancelRefused = (state: string) => `Task state is ${state} and therefore cannot be canceled`;

const positiveInt = (label: string) =>
  z
    .number({ error: `${label} is not a number` })
    .int(`${label} must be an integer`)
    .min(1, `${label} must be greater than 0`)
    .max(2_147_483_647, `${label} must be less than or equal to 2147483647`)
    .nullable()
    .optional();

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `template: {process: {guid}}`, with upstream's guid-validator wording for anything else. */
const Template = z.unknown().transform((value, ctx) => {
  const process = isObject(value) ? value.process : undefined;
  const guid = isObject(process) ? process.guid : undefined;
  if (typeof guid !== 'string') {
    ctx.issues.push({ code: 'custom', message: 'Template process guid must be a string', input: value });
    return z.NEVER;
  }
  if (guid.length < 1 || guid.length > 200) {
    ctx.issues.push({ code: 'custom', message: 'Template process guid must be between 1 and 200 characters', input: value });
    return z.NEVER;
  }
  return { processGuid: guid };
});

/** `POST /v3/apps/:guid/tasks` (upstream TaskCreateMessage). Model-level checks (name, command) are in the service. */
export const CreateTaskSchema = z
  .object({
    command: z.string({ error: 'Command must be a string' }).nullable().optional(),
    name: z.string({ error: 'Name must be a string' }).nullable().optional(),
    memory_in_mb: positiveInt('Memory in mb'),
    disk_in_mb: positiveInt('Disk in mb'),
    log_rate_limit_in_bytes_per_second: z
      .number({ error: 'Log rate limit in bytes per second is not a number' })
      .int('Log rate limit in bytes per second must be an integer')
      .min(-1, 'Log rate limit in bytes per second must be greater than -2')
      .max(Number.MAX_SAFE_INTEGER, 'Log rate limit in bytes per second must be less than or equal to 9223372036854775807')
      .nullable()
      .optional(),
    droplet_guid: z
      .string({ error: 'Droplet guid must be a string' })
      .min(1, 'Droplet guid must be between 1 and 200 characters')
      .max(200, 'Droplet guid must be between 1 and 200 characters')
      .nullable()
      .optional(),
    template: Template.optional(),
    user: z
      .string({ error: 'User must be a string' })
      .min(1, 'User must be between 1 and 255 characters')
      .max(255, 'User must be between 1 and 255 characters')
      .nullable()
      .optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    // Upstream adds this to :command, so Rails prefixes the attribute name.
    if (b.command == null && b.template === undefined) ctx.addIssue({ code: 'custom', message: 'Command No command or template provided' });
  });
export type CreateTask = z.infer<typeof CreateTaskSchema>;

/** `PATCH /v3/tasks/:guid`: only metadata. */
export const UpdateTaskSchema = z.object({ metadata: MetadataRequestSchema.optional() }).strict();
export type UpdateTask = z.infer<typeof UpdateTaskSchema>;

/**
 * Checks upstream's TaskModel runs on save (Sequel wording, "<column> <problem>"); returns every problem.
 * The name must be printable (no control characters).
 */
export function taskModelErrors(t: { name: string; command: string; user: string | null }): string[] {
  const errors: string[] = [];
  if (t.name === '') errors.push('name is not present');
  // eslint-disable-next-line no-control-regex
  else if (/[\u0000-\u001f\u007f]/.test(t.name)) errors.push('name is invalid');
  if (t.command.trim() === '') errors.push('command is not present');
  else if (t.command.length > COMMAND_MAX_LENGTH) errors.push(`command must be shorter than ${COMMAND_MAX_LENGTH + 1} characters`);
  if (t.user !== null && !(PERMITTED_TASK_USERS as readonly string[]).includes(t.user.toLowerCase())) {
    const allowed = PERMITTED_TASK_USERS.map((u) => `'${u}'`).join(', ');
    errors.push(`user invalid (requested user '${t.user}' not allowed, permitted users are: ${allowed})`);
  }
  return errors;
}
