/**
 * Deployment state changes that both the deployments use-cases and the deployment controller make: a transition
 * (with its status value and reason), finalizing a rollout that reached its target or was canceled.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { statusOf, type CanaryStep, type DeploymentState } from '../domain/deployments.ts';
import { WEB } from '../domain/processes.ts';
import { parseCommands } from '../domain/revisions.ts';
import { deleteMetadata } from '../store/metadata.ts';
import { parseJsonText, type Database, type Row, type RowUpdate } from '../store/schema.ts';
import type { WriteTx } from '../store/store.ts';

export const canarySteps = (d: Pick<Row<'deployments'>, 'canary_steps'>): CanaryStep[] | null =>
  d.canary_steps ? parseJsonText(d.canary_steps) : null;

/** Moves a deployment to `state` (status value/reason follow), with whatever else changes in the same write. */
export async function transition(tx: WriteTx, d: Row<'deployments'>, state: DeploymentState, patch: RowUpdate<'deployments'> = {}, superseded = false): Promise<void> {
  const status = statusOf(state);
  const reason = superseded ? 'SUPERSEDED' : status.reason;
  const changed = state !== d.state || reason !== d.status_reason;
  await tx.update('deployments', d.guid, {
    ...patch,
    state,
    status_value: status.value,
    status_reason: reason,
    ...(changed ? { last_status_change: tx.now } : {}),
  }, { expectedGeneration: d.generation });
}

/** The app's web processes, oldest first (upstream's `web_processes`): during a rollout there are several. */
export const webProcesses = (db: Kysely<Database>, appGuid: string) =>
  db.selectFrom('processes').selectAll().where('app_guid', '=', appGuid).where('type', '=', WEB).orderBy('created_at').orderBy('id').execute();

/** Removes a process row (the process controller then stops whatever still runs for it). */
export async function deleteProcess(tx: WriteTx, guid: string): Promise<void> {
  await deleteMetadata(tx, 'processes', [guid]);
  await tx.delete('processes', guid);
}

/**
 * A rollout that reached its target (upstream's Finalize): the deploying process is the app's only web process,
 * and the other processes take the revision's commands and restart with the new droplet. (A superseded rollout
 * only ends: the deployment that superseded it scales its process down.)
 */
export async function finalizeDeployed(tx: WriteTx, d: Row<'deployments'>): Promise<void> {
  for (const p of await webProcesses(tx.db, d.app_guid)) if (p.guid !== d.process_guid) await deleteProcess(tx, p.guid);
  const revision = d.revision_guid ? await tx.db.selectFrom('revisions').select('commands').where('guid', '=', d.revision_guid).executeTakeFirst() : undefined;
  const commands = revision ? parseCommands(revision.commands) : undefined;
  const others = await tx.db.selectFrom('processes').selectAll().where('app_guid', '=', d.app_guid).where('type', '!=', WEB).execute();
  for (const p of others) {
    const patch: RowUpdate<'processes'> = { version: randomUUID(), revision_guid: d.revision_guid ?? p.revision_guid };
    if (commands && p.type in commands) patch.command = commands[p.type] ?? null;
    await tx.update('processes', p.guid, patch, { expectedGeneration: p.generation });
  }
  const proc = await tx.db.selectFrom('processes').select('instances').where('guid', '=', d.process_guid).executeTakeFirst();
  await transition(tx, d, 'DEPLOYED', { new_instances: proc?.instances ?? d.target_instances, old_instances: 0, error: null });
}

/** The processes of an app's deployments that a later one superseded, having ended in `state`. */
export async function supersededProcesses(db: Kysely<Database>, appGuid: string, state: 'DEPLOYED' | 'CANCELED'): Promise<Set<string>> {
  const rows = await db
    .selectFrom('deployments')
    .select('process_guid')
    .where('app_guid', '=', appGuid)
    .where('state', '=', state)
    .where('status_reason', '=', 'SUPERSEDED')
    .execute();
  return new Set(rows.map((r) => r.process_guid));
}

/**
 * The web process a canceled rollout returns to (upstream's Cancel): the newest process of a superseded rollout
 * that had finished its scaling (DEPLOYED) and still serves, else the app's original web process.
 */
export async function priorWebProcess(db: Kysely<Database>, d: Row<'deployments'>, serving: (processGuid: string) => boolean): Promise<Row<'processes'> | undefined> {
  const webs = (await webProcesses(db, d.app_guid)).filter((p) => p.guid !== d.process_guid);
  if (webs.length === 0) return undefined;
  const interimGuids = await supersededProcesses(db, d.app_guid, 'DEPLOYED');
  const candidates = webs.filter((p) => interimGuids.has(p.guid) && serving(p.guid)).reverse();
  return candidates[0] ?? webs[0];
}

/** A canceled rollout: `prior` is the app's web process again at the original count; every other one goes. */
export async function finalizeCanceled(tx: WriteTx, d: Row<'deployments'>, prior: Row<'processes'> | undefined): Promise<void> {
  for (const p of await webProcesses(tx.db, d.app_guid)) if (p.guid !== prior?.guid) await deleteProcess(tx, p.guid);
  if (prior) {
    const fresh = await tx.db.selectFrom('processes').selectAll().where('guid', '=', prior.guid).executeTakeFirst();
    if (fresh && fresh.instances !== d.original_instances) await tx.update('processes', fresh.guid, { instances: d.original_instances }, { expectedGeneration: fresh.generation });
  }
  await transition(tx, d, 'CANCELED', { new_instances: 0, old_instances: d.original_instances, error: null });
}
