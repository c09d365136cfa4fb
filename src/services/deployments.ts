import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { parseJsonObject, UNABLE_TO_ASSIGN_DROPLET } from '../domain/apps.ts';
import {
  APP_INVALID,
  canaryInstances,
  cannotCancel,
  cannotContinue,
  isActive,
  NO_DROPLET,
  REVISION_INVALID,
  REVISIONS_DISABLED,
  statusOf,
  stepCount,
  type CanaryStep,
  type CreateDeployment,
  type DeploymentState,
  type UpdateDeployment,
} from '../domain/deployments.ts';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { WEB } from '../domain/processes.ts';
import { rolledBackTo } from '../domain/revisions.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row, RowUpdate } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { auditApp, findVisibleApp, insertProcess, requireAppManager, appScopeFor, type AppScope } from './apps.ts';
import type { Ctx } from './context.ts';
import { parseCommands, recordRevision } from './revisions.ts';

export const DEPLOYMENT_LIST: ListSpec = {
  filters: ['app_guids', 'states', 'status_reasons', 'status_values'],
  labelSelector: true,
};

export interface DeploymentScope extends AppScope {
  deployment: Row<'deployments'>;
}

export const canarySteps = (d: Pick<Row<'deployments'>, 'canary_steps'>): CanaryStep[] | null =>
  d.canary_steps ? (JSON.parse(d.canary_steps) as CanaryStep[]) : null;

const loadDeployment = (db: Kysely<Database>, guid: string) =>
  db.selectFrom('deployments').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

// ---- reading ----

export async function listDeployments(ctx: Ctx, params: ListParams): Promise<Page<Row<'deployments'>>> {
  let q = ctx.store.db
    .selectFrom('deployments')
    .selectAll('deployments')
    // apps is joined only for the visibility condition, which global readers skip.
    .$if(!ctx.access.global, (qb) =>
      qb.innerJoin('apps', 'apps.guid', 'deployments.app_guid').where((eb) => ctx.access.spaceVisible(eb, 'apps.space_guid')),
    );
  const f = params.filters;
  if (f.app_guids) q = q.where('deployments.app_guid', 'in', f.app_guids);
  if (f.states) q = q.where('deployments.state', 'in', f.states);
  if (f.status_reasons) q = q.where('deployments.status_reason', 'in', f.status_reasons);
  if (f.status_values) q = q.where('deployments.status_value', 'in', f.status_values);
  return listPage(q, listOptions('deployments', params));
}

export async function findVisibleDeployment(ctx: Ctx, guid: string): Promise<DeploymentScope> {
  const deployment = await ctx.store.db.selectFrom('deployments').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!deployment) throw notFound('Deployment');
  return { deployment, ...(await appScopeFor(ctx, deployment.app_guid, 'Deployment')) };
}

/** Revision versions of some deployments, for `revision: {guid, version}`. */
export async function revisionVersions(db: Kysely<Database>, deployments: Array<Pick<Row<'deployments'>, 'revision_guid'>>): Promise<Map<string, number>> {
  const guids = [...new Set(deployments.map((d) => d.revision_guid).filter((g): g is string => !!g))];
  if (guids.length === 0) return new Map();
  const rows = await db.selectFrom('revisions').select(['guid', 'version']).where('guid', 'in', guids).execute();
  return new Map(rows.map((r) => [r.guid, r.version]));
}

// ---- state changes shared with the controller ----

/** Moves a deployment to `state` (status value/reason follow), with whatever else changes in the same write. */
export async function transition(tx: WriteTx, d: Row<'deployments'>, state: DeploymentState, patch: RowUpdate<'deployments'> = {}, superseded = false): Promise<void> {
  const status = statusOf(state);
  const reason = superseded ? 'SUPERSEDED' : status.reason;
  const changed = state !== d.state || reason !== d.status_reason;
  await tx.update('deployments', d.guid, d.generation, {
    ...patch,
    state,
    status_value: status.value,
    status_reason: reason,
    ...(changed ? { last_status_change: tx.now } : {}),
  });
}

/**
 * A rollout that reached its target: the process keeps the new version at the target count (the process
 * controller stops what is left of the old one), and the other processes restart with the new droplet.
 */
export async function finalizeDeployed(tx: WriteTx, d: Row<'deployments'>, superseded = false): Promise<void> {
  const procs = await tx.db.selectFrom('processes').selectAll().where('app_guid', '=', d.app_guid).execute();
  for (const p of procs) {
    if (p.guid === d.process_guid) {
      if (p.instances !== d.target_instances) await tx.update('processes', p.guid, p.generation, { instances: d.target_instances });
    } else if (!superseded) {
      await tx.update('processes', p.guid, p.generation, { version: randomUUID() });
    }
  }
  await transition(tx, d, 'DEPLOYED', { new_instances: d.target_instances, old_instances: 0, error: null }, superseded);
}

/** A canceled rollout: the process is the previous version again, at its original count and settings. */
export async function finalizeCanceled(tx: WriteTx, d: Row<'deployments'>, superseded = false): Promise<void> {
  const p = await tx.db.selectFrom('processes').selectAll().where('guid', '=', d.process_guid).executeTakeFirst();
  if (p && d.old_version) {
    await tx.update('processes', p.guid, p.generation, {
      version: d.old_version,
      instances: d.original_instances,
      command: d.previous_command,
      memory_in_mb: d.previous_memory_in_mb,
      disk_in_mb: d.previous_disk_in_mb,
      log_rate_limit_in_bytes_per_second: d.previous_log_rate_limit,
      revision_guid: d.previous_revision_guid,
      launched_version: d.old_version,
      launched_droplet_guid: d.previous_droplet_guid,
      launched_environment_variables: d.previous_environment_variables,
    });
  }
  await transition(tx, d, 'CANCELED', { new_instances: 0, old_instances: d.original_instances, error: null }, superseded);
}

// ---- create ----

interface Source {
  droplet: Row<'droplets'>;
  revision?: Row<'revisions'>;
}

async function resolveSource(ctx: Ctx, app: Row<'apps'>, input: CreateDeployment): Promise<Source> {
  const db = ctx.store.db;
  if (input.revisionGuid !== undefined) {
    const revision = await db.selectFrom('revisions').selectAll().where('guid', '=', input.revisionGuid).executeTakeFirst();
    if (!revision || revision.app_guid !== app.guid) throw unprocessable(REVISION_INVALID);
    if (app.revisions_enabled !== 1) throw unprocessable(REVISIONS_DISABLED);
    const droplet = await db.selectFrom('droplets').selectAll().where('guid', '=', revision.droplet_guid).executeTakeFirst();
    if (!droplet || droplet.state !== 'STAGED') throw unprocessable('Unable to deploy this revision, the droplet for this revision no longer exists.');
    return { droplet, revision };
  }
  const guid = input.dropletGuid ?? app.droplet_guid;
  if (!guid) throw unprocessable(NO_DROPLET);
  const droplet = await db.selectFrom('droplets').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!droplet || droplet.app_guid !== app.guid || droplet.state !== 'STAGED') throw unprocessable(UNABLE_TO_ASSIGN_DROPLET);
  return { droplet };
}

/**
 * `POST /v3/deployments` (CONVENTIONS.md §18). The droplet becomes the app's current one at once, a revision is
 * recorded when revisions are on, and an active deployment of the app is superseded. A stopped app is updated in
 * place and started (the deployment is born DEPLOYED); otherwise the web process gets a new version and the
 * deployment controller rolls instances over to it.
 */
export async function createDeployment(ctx: Ctx, input: CreateDeployment): Promise<{ deployment: Row<'deployments'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  let scope: AppScope;
  try {
    scope = await findVisibleApp(ctx, input.appGuid);
  } catch (err) {
    if (err instanceof KilnError && err.errorName === 'ResourceNotFound') throw unprocessable(APP_INVALID);
    throw err;
  }
  await requireAppManager(ctx, scope);
  const source = await resolveSource(ctx, scope.app, input);
  const processTypes = parseJsonObject(source.droplet.process_types);

  return ctx.store.write(async (tx) => {
    const app = await tx.db.selectFrom('apps').selectAll().where('guid', '=', scope.app.guid).executeTakeFirstOrThrow();
    // Processes for types the droplet brings, as assigning it as the current droplet would create them.
    const existing = new Set((await tx.db.selectFrom('processes').select('type').where('app_guid', '=', app.guid).execute()).map((p) => p.type));
    for (const type of [WEB, ...Object.keys(processTypes).sort()]) {
      if (!existing.has(type)) await insertProcess(tx, app, type, type === WEB ? app.guid : newGuid());
      existing.add(type);
    }
    const web = await tx.db.selectFrom('processes').selectAll().where('app_guid', '=', app.guid).where('type', '=', WEB).executeTakeFirstOrThrow();

    // A newer deployment wins: the active one ends SUPERSEDED, its new version becomes this one's old side.
    const active = await tx.db.selectFrom('deployments').selectAll().where('app_guid', '=', app.guid).where('status_value', '=', 'ACTIVE').execute();
    // Only the new side of a superseded rollout keeps running as this one's old side: its old instances stop as
    // soon as an instance of this rollout serves, and no more of its new version are started.
    let original = web.instances;
    for (const d of active) {
      original = d.new_instances;
      await transition(tx, d, d.state === 'DEPLOYING' ? 'DEPLOYED' : 'CANCELED', { old_instances: 0 }, true);
    }
    const previousRevision = web.revision_guid;

    const appPatch: RowUpdate<'apps'> = {};
    if (app.droplet_guid !== source.droplet.guid) appPatch.droplet_guid = source.droplet.guid;
    if (source.revision) appPatch.environment_variables = source.revision.environment_variables;
    const stopped = app.state !== 'STARTED';
    if (stopped) appPatch.state = 'STARTED';
    if (Object.keys(appPatch).length > 0) await tx.update('apps', app.guid, app.generation, appPatch);

    // Old instances keep running what they were launched with (a `cf set-env` before `cf restart --strategy
    // rolling` must not reach them), as far as the process recorded it.
    const launched = web.launched_version === web.version;
    const previousEnv = launched && web.launched_environment_variables !== null ? web.launched_environment_variables : app.environment_variables;
    const previousDroplet = launched && web.launched_droplet_guid ? web.launched_droplet_guid : app.droplet_guid;
    const newEnv = source.revision ? source.revision.environment_variables : app.environment_variables;

    const target = input.webInstances ?? web.instances;
    const newVersion = randomUUID();
    const webPatch: RowUpdate<'processes'> = {
      version: newVersion,
      instances: target,
      launched_version: newVersion,
      launched_droplet_guid: source.droplet.guid,
      launched_environment_variables: newEnv,
    };
    if (input.memoryInMb !== null) webPatch.memory_in_mb = input.memoryInMb;
    if (input.diskInMb !== null) webPatch.disk_in_mb = input.diskInMb;
    if (input.logRateLimit !== null) webPatch.log_rate_limit_in_bytes_per_second = input.logRateLimit;
    if (source.revision) {
      // A rollback runs the revision's commands too.
      const commands = parseCommands(source.revision.commands);
      if (WEB in commands) webPatch.command = commands[WEB] ?? null;
      const others = await tx.db.selectFrom('processes').select(['guid', 'generation', 'type', 'command']).where('app_guid', '=', app.guid).where('type', '!=', WEB).execute();
      for (const p of others) {
        if (p.type in commands && commands[p.type] !== p.command) await tx.update('processes', p.guid, p.generation, { command: commands[p.type] ?? null });
      }
    }
    await tx.update('processes', web.guid, web.generation, webPatch);
    if (stopped) {
      const others = await tx.db.selectFrom('processes').select(['guid', 'generation']).where('app_guid', '=', app.guid).where('type', '!=', WEB).execute();
      for (const p of others) await tx.update('processes', p.guid, p.generation, { version: randomUUID() });
    }

    const revision = await recordRevision(tx, app.guid, source.revision ? { description: rolledBackTo(source.revision.version) } : {});

    const steps = input.strategy === 'canary' ? input.canarySteps : null;
    const firstGoal = input.strategy === 'canary' ? Math.min(target, canaryInstances(target, steps, 1)) : target;
    const guid = newGuid();
    const state: DeploymentState = stopped ? 'DEPLOYED' : input.strategy === 'canary' ? 'PREPAUSED' : 'DEPLOYING';
    const status = statusOf(state);
    await tx.db
      .insertInto('deployments')
      .values({
        guid,
        created_at: tx.now,
        updated_at: tx.now,
        generation: 1,
        app_guid: app.guid,
        state,
        status_value: status.value,
        status_reason: status.reason,
        strategy: input.strategy,
        droplet_guid: source.droplet.guid,
        previous_droplet_guid: previousDroplet,
        revision_guid: revision?.guid ?? null,
        previous_revision_guid: previousRevision,
        process_guid: web.guid,
        process_type: WEB,
        old_version: web.version,
        new_version: newVersion,
        original_instances: original,
        target_instances: target,
        new_instances: stopped ? target : Math.min(input.maxInFlight, firstGoal),
        old_instances: stopped ? 0 : original,
        max_in_flight: input.maxInFlight,
        web_instances: input.webInstances,
        memory_in_mb: input.memoryInMb,
        disk_in_mb: input.diskInMb,
        log_rate_limit_in_bytes_per_second: input.logRateLimit,
        canary_steps: steps ? JSON.stringify(steps) : null,
        canary_step: 1,
        previous_environment_variables: previousEnv,
        previous_command: web.command,
        previous_memory_in_mb: web.memory_in_mb,
        previous_disk_in_mb: web.disk_in_mb,
        previous_log_rate_limit: web.log_rate_limit_in_bytes_per_second,
        last_healthy_at: tx.now,
        last_status_change: tx.now,
        error: null,
      })
      .execute();
    tx.changed('deployments', guid, 'create');
    const metadata = await saveMetadata(tx, 'deployments', guid, input.metadata);
    await auditApp(tx, ctx, 'deployment.create', scope, {
      deployment_guid: guid,
      droplet_guid: source.droplet.guid,
      type: input.strategy,
      revision_guid: revision?.guid ?? null,
      request: {
        strategy: input.strategy,
        max_in_flight: input.maxInFlight,
        ...(source.revision ? { revision: { guid: source.revision.guid } } : { droplet: { guid: source.droplet.guid } }),
      },
    });
    return { deployment: await loadDeployment(tx.db, guid), metadata };
  });
}

// ---- update / actions ----

export async function updateDeployment(ctx: Ctx, guid: string, input: UpdateDeployment): Promise<{ deployment: Row<'deployments'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const scope = await findVisibleDeployment(ctx, guid);
  if (!(await ctx.access.canWriteSpace(scope.space.guid))) throw notAuthorized();
  return ctx.store.write(async (tx) => {
    const metadata = await saveMetadata(tx, 'deployments', guid, input.metadata);
    await tx.update('deployments', guid, scope.deployment.generation, {});
    await auditApp(tx, ctx, 'deployment.update', scope, { deployment_guid: guid, request: input });
    return { deployment: await loadDeployment(tx.db, guid), metadata };
  });
}

/** Cancel: the app's droplet goes back at once; the controller restores the old instances and removes the new. */
export async function cancelDeployment(ctx: Ctx, guid: string): Promise<void> {
  const scope = await findVisibleDeployment(ctx, guid);
  await requireAppManager(ctx, scope);
  await ctx.store.write(async (tx) => {
    const d = await loadDeployment(tx.db, guid);
    if (!isActive(d.state)) throw unprocessable(cannotCancel(d.status_value, d.status_reason));
    if (d.state !== 'CANCELING') {
      const app = await tx.db.selectFrom('apps').selectAll().where('guid', '=', d.app_guid).executeTakeFirstOrThrow();
      if (d.previous_droplet_guid && app.droplet_guid !== d.previous_droplet_guid) {
        await tx.update('apps', app.guid, app.generation, { droplet_guid: d.previous_droplet_guid });
      }
      await transition(tx, d, 'CANCELING');
    }
    await auditApp(tx, ctx, 'deployment.cancel', scope, { deployment_guid: guid, droplet_guid: d.droplet_guid });
  });
}

/** Continue a paused canary: the next step, or after the last one the rest of the rollout. */
export async function continueDeployment(ctx: Ctx, guid: string): Promise<void> {
  const scope = await findVisibleDeployment(ctx, guid);
  await requireAppManager(ctx, scope);
  await ctx.store.write(async (tx) => {
    const d = await loadDeployment(tx.db, guid);
    if (d.state !== 'PAUSED') throw unprocessable(cannotContinue(d.status_value, d.status_reason));
    const last = d.canary_step >= stepCount(canarySteps(d));
    await transition(tx, d, last ? 'DEPLOYING' : 'PREPAUSED', last ? {} : { canary_step: d.canary_step + 1 });
    await auditApp(tx, ctx, 'deployment.continue', scope, { deployment_guid: guid, droplet_guid: d.droplet_guid });
  });
}
