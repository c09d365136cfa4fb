import type { Expression, ExpressionBuilder, Kysely, SqlBool } from 'kysely';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import {
  applyChanges,
  DEFAULT_LIMITS,
  rubyList,
  spaceQuotaError,
  type CreateSpaceQuota,
  type QuotaLimits,
  type UpdateQuota,
} from '../domain/quotas.ts';
import { SPACE_ROLE_TYPES } from '../domain/roles.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listPage, type Page } from '../store/list-query.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { assertOrgWritable } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { enqueueJob, type JobHandlers, jobInFlight } from '../lifecycle/jobs.ts';
import { nameInUse } from './name-in-use.ts';
import { limitColumns, limitsOf, organizationQuotaOf } from './organization-quotas.ts';
import { everyRow } from '../store/every-row.ts';

export const SPACE_QUOTA_LIST: ListSpec = { filters: ['names', 'organization_guids', 'space_guids'] };

type SpaceQuotaRow = Row<'space_quotas'>;

/** The space quota in force for a space (null when it has none), for enforcement by other capabilities. */
export async function spaceQuotaOf(db: Kysely<Database>, spaceGuid: string): Promise<QuotaLimits | null> {
  const row = await db
    .selectFrom('space_quotas')
    .innerJoin('spaces', 'spaces.space_quota_guid', 'space_quotas.guid')
    .selectAll('space_quotas')
    .where('spaces.guid', '=', spaceGuid)
    .executeTakeFirst();
  return row ? limitsOf(row) : null;
}

/**
 * Who may read a space quota (upstream's `readable_space_quota_guids`): global readers; org managers of
 * its org; anyone with a space role in a space the quota is applied to.
 */
function visibleCondition(ctx: Ctx) {
  return (eb: ExpressionBuilder<Database, 'space_quotas'>): Expression<SqlBool> => {
    if (ctx.access.global) return everyRow();
    const me = ctx.access.userGuid;
    return eb.or([
      eb(
        'space_quotas.organization_guid',
        'in',
        eb.selectFrom('roles').select('roles.organization_guid').where('roles.user_guid', '=', me).where('roles.type', '=', 'organization_manager'),
      ),
      eb(
        'space_quotas.guid',
        'in',
        eb
          .selectFrom('spaces as vs')
          .select('vs.space_quota_guid')
          .where(
            'vs.guid',
            'in',
            eb.selectFrom('roles').select('roles.space_guid').where('roles.user_guid', '=', me).where('roles.type', 'in', [...SPACE_ROLE_TYPES]),
          ),
      ),
    ]);
  };
}

export async function listSpaceQuotas(ctx: Ctx, params: ListParams): Promise<Page<SpaceQuotaRow>> {
  let q = ctx.store.db
    .selectFrom('space_quotas')
    .selectAll('space_quotas')
    .$if(!ctx.access.global, (qb) => qb.where(visibleCondition(ctx)));
  if (params.filters.names) q = q.where('space_quotas.name', 'in', params.filters.names);
  if (params.filters.organization_guids) q = q.where('space_quotas.organization_guid', 'in', params.filters.organization_guids);
  const spaceGuids = params.filters.space_guids;
  if (spaceGuids) {
    q = q.where('space_quotas.guid', 'in', (eb) => eb.selectFrom('spaces as fs').select('fs.space_quota_guid').where('fs.guid', 'in', spaceGuids));
  }
  return listPage(q, {
    table: 'space_quotas',
    page: params.page,
    perPage: params.perPage,
    guids: params.filters.guids,
    timestamps: params.timestamps,
    orderBy: params.orderBy ? { column: params.orderBy.field, desc: params.orderBy.desc } : undefined,
  });
}

const findQuota = (db: Kysely<Database>, guid: string) => db.selectFrom('space_quotas').selectAll().where('guid', '=', guid).executeTakeFirst();

/** A space quota the caller can read, or 404 as if it did not exist. */
export async function getSpaceQuota(ctx: Ctx, guid: string): Promise<SpaceQuotaRow> {
  const quota = await ctx.store.db
    .selectFrom('space_quotas')
    .selectAll('space_quotas')
    .where('space_quotas.guid', '=', guid)
    .$if(!ctx.access.global, (qb) => qb.where(visibleCondition(ctx)))
    .executeTakeFirst();
  if (!quota) throw notFound('Space quota');
  return quota;
}

/**
 * The checks every space quota write starts with, in upstream's order: visible (else 404), the caller
 * manages the quota's org (else 403), the org is writable (not being deleted; suspended only for admins).
 * Routers call it before validating the body, as upstream does.
 */
export async function findWritableSpaceQuota(ctx: Ctx, guid: string): Promise<SpaceQuotaRow> {
  const quota = await getSpaceQuota(ctx, guid);
  if (!(await ctx.access.canManageOrg(quota.organization_guid))) throw notAuthorized();
  const org = await ctx.store.db
    .selectFrom('organizations')
    .select(['status', 'suspended'])
    .where('guid', '=', quota.organization_guid)
    .executeTakeFirstOrThrow();
  assertOrgWritable(ctx.access, org);
  return quota;
}

/** For each quota, the guids of the spaces using it that the caller can read, in creation order. */
export async function visibleSpacesOf(ctx: Ctx, quotaGuids: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(quotaGuids.map((g) => [g, []]));
  if (quotaGuids.length === 0) return out;
  const rows = await ctx.store.db
    .selectFrom('spaces')
    .select(['spaces.guid', 'spaces.space_quota_guid'])
    .where('spaces.space_quota_guid', 'in', quotaGuids)
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.spaceVisible(eb, 'spaces.guid')))
    .orderBy('spaces.id')
    .execute();
  for (const r of rows) out.get(r.space_quota_guid!)?.push(r.guid);
  return out;
}

async function spacesUsing(db: Kysely<Database>, quotaGuid: string): Promise<string[]> {
  const rows = await db.selectFrom('spaces').select('guid').where('space_quota_guid', '=', quotaGuid).orderBy('id').execute();
  return rows.map((r) => r.guid);
}

const taken = (name: string) => unprocessable(`Space Quota '${name}' already exists.`);

async function checkLimits(db: Kysely<Database>, orgGuid: string, limits: QuotaLimits): Promise<void> {
  const problem = spaceQuotaError(limits, await organizationQuotaOf(db, orgGuid));
  if (problem) throw unprocessable(problem);
}

function audit(
  tx: WriteTx,
  ctx: Ctx,
  type: string,
  quota: Pick<SpaceQuotaRow, 'guid' | 'name' | 'organization_guid'>,
  data: Record<string, unknown>,
  spaceGuid?: string,
) {
  return recordAudit(tx, {
    type: `audit.space_quota.${type}`,
    actor: ctx.principal,
    target: { type: 'space_quota', guid: quota.guid, name: quota.name },
    data,
    spaceGuid: spaceGuid ?? null,
    organizationGuid: quota.organization_guid,
  });
}

/** Sets (or clears) the space quota of some spaces, bumping each space's generation. */
async function setSpaceQuota(tx: WriteTx, spaces: Array<Row<'spaces'>>, quotaGuid: string | null): Promise<void> {
  for (const space of spaces) {
    if (space.space_quota_guid !== quotaGuid) await tx.update('spaces', space.guid, { space_quota_guid: quotaGuid }, { expectedGeneration: space.generation });
  }
}

export async function createSpaceQuota(ctx: Ctx, input: CreateSpaceQuota): Promise<SpaceQuotaRow> {
  const org = await ctx.store.db.selectFrom('organizations').selectAll().where('guid', '=', input.organizationGuid).executeTakeFirst();
  if (!org || !(await ctx.access.canReadOrg(org.guid))) {
    throw unprocessable(`Organization with guid '${input.organizationGuid}' does not exist, or you do not have access to it.`);
  }
  if (!(await ctx.access.canManageOrg(org.guid))) throw notAuthorized();
  assertOrgWritable(ctx.access, org);
  const limits = applyChanges(DEFAULT_LIMITS, input);
  try {
    return await ctx.store.write(async (tx) => {
      await checkLimits(tx.db, org.guid, limits);
      if (await nameInUse(tx.db, 'space_quotas', input.name, { within: { organization_guid: org.guid } })) throw taken(input.name);
      const spaces = input.spaceGuids.length
        ? await tx.db
            .selectFrom('spaces')
            .selectAll()
            .where('organization_guid', '=', org.guid)
            .where('guid', 'in', input.spaceGuids)
            .execute()
        : [];
      const found = new Set(spaces.map((s) => s.guid));
      const missing = input.spaceGuids.filter((g) => !found.has(g));
      if (missing.length > 0) {
        throw unprocessable(
          `Spaces with guids ${rubyList(missing)} do not exist within the organization specified, or you do not have access to them.`,
        );
      }
      const guid = newGuid();
      await tx.insert('space_quotas', {
        guid,
        name: input.name,
        organization_guid: org.guid,
        ...limitColumns(limits),
      });
      await setSpaceQuota(tx, spaces, guid);
      await audit(tx, ctx, 'create', { guid, name: input.name, organization_guid: org.guid }, { request: input.request });
      return (await findQuota(tx.db, guid))!;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw taken(input.name);
    throw err;
  }
}

export async function updateSpaceQuota(ctx: Ctx, guid: string, input: UpdateQuota): Promise<SpaceQuotaRow> {
  const quota = await findWritableSpaceQuota(ctx, guid);
  const limits = applyChanges(limitsOf(quota), input);
  const name = input.name ?? quota.name;
  try {
    return await ctx.store.write(async (tx) => {
      await checkLimits(tx.db, quota.organization_guid, limits);
      if (input.name !== undefined && (await nameInUse(tx.db, 'space_quotas', name, { within: { organization_guid: quota.organization_guid }, except: quota.guid }))) throw taken(name);
      await tx.update('space_quotas', quota.guid, { name, ...limitColumns(limits) }, { expectedGeneration: quota.generation });
      await audit(tx, ctx, 'update', { ...quota, name }, { request: input.request });
      return (await findQuota(tx.db, quota.guid))!;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw taken(name);
    throw err;
  }
}

const IN_USE = 'This quota is applied to one or more spaces. Remove this quota from all spaces before deleting.';

async function inUse(db: Kysely<Database>, quotaGuid: string): Promise<boolean> {
  return (await db.selectFrom('spaces').select('guid').where('space_quota_guid', '=', quotaGuid).executeTakeFirst()) !== undefined;
}

/** Accepts the delete of an unused space quota and returns the job that removes it. */
export async function deleteSpaceQuota(ctx: Ctx, guid: string): Promise<string> {
  const quota = await findWritableSpaceQuota(ctx, guid);
  return ctx.store.write(async (tx) => {
    if (await inUse(tx.db, quota.guid)) throw unprocessable(IN_USE);
    const inFlight = await jobInFlight(tx.db, 'space_quota.delete', quota.guid);
    if (inFlight) return inFlight; // a repeated delete hands back the job already under way
    await audit(tx, ctx, 'delete', quota, {});
    return enqueueJob(tx, { operation: 'space_quota.delete', resourceType: 'space_quota', resourceGuid: quota.guid, userGuid: ctx.principal.guid });
  });
}

export function registerSpaceQuotaJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('space_quota.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const quota = await findQuota(tx.db, job.resource_guid);
      if (!quota) return; // already gone: a re-run after a crash finishes quietly
      // A space may have been given the quota after the delete was accepted.
      if (await inUse(tx.db, quota.guid)) throw new KilnError('AssociationNotEmpty', 'space', 'space quota definition');
      await tx.delete('space_quotas', quota.guid);
    });
  });
}

/** `POST /v3/space_quotas/:guid/relationships/spaces`: returns every space now using the quota. */
export async function applySpaceQuota(ctx: Ctx, guid: string, spaceGuids: string[]): Promise<string[]> {
  const quota = await findWritableSpaceQuota(ctx, guid);
  return ctx.store.write(async (tx) => {
    const spaces = await tx.db.selectFrom('spaces').selectAll().where('guid', 'in', spaceGuids).execute();
    const readable: Array<Row<'spaces'>> = [];
    for (const s of spaces) if (await ctx.access.canReadSpace(s)) readable.push(s);
    const ok = new Set(readable.map((s) => s.guid));
    const invalid = spaceGuids.filter((g) => !ok.has(g));
    if (invalid.length > 0) throw unprocessable(`Spaces with guids ${rubyList(invalid)} do not exist, or you do not have access to them.`);
    if (readable.some((s) => s.organization_guid !== quota.organization_guid)) {
      throw unprocessable('Space quotas cannot be applied outside of their owning organization.');
    }
    await setSpaceQuota(tx, readable, quota.guid);
    for (const s of readable) await audit(tx, ctx, 'apply', quota, { space_guid: s.guid, space_name: s.name }, s.guid);
    return spacesUsing(tx.db, quota.guid);
  });
}

/** `DELETE /v3/space_quotas/:guid/relationships/spaces/:space_guid`. */
export async function removeSpaceQuota(ctx: Ctx, guid: string, spaceGuid: string): Promise<void> {
  const quota = await findWritableSpaceQuota(ctx, guid);
  await ctx.store.write(async (tx) => {
    const space = await tx.db.selectFrom('spaces').selectAll().where('guid', '=', spaceGuid).executeTakeFirst();
    if (!space || space.space_quota_guid !== quota.guid) {
      throw unprocessable(`Unable to remove quota from space with guid '${spaceGuid}'. Ensure the space quota is applied to this space.`);
    }
    await setSpaceQuota(tx, [space], null);
    await audit(tx, ctx, 'remove', quota, { space_guid: space.guid, space_name: space.name }, space.guid);
  });
}
