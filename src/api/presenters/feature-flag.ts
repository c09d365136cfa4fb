import type { FeatureFlagState } from '../../services/feature-flags.ts';
import type { Linker } from '../cf/links.ts';
import { cfTime } from '../cf/timestamps.ts';

/** Flags are addressed by name and have no guid; `updated_at` is null until an admin first sets one. */
export function presentFeatureFlag(flag: FeatureFlagState, l: Linker) {
  return {
    name: flag.name,
    enabled: flag.enabled,
    updated_at: cfTime(flag.updatedAt),
    custom_error_message: flag.customErrorMessage,
    links: { self: l.link(`/v3/feature_flags/${flag.name}`) },
  };
}
