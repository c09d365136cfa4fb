import { ownershipKeys } from '../domain/declared.ts';
import { assertNotDeclared } from './declared-guard.ts';
import type { Kysely } from 'kysely';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import {
  isSpaceFeature,
  SPACE_NAME_TAKEN,
  type CreateSpace,
  type SpaceFeatureName,
  type UpdateSpace,
  type UpdateSpaceFeature,
} from '../domain/spaces.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { assertOrgWritable, assertSpaceWritable, findVisibleOrg, findVisibleSpace } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import { deleteSpacesCascade } from './cascade.ts';
import type { Ctx } from './context.ts';
import { assertSpaceContentsNotLockedByOthers } from './lock-guard.ts';
import { enqueueJob, type JobHandlers, jobInFlight } from '../lifecycle/jobs.ts';
import { nameInUse } from './name-in-use.ts';

/** `include=org` is an alias of `include=organization`; both add `included.organizations`. */
export const SPACE_INCLUDES = ['org', 'organization'] as const;

export const SPACE_LIST: ListSpec = {
  orderBy: ['name'],
  filters: ['names', 'organization_guids'],
  labelSelector: true,
  include: SPACE_INCLUDES,
};

export async function listSpaces(ctx: Ctx, params: ListParams): Promise<Page<Row<'spaces'>>> {
  let q = ctx.store.db.selectFrom('spaces').selectAll('spaces');
  // No condition at all for global readers: even `1 = 1` keeps SQLite from answering count(*) off an index.
  if (!ctx.access.global) q = q.where((eb) => ctx.access.spaceVisible(eb, 'spaces.guid'));
  if (params.filters.names) q = q.where('spaces.name', 'in', params.filters.names);
  if (params.filters.organization_guids) q = q.where('spaces.organization_guid', 'in', params.filters.organization_guids);
  return listPage(q, listOptions('spaces', params));
}

export const getSpace = (ctx: Ctx, guid: string) => findVisibleSpace(ctx.access, ctx.store.db, guid);

/**
 * The parent orgs of some spaces, for `include=organization`: de-duplicated and ordered by created_at,
 * guid. Whoever can read a space can read its org, so no further visibility filter is needed.
 */
export async function organizationsOf(ctx: Pick<Ctx, 'store'>, spaces: Array<Pick<Row<'spaces'>, 'organization_guid'>>) {
  const db = ctx.store.db;
  const guids = [...new Set(spaces.map((s) => s.organization_guid))];
  if (guids.length === 0) return [];
  return db.selectFrom('organizations').selectAll().where('guid', 'in', guids).orderBy('created_at').orderBy('guid').execute();
}

const loadSpace = (db: Kysely<Database>, guid: string) =>
  db.selectFrom('spaces').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

/** §8.3 step 7 for the org a space belongs to: not being deleted, not suspended (admins bypass that). */
async function assertParentOrgWritable(ctx: Ctx, space: Pick<Row<'spaces'>, 'organization_guid'>): Promise<void> {
  const org = await ctx.store.db
    .selectFrom('organizations')
    .select(['status', 'suspended'])
    .where('guid', '=', space.organization_guid)
    .executeTakeFirstOrThrow();
  assertOrgWritable(ctx.access, org);
}

/** Writes to a space need it not being deleted and its org writable. */
async function assertSpaceMutable(ctx: Ctx, space: Row<'spaces'>): Promise<void> {
  assertSpaceWritable(space);
  await assertParentOrgWritable(ctx, space);
}

function auditSpace(tx: WriteTx, ctx: Ctx, type: string, space: Pick<Row<'spaces'>, 'guid' | 'name' | 'organization_guid'>, data: unknown) {
  return recordAudit(tx, {
    type: `audit.space.${type}`,
    actor: ctx.principal,
    target: { type: 'space', guid: space.guid, name: space.name },
    data: { request: data },
    spaceGuid: space.guid,
    organizationGuid: space.organization_guid,
  });
}

export async function createSpace(ctx: Ctx, input: CreateSpace): Promise<{ space: Row<'spaces'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const orgGuid = input.relationships.organization.data.guid;
  const org = await ctx.store.db.selectFrom('organizations').selectAll().where('guid', '=', orgGuid).executeTakeFirst();
  if (!org || !(await ctx.access.canReadOrg(org.guid))) {
    throw unprocessable('Invalid organization. Ensure the organization exists and you have access to it.');
  }
  if (!(await ctx.access.canManageOrg(org.guid))) throw notAuthorized();
  assertOrgWritable(ctx.access, org);
  try {
    return await ctx.store.write(async (tx) => {
      if (await nameInUse(tx.db, 'spaces', input.name, { within: { organization_guid: org.guid }, anyCase: true })) throw unprocessable(SPACE_NAME_TAKEN);
      const guid = newGuid();
      // No roles are granted to the creator: the cf CLI assigns space_manager/space_developer itself and
      // fails if they already exist.
      await tx.insert('spaces', {
        guid,
        name: input.name,
        organization_guid: org.guid,
        status: 'active',
        allow_ssh: 1,
        isolation_segment_guid: null,
        space_quota_guid: null,
      });
      const metadata = await saveMetadata(tx, 'spaces', guid, input.metadata);
      await auditSpace(tx, ctx, 'create', { guid, name: input.name, organization_guid: org.guid }, input);
      return { space: await loadSpace(tx.db, guid), metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw unprocessable(SPACE_NAME_TAKEN);
    throw err;
  }
}

export async function updateSpace(
  ctx: Ctx,
  guid: string,
  input: UpdateSpace,
): Promise<{ space: Row<'spaces'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const space = await getSpace(ctx, guid);
  if (!(await ctx.access.canUpdateSpace(space))) throw notAuthorized();
  await assertSpaceMutable(ctx, space);
  const name = input.name ?? space.name;
  const changed = [...(input.name !== undefined && input.name !== space.name ? ['name'] : []), ...ownershipKeys(input.metadata, ctx.access.admin)];
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'spaces', guid: space.guid, type: 'Space', name: space.name }, changed);
  try {
    return await ctx.store.write(async (tx) => {
      if (input.name !== undefined && (await nameInUse(tx.db, 'spaces', name, { within: { organization_guid: space.organization_guid }, anyCase: true, except: space.guid }))) {
        throw await spaceRenameTaken(tx.db, space.organization_guid, name);
      }
      await tx.update('spaces', space.guid, { name }, { expectedGeneration: space.generation });
      const metadata = await saveMetadata(tx, 'spaces', space.guid, input.metadata);
      await auditSpace(tx, ctx, 'update', { ...space, name }, input);
      return { space: await loadSpace(tx.db, space.guid), metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw await spaceRenameTaken(ctx.store.db, space.organization_guid, name);
    throw err;
  }
}

/** A rename's wording differs from a create's upstream (space_update.rb names the org). */
async function spaceRenameTaken(db: Kysely<Database>, orgGuid: string, name: string) {
  const org = await db.selectFrom('organizations').select('name').where('guid', '=', orgGuid).executeTakeFirst();
  return unprocessable(`Organization '${org?.name ?? orgGuid}' already contains a space with name '${name}'.`);
}

/** Marks the space as being deleted and returns the job that removes it and everything in it. */
export async function deleteSpace(ctx: Ctx, guid: string): Promise<string> {
  const space = await getSpace(ctx, guid);
  if (!(await ctx.access.canManageOrg(space.organization_guid))) throw notAuthorized();
  await assertParentOrgWritable(ctx, space);
  await assertSpaceContentsNotLockedByOthers(ctx.store.db, ctx.principal, space.guid);
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'spaces', guid: space.guid, type: 'Space', name: space.name }, 'delete');
  return ctx.store.write(async (tx) => {
    const inFlight = await jobInFlight(tx.db, 'space.delete', space.guid);
    if (inFlight) return inFlight; // a repeated delete hands back the job already under way
    await tx.updateStatus('spaces', space.guid, { status: 'deleting' });
    await auditSpace(tx, ctx, 'delete-request', space, { recursive: true });
    return enqueueJob(tx, { operation: 'space.delete', resourceType: 'space', resourceGuid: space.guid, userGuid: ctx.principal.guid });
  });
}

export function registerSpaceJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('space.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const space = await tx.db.selectFrom('spaces').select('guid').where('guid', '=', job.resource_guid).executeTakeFirst();
      if (!space) return; // already gone: a re-run after a crash finishes quietly
      await deleteSpacesCascade(tx, [space.guid]);
    });
  });
}

// ---- features ----

export interface SpaceFeature {
  name: SpaceFeatureName;
  enabled: boolean;
}

const featuresOf = (space: Row<'spaces'>): SpaceFeature[] => [{ name: 'ssh', enabled: space.allow_ssh === 1 }];

export async function listSpaceFeatures(ctx: Ctx, guid: string): Promise<SpaceFeature[]> {
  return featuresOf(await getSpace(ctx, guid));
}

function findFeature(space: Row<'spaces'>, name: string): SpaceFeature {
  const feature = isSpaceFeature(name) ? featuresOf(space).find((f) => f.name === name) : undefined;
  if (!feature) throw notFound('Feature');
  return feature;
}

export async function getSpaceFeature(ctx: Ctx, guid: string, name: string): Promise<SpaceFeature> {
  return findFeature(await getSpace(ctx, guid), name);
}

export async function updateSpaceFeature(ctx: Ctx, guid: string, name: string, input: UpdateSpaceFeature): Promise<SpaceFeature> {
  const space = await getSpace(ctx, guid);
  findFeature(space, name);
  if (!(await ctx.access.canUpdateSpace(space))) throw notAuthorized();
  await assertSpaceMutable(ctx, space);
  const updated = await ctx.store.write(async (tx) => {
    // ssh is the only feature; it takes effect for new ssh sessions at once (CONVENTIONS.md §16).
    await tx.update('spaces', space.guid, { allow_ssh: input.enabled ? 1 : 0 }, { expectedGeneration: space.generation });
    await auditSpace(tx, ctx, 'update', space, { allow_ssh: input.enabled });
    return loadSpace(tx.db, space.guid);
  });
  return findFeature(updated, name);
}

// ---- usage summaries ----

export interface UsageSummary {
  started_instances: number;
  memory_in_mb: number;
  routes: number;
  service_instances: number;
  reserved_ports: number;
  domains: number;
  per_app_tasks: number;
  service_keys: number;
}

async function privateDomainCount(db: Kysely<Database>, orgGuid: string): Promise<number> {
  const row = await db
    .selectFrom('domains')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('owning_organization_guid', '=', orgGuid)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/**
 * Usage counted from the store, for one space or a whole org: started instances and their memory are the
 * desired instances of STARTED apps' processes; domains are the org's private domains, as upstream counts them.
 * Tasks, service instances and keys do not exist in Kiln yet, so they count 0.
 */
async function usageOf(db: Kysely<Database>, orgGuid: string, spaceGuid?: string): Promise<UsageSummary> {
  const spaceGuids = spaceGuid
    ? [spaceGuid]
    : (await db.selectFrom('spaces').select('guid').where('organization_guid', '=', orgGuid).execute()).map((s) => s.guid);
  let instances = 0;
  let memory = 0;
  let routes = 0;
  if (spaceGuids.length > 0) {
    const started = await db
      .selectFrom('processes')
      .innerJoin('apps', 'apps.guid', 'processes.app_guid')
      .select((eb) => [
        eb.fn.coalesce(eb.fn.sum<number>('processes.instances'), eb.lit(0)).as('instances'),
        eb.fn.coalesce(eb.fn.sum<number>(eb('processes.instances', '*', eb.ref('processes.memory_in_mb'))), eb.lit(0)).as('memory'),
      ])
      .where('apps.space_guid', 'in', spaceGuids)
      .where('apps.state', '=', 'STARTED')
      .executeTakeFirst();
    instances = Number(started?.instances ?? 0);
    memory = Number(started?.memory ?? 0);
    const r = await db.selectFrom('routes').select((eb) => eb.fn.countAll<number>().as('n')).where('space_guid', 'in', spaceGuids).executeTakeFirst();
    routes = Number(r?.n ?? 0);
  }
  return {
    started_instances: instances,
    memory_in_mb: memory,
    routes,
    service_instances: 0,
    reserved_ports: 0,
    domains: await privateDomainCount(db, orgGuid),
    per_app_tasks: 0,
    service_keys: 0,
  };
}

export async function spaceUsageSummary(ctx: Ctx, guid: string): Promise<{ space: Row<'spaces'>; usage: UsageSummary }> {
  const space = await getSpace(ctx, guid);
  return { space, usage: await usageOf(ctx.store.db, space.organization_guid, space.guid) };
}

export async function organizationUsageSummary(ctx: Ctx, guid: string): Promise<{ org: Row<'organizations'>; usage: UsageSummary }> {
  const org = await findVisibleOrg(ctx.access, ctx.store.db, guid);
  return { org, usage: await usageOf(ctx.store.db, org.guid) };
}

// ---- DELETE /v3/spaces/:guid/routes?unmapped=true ----

/**
 * Starts deleting the routes of a space that are mapped to no app (the routes capability registers the
 * `space.delete_unmapped_routes` handler). A repeated request hands back the job already under way.
 */
export async function deleteUnmappedRoutes(ctx: Ctx, guid: string): Promise<string> {
  const space = await getSpace(ctx, guid);
  if (!(await ctx.access.canManageApps(space.guid))) throw notAuthorized();
  await assertSpaceMutable(ctx, space);
  return ctx.store.write(async (tx) => {
    const inFlight = await jobInFlight(tx.db, 'space.delete_unmapped_routes', space.guid);
    if (inFlight) return inFlight;
    return enqueueJob(tx, {
      operation: 'space.delete_unmapped_routes',
      resourceType: 'space',
      resourceGuid: space.guid,
      userGuid: ctx.principal.guid,
    });
  });
}
