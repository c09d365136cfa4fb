import type { Expression, ExpressionBuilder, Kysely, SqlBool } from 'kysely';
import {
  intermediateDomains,
  reservedDomainProblem,
  type CreateDomain,
  type PlatformNames,
  type RouteReservationQuery,
  type UpdateDomain,
} from '../domain/domains.ts';
import { KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { ORG_ROLE_TYPES, SPACE_ROLE_TYPES, type RoleType } from '../domain/roles.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { assertOrgWritable, findVisibleOrg } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { requireFeature } from './feature-flags.ts';
import { enqueueJob, type JobHandlers, jobInFlight } from '../lifecycle/jobs.ts';
import { deleteRoutesOfDomains } from './route-deletes.ts';
import { anyRouteMatches, type RouteMatchQuery } from './route-reads.ts';
import { everyRow } from '../store/every-row.ts';

export const DOMAIN_LIST: ListSpec = {
  filters: ['names', 'organization_guids'],
  labelSelector: true,
};

// ---- routes (the one place the routes table plugs in) ----

export type { RouteMatchQuery } from './route-reads.ts';

/**
 * Whether some route matches: reservation checks, the "name already used by a route" rule on create and
 * the "routes still use it" rule on unshare all go through it.
 */
export async function routeMatches(db: Kysely<Database>, q: RouteMatchQuery): Promise<boolean> {
  return anyRouteMatches(db, q);
}

// ---- visibility ----

/** `'all'` for global readers, else the org guids that grant the caller something. */
type OrgSet = 'all' | string[];

/** Orgs where the caller holds one of `orgTypes`, or one of `spaceTypes` in one of the org's spaces. */
async function orgsByRoles(ctx: Ctx, orgTypes: readonly RoleType[], spaceTypes: readonly RoleType[]): Promise<string[]> {
  const roles = await ctx.access.roles();
  const orgs = new Set<string>();
  const spaceGuids: string[] = [];
  for (const r of roles) {
    if (r.organization_guid && orgTypes.includes(r.type as RoleType)) orgs.add(r.organization_guid);
    if (r.space_guid && spaceTypes.includes(r.type as RoleType)) spaceGuids.push(r.space_guid);
  }
  if (spaceGuids.length > 0) {
    const rows = await ctx.store.db.selectFrom('spaces').select('organization_guid').where('guid', 'in', spaceGuids).execute();
    for (const row of rows) orgs.add(row.organization_guid);
  }
  return [...orgs];
}

/**
 * Orgs whose private domains the caller may see: org managers and auditors, and members of the org's
 * spaces. Org users and billing managers see only shared domains (CONVENTIONS.md §13.2, Appendix B).
 */
async function domainReadableOrgs(ctx: Ctx): Promise<OrgSet> {
  if (ctx.access.global) return 'all';
  return orgsByRoles(ctx, ['organization_manager', 'organization_auditor'], SPACE_ROLE_TYPES);
}

/** Orgs the caller can read at all: only these are shown among a domain's shared organizations. */
async function readableOrgs(ctx: Ctx): Promise<OrgSet> {
  if (ctx.access.global) return 'all';
  return orgsByRoles(ctx, ORG_ROLE_TYPES, SPACE_ROLE_TYPES);
}

const inSet = (set: OrgSet, guid: string) => set === 'all' || set.includes(guid);

// The condition only references `domains` and `domain_shared_organizations`; it is used inside queries
// whose table set differs per call site.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Eb = ExpressionBuilder<Database, any>;

/** Shared domains, plus private domains owned by or shared with one of `orgs`. */
function domainVisible(eb: Eb, orgs: OrgSet): Expression<SqlBool> {
  if (orgs === 'all') return everyRow();
  const list = orgs.length > 0 ? orgs : [''];
  return eb.or([
    eb('domains.owning_organization_guid', 'is', null),
    eb('domains.owning_organization_guid', 'in', list),
    eb(
      'domains.guid',
      'in',
      eb.selectFrom('domain_shared_organizations').select('domain_shared_organizations.domain_guid').where('domain_shared_organizations.organization_guid', 'in', list),
    ),
  ]);
}

/** A domain with what its presenter needs besides metadata. */
export interface DomainView {
  domain: Row<'domains'>;
  /** The orgs it is shared with that the caller can read, in the order they were created. */
  sharedOrganizationGuids: string[];
}

/** Shared-organization guids of many domains, limited to orgs the caller can read. */
export async function visibleSharedOrgs(ctx: Ctx, domainGuids: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(domainGuids.map((g) => [g, []]));
  if (domainGuids.length === 0) return out;
  const readable = await readableOrgs(ctx);
  for (let i = 0; i < domainGuids.length; i += 900) {
    const rows = await ctx.store.db
      .selectFrom('domain_shared_organizations as dso')
      .innerJoin('organizations as o', 'o.guid', 'dso.organization_guid')
      .select(['dso.domain_guid', 'o.guid'])
      .where('dso.domain_guid', 'in', domainGuids.slice(i, i + 900))
      .orderBy('o.id')
      .execute();
    for (const r of rows) if (inSet(readable, r.guid)) out.get(r.domain_guid)?.push(r.guid);
  }
  return out;
}

async function view(ctx: Ctx, domain: Row<'domains'>): Promise<DomainView> {
  const shared = await visibleSharedOrgs(ctx, [domain.guid]);
  return { domain, sharedOrganizationGuids: shared.get(domain.guid) ?? [] };
}

// ---- reading ----

async function listWithin(ctx: Ctx, params: ListParams, orgs: OrgSet): Promise<Page<Row<'domains'>>> {
  let q = ctx.store.db
    .selectFrom('domains')
    .selectAll('domains')
    .where((eb) => domainVisible(eb, orgs));
  if (params.filters.names) q = q.where('domains.name', 'in', params.filters.names);
  if (params.filters.organization_guids) q = q.where('domains.owning_organization_guid', 'in', params.filters.organization_guids);
  return listPage(q, listOptions('domains', params));
}

export async function listDomains(ctx: Ctx, params: ListParams): Promise<Page<Row<'domains'>>> {
  return listWithin(ctx, params, await domainReadableOrgs(ctx));
}

/**
 * `GET /v3/organizations/:guid/domains`: the shared domains plus, when the caller may see the org's
 * domains, those it owns or that are shared with it.
 */
export async function listOrganizationDomains(ctx: Ctx, orgGuid: string, params: ListParams): Promise<Page<Row<'domains'>>> {
  const org = await findVisibleOrg(ctx.access, ctx.store.db, orgGuid);
  const readable = await domainReadableOrgs(ctx);
  return listWithin(ctx, params, inSet(readable, org.guid) ? [org.guid] : []);
}

/** The domain, when the caller may see it (shared, or private to an org whose domains they read). */
export async function visibleDomain(ctx: Ctx, guid: string): Promise<Row<'domains'> | undefined> {
  const orgs = await domainReadableOrgs(ctx);
  return ctx.store.db
    .selectFrom('domains')
    .selectAll('domains')
    .where('domains.guid', '=', guid)
    .where((eb) => domainVisible(eb, orgs))
    .executeTakeFirst();
}

async function findVisibleDomain(ctx: Ctx, guid: string): Promise<Row<'domains'>> {
  const domain = await visibleDomain(ctx, guid);
  if (!domain) throw notFound('Domain');
  return domain;
}

export async function getDomain(ctx: Ctx, guid: string): Promise<DomainView> {
  return view(ctx, await findVisibleDomain(ctx, guid));
}

/** The org's default domain: the oldest shared HTTP domain, else its oldest own or shared-in private domain (manifests, `GET …/domains/default`). */
export async function defaultDomainOf(db: Kysely<Database>, orgGuid: string): Promise<Row<'domains'> | undefined> {
  const shared = await db
    .selectFrom('domains')
    .selectAll()
    .where('owning_organization_guid', 'is', null)
    .where('internal', '=', 0)
    .where('router_group_guid', 'is', null)
    .orderBy('id')
    .executeTakeFirst();
  if (shared) return shared;
  return db
    .selectFrom('domains')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb('owning_organization_guid', '=', orgGuid),
        eb('guid', 'in', eb.selectFrom('domain_shared_organizations').select('domain_guid').where('organization_guid', '=', orgGuid)),
      ]),
    )
    .orderBy('id')
    .executeTakeFirst();
}

/**
 * The domain apps in the org get by default: the oldest shared, non-internal HTTP domain, else the
 * oldest private domain the org owns or was given (hidden from callers who cannot see its domains).
 */
export async function getDefaultDomain(ctx: Ctx, orgGuid: string): Promise<DomainView> {
  const org = await findVisibleOrg(ctx.access, ctx.store.db, orgGuid);
  const db = ctx.store.db;
  let domain = await defaultDomainOf(db, org.guid);
  // A private default (owned or shared in) is hidden from callers who cannot see the org's domains.
  if (domain && domain.owning_organization_guid !== null && !inSet(await domainReadableOrgs(ctx), org.guid)) domain = undefined;
  if (!domain) throw notFound('Domain');
  return view(ctx, domain);
}

/** `GET /v3/domains/:guid/route_reservations`: is a route with this host/path/port taken on the domain? */
export async function checkRouteReservation(ctx: Ctx, guid: string, q: RouteReservationQuery): Promise<boolean> {
  const domain = await findVisibleDomain(ctx, guid);
  // Reservations are global: a route in an org the caller cannot see still reserves the name.
  return routeMatches(ctx.store.db, { domainGuids: [domain.guid], hosts: q.hosts, paths: q.paths, ports: q.ports });
}

// ---- writing ----

const loadDomain = (db: Kysely<Database>, guid: string) =>
  db.selectFrom('domains').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

const orgNotFound = (guid: string | null) =>
  unprocessable(`Organization with guid '${guid ?? ''}' does not exist or you do not have access to it.`);

/** Manager of the domain's owning org (shared domains: admins only) — the right to change the domain. */
async function canWriteDomain(ctx: Ctx, domain: Pick<Row<'domains'>, 'owning_organization_guid'>): Promise<boolean> {
  if (ctx.access.admin) return true;
  if (!domain.owning_organization_guid) return false;
  return ctx.access.hasOrgRole(domain.owning_organization_guid, 'organization_manager');
}

async function loadOrg(db: Kysely<Database>, guid: string) {
  return db.selectFrom('organizations').selectAll().where('guid', '=', guid).executeTakeFirst();
}

/** Writes by non-admins need the owning org active; admins may change domains of suspended orgs. */
async function assertDomainOrgWritable(ctx: Ctx, domain: Pick<Row<'domains'>, 'owning_organization_guid'>): Promise<void> {
  if (!domain.owning_organization_guid) return;
  const org = await loadOrg(ctx.store.db, domain.owning_organization_guid);
  if (org) assertOrgWritable(ctx.access, org);
}

/** The orgs a private domain is to be shared with: each must be readable and managed by the caller, and active. */
async function verifySharedOrgs(ctx: Ctx, guids: string[], owningOrgGuid: string | null): Promise<Array<Row<'organizations'>>> {
  if (guids.length === 0) return [];
  const orgs = await ctx.store.db.selectFrom('organizations').selectAll().where('guid', 'in', guids).execute();
  const missing = guids.find((g) => !orgs.some((o) => o.guid === g));
  if (missing) throw unprocessable(`Organization with guid '${missing}' does not exist, or you do not have access to it.`);
  for (const org of orgs) {
    if (!(await ctx.access.canReadOrg(org.guid))) {
      throw unprocessable(`Organization with guid '${org.guid}' either does not exist, or you do not have access to it.`);
    }
    if (!(await ctx.access.canManageOrg(org.guid))) {
      throw unprocessable(`You do not have sufficient permissions for organization '${org.name}' to share domain.`);
    }
    if (!ctx.access.admin && (org.suspended === 1 || org.status !== 'active')) {
      throw unprocessable(`Organization '${org.name}' is suspended.`);
    }
  }
  if (owningOrgGuid && guids.includes(owningOrgGuid)) throw unprocessable('Domain cannot be shared with owning organization.');
  return orgs;
}

/** Whether the org's quota (`total_domains`; null or -1 = unlimited) leaves no room for another private domain. */
async function privateDomainQuotaReached(db: Kysely<Database>, org: Row<'organizations'>): Promise<boolean> {
  if (!org.quota_guid) return false;
  const quota = await db.selectFrom('organization_quotas').select('total_domains').where('guid', '=', org.quota_guid).executeTakeFirst();
  const limit = quota?.total_domains;
  if (limit === null || limit === undefined || limit < 0) return false;
  const row = await db
    .selectFrom('domains')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('owning_organization_guid', '=', org.guid)
    .executeTakeFirst();
  return Number(row?.n ?? 0) + 1 > limit;
}

/**
 * The model rules of a new domain, checked inside its write (the unique index on lower(name) settles
 * races): unique name, the org quota's private-domain limit, no overlap with other orgs' private domains
 * (either direction) and no route already using the name. Returns the 422 detail, if any.
 */
async function newDomainProblem(
  tx: WriteTx,
  input: CreateDomain,
  owningOrg: Row<'organizations'> | undefined,
  platform: PlatformNames | undefined,
): Promise<string | undefined> {
  const db = tx.db;
  const name = input.name;
  const lower = name.toLowerCase();
  const taken = await db
    .selectFrom('domains')
    .select('guid')
    .where((eb) => eb(eb.fn('lower', ['name']), '=', lower))
    .executeTakeFirst();
  if (taken) return `The domain name "${name}" is already in use`;
  const reserved = platform && reservedDomainProblem(name, platform, owningOrg !== undefined);
  if (reserved) return reserved;
  if (owningOrg && (await privateDomainQuotaReached(db, owningOrg))) {
    return `The number of private domains exceeds the quota for organization "${owningOrg.name}"`;
  }

  const problems: string[] = [];
  const owner = owningOrg?.guid ?? null;
  const parents = intermediateDomains(lower);
  const existing = await db
    .selectFrom('domains')
    .select(['guid', 'name', 'owning_organization_guid'])
    .where((eb) => eb(eb.fn('lower', ['name']), 'in', parents))
    .execute();
  // A private domain of another org reserves every name below it, and so does a shared domain for private
  // domains (Cloud Controller's rule: no org may own `x.apps.example.com` beside the shared `apps.example.com`).
  const byName = new Map(existing.map((d) => [d.name.toLowerCase(), d]));
  const overlapping = parents
    .map((p) => byName.get(p))
    .find((d) => d && (d.owning_organization_guid === null ? owner !== null : d.owning_organization_guid !== owner));
  if (overlapping) {
    problems.push(`The domain name "${name}" cannot be created because "${overlapping.name}" is already reserved by another domain`);
  }
  for (const parent of parents.slice(0, -1)) {
    const parentDomain = byName.get(parent);
    const host = lower.slice(0, lower.length - parent.length - 1).split('.').pop() ?? '';
    const sub = `${host}.${parent}`;
    if (parentDomain && (await routeMatches(db, { domainGuids: [parentDomain.guid], hosts: [host] }))) {
      problems.push(`The domain name "${name}" cannot be created because "${sub}" is already reserved by a route`);
      break;
    }
  }
  if (owningOrg) {
    // Nor may a private domain sit above a domain that belongs to someone else (or to everyone).
    const below = await db
      .selectFrom('domains')
      .select('name')
      .where((eb) => eb(eb.fn('lower', ['name']), 'like', `%.${lower}`))
      .where((eb) => eb.or([eb('owning_organization_guid', 'is', null), eb('owning_organization_guid', '!=', owningOrg.guid)]))
      .executeTakeFirst();
    if (below) problems.push(`The domain name "${name}" cannot be created because "${below.name}" is already reserved by another domain`);
  }
  return problems.length > 0 ? problems.join(', ') : undefined;
}

function auditDomain(tx: WriteTx, ctx: Ctx, type: string, domain: Pick<Row<'domains'>, 'guid' | 'name' | 'owning_organization_guid'>, data: unknown) {
  return recordAudit(tx, {
    type: `audit.domain.${type}`,
    actor: ctx.principal,
    target: { type: 'domain', guid: domain.guid, name: domain.name },
    data: { request: data },
    organizationGuid: domain.owning_organization_guid,
  });
}

/**
 * Creates a shared or private domain. `platform` names the hosts the API is reached by, which no domain may
 * claim (the API passes it; without it only the catalogue rules apply).
 */
export async function createDomain(ctx: Ctx, input: CreateDomain, platform?: PlatformNames): Promise<DomainView & { metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  let owningOrg: Row<'organizations'> | undefined;
  let sharedOrgs: Array<Row<'organizations'>> = [];
  if (input.organizationGuid !== undefined) {
    // A private domain: org managers may create one in their org (feature flag private_domain_creation).
    owningOrg = input.organizationGuid === null ? undefined : await loadOrg(ctx.store.db, input.organizationGuid);
    if (!owningOrg || !(await ctx.access.canReadOrg(owningOrg.guid))) throw orgNotFound(input.organizationGuid);
    if (!(await ctx.access.canManageOrg(owningOrg.guid))) throw notAuthorized();
    assertOrgWritable(ctx.access, owningOrg);
    if (!ctx.access.admin) await requireFeature(ctx.store.db, 'private_domain_creation');
    sharedOrgs = await verifySharedOrgs(ctx, input.sharedOrganizationGuids, owningOrg.guid);
  } else if (!ctx.access.admin) {
    throw notAuthorized();
  }
  if (input.routerGroupGuid) {
    // TCP domains need a routing API with router groups; Kiln's router serves HTTP only.
    throw new KilnError('ServiceUnavailable', 'The Routing API is disabled.');
  }
  const taken = () => unprocessable(`The domain name "${input.name}" is already in use`);
  try {
    return await ctx.store.write(async (tx) => {
      const problem = await newDomainProblem(tx, input, owningOrg, platform);
      if (problem) throw unprocessable(problem);
      const guid = newGuid();
      await tx.insert('domains', {
        guid,
        name: input.name,
        internal: input.internal ? 1 : 0,
        owning_organization_guid: owningOrg?.guid ?? null,
        router_group_guid: null,
        enforce_route_policies: input.enforceRoutePolicies ? 1 : 0,
        route_policies_scope: input.routePoliciesScope,
      });
      const metadata = await saveMetadata(tx, 'domains', guid, input.metadata);
      for (const org of sharedOrgs) {
        await tx.db.insertInto('domain_shared_organizations').values({ domain_guid: guid, organization_guid: org.guid }).execute();
      }
      const domain = await loadDomain(tx.db, guid);
      await auditDomain(tx, ctx, 'create', domain, {
        name: input.name,
        internal: input.internal,
        ...(input.enforceRoutePolicies ? { enforce_route_policies: true } : {}),
        ...(owningOrg ? { organization_guid: owningOrg.guid, shared_organization_guids: sharedOrgs.map((o) => o.guid) } : {}),
        ...(input.metadata ? { metadata: input.metadata } : {}),
      });
      return { domain, sharedOrganizationGuids: sharedOrgs.map((o) => o.guid), metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw taken();
    throw err;
  }
}

export async function updateDomain(ctx: Ctx, guid: string, input: UpdateDomain): Promise<DomainView & { metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const domain = await findVisibleDomain(ctx, guid);
  if (!(await canWriteDomain(ctx, domain))) throw notAuthorized();
  await assertDomainOrgWritable(ctx, domain);
  const { updated, metadata } = await ctx.store.write(async (tx) => {
    // Only metadata changes; the row is touched so updated_at moves and watchers see the change.
    await tx.update('domains', domain.guid, {}, { expectedGeneration: domain.generation });
    const metadata = await saveMetadata(tx, 'domains', domain.guid, input.metadata);
    await auditDomain(tx, ctx, 'update', domain, input);
    return { updated: await loadDomain(tx.db, domain.guid), metadata };
  });
  return { ...(await view(ctx, updated)), metadata };
}

/** Starts the asynchronous delete; the domain must first be unshared from every org. */
export async function deleteDomain(ctx: Ctx, guid: string): Promise<string> {
  const domain = await findVisibleDomain(ctx, guid);
  if (!(await canWriteDomain(ctx, domain))) throw notAuthorized();
  await assertDomainOrgWritable(ctx, domain);
  return ctx.store.write(async (tx) => {
    const shared = await tx.db.selectFrom('domain_shared_organizations').select('organization_guid').where('domain_guid', '=', domain.guid).executeTakeFirst();
    if (shared) throw unprocessable('This domain is shared with other organizations. Unshare before deleting.');
    const inFlight = await jobInFlight(tx.db, 'domain.delete', domain.guid);
    if (inFlight) return inFlight; // a repeated delete hands back the job already under way
    await auditDomain(tx, ctx, 'delete-request', domain, {});
    return enqueueJob(tx, { operation: 'domain.delete', resourceType: 'domain', resourceGuid: domain.guid, userGuid: ctx.principal.guid });
  });
}

export function registerDomainJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('domain.delete', async ({ job }) => {
    await store.write(async (tx) => {
      const domain = await tx.db.selectFrom('domains').select('guid').where('guid', '=', job.resource_guid).executeTakeFirst();
      if (!domain) return; // already gone: a re-run after a crash finishes quietly
      await deleteRoutesOfDomains(tx, [domain.guid]);
      await tx.db.deleteFrom('domain_shared_organizations').where('domain_guid', '=', domain.guid).execute();
      await deleteMetadata(tx, 'domains', [domain.guid]);
      await tx.delete('domains', domain.guid);
    });
  });
}

/** Shares a private domain with more orgs (existing shares are kept); returns the visible shared orgs. */
export async function shareDomain(ctx: Ctx, guid: string, orgGuids: string[]): Promise<string[]> {
  const domain = await findVisibleDomain(ctx, guid);
  if (!(await canWriteDomain(ctx, domain))) throw notAuthorized();
  await assertDomainOrgWritable(ctx, domain);
  const orgs = await verifySharedOrgs(ctx, orgGuids, domain.owning_organization_guid);
  if (!domain.owning_organization_guid) {
    throw unprocessable('Domains cannot be shared with other organizations unless they are scoped to an organization.');
  }
  await ctx.store.write(async (tx) => {
    const current = await tx.db.selectFrom('domain_shared_organizations').select('organization_guid').where('domain_guid', '=', domain.guid).execute();
    const added = orgs.filter((o) => !current.some((c) => c.organization_guid === o.guid));
    if (added.length === 0) return;
    for (const org of added) {
      await tx.db
        .insertInto('domain_shared_organizations')
        .values({ domain_guid: domain.guid, organization_guid: org.guid })
        .onConflict((oc) => oc.columns(['domain_guid', 'organization_guid']).doNothing())
        .execute();
    }
    tx.changed('domains', domain.guid, 'update');
    await auditDomain(tx, ctx, 'share', domain, { organization_guids: added.map((o) => o.guid) });
  });
  return (await visibleSharedOrgs(ctx, [domain.guid])).get(domain.guid) ?? [];
}

/**
 * Unshares a domain from one org. Either side's manager may do it: the owning org's, or the receiving
 * org's (giving the domain back). Refused while routes of that org use the domain.
 */
export async function unshareDomain(ctx: Ctx, guid: string, orgGuid: string): Promise<void> {
  const domain = await findVisibleDomain(ctx, guid);
  const org = await loadOrg(ctx.store.db, orgGuid);
  if (!org) throw orgNotFound(orgGuid);

  const owning = domain.owning_organization_guid ? await loadOrg(ctx.store.db, domain.owning_organization_guid) : undefined;
  const owningManaged = await canWriteDomain(ctx, domain);
  const sharedManaged = await ctx.access.canManageOrg(org.guid);
  const writable = (o: Row<'organizations'> | undefined) => {
    if (!o) return ctx.access.admin;
    try {
      assertOrgWritable(ctx.access, o);
      return true;
    } catch {
      return false;
    }
  };
  if (!(owningManaged && writable(owning)) && !(sharedManaged && writable(org))) {
    if (!owningManaged && !sharedManaged) throw notAuthorized();
    if (owningManaged && owning) assertOrgWritable(ctx.access, owning);
    assertOrgWritable(ctx.access, org);
  }
  if (!(await ctx.access.canReadOrg(org.guid))) throw orgNotFound(orgGuid);

  await ctx.store.write(async (tx) => {
    const link = await tx.db
      .selectFrom('domain_shared_organizations')
      .select('organization_guid')
      .where('domain_guid', '=', domain.guid)
      .where('organization_guid', '=', org.guid)
      .executeTakeFirst();
    if (!link || !domain.owning_organization_guid || domain.owning_organization_guid === org.guid) {
      throw unprocessable(`Unable to unshare domain from organization with name '${org.name}'. Ensure the domain is shared to this organization.`);
    }
    if (await routeMatches(tx.db, { domainGuids: [domain.guid], organizationGuid: org.guid })) {
      throw unprocessable('This domain has associated routes in this organization. Delete the routes before unsharing.');
    }
    await tx.db.deleteFrom('domain_shared_organizations').where('domain_guid', '=', domain.guid).where('organization_guid', '=', org.guid).execute();
    tx.changed('domains', domain.guid, 'update');
    await auditDomain(tx, ctx, 'unshare', domain, { organization_guid: org.guid });
  });
}
