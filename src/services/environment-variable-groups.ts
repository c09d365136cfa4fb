import type { Kysely } from 'kysely';
import {
  ENV_GROUP_TOO_LARGE,
  isEnvGroupName,
  MAX_ENV_GROUP_JSON,
  mergeEnvVars,
  parseVariables,
  type EnvGroupName,
  type UpdateEnvironmentVariableGroup,
} from '../domain/environment-variable-groups.ts';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { Database } from '../store/schema.ts';
import type { WriteTx } from '../store/store.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';

export interface EnvironmentVariableGroup {
  name: EnvGroupName;
  variables: Record<string, string>;
  updatedAt: string;
}

/** Reads a group inside a write, creating it when missing (bootstrap seeds both; this covers a wiped row). */
async function loadForWrite(tx: WriteTx, name: EnvGroupName, lock: boolean) {
  await tx.db
    .insertInto('environment_variable_groups')
    .values({ name, variables: '{}', updated_at: tx.now })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  let q = tx.db.selectFrom('environment_variable_groups').selectAll().where('name', '=', name);
  // Two concurrent PATCHes must both land: on PostgreSQL the row is locked for the merge; SQLite serialises writers.
  if (lock) q = q.forUpdate();
  return q.executeTakeFirstOrThrow();
}

/** Readable by every authenticated caller (CONVENTIONS.md Appendix B: ALL). */
export async function getEnvironmentVariableGroup(ctx: Ctx, name: string): Promise<EnvironmentVariableGroup> {
  if (!isEnvGroupName(name)) throw notFound('Environment variable group');
  let row = await ctx.store.db.selectFrom('environment_variable_groups').selectAll().where('name', '=', name).executeTakeFirst();
  row ??= await ctx.store.write((tx) => loadForWrite(tx, name, false));
  return { name, variables: parseVariables(row.variables), updatedAt: row.updated_at };
}

/**
 * Merges the patch into the group (admins only). Upstream checks the caller before the name, so a non-admin
 * gets 403 even for an unknown group.
 */
export async function updateEnvironmentVariableGroup(
  ctx: Ctx,
  name: string,
  input: UpdateEnvironmentVariableGroup,
): Promise<EnvironmentVariableGroup> {
  if (!ctx.access.admin) throw notAuthorized();
  if (!isEnvGroupName(name)) throw notFound('Environment variable group');
  return ctx.store.write(async (tx) => {
    const row = await loadForWrite(tx, name, ctx.store.dialect === 'postgres');
    const variables = mergeEnvVars(parseVariables(row.variables), input.var);
    const json = JSON.stringify(variables);
    if (json.length > MAX_ENV_GROUP_JSON) throw unprocessable(ENV_GROUP_TOO_LARGE);
    await tx.db.updateTable('environment_variable_groups').set({ variables: json, updated_at: tx.now }).where('name', '=', name).execute();
    tx.changed('environment_variable_groups', name, 'update');
    // Upstream records no event here; Kiln audits every mutation. Values may be secrets, so only keys are kept.
    await recordAudit(tx, {
      type: 'audit.environment_variable_group.update',
      actor: ctx.principal,
      target: { type: 'environment_variable_group', guid: name, name },
      data: { request: { var: Object.fromEntries(Object.keys(input.var).map((k) => [k, '[PRIVATE DATA HIDDEN]'])) } },
    });
    return { name, variables, updatedAt: tx.now };
  });
}
