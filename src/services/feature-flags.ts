import type { Kysely } from 'kysely';
import {
  FEATURE_FLAG_DEFAULTS,
  FEATURE_FLAG_NAMES,
  isFeatureFlagName,
  type FeatureFlagName,
  type UpdateFeatureFlag,
} from '../domain/feature-flags.ts';
import { KilnError, notAuthorized, notFound } from '../domain/errors.ts';
import type { ListParams, TimestampFilter } from '../domain/list-params.ts';
import type { Page } from '../store/list-query.ts';
import type { Database, Row } from '../store/schema.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';

export interface FeatureFlagState {
  name: FeatureFlagName;
  enabled: boolean;
  customErrorMessage: string | null;
  updatedAt: string | null;
}

/** A flag's effective state: its stored row when an admin ever set it, else the default. */
function stateOf(name: FeatureFlagName, row: Row<'feature_flags'> | undefined): FeatureFlagState {
  return {
    name,
    enabled: row ? row.enabled === 1 : FEATURE_FLAG_DEFAULTS[name],
    customErrorMessage: row?.custom_error_message ?? null,
    updatedAt: row?.updated_at ?? null,
  };
}

export async function getFeatureFlag(db: Kysely<Database>, name: FeatureFlagName): Promise<FeatureFlagState> {
  const row = await db.selectFrom('feature_flags').selectAll().where('name', '=', name).executeTakeFirst();
  return stateOf(name, row);
}

/** Throws 403 CF-FeatureDisabled (with the flag's custom message, if any) when the flag is off. */
export async function requireFeature(db: Kysely<Database>, name: FeatureFlagName): Promise<void> {
  const flag = await getFeatureFlag(db, name);
  if (!flag.enabled) throw new KilnError('FeatureDisabled', flag.customErrorMessage ?? name);
}

// ---- the /v3/feature_flags use-cases (readable by every authenticated caller, writable by admins) ----

const secondStart = (t: string) => `${t.slice(0, 19)}.000Z`;
const secondEnd = (t: string) => `${t.slice(0, 19)}.999Z`;

function matchesTimestamp(value: string, f: TimestampFilter): boolean {
  const v = f.values[0]!;
  switch (f.op) {
    case 'eq':
      return f.values.some((t) => value >= secondStart(t) && value <= secondEnd(t));
    case 'lt':
      return value < secondStart(v);
    case 'lte':
      return value <= secondEnd(v);
    case 'gt':
      return value > secondEnd(v);
    case 'gte':
      return value >= secondStart(v);
  }
}

/**
 * Every known flag, sorted by name. With `updated_ats` only flags that were ever set can match (as upstream,
 * which then filters the stored rows): a default has no update time.
 */
export async function listFeatureFlags(ctx: Ctx, params: ListParams): Promise<Page<FeatureFlagState>> {
  const rows = await ctx.store.db.selectFrom('feature_flags').selectAll().execute();
  const byName = new Map(rows.map((r) => [r.name, r]));
  let flags = FEATURE_FLAG_NAMES.map((n) => stateOf(n, byName.get(n)));
  if (params.timestamps.length > 0) {
    flags = flags.filter((f) => f.updatedAt !== null && params.timestamps.every((t) => matchesTimestamp(f.updatedAt!, t)));
  }
  if (params.orderBy?.desc) flags.reverse();
  const start = (params.page - 1) * params.perPage;
  return { rows: flags.slice(start, start + params.perPage), total: flags.length };
}

export async function showFeatureFlag(ctx: Ctx, name: string): Promise<FeatureFlagState> {
  if (!isFeatureFlagName(name)) throw notFound('Feature flag');
  return getFeatureFlag(ctx.store.db, name);
}

/**
 * Upstream looks the flag up (404) and checks the caller (403) before validating the body (422), unlike most
 * endpoints; the router calls this before reading the body to keep that order.
 */
export function authorizeFeatureFlagUpdate(ctx: Ctx, name: string): FeatureFlagName {
  if (!isFeatureFlagName(name)) throw notFound('Feature flag');
  if (!ctx.access.admin) throw notAuthorized();
  return name;
}

export async function updateFeatureFlag(ctx: Ctx, flagName: string, input: UpdateFeatureFlag): Promise<FeatureFlagState> {
  const name = authorizeFeatureFlagUpdate(ctx, flagName);
  return ctx.store.write(async (tx) => {
    const current = stateOf(name, await tx.db.selectFrom('feature_flags').selectAll().where('name', '=', name).executeTakeFirst());
    const enabled = input.enabled ?? current.enabled;
    const message = input.custom_error_message === undefined ? current.customErrorMessage : input.custom_error_message;
    await tx.db
      .insertInto('feature_flags')
      .values({ name, enabled: enabled ? 1 : 0, custom_error_message: message, updated_at: tx.now })
      .onConflict((oc) =>
        oc.column('name').doUpdateSet({ enabled: enabled ? 1 : 0, custom_error_message: message, updated_at: tx.now }),
      )
      .execute();
    tx.changed('feature_flags', name, 'update');
    // Upstream records no event for flag changes; Kiln audits every mutation, as a platform-wide (org-less) event.
    await recordAudit(tx, {
      type: 'audit.feature_flag.update',
      actor: ctx.principal,
      target: { type: 'feature_flag', guid: name, name },
      data: { request: input },
    });
    return { name, enabled, customErrorMessage: message, updatedAt: tx.now };
  });
}
