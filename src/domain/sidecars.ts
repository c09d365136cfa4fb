import { z } from 'zod';

export const SIDECAR_ORIGINS = ['user', 'buildpack'] as const;
export type SidecarOrigin = (typeof SIDECAR_ORIGINS)[number];

export const SIDECAR_NAME_MAX = 255;
export const SIDECAR_COMMAND_MAX = 4096;

/** A missing required field reads as blank (upstream's presence validator), a wrong type as such. */
const typed = (label: string, kind: string, blank: string) => ({
  error: (issue: { input: unknown }) => (issue.input === undefined ? blank : `${label} must be ${kind}`),
});

const name = z
  .string(typed('Name', 'a string', "Name can't be blank"))
  .min(1, "Name can't be blank")
  .max(SIDECAR_NAME_MAX, `Name is too long (maximum is ${SIDECAR_NAME_MAX} characters)`);
const command = z
  .string(typed('Command', 'a string', "Command can't be blank"))
  .min(1, "Command can't be blank")
  .max(SIDECAR_COMMAND_MAX, `Command is too long (maximum is ${SIDECAR_COMMAND_MAX} characters)`);
const processTypes = z
  .array(
    z.string({ error: 'Process types must be an array of strings' }).min(1, 'Process types must be an array of strings'),
    typed('Process types', 'an array', 'Process types must have at least 1 process_type'),
  )
  .min(1, 'Process types must have at least 1 process_type')
  // Listing a type twice means nothing more than listing it once.
  .transform((types) => [...new Set(types)]);
const memory = z
  .number({ error: 'Memory in mb is not a number' })
  .int('Memory in mb must be an integer')
  .min(1, 'Memory in mb must be greater than 0')
  .max(2_147_483_647, 'Memory in mb must be less than or equal to 2147483647')
  .nullable()
  .optional();

/** `POST /v3/apps/:guid/sidecars` (upstream SidecarCreateMessage). */
export const CreateSidecarSchema = z
  .object({ name, command, process_types: processTypes, memory_in_mb: memory })
  .strict();
export type CreateSidecar = z.infer<typeof CreateSidecarSchema>;

/** `PATCH /v3/sidecars/:guid` (upstream SidecarUpdateMessage): every field optional, same rules when present. */
export const UpdateSidecarSchema = z
  .object({
    name: name.optional(),
    command: command.optional(),
    process_types: processTypes.optional(),
    memory_in_mb: memory,
  })
  .strict();
export type UpdateSidecar = z.infer<typeof UpdateSidecarSchema>;

export const duplicateSidecarName = (sidecarName: string) => `Sidecar with name '${sidecarName}' already exists for given app`;

/** Upstream's wording when the sidecars of a process type would leave its main command no memory. */
export const sidecarMemoryTooLarge = (processType: string) =>
  `The memory allocation defined is too large to run with the dependent "${processType}" process`;

/**
 * Whether sidecars reserving `sidecarMemoryMb` in total fit a process of `processMemoryMb`: the main command must
 * keep some memory, so the sidecars must reserve strictly less than the process has.
 */
export const sidecarMemoryFits = (sidecarMemoryMb: number, processMemoryMb: number) => sidecarMemoryMb < processMemoryMb;

