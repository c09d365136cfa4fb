import { z } from 'zod';
import { rubyToS } from './value-text.ts';

/** The only two groups there are (CONVENTIONS.md §20.2); any other name is 404. */
export const ENV_GROUP_NAMES = ['running', 'staging'] as const;
export type EnvGroupName = (typeof ENV_GROUP_NAMES)[number];
export const isEnvGroupName = (n: string): n is EnvGroupName => (ENV_GROUP_NAMES as readonly string[]).includes(n);

/** Upstream stores the group in a MySQL TEXT column and refuses anything that would not fit. */
export const MAX_ENV_GROUP_JSON = 65_535;
export const ENV_GROUP_TOO_LARGE =
  'Environment variable group is too large. Specify fewer variables or reduce key/value lengths.';

/** A key's problem as upstream's EnvironmentVariablesValidator words it (prefixed with "Var "), or undefined. */
export function envVarKeyProblem(key: string): string | undefined {
  if (key.length === 0) return 'key must be a minimum length of 1';
  if (/^VCAP_/i.test(key)) return 'cannot start with VCAP_';
  if (/^VMC/i.test(key)) return 'cannot start with VMC_';
  if (/^PORT$/i.test(key)) return 'cannot set PORT';
  return undefined;
}


export type EnvVarPatch = Record<string, string | null>;

/**
 * `PATCH /v3/environment_variable_groups/:name` body: `{"var": {"KEY": "value", "OLD": null}}`. `{}` is a no-op.
 * Messages follow upstream: value problems first, then key problems.
 */
export const UpdateEnvironmentVariableGroupSchema = z
  .object({ var: z.unknown().optional() })
  .strict()
  .superRefine((body, ctx) => {
    const vars = body.var;
    if (vars === undefined) return;
    if (typeof vars !== 'object' || vars === null || Array.isArray(vars)) {
      ctx.addIssue({ code: 'custom', path: ['var'], message: 'Var must be a hash' });
      return;
    }
    for (const [key, value] of Object.entries(vars)) {
      if (value !== null && typeof value !== 'string') {
        ctx.addIssue({
          code: 'custom',
          path: ['var', key],
          message: `Non-string value in environment variable for key '${key}', value '${rubyToS(value)}'`,
        });
      }
    }
    for (const key of Object.keys(vars)) {
      const problem = envVarKeyProblem(key);
      if (problem) ctx.addIssue({ code: 'custom', path: ['var', key], message: `Var ${problem}` });
    }
  })
  .transform((body) => ({ var: (body.var ?? {}) as EnvVarPatch }));
export type UpdateEnvironmentVariableGroup = z.infer<typeof UpdateEnvironmentVariableGroupSchema>;

/**
 * Merge as upstream: given keys overwrite, `null` removes, others stay. Built through a Map so that a key
 * such as `__proto__` stays an ordinary variable instead of touching the object's prototype.
 */
export function mergeEnvVars(current: Record<string, string>, patch: EnvVarPatch): Record<string, string> {
  const out = new Map(Object.entries(current));
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) out.delete(k);
    else out.set(k, v);
  }
  return Object.fromEntries(out);
}

/** A group's stored variables (a JSON object); anything but string values is dropped. */
export function parseVariables(json: string): Record<string, string> {
  const value: unknown = JSON.parse(json);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'));
}
