import type { ExpressionBuilder, Kysely } from 'kysely';
import { notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams } from '../domain/list-params.ts';
import {
  CreateSecurityGroupSchema,
  SecurityGroupSpacesSchema,
  UpdateSecurityGroupSchema,
  securityGroupModelErrors,
  type Lifecycle,
} from '../domain/security-groups.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listPage, type Page } from '../store/list-query.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import { assertOrgWritable, assertSpaceWritable, findVisibleSpace } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { enqueueJob, type JobHandlers, jobInFlight } from '../lifecycle/jobs.ts';
import { nameInUse } from './name-in-use.ts';

const RESOURCE = 'security_groups';
const groupNotFound = () => notFound('Security group');
const taken = (name: string) => unprocessable(`Security group with name '${name}' already exists.`);
/** Ruby's Array#inspect of strings, which upstream puts into some messages verbatim. */
const inspect = (guids: string[]) => `[${guids.map((g) => JSON.stringify(g)).join(', ')}]`;

type Body = Record<string, unknown>;

/** The spaces a group is bound to, per lifecycle, as far as the caller may see them. */
export interface Bindings {
  running: string[];
  staging: string[];
}

export interface GroupWithBindings {
  group: Row<'security_groups'>;
  bindings: Bindings;
}

/**
 * Non-global readers see globally enabled groups and groups bound (for either lifecycle) to a space
 * they can read.
 */
function visibleGroups(ctx: Ctx) {
  return ctx.store.db
    .selectFrom('security_groups')
    .selectAll('security_groups')
    .$if(!ctx.access.global, (qb) =>
      qb.where((eb) =>
        eb.or([
          eb('security_groups.running_default', '=', 1),
          eb('security_groups.staging_default', '=', 1),
          eb(
            'security_groups.guid',
            'in',
            eb
              .selectFrom('security_group_spaces as sgs')
              .select('sgs.security_group_guid')
              .where((w) => ctx.access.spaceVisible(w, 'sgs.space_guid')),
          ),
        ]),
      ),
    );
}

/**
 * Bindings of some groups. `onlySpace` narrows them to one space (the space-scoped lists); otherwise
 * non-global readers see only the spaces they can read.
 */
async function loadBindings(ctx: Ctx, db: Kysely<Database>, groupGuids: string[], onlySpace?: string): Promise<Map<string, Bindings>> {
  const out = new Map<string, Bindings>(groupGuids.map((g) => [g, { running: [], staging: [] }]));
  if (groupGuids.length === 0) return out;
  for (let i = 0; i < groupGuids.length; i += 900) {
    let q = db
      .selectFrom('security_group_spaces as sgs')
      .innerJoin('spaces', 'spaces.guid', 'sgs.space_guid')
      .select(['sgs.security_group_guid', 'sgs.space_guid', 'sgs.lifecycle'])
      .where('sgs.security_group_guid', 'in', groupGuids.slice(i, i + 900));
    if (onlySpace !== undefined) q = q.where('sgs.space_guid', '=', onlySpace);
    else if (!ctx.access.global) q = q.where((eb) => ctx.access.spaceVisible(eb, 'sgs.space_guid'));
    const rows = await q.orderBy('spaces.id').execute();
    for (const r of rows) {
      const b = out.get(r.security_group_guid);
      if (b && (r.lifecycle === 'running' || r.lifecycle === 'staging')) b[r.lifecycle].push(r.space_guid);
    }
  }
  return out;
}

const emptyBindings = (): Bindings => ({ running: [], staging: [] });

function listOptions(params: ListParams) {
  return {
    table: 'security_groups',
    page: params.page,
    perPage: params.perPage,
    guids: params.filters.guids,
    timestamps: params.timestamps,
    orderBy: params.orderBy ? { column: params.orderBy.field, desc: params.orderBy.desc } : undefined,
  };
}

const boundTo = (lifecycle: Lifecycle, spaceGuids: string[]) => (eb: ExpressionBuilder<Database, 'security_groups'>) =>
  eb(
    'security_groups.guid',
    'in',
    eb
      .selectFrom('security_group_spaces')
      .select('security_group_guid')
      .where('lifecycle', '=', lifecycle)
      .where('space_guid', 'in', spaceGuids.length ? spaceGuids : ['']),
  );

export async function listSecurityGroups(
  ctx: Ctx,
  params: ListParams,
): Promise<{ page: Page<Row<'security_groups'>>; bindings: Map<string, Bindings> }> {
  let q = visibleGroups(ctx);
  const f = params.filters;
  if (f.names) q = q.where('security_groups.name', 'in', f.names);
  if (f.running_space_guids) q = q.where(boundTo('running', f.running_space_guids));
  if (f.staging_space_guids) q = q.where(boundTo('staging', f.staging_space_guids));
  const running = params.params.globally_enabled_running;
  if (running !== undefined) q = q.where('security_groups.running_default', '=', running === 'true' ? 1 : 0);
  const staging = params.params.globally_enabled_staging;
  if (staging !== undefined) q = q.where('security_groups.staging_default', '=', staging === 'true' ? 1 : 0);
  const page = await listPage(q, listOptions(params));
  return { page, bindings: await loadBindings(ctx, ctx.store.db, page.rows.map((r) => r.guid)) };
}

async function findVisibleGroup(ctx: Ctx, guid: string): Promise<Row<'security_groups'>> {
  const group = await visibleGroups(ctx).where('security_groups.guid', '=', guid).executeTakeFirst();
  if (!group) throw groupNotFound();
  return group;
}

export async function getSecurityGroup(ctx: Ctx, guid: string): Promise<GroupWithBindings> {
  const group = await findVisibleGroup(ctx, guid);
  const bindings = await loadBindings(ctx, ctx.store.db, [group.guid]);
  return { group, bindings: bindings.get(group.guid) ?? emptyBindings() };
}

function audit(tx: WriteTx, ctx: Ctx, verb: string, group: Pick<Row<'security_groups'>, 'guid' | 'name'>, data: unknown, spaceGuid?: string) {
  return recordAudit(tx, {
    type: `audit.security_group.${verb}`,
    actor: ctx.principal,
    target: { type: 'security_group', guid: group.guid, name: group.name },
    data: { request: data },
    spaceGuid: spaceGuid ?? null,
  });
}

async function bind(tx: WriteTx, groupGuid: string, lifecycle: Lifecycle, spaceGuids: string[]): Promise<void> {
  for (const spaceGuid of spaceGuids) {
    await tx.db
      .insertInto('security_group_spaces')
      .values({ security_group_guid: groupGuid, space_guid: spaceGuid, lifecycle })
      .onConflict((oc) => oc.columns(['security_group_guid', 'space_guid', 'lifecycle']).doNothing())
      .execute();
  }
}

const loadGroup = (db: Kysely<Database>, guid: string) =>
  db.selectFrom('security_groups').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

export async function createSecurityGroup(ctx: Ctx, body: Body): Promise<GroupWithBindings> {
  if (!ctx.access.admin) throw notAuthorized();
  const input = CreateSecurityGroupSchema.parse(body);
  const name = input.name!; // required by the schema
  const rules = input.rules ?? [];
  const invalid = securityGroupModelErrors(name, rules);
  if (invalid.length > 0) throw unprocessable(invalid.join(', '));
  try {
    const group = await ctx.store.write(async (tx) => {
      if (await nameInUse(tx.db, 'security_groups', name)) throw taken(name);
      const guid = newGuid();
      await tx.insert('security_groups', {
        guid,
        name,
        rules: JSON.stringify(rules),
        running_default: input.running ? 1 : 0,
        staging_default: input.staging ? 1 : 0,
      });
      for (const [lifecycle, guids] of [
        ['staging', input.stagingSpaceGuids],
        ['running', input.runningSpaceGuids],
      ] as const) {
        if (guids.length === 0) continue;
        const found = new Set((await tx.db.selectFrom('spaces').select('guid').where('guid', 'in', guids).execute()).map((s) => s.guid));
        const missing = guids.filter((g) => !found.has(g));
        if (missing.length > 0) throw unprocessable(`Spaces with guids ${inspect(missing)} do not exist.`);
        await bind(tx, guid, lifecycle, guids);
      }
      await audit(tx, ctx, 'create', { guid, name }, body);
      return loadGroup(tx.db, guid);
    });
    const bindings = await loadBindings(ctx, ctx.store.db, [group.guid]);
    return { group, bindings: bindings.get(group.guid) ?? emptyBindings() };
  } catch (err) {
    if (isUniqueViolation(err)) throw taken(name);
    throw err;
  }
}

export async function updateSecurityGroup(ctx: Ctx, guid: string, body: Body): Promise<GroupWithBindings> {
  const existing = await findVisibleGroup(ctx, guid);
  if (!ctx.access.admin) throw notAuthorized();
  const input = UpdateSecurityGroupSchema.parse(body);
  const invalid = securityGroupModelErrors(input.name, input.rules);
  if (invalid.length > 0) throw unprocessable(invalid.join(', '));
  const name = input.name ?? existing.name;
  try {
    const group = await ctx.store.write(async (tx) => {
      if (input.name !== undefined && (await nameInUse(tx.db, 'security_groups', name, { except: existing.guid }))) throw taken(name);
      await tx.update('security_groups', existing.guid, {
        name,
        rules: input.rules ? JSON.stringify(input.rules) : existing.rules,
        running_default: input.running === undefined ? existing.running_default : input.running ? 1 : 0,
        staging_default: input.staging === undefined ? existing.staging_default : input.staging ? 1 : 0,
      }, { expectedGeneration: existing.generation });
      await audit(tx, ctx, 'update', { guid: existing.guid, name }, body);
      return loadGroup(tx.db, existing.guid);
    });
    const bindings = await loadBindings(ctx, ctx.store.db, [group.guid]);
    return { group, bindings: bindings.get(group.guid) ?? emptyBindings() };
  } catch (err) {
    if (isUniqueViolation(err)) throw taken(name);
    throw err;
  }
}

/** Returns the job that deletes the group (and its bindings). */
export async function deleteSecurityGroup(ctx: Ctx, guid: string): Promise<string> {
  const group = await findVisibleGroup(ctx, guid);
  if (!ctx.access.admin) throw notAuthorized();
  return ctx.store.write(async (tx) => {
    const inFlight = await jobInFlight(tx.db, 'security_group.delete', group.guid);
    if (inFlight) return inFlight; // a repeated delete hands back the job already under way
    await audit(tx, ctx, 'delete-request', group, {});
    return enqueueJob(tx, { operation: 'security_group.delete', resourceType: 'security_group', resourceGuid: group.guid, userGuid: ctx.principal.guid });
  });
}

export function registerSecurityGroupJobs(handlers: JobHandlers, store: Store): void {
  handlers.register('security_group.delete', async ({ job }) => {
    await store.write(async (tx) => {
      // Idempotent: a re-run after a crash finds nothing left and finishes quietly.
      await tx.db.deleteFrom('security_group_spaces').where('security_group_guid', '=', job.resource_guid).execute();
      await tx.delete(RESOURCE, job.resource_guid);
    });
  });
}

// ---- per-space bindings ----

/** §8.3 step 7 for a space: neither it nor its org is being deleted, the org is not suspended. */
async function assertSpaceMutable(ctx: Ctx, space: Row<'spaces'>): Promise<void> {
  const org = await ctx.store.db
    .selectFrom('organizations')
    .select(['status', 'suspended'])
    .where('guid', '=', space.organization_guid)
    .executeTakeFirstOrThrow();
  assertOrgWritable(ctx.access, org);
  assertSpaceWritable(space);
}

/** Space managers and org managers may bind only groups they can see, only to spaces they manage. */
export async function bindSpaces(ctx: Ctx, guid: string, lifecycle: Lifecycle, body: Body): Promise<{ group: Row<'security_groups'>; guids: string[] }> {
  const group = await findVisibleGroup(ctx, guid);
  const input = SecurityGroupSpacesSchema.parse(body);
  const found = input.guids.length ? await ctx.store.db.selectFrom('spaces').selectAll().where('guid', 'in', input.guids).execute() : [];
  // A space the caller cannot read is answered like one that does not exist (§13.3), before any 403 could tell
  // the two apart.
  const spaces: Array<Row<'spaces'>> = [];
  for (const space of found) if (await ctx.access.canReadSpace(space)) spaces.push(space);
  const visible = new Set(spaces.map((s) => s.guid));
  const invalid = input.guids.filter((g) => !visible.has(g));
  if (invalid.length > 0) throw unprocessable(`Spaces with guids ${inspect(invalid)} do not exist, or you do not have access to them.`);
  for (const space of spaces) {
    if (!(await ctx.access.canUpdateSpace(space))) throw notAuthorized();
    await assertSpaceMutable(ctx, space);
  }
  return ctx.store.write(async (tx) => {
    await bind(tx, group.guid, lifecycle, input.guids);
    tx.changed(RESOURCE, group.guid, 'update');
    await audit(tx, ctx, `bind_${lifecycle}_spaces`, group, { space_guids: input.guids }, input.guids.length === 1 ? input.guids[0] : undefined);
    // Upstream answers with every bound space, not only the ones the caller can see.
    const rows = await tx.db
      .selectFrom('security_group_spaces as sgs')
      .innerJoin('spaces', 'spaces.guid', 'sgs.space_guid')
      .select('sgs.space_guid')
      .where('sgs.security_group_guid', '=', group.guid)
      .where('sgs.lifecycle', '=', lifecycle)
      .orderBy('spaces.id')
      .execute();
    return { group, guids: rows.map((r) => r.space_guid) };
  });
}

export async function unbindSpace(ctx: Ctx, guid: string, lifecycle: Lifecycle, spaceGuid: string): Promise<void> {
  const group = await findVisibleGroup(ctx, guid);
  const notBound = () =>
    unprocessable(`Unable to unbind security group from space with guid '${spaceGuid}'. Ensure the space is bound to this security group.`);
  const space = await ctx.store.db.selectFrom('spaces').selectAll().where('guid', '=', spaceGuid).executeTakeFirst();
  // A space the caller cannot read is answered like one that does not exist (§13.3).
  if (!space || !(await ctx.access.canReadSpace(space))) throw notBound();
  if (!(await ctx.access.canUpdateSpace(space))) throw notAuthorized();
  await assertSpaceMutable(ctx, space);
  await ctx.store.write(async (tx) => {
    const res = await tx.db
      .deleteFrom('security_group_spaces')
      .where('security_group_guid', '=', group.guid)
      .where('space_guid', '=', space.guid)
      .where('lifecycle', '=', lifecycle)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notBound();
    tx.changed(RESOURCE, group.guid, 'update');
    await audit(tx, ctx, `unbind_${lifecycle}_spaces`, group, { space_guid: space.guid }, space.guid);
  });
}

/**
 * `GET /v3/spaces/:guid/running_security_groups` (or staging): the groups bound to the space for that
 * lifecycle plus the globally enabled ones; each shows only this space among its bindings.
 */
export async function listSpaceSecurityGroups(
  ctx: Ctx,
  spaceGuid: string,
  lifecycle: Lifecycle,
  params: ListParams,
): Promise<{ page: Page<Row<'security_groups'>>; bindings: Map<string, Bindings> }> {
  const space = await findVisibleSpace(ctx.access, ctx.store.db, spaceGuid);
  const column = lifecycle === 'running' ? 'security_groups.running_default' : 'security_groups.staging_default';
  let q = ctx.store.db
    .selectFrom('security_groups')
    .selectAll('security_groups')
    .where((eb) => eb.or([eb(column, '=', 1), boundTo(lifecycle, [space.guid])(eb)]));
  if (params.filters.names) q = q.where('security_groups.name', 'in', params.filters.names);
  const page = await listPage(q, listOptions(params));
  return { page, bindings: await loadBindings(ctx, ctx.store.db, page.rows.map((r) => r.guid), space.guid) };
}
