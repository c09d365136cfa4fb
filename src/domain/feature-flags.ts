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
