import { z } from 'zod';
import { badQuery, notFound } from '../domain/errors.ts';
import { CONDITION_KINDS, conditionsOf, type ConditionKind, type StoredCondition } from '../store/conditions.ts';
import { appScopeFor } from './app-scope.ts';
import type { Ctx } from './context.ts';

const KINDS = Object.keys(CONDITION_KINDS) as [ConditionKind, ...ConditionKind[]];

export const ConditionsQuerySchema = z.object({ kind: z.enum(KINDS), guid: z.string().min(1).max(255) });
export type ConditionsQuery = z.infer<typeof ConditionsQuerySchema>;

/** The CF resource name of each kind, for its 404 (CF-ResourceNotFound "<Name> not found"). */
const RESOURCE_NAME: Record<ConditionKind, string> = { app: 'App', process: 'Process', build: 'Build', task: 'Task', deployment: 'Deployment' };

export function parseConditionsQuery(query: Record<string, string>): ConditionsQuery {
  const parsed = ConditionsQuerySchema.safeParse(query);
  if (!parsed.success) throw badQuery(`The query parameter kind must be one of ${KINDS.join(', ')} and guid must be given`);
  return parsed.data;
}

/** The app a resource of `kind` belongs to, if the resource exists. */
async function appGuidOf(ctx: Ctx, kind: ConditionKind, guid: string): Promise<string | undefined> {
  if (kind === 'app') return guid;
  const row = await ctx.store.db
    .selectFrom(CONDITION_KINDS[kind] as 'processes')
    .select('app_guid')
    .where('guid', '=', guid)
    .executeTakeFirst();
  return row?.app_guid;
}

/**
 * The conditions of a resource the caller can see (a role in its app's space, or a global reader); an invisible
 * or unknown resource is a 404, as for the resource itself (CONVENTIONS.md on visibility).
 */
export async function resourceConditions(ctx: Ctx, q: ConditionsQuery): Promise<StoredCondition[]> {
  const name = RESOURCE_NAME[q.kind];
  const appGuid = await appGuidOf(ctx, q.kind, q.guid);
  if (!appGuid) throw notFound(name);
  await appScopeFor(ctx, appGuid, name);
  return conditionsOf(ctx.store.db, q.kind, q.guid);
}
