import { ownershipKeys } from '../domain/declared.ts';
import { assertNotDeclared } from './declared-guard.ts';
import { KilnError, notAuthorized, unprocessable } from '../domain/errors.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import type { CreateOrganization, UpdateOrganization } from '../domain/organizations.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Row } from '../store/schema.ts';
import { newGuid, type Store } from '../store/store.ts';
import type { ListParams } from '../domain/list-params.ts';
import { findVisibleOrg } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import { deleteOrganizationCascade } from './cascade.ts';
import type { Ctx } from './context.ts';
import { getFeatureFlag } from './feature-flags.ts';
import { enqueueJob, type JobHandlers, jobInFlight } from '../lifecycle/jobs.ts';
import { nameInUse } from './name-in-use.ts';

export const ORG_LIST = {
  orderBy: ['name'],
  filters: ['names'],
  labelSelector: true,
} as const;

export interface OrgListOptions {
  /** Only orgs entitled to this isolation segment. */
  isolationSegmentGuid?: string;
}

export async function listOrganizations(ctx: Ctx, params: ListParams, opts: OrgListOptions = {}): Promise<Page<Row<'organizations'>>> {
  let q = ctx.store.db
    .selectFrom('organizations')
    .selectAll('organizations')
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.orgVisible(eb, 'organizations.guid')));
  if (params.filters.names) q = q.where('organizations.name', 'in', params.filters.names);
  if (opts.isolationSegmentGuid) {
    q = q.where('organizations.guid', 'in', (eb) =>
      eb
        .selectFrom('isolation_segment_organizations')
        .select('organization_guid')
        .where('isolation_segment_guid', '=', opts.isolationSegmentGuid!),
    );
  }
  return listPage(q, listOptions('organizations', params));
}

export const getOrganization = (ctx: Ctx, guid: string) => findVisibleOrg(ctx.access, ctx.store.db, guid);

const taken = (name: string) => unprocessable(`Organization '${name}' already exists.`);
/** A rename's wording differs from a create's upstream (organization_update.rb). */
const renameTaken = (name: string) => unprocessable(`Organization name '${name}' is already taken.`);

export async function createOrganization(
  ctx: Ctx,
  input: CreateOrganization,
): Promise<{ org: Row<'organizations'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  if (!ctx.access.admin) {
    // Upstream answers a disabled user_org_creation with a plain 403 NotAuthorized, not FeatureDisabled.
    if (!(await getFeatureFlag(ctx.store.db, 'user_org_creation')).enabled) throw notAuthorized();
    if (input.suspended) throw notAuthorized();
  }
  try {
    return await ctx.store.write(async (tx) => {
      if (await nameInUse(tx.db, 'organizations', input.name, { anyCase: true })) throw taken(input.name);
      const defaultQuota = await tx.db
        .selectFrom('organization_quotas')
        .select('guid')
        .where('name', '=', 'default')
        .executeTakeFirst();
      const org: Row<'organizations'> = {
        id: 0,
        guid: newGuid(),
        created_at: tx.now,
        updated_at: tx.now,
        generation: 1,
        name: input.name,
        suspended: input.suspended ? 1 : 0,
        status: 'active',
        quota_guid: defaultQuota?.guid ?? null,
        default_isolation_segment_guid: null,
      };
      const { id: _id, ...values } = org;
      await tx.insert('organizations', values);
      const metadata = await saveMetadata(tx, 'organizations', org.guid, input.metadata);
      if (!ctx.access.admin && !ctx.principal.isClient) {
        // A user who creates an org (feature flag user_org_creation) becomes its manager, as upstream does.
        for (const type of ['organization_user', 'organization_manager'] as const) {
          const guid = newGuid();
          await tx.insert('roles', { guid, type, user_guid: ctx.principal.guid, organization_guid: org.guid, space_guid: null });
        }
      }
      await recordAudit(tx, {
        type: 'audit.organization.create',
        actor: ctx.principal,
        target: { type: 'organization', guid: org.guid, name: org.name },
        data: { request: input },
        organizationGuid: org.guid,
      });
      const stored = await tx.db.selectFrom('organizations').selectAll().where('guid', '=', org.guid).executeTakeFirstOrThrow();
      return { org: stored, metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw taken(input.name);
    throw err;
  }
}

export async function updateOrganization(
  ctx: Ctx,
  guid: string,
  input: UpdateOrganization,
): Promise<{ org: Row<'organizations'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const org = await getOrganization(ctx, guid);
  if (!(await ctx.access.canManageOrg(org.guid))) throw notAuthorized();
  if (input.suspended !== undefined && !ctx.access.admin) throw notAuthorized();
  if (org.suspended && !ctx.access.admin) throw new KilnError('OrgSuspended');
  const name = input.name ?? org.name;
  const changed = [...(input.name !== undefined && input.name !== org.name ? ['name'] : []), ...ownershipKeys(input.metadata, ctx.access.admin)];
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'organizations', guid: org.guid, type: 'Organization', name: org.name }, changed);
  try {
    return await ctx.store.write(async (tx) => {
      if (input.name && (await nameInUse(tx.db, 'organizations', name, { anyCase: true, except: org.guid }))) throw renameTaken(name);
      await tx.update('organizations', org.guid, {
        name,
        suspended: input.suspended === undefined ? org.suspended : input.suspended ? 1 : 0,
      }, { expectedGeneration: org.generation });
      const metadata = await saveMetadata(tx, 'organizations', org.guid, input.metadata);
      await recordAudit(tx, {
        type: 'audit.organization.update',
        actor: ctx.principal,
        target: { type: 'organization', guid: org.guid, name },
        data: { request: input },
        organizationGuid: org.guid,
      });
      const stored = await tx.db.selectFrom('organizations').selectAll().where('guid', '=', org.guid).executeTakeFirstOrThrow();
      return { org: stored, metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw renameTaken(name);
    throw err;
  }
}

/** Marks the org as being deleted and returns the job that removes it and everything in it. */
export async function deleteOrganization(ctx: Ctx, guid: string): Promise<string> {
  const org = await getOrganization(ctx, guid);
  if (!ctx.access.admin) throw notAuthorized();
  await assertNotDeclared(ctx.store.db, ctx.principal, { resourceType: 'organizations', guid: org.guid, type: 'Organization', name: org.name }, 'delete');
  return ctx.store.write(async (tx) => {
    const existing = await jobInFlight(tx.db, 'organization.delete', org.guid);
    if (existing) return existing; // a repeated delete hands back the job already in flight
    await tx.updateStatus('organizations', org.guid, { status: 'deleting' });
    await recordAudit(tx, {
      type: 'audit.organization.delete-request',
      actor: ctx.principal,
      target: { type: 'organization', guid: org.guid, name: org.name },
      data: { request: { recursive: true } },
      organizationGuid: org.guid,
    });
    return enqueueJob(tx, { operation: 'organization.delete', resourceType: 'organization', resourceGuid: org.guid, userGuid: ctx.principal.guid });
  });
}

export function registerOrganizationJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('organization.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const org = await tx.db.selectFrom('organizations').select('guid').where('guid', '=', job.resource_guid).executeTakeFirst();
      if (!org) return; // already gone: a re-run after a crash finishes quietly
      await deleteOrganizationCascade(tx, org.guid);
    });
  });
}

