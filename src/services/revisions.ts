import type { Kysely } from 'kysely';
import { parseJsonObject } from '../domain/apps.ts';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { revisionReasons, rolledBackTo, ROLLBACK_TO_SAME, type RevisionContent, type UpdateRevision } from '../domain/revisions.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { auditApp } from './apps.ts';
import { appScopeFor, findVisibleApp, requireAppSecretsReader, type AppScope } from './app-scope.ts';
import type { Ctx } from './context.ts';
import { openEnvVars, sealEnvVars } from '../store/env-vars.ts';
import type { SecretBox } from '../store/secret-box.ts';
import { parseCommands } from '../domain/revisions.ts';

export const REVISION_LIST: ListSpec = { filters: ['versions'], labelSelector: true };
export const DEPLOYED_REVISION_LIST: ListSpec = { createdAts: false, updatedAts: false };

export interface RevisionScope extends AppScope {
  revision: Row<'revisions'>;
}

export const contentOf = (r: Row<'revisions'>, secrets: SecretBox): RevisionContent => ({
  dropletGuid: r.droplet_guid,
  environmentVariables: openEnvVars(secrets, r.environment_variables),
  commands: parseCommands(r.commands),
});

// ---- recording ----

/** What the app would run now: its current droplet, user variables and process commands. */
async function currentContent(db: Kysely<Database>, app: Row<'apps'>, secrets: SecretBox): Promise<RevisionContent | undefined> {
  if (!app.droplet_guid) return undefined;
  // Oldest first, so that during a rollout the newest web process names the web command.
  const procs = await db.selectFrom('processes').select(['type', 'command']).where('app_guid', '=', app.guid).orderBy('created_at').orderBy('id').execute();
  return {
    dropletGuid: app.droplet_guid,
    environmentVariables: openEnvVars(secrets, app.environment_variables),
    commands: Object.fromEntries(procs.map((p) => [p.type, p.command])),
  };
}

export const latestRevision = (db: Kysely<Database>, appGuid: string) =>
  db.selectFrom('revisions').selectAll().where('app_guid', '=', appGuid).orderBy('version', 'desc').limit(1).executeTakeFirst();

async function insertRevision(tx: WriteTx, appGuid: string, latest: Row<'revisions'> | undefined, content: RevisionContent, description: string): Promise<Row<'revisions'>> {
  const guid = newGuid();
  // Upstream wraps the per-app counter at 9999.
  const version = latest ? (latest.version % 9999) + 1 : 1;
  await tx.insert('revisions', {
    guid,
    app_guid: appGuid,
    version,
    droplet_guid: content.dropletGuid,
    environment_variables: sealEnvVars(tx.secrets, content.environmentVariables),
    commands: JSON.stringify(content.commands),
    description,
  });
  return tx.db.selectFrom('revisions').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
}

/** Names the revision on the app's processes. Not a change the user asked of the process: status, no generation bump. */
async function assignRevision(tx: WriteTx, appGuid: string, revisionGuid: string): Promise<void> {
  await tx.updateStatusWhere('processes', (eb) => eb('app_guid', '=', appGuid), { revision_guid: revisionGuid });
}

/**
 * Makes sure a revision describes what the app is about to run (upstream's RevisionResolver.update_app_revision),
 * in the request that starts, restarts or deploys it: with revisions enabled, a new revision is recorded when
 * droplet, variables or commands differ from the latest one (or there is none). With `assign: 'all'` the app's
 * processes then name it; a rollout names it on the process it creates instead. Returns the revision the app
 * runs, or undefined when revisions are off.
 */
export async function recordRevision(tx: WriteTx, appGuid: string, opts: { assign?: 'all' | 'none' } = {}): Promise<Row<'revisions'> | undefined> {
  const app = await tx.db.selectFrom('apps').selectAll().where('guid', '=', appGuid).executeTakeFirst();
  if (!app || app.revisions_enabled !== 1) return undefined;
  const current = await currentContent(tx.db, app, tx.secrets);
  if (!current) return undefined;
  const latest = await latestRevision(tx.db, app.guid);
  const reasons = revisionReasons(latest ? contentOf(latest, tx.secrets) : undefined, current);
  const revision = reasons.length > 0 || !latest ? await insertRevision(tx, app.guid, latest, current, reasons.join(' ')) : latest;
  if ((opts.assign ?? 'all') === 'all') await assignRevision(tx, app.guid, revision.guid);
  return revision;
}

/**
 * A rollback (upstream's RevisionResolver.rollback_app_revision): a new revision with the target's droplet,
 * variables and commands, described by every difference from the latest revision and the rollback itself; a
 * target that is the same as the latest revision is refused.
 */
export async function recordRollbackRevision(tx: WriteTx, appGuid: string, target: Row<'revisions'>, opts: { assign: boolean }): Promise<Row<'revisions'> | undefined> {
  const app = await tx.db.selectFrom('apps').select('revisions_enabled').where('guid', '=', appGuid).executeTakeFirst();
  if (!app || app.revisions_enabled !== 1) return undefined;
  const latest = await latestRevision(tx.db, appGuid);
  const content = contentOf(target, tx.secrets);
  const reasons = latest ? revisionReasons(contentOf(latest, tx.secrets), content) : [];
  if (latest && reasons.length === 0) throw unprocessable(ROLLBACK_TO_SAME);
  const revision = await insertRevision(tx, appGuid, latest, content, [...reasons, rolledBackTo(target.version)].join(' '));
  if (opts.assign) await assignRevision(tx, appGuid, revision.guid);
  return revision;
}

// ---- reading ----

export async function findVisibleRevision(ctx: Ctx, guid: string): Promise<RevisionScope> {
  const revision = await ctx.store.db.selectFrom('revisions').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!revision) throw notFound('Revision');
  return { revision, ...(await appScopeFor(ctx, revision.app_guid, 'Revision')) };
}

export async function listRevisions(ctx: Ctx, params: ListParams, appGuid: string): Promise<Page<Row<'revisions'>>> {
  await findVisibleApp(ctx, appGuid);
  let q = ctx.store.db.selectFrom('revisions').selectAll('revisions').where('revisions.app_guid', '=', appGuid);
  const versions = params.filters.versions;
  if (versions) {
    const numbers = versions.filter((v) => /^\d{1,9}$/.test(v)).map(Number);
    q = q.where('revisions.version', 'in', numbers.length ? numbers : [-1]);
  }
  return listPage(q, listOptions('revisions', params));
}

/**
 * Revisions linked to started processes with instances: during a rollout the old web processes still name the
 * revision they run and the new one the revision it deploys, so both are deployed.
 */
export async function listDeployedRevisions(ctx: Ctx, params: ListParams, appGuid: string): Promise<Page<Row<'revisions'>>> {
  const { app } = await findVisibleApp(ctx, appGuid);
  const guids = new Set<string>();
  if (app.state === 'STARTED') {
    const procs = await ctx.store.db.selectFrom('processes').select('revision_guid').where('app_guid', '=', app.guid).where('instances', '>', 0).execute();
    for (const p of procs) if (p.revision_guid) guids.add(p.revision_guid);
  }
  const q = ctx.store.db
    .selectFrom('revisions')
    .selectAll('revisions')
    .where('revisions.app_guid', '=', app.guid)
    .where('revisions.guid', 'in', guids.size ? [...guids] : ['']);
  return listPage(q, {
    table: 'revisions',
    page: params.page,
    perPage: params.perPage,
    orderBy: params.orderBy ? { column: params.orderBy.field, desc: params.orderBy.desc } : undefined,
  });
}

/** Droplet guids among `revisions` that can still be deployed (the droplet exists and is STAGED). */
export async function deployableDroplets(ctx: Pick<Ctx, 'store'>, revisions: Array<Pick<Row<'revisions'>, 'droplet_guid'>>): Promise<Set<string>> {
  const db = ctx.store.db;
  const guids = [...new Set(revisions.map((r) => r.droplet_guid))];
  if (guids.length === 0) return new Set();
  const rows = await db.selectFrom('droplets').select('guid').where('guid', 'in', guids).where('state', '=', 'STAGED').execute();
  return new Set(rows.map((r) => r.guid));
}

// ---- writing ----

export async function updateRevision(ctx: Ctx, guid: string, input: UpdateRevision): Promise<{ revision: Row<'revisions'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const scope = await findVisibleRevision(ctx, guid);
  if (!(await ctx.access.canWriteSpace(scope.space.guid))) throw notAuthorized();
  return ctx.store.write(async (tx) => {
    const metadata = await saveMetadata(tx, 'revisions', scope.revision.guid, input.metadata);
    // Metadata lives in its own tables; the row's timestamp and generation record the update.
    await tx.update('revisions', scope.revision.guid, {}, { expectedGeneration: scope.revision.generation });
    await auditApp(tx, ctx, 'revision.update', scope, { revision_guid: scope.revision.guid, request: input });
    return { revision: await tx.db.selectFrom('revisions').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow(), metadata };
  });
}

/** `GET /v3/revisions/:guid/environment_variables`: admins, admin read-only and space developers. */
export async function getRevisionEnvironmentVariables(ctx: Ctx, guid: string): Promise<{ revision: Row<'revisions'>; vars: Record<string, string> }> {
  const scope = await findVisibleRevision(ctx, guid);
  await requireAppSecretsReader(ctx, scope);
  await ctx.store.write((tx) => auditApp(tx, ctx, 'revision.environment_variables.show', scope, { revision_guid: scope.revision.guid }));
  return { revision: scope.revision, vars: openEnvVars(ctx.store.secrets, scope.revision.environment_variables) };
}
