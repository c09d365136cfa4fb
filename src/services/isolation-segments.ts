import type { Kysely } from 'kysely';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import {
  CreateIsolationSegmentSchema,
  EntitleOrganizationsSchema,
  IsolationSegmentToOneSchema,
  NAME_TAKEN,
  SHARED_ISOLATION_SEGMENT_GUID,
  UpdateIsolationSegmentSchema,
} from '../domain/isolation-segments.ts';
import type { ListParams } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { assertOrgWritable, findVisibleOrg, findVisibleSpace } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { nameInUse } from './name-in-use.ts';
import { listOrganizations } from './organizations.ts';

const RESOURCE = 'isolation_segments';
const segmentNotFound = () => notFound('Isolation segment');

/**
 * Write bodies arrive unparsed: upstream checks the caller's permission (and, for updates, that the
 * segment exists) before it validates the body, so a non-admin never learns what a valid body is.
 */
type Body = Record<string, unknown>;

const load = (db: Kysely<Database>, guid: string) =>
  db.selectFrom('isolation_segments').selectAll().where('guid', '=', guid).executeTakeFirst();

/** Non-global readers see the segments entitled to an org they can read. */
function visibleSegments(ctx: Ctx) {
  return ctx.store.db
    .selectFrom('isolation_segments')
    .selectAll('isolation_segments')
    .$if(!ctx.access.global, (qb) =>
      qb.where((eb) =>
        eb(
          'isolation_segments.guid',
          'in',
          eb
            .selectFrom('isolation_segment_organizations as iso')
            .select('iso.isolation_segment_guid')
            .where((w) => ctx.access.orgVisible(w, 'iso.organization_guid')),
        ),
      ),
    );
}

export async function listIsolationSegments(ctx: Ctx, params: ListParams): Promise<Page<Row<'isolation_segments'>>> {
  let q = visibleSegments(ctx);
  if (params.filters.names) q = q.where('isolation_segments.name', 'in', params.filters.names);
  if (params.filters.organization_guids) {
    const orgGuids = params.filters.organization_guids;
    q = q.where('isolation_segments.guid', 'in', (eb) =>
      eb
        .selectFrom('isolation_segment_organizations')
        .select('isolation_segment_guid')
        .where('organization_guid', 'in', orgGuids.length ? orgGuids : ['']),
    );
  }
  return listPage(q, listOptions('isolation_segments', params));
}

export async function getIsolationSegment(ctx: Ctx, guid: string): Promise<Row<'isolation_segments'>> {
  const segment = await visibleSegments(ctx).where('isolation_segments.guid', '=', guid).executeTakeFirst();
  if (!segment) throw segmentNotFound();
  return segment;
}

/** For admin-only operations: any segment, or 404. */
async function findSegment(ctx: Ctx, guid: string): Promise<Row<'isolation_segments'>> {
  const segment = await load(ctx.store.db, guid);
  if (!segment) throw segmentNotFound();
  return segment;
}

function audit(tx: WriteTx, ctx: Ctx, verb: string, segment: Pick<Row<'isolation_segments'>, 'guid' | 'name'>, data: unknown) {
  return recordAudit(tx, {
    type: `audit.isolation_segment.${verb}`,
    actor: ctx.principal,
    target: { type: 'isolation_segment', guid: segment.guid, name: segment.name },
    data: { request: data },
  });
}

export async function createIsolationSegment(ctx: Ctx, body: Body): Promise<{ segment: Row<'isolation_segments'>; metadata: Metadata }> {
  if (!ctx.access.admin) throw notAuthorized();
  const input = CreateIsolationSegmentSchema.parse(body);
  validateMetadataRequest(input.metadata);
  try {
    return await ctx.store.write(async (tx) => {
      if (await nameInUse(tx.db, 'isolation_segments', input.name, { anyCase: true })) throw unprocessable(NAME_TAKEN);
      const guid = newGuid();
      await tx.insert('isolation_segments', { guid, name: input.name });
      const metadata = await saveMetadata(tx, RESOURCE, guid, input.metadata);
      await audit(tx, ctx, 'create', { guid, name: input.name }, input);
      return { segment: (await load(tx.db, guid))!, metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw unprocessable(NAME_TAKEN);
    throw err;
  }
}

export async function updateIsolationSegment(
  ctx: Ctx,
  guid: string,
  body: Body,
): Promise<{ segment: Row<'isolation_segments'>; metadata: Metadata }> {
  if (!ctx.access.admin) throw notAuthorized();
  const segment = await findSegment(ctx, guid);
  const input = UpdateIsolationSegmentSchema.parse(body);
  validateMetadataRequest(input.metadata);
  try {
    return await ctx.store.write(async (tx) => {
      if (segment.guid === SHARED_ISOLATION_SEGMENT_GUID) throw unprocessable('Cannot update the shared Isolation Segment');
      // Upstream refuses any update (even of metadata) while the segment is in use as a default.
      const orgDefault = await tx.db
        .selectFrom('organizations')
        .select('guid')
        .where('default_isolation_segment_guid', '=', segment.guid)
        .executeTakeFirst();
      const spaceAssigned = await tx.db.selectFrom('spaces').select('guid').where('isolation_segment_guid', '=', segment.guid).executeTakeFirst();
      if (orgDefault || spaceAssigned) {
        throw unprocessable('Cannot update Isolation Segments that are assigned as the default for an Organization or Space.');
      }
      const name = input.name ?? segment.name;
      if (input.name !== undefined && (await nameInUse(tx.db, 'isolation_segments', name, { anyCase: true, except: segment.guid }))) throw unprocessable(NAME_TAKEN);
      await tx.update('isolation_segments', segment.guid, { name }, { expectedGeneration: segment.generation });
      const metadata = await saveMetadata(tx, RESOURCE, segment.guid, input.metadata);
      await audit(tx, ctx, 'update', { guid: segment.guid, name }, input);
      return { segment: (await load(tx.db, segment.guid))!, metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw unprocessable(NAME_TAKEN);
    throw err;
  }
}

export async function deleteIsolationSegment(ctx: Ctx, guid: string): Promise<void> {
  if (!ctx.access.admin) throw notAuthorized();
  const segment = await findSegment(ctx, guid);
  if (segment.guid === SHARED_ISOLATION_SEGMENT_GUID) throw unprocessable(`Cannot delete the ${segment.name} Isolation Segment`);
  await ctx.store.write(async (tx) => {
    const entitled = await tx.db
      .selectFrom('isolation_segment_organizations')
      .select('organization_guid')
      .where('isolation_segment_guid', '=', segment.guid)
      .executeTakeFirst();
    const assigned = await tx.db.selectFrom('spaces').select('guid').where('isolation_segment_guid', '=', segment.guid).executeTakeFirst();
    if (entitled || assigned) throw unprocessable('Revoke the Organization entitlements for your Isolation Segment.');
    await deleteMetadata(tx, RESOURCE, [segment.guid]);
    await tx.delete('isolation_segments', segment.guid);
    await audit(tx, ctx, 'delete', segment, {});
  });
}

// ---- entitlements (to-many organizations) ----

async function entitledOrgGuids(db: Kysely<Database>, segmentGuid: string): Promise<string[]> {
  const rows = await db
    .selectFrom('isolation_segment_organizations as iso')
    .innerJoin('organizations', 'organizations.guid', 'iso.organization_guid')
    .select('organizations.guid')
    .where('iso.isolation_segment_guid', '=', segmentGuid)
    .orderBy('organizations.id')
    .execute();
  return rows.map((r) => r.guid);
}

/** `GET …/relationships/organizations`: the entitled orgs the caller can read. */
export async function listEntitledOrganizationGuids(ctx: Ctx, guid: string): Promise<{ segment: Row<'isolation_segments'>; guids: string[] }> {
  const segment = await getIsolationSegment(ctx, guid);
  const rows = await ctx.store.db
    .selectFrom('isolation_segment_organizations as iso')
    .innerJoin('organizations', 'organizations.guid', 'iso.organization_guid')
    .select('organizations.guid')
    .where('iso.isolation_segment_guid', '=', segment.guid)
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.orgVisible(eb, 'organizations.guid')))
    .orderBy('organizations.id')
    .execute();
  return { segment, guids: rows.map((r) => r.guid) };
}

/** `GET …/relationships/spaces`: the spaces assigned to the segment that the caller can read. */
export async function listAssignedSpaceGuids(ctx: Ctx, guid: string): Promise<{ segment: Row<'isolation_segments'>; guids: string[] }> {
  const segment = await getIsolationSegment(ctx, guid);
  const rows = await ctx.store.db
    .selectFrom('spaces')
    .select('spaces.guid')
    .where('spaces.isolation_segment_guid', '=', segment.guid)
    .$if(!ctx.access.global, (qb) => qb.where((eb) => ctx.access.spaceVisible(eb, 'spaces.guid')))
    .orderBy('spaces.id')
    .execute();
  return { segment, guids: rows.map((r) => r.guid) };
}

/** `GET /v3/isolation_segments/:guid/organizations`: the full org objects, as an org list. */
export async function listSegmentOrganizations(ctx: Ctx, guid: string, params: ListParams) {
  const segment = await getIsolationSegment(ctx, guid);
  return listOrganizations(ctx, params, { isolationSegmentGuid: segment.guid });
}

export async function entitleOrganizations(ctx: Ctx, guid: string, body: Body): Promise<{ segment: Row<'isolation_segments'>; guids: string[] }> {
  if (!ctx.access.admin) throw notAuthorized();
  const segment = await findSegment(ctx, guid);
  const input = EntitleOrganizationsSchema.parse(body);
  return ctx.store.write(async (tx) => {
    const orgs = input.guids.length
      ? await tx.db.selectFrom('organizations').select(['guid', 'name', 'generation', 'default_isolation_segment_guid']).where('guid', 'in', input.guids).execute()
      : [];
    const found = new Set(orgs.map((o) => o.guid));
    const missing = input.guids.filter((g) => !found.has(g));
    if (missing.length > 0) {
      throw unprocessable(
        `Unable to entitle organizations [${missing.map((g) => `'${g}'`).join(', ')}] for the isolation segment. Ensure the organizations exist.`,
      );
    }
    for (const org of orgs) {
      await tx.db
        .insertInto('isolation_segment_organizations')
        .values({ isolation_segment_guid: segment.guid, organization_guid: org.guid })
        .onConflict((oc) => oc.columns(['isolation_segment_guid', 'organization_guid']).doNothing())
        .execute();
      // Entitling the shared segment also makes it the default of orgs that have none, as upstream does.
      if (segment.guid === SHARED_ISOLATION_SEGMENT_GUID && org.default_isolation_segment_guid === null) {
        await tx.update('organizations', org.guid, { default_isolation_segment_guid: segment.guid }, { expectedGeneration: org.generation });
      }
    }
    tx.changed(RESOURCE, segment.guid, 'update');
    await audit(tx, ctx, 'entitle_organizations', segment, { organization_guids: input.guids });
    return { segment, guids: await entitledOrgGuids(tx.db, segment.guid) };
  });
}

export async function revokeOrganization(ctx: Ctx, guid: string, orgGuid: string): Promise<void> {
  if (!ctx.access.admin) throw notAuthorized();
  const segment = await findSegment(ctx, guid);
  const org = await ctx.store.db.selectFrom('organizations').selectAll().where('guid', '=', orgGuid).executeTakeFirst();
  if (!org) throw notFound('Organization');
  await ctx.store.write(async (tx) => {
    const current = await tx.db
      .selectFrom('organizations')
      .select('default_isolation_segment_guid')
      .where('guid', '=', org.guid)
      .executeTakeFirstOrThrow();
    if (current.default_isolation_segment_guid === segment.guid) {
      throw unprocessable('Cannot remove the entitlement while this Isolation Segment is assigned as the Default Isolation Segment for the Organization.');
    }
    const spaces = await tx.db
      .selectFrom('spaces')
      .select('name')
      .where('organization_guid', '=', org.guid)
      .where('isolation_segment_guid', '=', segment.guid)
      .orderBy('id')
      .execute();
    if (spaces.length > 0) {
      throw unprocessable(
        `Cannot remove the entitlement while this Isolation Segment is assigned to any Spaces. Currently assigned to: ${spaces.map((s) => `'${s.name}'`).join(', ')}`,
      );
    }
    const res = await tx.db
      .deleteFrom('isolation_segment_organizations')
      .where('isolation_segment_guid', '=', segment.guid)
      .where('organization_guid', '=', org.guid)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) > 0) {
      tx.changed(RESOURCE, segment.guid, 'update');
      await audit(tx, ctx, 'revoke_organization', segment, { organization_guid: org.guid });
    }
  });
}

// ---- org default and space assignment (to-one) ----

export interface ToOneResult {
  ownerGuid: string;
  segmentGuid: string | null;
}

async function existingSegmentGuid(db: Kysely<Database>, guid: string | null): Promise<string | null> {
  if (!guid) return null;
  return (await load(db, guid))?.guid ?? null;
}

async function isEntitled(db: Kysely<Database>, segmentGuid: string, orgGuid: string): Promise<boolean> {
  const row = await db
    .selectFrom('isolation_segment_organizations')
    .select('organization_guid')
    .where('isolation_segment_guid', '=', segmentGuid)
    .where('organization_guid', '=', orgGuid)
    .executeTakeFirst();
  return row !== undefined;
}

export async function getOrgDefaultIsolationSegment(ctx: Ctx, orgGuid: string): Promise<ToOneResult> {
  const org = await findVisibleOrg(ctx.access, ctx.store.db, orgGuid);
  return { ownerGuid: org.guid, segmentGuid: await existingSegmentGuid(ctx.store.db, org.default_isolation_segment_guid) };
}

export async function setOrgDefaultIsolationSegment(ctx: Ctx, orgGuid: string, body: Body): Promise<ToOneResult> {
  // Upstream validates this body before it looks at the org.
  const input = IsolationSegmentToOneSchema.parse(body);
  const org = await findVisibleOrg(ctx.access, ctx.store.db, orgGuid);
  if (!(await ctx.access.canManageOrg(org.guid))) throw notAuthorized();
  assertOrgWritable(ctx.access, org);
  const invalid = (g: string) => unprocessable(`Unable to assign isolation segment with guid '${g}'. Ensure it has been entitled to the organization.`);
  return ctx.store.write(async (tx) => {
    if (input.guid !== null) {
      if (!(await load(tx.db, input.guid))) throw invalid(input.guid);
      if (!(await isEntitled(tx.db, input.guid, org.guid))) throw invalid(input.guid);
    }
    const current = await tx.db.selectFrom('organizations').selectAll().where('guid', '=', org.guid).executeTakeFirstOrThrow();
    if (input.requested && current.default_isolation_segment_guid !== input.guid) {
      await tx.update('organizations', org.guid, { default_isolation_segment_guid: input.guid }, { expectedGeneration: current.generation });
      await recordAudit(tx, {
        type: 'audit.organization.update',
        actor: ctx.principal,
        target: { type: 'organization', guid: org.guid, name: org.name },
        data: { request: { default_isolation_segment_guid: input.guid } },
        organizationGuid: org.guid,
      });
    }
    const after = input.requested ? input.guid : current.default_isolation_segment_guid;
    return { ownerGuid: org.guid, segmentGuid: await existingSegmentGuid(tx.db, after) };
  });
}

export async function getSpaceIsolationSegment(ctx: Ctx, spaceGuid: string): Promise<ToOneResult> {
  const space = await findVisibleSpace(ctx.access, ctx.store.db, spaceGuid);
  return { ownerGuid: space.guid, segmentGuid: await existingSegmentGuid(ctx.store.db, space.isolation_segment_guid) };
}

export async function setSpaceIsolationSegment(ctx: Ctx, spaceGuid: string, body: Body): Promise<ToOneResult> {
  const space = await findVisibleSpace(ctx.access, ctx.store.db, spaceGuid);
  // Only admins and managers of the space's org may pick its segment (space managers may not).
  if (!(await ctx.access.canManageOrg(space.organization_guid))) throw notAuthorized();
  const input = IsolationSegmentToOneSchema.parse(body);
  const invalid = (g: string) =>
    unprocessable(`Unable to assign isolation segment with guid '${g}'. Ensure it has been entitled to the organization that this space belongs to.`);
  return ctx.store.write(async (tx) => {
    if (input.guid !== null) {
      if (!(await load(tx.db, input.guid))) throw invalid(input.guid);
      if (!(await isEntitled(tx.db, input.guid, space.organization_guid))) throw invalid(input.guid);
    }
    const current = await tx.db.selectFrom('spaces').selectAll().where('guid', '=', space.guid).executeTakeFirstOrThrow();
    // An absent `data` clears the assignment too: upstream assigns `guid || nil` unconditionally.
    if (current.isolation_segment_guid !== input.guid) {
      await tx.update('spaces', space.guid, { isolation_segment_guid: input.guid }, { expectedGeneration: current.generation });
    }
    await recordAudit(tx, {
      type: 'audit.space.update',
      actor: ctx.principal,
      target: { type: 'space', guid: space.guid, name: space.name },
      data: { request: { data: input.guid === null ? null : { guid: input.guid } } },
      spaceGuid: space.guid,
      organizationGuid: space.organization_guid,
    });
    return { ownerGuid: space.guid, segmentGuid: await existingSegmentGuid(tx.db, input.guid) };
  });
}
