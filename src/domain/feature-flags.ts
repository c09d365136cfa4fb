import { z } from 'zod';
import { badQuery } from './errors.ts';
import { parseListParams, type ListParams, type ListSpec } from './list-params.ts';

/** Feature flags and their defaults (CONVENTIONS.md Appendix C). */
export const FEATURE_FLAG_DEFAULTS = {
  user_org_creation: false,
  private_domain_creation: true,
  app_bits_upload: true,
  app_scaling: true,
  route_creation: true,
  service_instance_creation: true,
  diego_docker: false,
  diego_cnb: false,
  set_roles_by_username: true,
  unset_roles_by_username: true,
  task_creation: true,
  env_var_visibility: true,
  space_developer_env_var_visibility: true,
  space_scoped_private_broker_creation: true,
  service_instance_sharing: false,
  hide_marketplace_from_unauthenticated_users: false,
  resource_matching: true,
  route_sharing: false,
  hash_based_routing: false,
} as const satisfies Record<string, boolean>;

export type FeatureFlagName = keyof typeof FEATURE_FLAG_DEFAULTS;
export const FEATURE_FLAG_NAMES = Object.keys(FEATURE_FLAG_DEFAULTS).sort() as FeatureFlagName[];

export const isFeatureFlagName = (n: string): n is FeatureFlagName => Object.hasOwn(FEATURE_FLAG_DEFAULTS, n);

/** `PATCH /v3/feature_flags/:name`: both fields optional; a null message clears the custom one. */
export const UpdateFeatureFlagSchema = z
  .object({
    enabled: z.boolean({ error: 'Enabled must be a boolean' }).optional(),
    custom_error_message: z
      .string({ error: 'Custom error message must be a string' })
      .max(250, 'Custom error message is too long (maximum is 250 characters)')
      .nullable()
      .optional(),
  })
  .strict();
export type UpdateFeatureFlag = z.infer<typeof UpdateFeatureFlagSchema>;

/** The list accepts only paging, `order_by=name` and `updated_ats` (CONVENTIONS.md Appendix A). */
export const FEATURE_FLAG_LIST = { orderByOnly: ['name'], createdAts: false } as const satisfies ListSpec;
const VALID_LIST_PARAMS = ['page', 'per_page', 'order_by', 'updated_ats'];

/**
 * Parses the query of `GET /v3/feature_flags`. The shared parser always admits `guids`, which flags (addressed
 * by name) do not have, and upstream answers `created_ats` with its own sentence rather than "unknown parameter".
 */
export function parseFeatureFlagListParams(search: URLSearchParams): ListParams {
  const unknown: string[] = [];
  for (const key of search.keys()) {
    const base = key.replace(/\[.*$/, '');
    if (base === 'created_ats') throw badQuery("Filtering by 'created_ats' is not allowed on this resource.");
    if (!VALID_LIST_PARAMS.includes(base) && !unknown.includes(key)) unknown.push(key);
  }
  if (unknown.length > 0) {
    throw badQuery(
      `Unknown query parameter(s): ${unknown.map((u) => `'${u}'`).join(', ')}. Valid parameters are: ${VALID_LIST_PARAMS.map((v) => `'${v}'`).join(', ')}`,
    );
  }
  return parseListParams(search, FEATURE_FLAG_LIST);
}
