import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { parseJsonObject, UNABLE_TO_ASSIGN_DROPLET } from '../domain/apps.ts';
import {
  APP_INVALID,
  canaryStepTarget,
  cannotCancel,
  cannotContinue,
  isActive,
  NO_DROPLET,
  REVISION_INVALID,
  REVISIONS_DISABLED,
  statusOf,
  stepCount,
  type CreateDeployment,
  type DeploymentState,
  type UpdateDeployment,
} from '../domain/deployments.ts';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { WEB } from '../domain/processes.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { loadOneMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row, RowUpdate } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { auditApp, insertProcess } from './apps.ts';
import { findVisibleApp, requireAppManager, appScopeFor, type AppScope } from './app-scope.ts';
import type { Ctx } from './context.ts';
import { assertProcessesFit, assertResizeFits, toRun } from './process-quotas.ts';
import { parseCommands } from '../domain/revisions.ts';
import { recordRevision, recordRollbackRevision } from './revisions.ts';
import { canarySteps, transition, webProcesses } from '../lifecycle/deployments.ts';

export const DEPLOYMENT_LIST: ListSpec = {
  filters: ['app_guids', 'states', 'status_reasons', 'status_values'],
  labelSelector: true,
};

export interface DeploymentScope extends AppScope {
  deployment: Row<'deployments'>;
}

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
  if (f.states) q = q.where('deployments.state', 'in', f.states as DeploymentState[]); // unknown states match nothing
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
export async function revisionVersions(ctx: Pick<Ctx, 'store'>, deployments: Array<Pick<Row<'deployments'>, 'revision_guid'>>): Promise<Map<string, number>> {
  const db = ctx.store.db;
  const guids = [...new Set(deployments.map((d) => d.revision_guid).filter((g): g is string => !!g))];
  if (guids.length === 0) return new Map();
  const rows = await db.selectFrom('revisions').select(['guid', 'version']).where('guid', 'in', guids).execute();
  return new Map(rows.map((r) => [r.guid, r.version]));
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
 * Upstream's enhanced_deployment_create_error: a quota refusal of the new process says that the surge may be what
 * does not fit.
 */
async function withDeploymentQuotaHint(db: Kysely<Database>, scope: AppScope, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (err) {
    if (!(err instanceof KilnError) || err.errorName !== 'UnprocessableEntity') throw err;
    const detail = err.detail;
    if (/space_quota_exceeded|space_app_instance_limit_exceeded/.test(detail)) {
      throw unprocessable(
        `${detail} for space ${scope.space.name}. This space's quota may not be large enough to support rolling deployments or your configured max-in-flight.`,
      );
    }
    if (/quota_exceeded|app_instance_limit_exceeded/.test(detail)) {
      const org = await db.selectFrom('organizations').select('name').where('guid', '=', scope.space.organization_guid).executeTakeFirstOrThrow();
      throw unprocessable(
        `${detail} for organization ${org.name}. This organization's quota may not be large enough to support rolling deployments or your configured max-in-flight.`,
      );
    }
    throw err;
  }
}

/** Copies a web process for a rollout (upstream's clone_existing_web_process), with its labels and annotations. */
async function cloneWebProcess(tx: WriteTx, from: Row<'processes'>, patch: Partial<Row<'processes'>>): Promise<string> {
  const guid = newGuid();
  const { id: _id, ...columns } = from;
  await tx.insert('processes', { ...columns, ...patch, guid, observed_generation: 0 });
  const metadata = await loadOneMetadata(tx.db, 'processes', from.guid);
  await saveMetadata(tx, 'processes', guid, metadata);
  return guid;
}

/**
 * `POST /v3/deployments` (CONVENTIONS.md §18, upstream's DeploymentCreate). The droplet becomes the app's current
 * one at once, a revision is recorded when revisions are on, and an active deployment of the app is superseded.
 * A stopped app is updated in place and started (the deployment is born DEPLOYED and creates no process);
 * otherwise a new web process is created beside the old ones, at `max_in_flight` instances (or the first canary
 * step), and the deployment controller scales it up while it scales the old ones down.
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
    const webs = await webProcesses(tx.db, app.guid);
    if (app.state === 'STARTED' && (input.webInstances !== null || input.memoryInMb !== null || input.logRateLimit !== null)) {
      // Upstream's validate_quota!: the web process as the options would size it must fit.
      const last = webs[webs.length - 1]!;
      await withDeploymentQuotaHint(tx.db, scope, () =>
        assertResizeFits(tx.db, scope.space, last, { instances: input.webInstances, memoryInMb: input.memoryInMb, logRate: input.logRateLimit }),
      );
    }
    const oldest = webs[0]!;
    const newest = webs[webs.length - 1]!;
    const stopped = app.state !== 'STARTED';

    // A newer deployment wins: the active one ends SUPERSEDED and keeps the original count it started from; its
    // process stays as one more old web process that this deployment scales down.
    const active = await tx.db.selectFrom('deployments').selectAll().where('app_guid', '=', app.guid).where('status_value', '=', 'ACTIVE').orderBy('created_at', 'desc').execute();
    const original = active[0] ? active[0].original_instances : oldest.instances;

    // What the old web processes run stays what they were launched with (a `cf set-env` before
    // `cf restart --strategy rolling` must not reach them); the process controller keeps it while the rollout runs.
    for (const p of webs) {
      if (p.launched_version !== p.version || !p.launched_droplet_guid) {
        await tx.updateStatus('processes', p.guid, {
          launched_version: p.version,
          launched_droplet_guid: app.droplet_guid,
          launched_environment_variables: app.environment_variables,
        });
      }
    }
    const previousDroplet = app.droplet_guid;

    const appPatch: RowUpdate<'apps'> = {};
    if (app.droplet_guid !== source.droplet.guid) appPatch.droplet_guid = source.droplet.guid;
    if (source.revision) appPatch.environment_variables = source.revision.environment_variables;
    if (stopped) appPatch.state = 'STARTED';
    if (Object.keys(appPatch).length > 0) await tx.update('apps', app.guid, appPatch, { expectedGeneration: app.generation });
    const newEnv = source.revision ? source.revision.environment_variables : app.environment_variables;
    const commands = source.revision ? parseCommands(source.revision.commands) : undefined;
    const webCommand = commands && WEB in commands ? (commands[WEB] ?? null) : newest.command;

    const revision = source.revision
      ? await recordRollbackRevision(tx, app.guid, source.revision, { assign: stopped })
      : await recordRevision(tx, app.guid, { assign: stopped ? 'all' : 'none' });

    const guid = newGuid();
    const steps = input.strategy === 'canary' ? input.canarySteps : null;
    const target = input.webInstances ?? original;
    const scaling: Partial<Row<'processes'>> = {};
    if (input.memoryInMb !== null) scaling.memory_in_mb = input.memoryInMb;
    if (input.diskInMb !== null) scaling.disk_in_mb = input.diskInMb;
    if (input.logRateLimit !== null) scaling.log_rate_limit_in_bytes_per_second = input.logRateLimit;
    let processGuid: string;
    let newVersion: string;
    if (stopped) {
      // Upstream starts a stopped app in place (AppStart): every process restarts with the new droplet.
      processGuid = newest.guid;
      newVersion = randomUUID();
      await tx.update('processes', newest.guid, {
        ...scaling,
        command: webCommand,
        version: newVersion,
        ...(input.webInstances !== null ? { instances: input.webInstances } : {}),
      }, { expectedGeneration: newest.generation });
      const others = await tx.db.selectFrom('processes').selectAll().where('app_guid', '=', app.guid).where('type', '!=', WEB).execute();
      for (const p of others) {
        const patch: RowUpdate<'processes'> = { version: randomUUID() };
        if (commands && p.type in commands) patch.command = commands[p.type] ?? null;
        await tx.update('processes', p.guid, patch, { expectedGeneration: p.generation });
      }
      // Starting the app (upstream's AppStart) needs room for all of its processes.
      const all = await tx.db.selectFrom('processes').selectAll().where('app_guid', '=', app.guid).orderBy('id').execute();
      await withDeploymentQuotaHint(tx.db, scope, () => assertProcessesFit(tx.db, scope.space, all.map(toRun)));
    } else {
      for (const d of active) await transition(tx, d, d.state === 'DEPLOYING' ? 'DEPLOYED' : 'CANCELED', {}, true);
      const first = input.strategy === 'canary' ? canaryStepTarget(original, input.webInstances, steps, 1).canary : target;
      newVersion = randomUUID();
      processGuid = await cloneWebProcess(tx, newest, {
        ...scaling,
        command: webCommand,
        instances: Math.min(input.maxInFlight, first),
        version: newVersion,
        revision_guid: revision?.guid ?? null,
        launched_version: newVersion,
        launched_droplet_guid: source.droplet.guid,
        launched_environment_variables: newEnv,
      });
      // The new process runs beside the old ones: its instances must fit the quotas too (upstream validates the
      // process as it starts).
      const created = await tx.db.selectFrom('processes').selectAll().where('guid', '=', processGuid).executeTakeFirstOrThrow();
      await withDeploymentQuotaHint(tx.db, scope, () => assertProcessesFit(tx.db, scope.space, [toRun(created)]));
    }

    const state: DeploymentState = stopped ? 'DEPLOYED' : input.strategy === 'canary' ? 'PREPAUSED' : 'DEPLOYING';
    const status = statusOf(state);
    const newProcess = await tx.db.selectFrom('processes').selectAll().where('guid', '=', processGuid).executeTakeFirstOrThrow();
    await tx.insert('deployments', {
      guid,
      app_guid: app.guid,
      state,
      status_value: status.value,
      status_reason: status.reason,
      strategy: input.strategy,
      droplet_guid: source.droplet.guid,
      previous_droplet_guid: previousDroplet,
      revision_guid: revision?.guid ?? null,
      previous_revision_guid: newest.revision_guid,
      process_guid: processGuid,
      process_type: WEB,
      old_version: null,
      new_version: newVersion,
      original_instances: original,
      target_instances: target,
      new_instances: newProcess.instances,
      old_instances: stopped ? 0 : webs.reduce((n, p) => n + p.instances, 0),
      max_in_flight: input.maxInFlight,
      web_instances: input.webInstances,
      memory_in_mb: input.memoryInMb,
      disk_in_mb: input.diskInMb,
      log_rate_limit_in_bytes_per_second: input.logRateLimit,
      canary_steps: steps ? JSON.stringify(steps) : null,
      canary_step: 1,
      previous_environment_variables: app.environment_variables,
      previous_command: newest.command,
      previous_memory_in_mb: newest.memory_in_mb,
      previous_disk_in_mb: newest.disk_in_mb,
      previous_log_rate_limit: newest.log_rate_limit_in_bytes_per_second,
      last_healthy_at: tx.now,
      last_status_change: tx.now,
      error: null,
      new_processes: JSON.stringify(stopped ? [] : [{ guid: processGuid, type: WEB }]),
    });
    const metadata = await saveMetadata(tx, 'deployments', guid, input.metadata);
    await auditApp(tx, ctx, 'deployment.create', scope, {
      deployment_guid: guid,
      droplet_guid: source.droplet.guid,
      type: source.revision ? 'rollback' : null,
      revision_guid: revision?.guid ?? null,
      request: {
        strategy: input.strategy,
        max_in_flight: input.maxInFlight,
        ...(source.revision ? { revision: { guid: source.revision.guid } } : { droplet: { guid: source.droplet.guid } }),
      },
      strategy: input.strategy,
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
    await tx.update('deployments', guid, {}, { expectedGeneration: scope.deployment.generation });
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
        await tx.update('apps', app.guid, { droplet_guid: d.previous_droplet_guid }, { expectedGeneration: app.generation });
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
