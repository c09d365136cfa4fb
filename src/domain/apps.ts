import { z } from 'zod';
import { envVarKeyProblem } from './environment-variable-groups.ts';
import { MetadataRequestSchema } from './metadata.ts';
import { rubyToS } from './value-text.ts';

export const APP_STATES = ['STOPPED', 'STARTED'] as const;
export type AppState = (typeof APP_STATES)[number];

export const APP_LIFECYCLE_TYPES = ['buildpack', 'docker', 'cnb'] as const;
export type AppLifecycleType = (typeof APP_LIFECYCLE_TYPES)[number];

/** Control characters are what upstream calls "escaped characters". */
const PRINTABLE = /^[^\p{Cc}]*$/u;
const TOO_LONG = 'Name is too long (maximum is 255 characters)';

const CreateName = z
  .string({ error: (iss) => (iss.input === undefined || iss.input === null ? "Name can't be blank" : 'Name must be a string') })
  .refine((s) => s.trim() !== '', "Name can't be blank")
  .max(255, TOO_LONG)
  .regex(PRINTABLE, 'Name must not contain escaped characters');

const UpdateName = z
  .string({ error: 'Name must be a string' })
  .refine((s) => s.trim() !== '', "Name can't be blank")
  .max(255, TOO_LONG)
  .regex(PRINTABLE, 'Name must not contain escaped characters');

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);


/** Problems with an `environment_variables` object, prefixed as upstream's validator words them. */
export function environmentVariablesErrors(value: unknown, prefix = 'Environment variables'): string[] {
  if (!isObject(value)) return [`${prefix} must be an object`];
  const errors: string[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') errors.push(`Non-string value in environment variable for key '${key}', value '${rubyToS(v)}'`);
  }
  for (const key of Object.keys(value)) {
    const problem = envVarKeyProblem(key);
    if (problem) errors.push(`${prefix} ${problem}`);
  }
  return errors;
}

const EnvironmentVariables = z.unknown().transform((value, ctx) => {
  const errors = environmentVariablesErrors(value);
  for (const message of errors) ctx.issues.push({ code: 'custom', message, input: value });
  return errors.length > 0 ? z.NEVER : (value as Record<string, string>);
});

/** `relationships.space.data.guid` of a create body, with upstream's wording for each way it can be wrong. */
export function spaceRelationshipErrors(value: unknown): string[] {
  const prefix = 'Relationships';
  if (!isObject(value)) return [`${prefix} 'relationships' is not an object`];
  const keys = Object.keys(value);
  if (keys.length === 0) return [`${prefix} 'relationships' must include one or more valid relationships`];
  const errors: string[] = [];
  const extra = keys.filter((k) => k !== 'space');
  if (extra.length > 0) errors.push(`${prefix} Unknown field(s): ${extra.map((k) => `'${k}'`).join(', ')}`);
  const space = value.space;
  const data = isObject(space) ? space.data : undefined;
  if (!isObject(data) || !('guid' in data)) {
    errors.push(`${prefix} Space must be structured like this: "space: {"data": {"guid": "valid-guid"}}"`);
    return errors;
  }
  const guid = data.guid;
  if (typeof guid !== 'string') errors.push(`${prefix} Space guid must be a string`);
  else if (guid.length < 1 || guid.length > 200) errors.push(`${prefix} Space guid must be between 1 and 200 characters`);
  return errors;
}

const SpaceRelationship = z.unknown().transform((value, ctx) => {
  const errors = spaceRelationshipErrors(value);
  if (errors.length > 0) {
    for (const message of errors) ctx.issues.push({ code: 'custom', message, input: value });
    return z.NEVER;
  }
  const guid = ((value as Record<string, unknown>).space as { data: { guid: string } }).data.guid;
  return { space: { data: { guid } } };
});

/** A lifecycle as requested: type plus (partial) data; absent members keep their current/default value. */
export interface LifecycleRequest {
  type: AppLifecycleType | undefined;
  buildpacks: string[] | undefined;
  stack: string | null | undefined;
}

/** Problems with a `lifecycle` object (CONVENTIONS.md §14), or the parsed request. */
export function parseLifecycle(value: unknown): { errors: string[]; lifecycle?: LifecycleRequest } {
  if (!isObject(value)) return { errors: ['Lifecycle must be an object'] };
  const errors: string[] = [];
  const extra = Object.keys(value).filter((k) => k !== 'type' && k !== 'data');
  if (extra.length > 0) errors.push(`Lifecycle Unknown field(s): ${extra.map((k) => `'${k}'`).join(', ')}`);
  const type = value.type;
  if (type !== undefined && !(typeof type === 'string' && (APP_LIFECYCLE_TYPES as readonly string[]).includes(type))) {
    errors.push(`Lifecycle type is not included in the list: ${APP_LIFECYCLE_TYPES.join(', ')}`);
  }
  if (!('data' in value)) errors.push('Lifecycle data must be an object');
  const data = value.data;
  let buildpacks: string[] | undefined;
  let stack: string | null | undefined;
  if ('data' in value && !isObject(data)) errors.push('Lifecycle data must be an object');
  if (isObject(data)) {
    if (type === 'docker') {
      if (Object.keys(data).length > 0) errors.push('Lifecycle data must be an empty object for docker lifecycle');
    } else {
      const unknown = Object.keys(data).filter((k) => k !== 'buildpacks' && k !== 'stack' && !(type === 'cnb' && k === 'credentials'));
      if (unknown.length > 0) errors.push(`Lifecycle Unknown field(s): ${unknown.map((k) => `'${k}'`).join(', ')}`);
      if (data.buildpacks !== undefined && data.buildpacks !== null) {
        if (!Array.isArray(data.buildpacks)) errors.push('Buildpacks must be an array');
        else if (!data.buildpacks.every((b) => typeof b === 'string')) errors.push('Buildpacks can only contain strings');
        else if (data.buildpacks.some((b) => (b as string).length > 4096)) errors.push('Buildpacks entries must be 4096 characters or less');
        else buildpacks = data.buildpacks as string[];
      } else if (data.buildpacks === null) {
        buildpacks = [];
      }
      if (data.stack !== undefined) {
        if (data.stack !== null && typeof data.stack !== 'string') errors.push('Stack must be a string');
        else if (typeof data.stack === 'string' && data.stack.length > 255) errors.push('Stack is too long (maximum is 255 characters)');
        else stack = data.stack;
      }
      if (type === 'cnb' && (buildpacks === undefined || buildpacks.length === 0)) {
        errors.push('Buildpacks must specify at least one buildpack when using Cloud Native Buildpacks');
      }
    }
  }
  if (errors.length > 0) return { errors };
  return { errors, lifecycle: { type: type as AppLifecycleType | undefined, buildpacks, stack } };
}

const Lifecycle = z.unknown().transform((value, ctx) => {
  const { errors, lifecycle } = parseLifecycle(value);
  for (const message of errors) ctx.issues.push({ code: 'custom', message, input: value });
  return lifecycle ?? z.NEVER;
});

export const CreateAppSchema = z
  .object({
    name: CreateName,
    relationships: SpaceRelationship,
    environment_variables: EnvironmentVariables.optional(),
    lifecycle: Lifecycle.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type CreateApp = z.infer<typeof CreateAppSchema>;

export const UpdateAppSchema = z
  .object({
    name: UpdateName.optional(),
    lifecycle: Lifecycle.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type UpdateApp = z.infer<typeof UpdateAppSchema>;

/** Upstream's name-taken detail; the cf CLI matches `App with the name '…' already exists.`. */
export const appNameTaken = (name: string) => `App with the name '${name}' already exists.`;

export const START_WITHOUT_DROPLET = 'Assign a droplet before starting this app.';
export const CANNOT_REMOVE_DROPLET = 'Current droplet cannot be removed. Replace it with a preferred droplet.';
export const UNABLE_TO_ASSIGN_DROPLET = 'Unable to assign current droplet. Ensure the droplet exists and belongs to this app.';

/** `PATCH /v3/apps/:guid/relationships/current_droplet`: `{"data": {"guid": …}}`; `{"data": null}` is refused later. */
export const SetCurrentDropletSchema = z
  .object({
    data: z
      .object({ guid: z.string({ error: 'Guid must be a string' }).min(1, 'Guid must be between 1 and 200 characters').max(200) }, { error: 'Data must be an object' })
      .strict()
      .nullable()
      .optional(),
  })
  .strict()
  .transform((b) => ({ guid: b.data?.guid ?? null }));
export type SetCurrentDroplet = z.infer<typeof SetCurrentDropletSchema>;

// ---- app features ----

/** The app features Kiln has, backed by `apps.enable_ssh`, `apps.revisions_enabled` and the binding flags. */
export const APP_FEATURES = {
  ssh: 'Enable SSHing into the app.',
  revisions: 'Enable versioning of an application',
  'service-binding-k8s': 'Enable k8s service bindings for the app',
  'file-based-vcap-services': 'Enable file-based VCAP service bindings for the app',
} as const;
export type AppFeatureName = keyof typeof APP_FEATURES;
export const isAppFeature = (name: string): name is AppFeatureName => Object.hasOwn(APP_FEATURES, name);

/** CC's refusal (422) when a PATCH would turn on both file-based binding features. */
export const BINDING_FEATURES_EXCLUSIVE = "'file-based-vcap-services' and 'service-binding-k8s' features cannot be enabled at the same time.";

export const UpdateAppFeatureSchema = z.object({ enabled: z.boolean({ error: 'Enabled must be a boolean' }) }).strict();
export type UpdateAppFeature = z.infer<typeof UpdateAppFeatureSchema>;

/** Parses the JSON text columns of an app row, tolerating a damaged value. */
export function parseJsonObject(text: string): Record<string, string> {
  try {
    const v: unknown = JSON.parse(text);
    if (!isObject(v)) return {};
    return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

export function parseJsonStringArray(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

/** Buildpack URLs may carry credentials; they are rendered with the secret parts hidden (CONVENTIONS.md §14). */
export function obfuscateBuildpack(b: string): string {
  try {
    const u = new URL(b);
    if (!u.username && !u.password) return b;
    u.username = '***';
    u.password = '***';
    return u.toString();
  } catch {
    return b;
  }
}
