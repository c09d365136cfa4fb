import type { Kysely } from 'kysely';
import { parseJsonObject } from '../domain/apps.ts';
import { notAuthorized, notFound } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { revisionReasons, type RevisionContent, type UpdateRevision } from '../domain/revisions.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { auditApp, findVisibleApp, appScopeFor, type AppScope } from './apps.ts';
import type { Ctx } from './context.ts';

export const REVISION_LIST: ListSpec = { filters: ['versions'], labelSelector: true };
export const DEPLOYED_REVISION_LIST: ListSpec = { createdAts: false, updatedAts: false };

export interface RevisionScope extends AppScope {
  revision: Row<'revisions'>;
}

/** Process type → command (null = detected); parseJsonObject would drop the nulls. */
export function parseCommands(text: string): Record<string, string | null> {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    return Object.fromEntries(Object.entries(v).map(([k, c]) => [k, typeof c === 'string' ? c : null]));
  } catch {
    return {};
  }
}

export const contentOf = (r: Row<'revisions'>): RevisionContent => ({
  dropletGuid: r.droplet_guid,
  environmentVariables: parseJsonObject(r.environment_variables),
  commands: parseCommands(r.commands),
});

// ---- recording ----

/** What the app would run now: its current droplet, user variables and process commands. */
async function currentContent(db: Kysely<Database>, app: Row<'apps'>): Promise<RevisionContent | undefined> {
  if (!app.droplet_guid) return undefined;
  const procs = await db.selectFrom('processes').select(['type', 'command']).where('app_guid', '=', app.guid).orderBy('type').execute();
  return {
    dropletGuid: app.droplet_guid,
    environmentVariables: parseJsonObject(app.environment_variables),
    commands: Object.fromEntries(procs.map((p) => [p.type, p.command])),
  };
}

export const latestRevision = (db: Kysely<Database>, appGuid: string) =>
  db.selectFrom('revisions').selectAll().where('app_guid', '=', appGuid).orderBy('version', 'desc').limit(1).executeTakeFirst();

/**
 * Makes sure a revision describes what the app is about to run (CF's RevisionResolver): with revisions enabled,
 * a new revision is recorded when droplet, variables or commands differ from the latest one (or there is none,
 * or `description` forces one, as a rollback does). The app's processes then name it. Returns the revision the
 * app runs, or undefined when revisions are off.
 */
export async function recordRevision(tx: WriteTx, appGuid: string, opts: { description?: string } = {}): Promise<Row<'revisions'> | undefined> {
  const app = await tx.db.selectFrom('apps').selectAll().where('guid', '=', appGuid).executeTakeFirst();
  if (!app || app.revisions_enabled !== 1) return undefined;
  const current = await currentContent(tx.db, app);
  if (!current) return undefined;
  const latest = await latestRevision(tx.db, app.guid);
  const reasons = opts.description ? [opts.description] : revisionReasons(latest ? contentOf(latest) : undefined, current);
  let revision = latest;
  if (reasons.length > 0 || !latest) {
    const guid = newGuid();
    // Upstream wraps the per-app counter at 9999.
    const version = latest ? (latest.version % 9999) + 1 : 1;
    await tx.db
      .insertInto('revisions')
      .values({
        guid,
        created_at: tx.now,
        updated_at: tx.now,
        generation: 1,
        app_guid: app.guid,
        version,
        droplet_guid: current.dropletGuid,
        environment_variables: JSON.stringify(current.environmentVariables),
        commands: JSON.stringify(current.commands),
        description: reasons.join(' '),
      })
      .execute();
    tx.changed('revisions', guid, 'create');
    revision = await tx.db.selectFrom('revisions').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
  }
  // Not a user-visible process change: no generation bump (that would race API updates of the process).
  await tx.db.updateTable('processes').set({ revision_guid: revision!.guid }).where('app_guid', '=', app.guid).execute();
  return revision;
}

/** For the process controller: record the revision an app's web process is (re)launched with. */
export function recordLaunchRevision(store: Store, appGuid: string): Promise<unknown> {
  return store.write((tx) => recordRevision(tx, appGuid));
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

/** Revisions linked to started processes: the ones processes run, plus the side a running deployment rolls away from. */
export async function listDeployedRevisions(ctx: Ctx, params: ListParams, appGuid: string): Promise<Page<Row<'revisions'>>> {
  const { app } = await findVisibleApp(ctx, appGuid);
  const guids = new Set<string>();
  if (app.state === 'STARTED') {
    const procs = await ctx.store.db.selectFrom('processes').select('revision_guid').where('app_guid', '=', app.guid).where('instances', '>', 0).execute();
    for (const p of procs) if (p.revision_guid) guids.add(p.revision_guid);
    const active = await ctx.store.db
      .selectFrom('deployments')
      .select('previous_revision_guid')
      .where('app_guid', '=', app.guid)
      .where('status_value', '=', 'ACTIVE')
      .execute();
    for (const d of active) if (d.previous_revision_guid) guids.add(d.previous_revision_guid);
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
export async function deployableDroplets(db: Kysely<Database>, revisions: Array<Pick<Row<'revisions'>, 'droplet_guid'>>): Promise<Set<string>> {
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
    await tx.update('revisions', scope.revision.guid, scope.revision.generation, {});
    await auditApp(tx, ctx, 'revision.update', scope, { revision_guid: scope.revision.guid, request: input });
    return { revision: await tx.db.selectFrom('revisions').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow(), metadata };
  });
}

/** `GET /v3/revisions/:guid/environment_variables`: admins, admin read-only and space developers. */
export async function getRevisionEnvironmentVariables(ctx: Ctx, guid: string): Promise<{ revision: Row<'revisions'>; vars: Record<string, string> }> {
  const scope = await findVisibleRevision(ctx, guid);
  if (!(await ctx.access.canReadSpaceSecrets(scope.space.guid))) throw notAuthorized();
  await ctx.store.write((tx) => auditApp(tx, ctx, 'revision.environment_variables.show', scope, { revision_guid: scope.revision.guid }));
  return { revision: scope.revision, vars: parseJsonObject(scope.revision.environment_variables) };
}
