import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

/** A stack's lifecycle state: apps may not be created on RESTRICTED or staged on DISABLED stacks. */
export const STACK_STATES = ['ACTIVE', 'RESTRICTED', 'DEPRECATED', 'DISABLED'] as const;
export type StackState = (typeof STACK_STATES)[number];
export const DEFAULT_STACK_STATE: StackState = 'ACTIVE';

const State = z.enum(STACK_STATES, { error: `State must be one of ${STACK_STATES.join(', ')}` });
const StateReason = z
  .string({ error: 'State reason must be a string' })
  .max(5000, 'State reason is too long (maximum is 5000 characters)')
  .nullable();

const Name = z
  .string({ error: (iss) => (iss.input === undefined || iss.input === null ? "Name can't be blank" : 'Name must be a string') })
  .refine((s) => s.trim() !== '', "Name can't be blank")
  .max(250, 'Name is too long (maximum is 250 characters)');

export const CreateStackSchema = z
  .object({
    name: Name,
    description: z
      .string({ error: 'Description must be a string' })
      .max(250, 'Description is too long (maximum is 250 characters)')
      .nullable()
      .optional(),
    state: State.optional(),
    state_reason: StateReason.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type CreateStack = z.infer<typeof CreateStackSchema>;

export const UpdateStackSchema = z
  .object({
    state: State.optional(),
    state_reason: StateReason.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type UpdateStack = z.infer<typeof UpdateStackSchema>;

export const STACK_NAME_TAKEN = 'Name must be unique';

/** Warned (X-Cf-Warnings) when an update sets the state of the default stack. */
export const defaultStackStateWarning = (name: string) =>
  `Changing state on the default stack '${name}' may affect new application deployments.`;

/** `default=true|false` on `GET /v3/stacks`; returns the 400 detail for anything else. */
export function parseDefaultFilter(value: string | undefined): boolean | undefined | string {
  if (value === undefined) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return "Default must be 'true' or 'false'";
}

/** `lifecycle_type` values apps (and so `GET /v3/stacks/:guid/apps`) accept. */
export const LIFECYCLE_TYPES = ['buildpack', 'docker', 'cnb'] as const;
