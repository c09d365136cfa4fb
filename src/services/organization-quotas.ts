import type { Kysely } from 'kysely';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import {
  applyChanges,
  DEFAULT_LIMITS,
  organizationQuotaError,
  rubyList,
  type CreateOrganizationQuota,
  type QuotaLimits,
  type UpdateQuota,
} from '../domain/quotas.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listPage, type Page } from '../store/list-query.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { enqueueJob, type JobHandlers, jobInFlight } from '../lifecycle/jobs.ts';
import { nameInUse } from './name-in-use.ts';

export const ORG_QUOTA_LIST: ListSpec = { filters: ['names', 'organization_guids'] };

type QuotaRow = Row<'organization_quotas'> | Row<'space_quotas'>;

/** A quota row's limits in domain form (flags become booleans; NULL stays "unlimited"). */
export function limitsOf(row: QuotaRow): QuotaLimits {
  return {
    total_memory_in_mb: row.total_memory_in_mb,
    per_process_memory_in_mb: row.per_process_memory_in_mb,
    total_instances: row.total_instances,
    per_app_tasks: row.per_app_tasks,
    log_rate_limit_in_bytes_per_second: row.log_rate_limit_in_bytes_per_second,
    paid_services_allowed: row.paid_services_allowed === 1,
    total_service_instances: row.total_service_instances,
    total_service_keys: row.total_service_keys,
    total_routes: row.total_routes,
    total_reserved_ports: row.total_reserved_ports,
    ...('total_domains' in row ? { total_domains: row.total_domains } : {}),
  };
}

/** The limit columns of a quota row, from domain limits. */
export function limitColumns(l: QuotaLimits) {
  return {
    total_memory_in_mb: l.total_memory_in_mb,
    per_process_memory_in_mb: l.per_process_memory_in_mb,
    total_instances: l.total_instances,
    per_app_tasks: l.per_app_tasks,
    log_rate_limit_in_bytes_per_second: l.log_rate_limit_in_bytes_per_second,
    paid_services_allowed: l.paid_services_allowed ? 1 : 0,
    total_service_instances: l.total_service_instances,
    total_service_keys: l.total_service_keys,
    total_routes: l.total_routes,
    total_reserved_ports: l.total_reserved_ports,
  };
}

/** The quota in force for an org (null when it has none), for enforcement by other capabilities. */
export async function organizationQuotaOf(db: Kysely<Database>, orgGuid: string): Promise<QuotaLimits | null> {
  const row = await db
    .selectFrom('organization_quotas')
    .innerJoin('organizations', 'organizations.quota_guid', 'organization_quotas.guid')
    .selectAll('organization_quotas')
    .where('organizations.guid', '=', orgGuid)
    .executeTakeFirst();
  return row ? limitsOf(row) : null;
}

/** Creating, changing, deleting and applying organization quotas is for admins only. */
export function assertCanManageOrganizationQuotas(ctx: Ctx): void {
  if (!ctx.access.admin) throw notAuthorized();
}

/**
 * Every caller may list every organization quota (upstream does not filter them); what is filtered is
 * which orgs show up in `relationships.organizations` and which orgs `organization_guids` can match.
 */
export async function listOrganizationQuotas(ctx: Ctx, params: ListParams): Promise<Page<Row<'organization_quotas'>>> {
  let q = ctx.store.db.selectFrom('organization_quotas').selectAll('organization_quotas');
  if (params.filters.names) q = q.where('organization_quotas.name', 'in', params.filters.names);
  const orgGuids = params.filters.organization_guids;
  if (orgGuids) {
    q = q.where('organization_quotas.guid', 'in', (eb) =>
      eb
        .selectFrom('organizations as fo')
        .select('fo.quota_guid')
        .where('fo.guid', 'in', orgGuids)
        .$if(!ctx.access.global, (sq) => sq.where((w) => ctx.access.orgVisible(w, 'fo.guid'))),
    );
  }
  return listPage(q, {
    table: 'organization_quotas',
    page: params.page,
    perPage: params.perPage,
    guids: params.filters.guids,
    timestamps: params.timestamps,
    orderBy: params.orderBy ? { column: params.orderBy.field, desc: params.orderBy.desc } : undefined,
  });
}

const findQuota = (db: Kysely<Database>, guid: string) =>
  db.selectFrom('organization_quotas').selectAll().where('guid', '=', guid).executeTakeFirst();

/** Any caller may read any organization quota (the relationships are filtered when presenting). */
export async function getOrganizationQuota(ctx: Ctx, guid: string): Promise<Row<'organization_quotas'>> {
  const quota = await findQuota(ctx.store.db, guid);
  if (!quota) throw notFound('Organization quota');
  return quota;
}

/** For each quota, the guids of the orgs using it that the caller can read, in creation order. */
export async function visibleOrganizationsOf(ctx: Ctx, quotaGuids: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(quotaGuids.map((g) => [g, []]));
  if (quotaGuids.length === 0) return out;
  const rows = await ctx.store.db
    .selectFrom('organizations')
    .select(['organizations.guid', 'organizations.quota_guid'])
    .where('organizations.quota_guid', 'in', quotaGuids)
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.orgVisible(eb, 'organizations.guid')))
    .orderBy('organizations.id')
    .execute();
  for (const r of rows) out.get(r.quota_guid!)?.push(r.guid);
  return out;
}

/** Every org using a quota, whoever asks (the apply response lists them all, as upstream does). */
async function organizationsUsing(db: Kysely<Database>, quotaGuid: string): Promise<string[]> {
  const rows = await db.selectFrom('organizations').select('guid').where('quota_guid', '=', quotaGuid).orderBy('id').execute();
  return rows.map((r) => r.guid);
}

const taken = (name: string) => unprocessable(`Organization Quota '${name}' already exists.`);

/** Points the orgs at the quota (bumping each org's generation) and records one apply event per org. */
async function assignToOrganizations(tx: WriteTx, ctx: Ctx, quota: Row<'organization_quotas'>, orgs: Array<Row<'organizations'>>, audit: boolean) {
  for (const org of orgs) {
    if (org.quota_guid !== quota.guid) await tx.update('organizations', org.guid, { quota_guid: quota.guid }, { expectedGeneration: org.generation });
    if (!audit) continue;
    await recordAudit(tx, {
      type: 'audit.organization_quota.apply',
      actor: ctx.principal,
      target: { type: 'organization_quota', guid: quota.guid, name: quota.name },
      data: { organization_guid: org.guid, organization_name: org.name },
      organizationGuid: org.guid,
    });
  }
}

async function existingOrganizations(db: Kysely<Database>, guids: string[]): Promise<{ orgs: Array<Row<'organizations'>>; missing: string[] }> {
  const orgs = guids.length ? await db.selectFrom('organizations').selectAll().where('guid', 'in', guids).execute() : [];
  const found = new Set(orgs.map((o) => o.guid));
  return { orgs, missing: guids.filter((g) => !found.has(g)) };
}

export async function createOrganizationQuota(ctx: Ctx, input: CreateOrganizationQuota): Promise<Row<'organization_quotas'>> {
  assertCanManageOrganizationQuotas(ctx);
  const limits = applyChanges({ ...DEFAULT_LIMITS, total_domains: null }, input);
  const problem = organizationQuotaError(limits);
  if (problem) throw unprocessable(problem);
  try {
    return await ctx.store.write(async (tx) => {
      if (await nameInUse(tx.db, 'organization_quotas', input.name)) throw taken(input.name);
      const { orgs, missing } = await existingOrganizations(tx.db, input.organizationGuids);
      if (missing.length > 0) {
        throw unprocessable(`Organizations with guids ${rubyList(missing)} do not exist, or you do not have access to them.`);
      }
      const guid = newGuid();
      await tx.insert('organization_quotas', {
        guid,
        name: input.name,
        ...limitColumns(limits),
        total_domains: limits.total_domains ?? null,
      });
      const quota = (await findQuota(tx.db, guid))!;
      // Upstream records only the create event when orgs are given at creation.
      await assignToOrganizations(tx, ctx, quota, orgs, false);
      await recordAudit(tx, {
        type: 'audit.organization_quota.create',
        actor: ctx.principal,
        target: { type: 'organization_quota', guid, name: input.name },
        data: { request: input.request },
      });
      return quota;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw taken(input.name);
    throw err;
  }
}

export async function updateOrganizationQuota(ctx: Ctx, guid: string, input: UpdateQuota): Promise<Row<'organization_quotas'>> {
  assertCanManageOrganizationQuotas(ctx);
  const quota = await getOrganizationQuota(ctx, guid);
  const limits = applyChanges(limitsOf(quota), input);
  const problem = organizationQuotaError(limits);
  if (problem) throw unprocessable(problem);
  const name = input.name ?? quota.name;
  try {
    return await ctx.store.write(async (tx) => {
      if (input.name !== undefined && (await nameInUse(tx.db, 'organization_quotas', name, { except: quota.guid }))) throw taken(name);
      await tx.update('organization_quotas', quota.guid, {
        name,
        ...limitColumns(limits),
        total_domains: limits.total_domains ?? null,
      }, { expectedGeneration: quota.generation });
      await recordAudit(tx, {
        type: 'audit.organization_quota.update',
        actor: ctx.principal,
        target: { type: 'organization_quota', guid: quota.guid, name },
        data: { request: input.request },
      });
      return (await findQuota(tx.db, quota.guid))!;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw taken(name);
    throw err;
  }
}

const IN_USE = 'This quota is applied to one or more organizations. Apply different quotas to those organizations before deleting.';

async function inUse(db: Kysely<Database>, quotaGuid: string): Promise<boolean> {
  return (await db.selectFrom('organizations').select('guid').where('quota_guid', '=', quotaGuid).executeTakeFirst()) !== undefined;
}

/** Accepts the delete of an unused quota and returns the job that removes it. */
export async function deleteOrganizationQuota(ctx: Ctx, guid: string): Promise<string> {
  assertCanManageOrganizationQuotas(ctx);
  const quota = await getOrganizationQuota(ctx, guid);
  return ctx.store.write(async (tx) => {
    if (await inUse(tx.db, quota.guid)) throw unprocessable(IN_USE);
    const inFlight = await jobInFlight(tx.db, 'organization_quota.delete', quota.guid);
    if (inFlight) return inFlight; // a repeated delete hands back the job already under way
    await recordAudit(tx, {
      type: 'audit.organization_quota.delete',
      actor: ctx.principal,
      target: { type: 'organization_quota', guid: quota.guid, name: quota.name },
      data: {},
    });
    return enqueueJob(tx, {
      operation: 'organization_quota.delete',
      resourceType: 'organization_quota',
      resourceGuid: quota.guid,
      userGuid: ctx.principal.guid,
    });
  });
}

export function registerOrganizationQuotaJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('organization_quota.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const quota = await findQuota(tx.db, job.resource_guid);
      if (!quota) return; // already gone: a re-run after a crash finishes quietly
      // An org may have been given the quota after the delete was accepted; upstream's model refuses then.
      if (await inUse(tx.db, quota.guid)) throw new KilnError('AssociationNotEmpty', 'organization', 'quota definition');
      await tx.delete('organization_quotas', quota.guid);
    });
  });
}

/** `POST /v3/organization_quotas/:guid/relationships/organizations`: returns every org now using the quota. */
export async function applyOrganizationQuota(ctx: Ctx, guid: string, orgGuids: string[]): Promise<string[]> {
  assertCanManageOrganizationQuotas(ctx);
  const quota = await getOrganizationQuota(ctx, guid);
  return ctx.store.write(async (tx) => {
    const { orgs, missing } = await existingOrganizations(tx.db, orgGuids);
    if (missing.length > 0) throw unprocessable(`Organizations with guids ${rubyList(missing)} do not exist`);
    await assignToOrganizations(tx, ctx, quota, orgs, true);
    return organizationsUsing(tx.db, quota.guid);
  });
}
