import type { Kysely } from 'kysely';
import { FEATURE_FLAG_DEFAULTS, type FeatureFlagName } from '../domain/feature-flags.ts';
import { KilnError } from '../domain/errors.ts';
import type { Database } from '../store/schema.ts';

export interface FeatureFlagState {
  name: FeatureFlagName;
  enabled: boolean;
  customErrorMessage: string | null;
  updatedAt: string | null;
}

export async function getFeatureFlag(db: Kysely<Database>, name: FeatureFlagName): Promise<FeatureFlagState> {
  const row = await db.selectFrom('feature_flags').selectAll().where('name', '=', name).executeTakeFirst();
  return {
    name,
    enabled: row ? row.enabled === 1 : FEATURE_FLAG_DEFAULTS[name],
    customErrorMessage: row?.custom_error_message ?? null,
    updatedAt: row?.updated_at ?? null,
  };
}

/** Throws 403 CF-FeatureDisabled (with the flag's custom message, if any) when the flag is off. */
export async function requireFeature(db: Kysely<Database>, name: FeatureFlagName): Promise<void> {
  const flag = await getFeatureFlag(db, name);
  if (!flag.enabled) throw new KilnError('FeatureDisabled', flag.customErrorMessage ?? name);
}
