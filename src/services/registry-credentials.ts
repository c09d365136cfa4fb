import type { Kysely } from 'kysely';
import { notAuthorized, notFound, uniqueness, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { normalizeRegistryHost, type CreateRegistryCredential, type RegistryScope, type UpdateRegistryCredential } from '../domain/registry-credentials.ts';
import { SPACE_ROLE_TYPES } from '../domain/roles.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, loadOneMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import type { SecretBox } from '../store/secret-box.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { assertOrgWritable, assertSpaceWritable } from './access.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';

/**
 * Registry credentials (Kiln extension, docs/kiln-openapi.json): a login for one container registry host at the
 * foundation, an organization or a space. The password or token is write-only: it is sealed with the
 * {@link SecretBox} before it reaches the database and is never returned, logged or put in an audit event; only
 * the docker lifecycle opens it ({@link resolveRegistryCredential}) to pull an image.
 *
 * Roles: read — everyone (foundation), anyone with a role in the org or one of its spaces (organization), a space
 * role in the space (space), and global readers; write — admins (foundation), org managers (their org), space
 * developers and managers (their space). Invisible → 404; visible without the write role → 403.
 */

export const REGISTRY_CREDENTIAL_LIST: ListSpec = {
  orderBy: ['host'],
  filters: ['hosts', 'scopes', 'organization_guids', 'space_guids'],
  labelSelector: true,
};

// ---- reading ----

/** The credentials the caller can read, as SQL. */
function visibleCredentials(ctx: Ctx) {
  const q = ctx.store.db.selectFrom('registry_credentials').selectAll('registry_credentials');
  if (ctx.access.global) return q;
  const me = ctx.principal.guid;
  return q.where((eb) =>
    eb.or([
      eb('registry_credentials.scope', '=', 'foundation'),
      eb.and([eb('registry_credentials.scope', '=', 'organization'), ctx.access.orgVisible(eb, 'registry_credentials.organization_guid')]),
      eb.and([
        eb('registry_credentials.scope', '=', 'space'),
        eb(
          'registry_credentials.space_guid',
          'in',
          eb.selectFrom('roles').select('roles.space_guid').where('roles.user_guid', '=', me).where('roles.type', 'in', [...SPACE_ROLE_TYPES]),
        ),
      ]),
    ]),
  );
}

export async function listRegistryCredentials(ctx: Ctx, params: ListParams): Promise<Page<Row<'registry_credentials'>>> {
  const f = params.filters;
  let q = visibleCredentials(ctx);
  if (f.hosts) q = q.where('registry_credentials.host', 'in', f.hosts.map((h) => normalizeRegistryHost(h) ?? h.toLowerCase()));
  // Values other than the three scopes match nothing, as an unknown host does.
  if (f.scopes) q = q.where('registry_credentials.scope', 'in', f.scopes as RegistryScope[]);
  if (f.organization_guids) q = q.where('registry_credentials.organization_guid', 'in', f.organization_guids);
  if (f.space_guids) q = q.where('registry_credentials.space_guid', 'in', f.space_guids);
  return listPage(q, listOptions('registry_credentials', params));
}

export async function findVisibleRegistryCredential(ctx: Ctx, guid: string): Promise<Row<'registry_credentials'>> {
  const row = await visibleCredentials(ctx).where('registry_credentials.guid', '=', guid).executeTakeFirst();
  if (!row) throw notFound('Registry credential');
  return row;
}

export async function getRegistryCredential(ctx: Ctx, guid: string): Promise<{ credential: Row<'registry_credentials'>; metadata: Metadata }> {
  const credential = await findVisibleRegistryCredential(ctx, guid);
  return { credential, metadata: await loadOneMetadata(ctx.store.db, 'registry_credentials', guid) };
}

// ---- writing ----

interface ScopeTarget {
  scope: RegistryScope;
  scopeGuid: string;
  organizationGuid: string | null;
  spaceGuid: string | null;
}

/** The scope a create names, resolved and checked: visible (else 422), writable by the caller (else 403). */
async function resolveScope(ctx: Ctx, input: CreateRegistryCredential): Promise<ScopeTarget> {
  const db = ctx.store.db;
  const r = input.relationships;
  if (r?.space) {
    const space = await db.selectFrom('spaces').selectAll().where('guid', '=', r.space.data.guid).executeTakeFirst();
    if (!space || !(await ctx.access.canReadSpace(space))) throw unprocessable('Invalid space. Ensure that the space exists and you have access to it.');
    if (!(ctx.access.admin || (await ctx.access.hasSpaceRole(space.guid, 'space_developer', 'space_manager')))) throw notAuthorized();
    assertSpaceWritable(space);
    const org = await db.selectFrom('organizations').selectAll().where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
    assertOrgWritable(ctx.access, org);
    return { scope: 'space', scopeGuid: space.guid, organizationGuid: space.organization_guid, spaceGuid: space.guid };
  }
  if (r?.organization) {
    const org = await db.selectFrom('organizations').selectAll().where('guid', '=', r.organization.data.guid).executeTakeFirst();
    if (!org || !(await ctx.access.canReadOrg(org.guid))) throw unprocessable('Invalid organization. Ensure that the organization exists and you have access to it.');
    if (!(await ctx.access.canManageOrg(org.guid))) throw notAuthorized();
    assertOrgWritable(ctx.access, org);
    return { scope: 'organization', scopeGuid: org.guid, organizationGuid: org.guid, spaceGuid: null };
  }
  if (!ctx.access.admin) throw notAuthorized();
  return { scope: 'foundation', scopeGuid: '', organizationGuid: null, spaceGuid: null };
}

/** Whether the caller may change or delete this (visible) credential. */
async function canWrite(ctx: Ctx, row: Row<'registry_credentials'>): Promise<boolean> {
  if (ctx.access.admin) return true;
  if (row.scope === 'organization') return ctx.access.hasOrgRole(row.organization_guid!, 'organization_manager');
  if (row.scope === 'space') return ctx.access.hasSpaceRole(row.space_guid!, 'space_developer', 'space_manager');
  return false;
}

const duplicate = (host: string) => uniqueness(`A registry credential for host '${host}' already exists in this scope.`);

/** What audit events keep of a request: never the secret, only which kind was set. */
function auditedRequest(input: { host?: string; username?: string; password?: string; token?: string }) {
  return {
    ...(input.host !== undefined ? { host: input.host } : {}),
    ...(input.username !== undefined ? { username: input.username } : {}),
    ...(input.password !== undefined ? { password: '[PRIVATE DATA HIDDEN]' } : {}),
    ...(input.token !== undefined ? { token: '[PRIVATE DATA HIDDEN]' } : {}),
  };
}

function audit(tx: WriteTx, ctx: Ctx, action: string, row: Pick<Row<'registry_credentials'>, 'guid' | 'host' | 'space_guid' | 'organization_guid'>, data: Record<string, unknown>) {
  return recordAudit(tx, {
    type: `audit.registry_credential.${action}`,
    actor: ctx.principal,
    target: { type: 'registry_credential', guid: row.guid, name: row.host },
    data,
    spaceGuid: row.space_guid,
    organizationGuid: row.organization_guid,
  });
}

const loadRow = (db: Kysely<Database>, guid: string) => db.selectFrom('registry_credentials').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

export async function createRegistryCredential(
  ctx: Ctx,
  box: SecretBox,
  input: CreateRegistryCredential,
): Promise<{ credential: Row<'registry_credentials'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const target = await resolveScope(ctx, input);
  const guid = newGuid();
  const secretType = input.token !== undefined ? 'token' : 'password';
  try {
    return await ctx.store.write(async (tx) => {
      const taken = await tx.db
        .selectFrom('registry_credentials')
        .select('guid')
        .where('scope', '=', target.scope)
        .where('scope_guid', '=', target.scopeGuid)
        .where('host', '=', input.host)
        .executeTakeFirst();
      if (taken) throw duplicate(input.host);
      await tx.insert('registry_credentials', {
        guid,
        scope: target.scope,
        scope_guid: target.scopeGuid,
        organization_guid: target.organizationGuid,
        space_guid: target.spaceGuid,
        host: input.host,
        username: input.username ?? '',
        secret_type: secretType,
        secret_ciphertext: box.seal((input.token ?? input.password)!, guid),
      });
      const metadata = await saveMetadata(tx, 'registry_credentials', guid, input.metadata);
      const credential = await loadRow(tx.db, guid);
      await audit(tx, ctx, 'create', credential, { request: { ...auditedRequest(input), scope: target.scope } });
      return { credential, metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw duplicate(input.host);
    throw err;
  }
}

export async function updateRegistryCredential(
  ctx: Ctx,
  box: SecretBox,
  guid: string,
  input: UpdateRegistryCredential,
): Promise<{ credential: Row<'registry_credentials'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const row = await findVisibleRegistryCredential(ctx, guid);
  if (!(await canWrite(ctx, row))) throw notAuthorized();
  const secret = input.token ?? input.password;
  return ctx.store.write(async (tx) => {
    await tx.update('registry_credentials', guid, {
      ...(input.username !== undefined ? { username: input.username } : {}),
      ...(secret !== undefined ? { secret_type: input.token !== undefined ? 'token' : 'password', secret_ciphertext: box.seal(secret, guid) } : {}),
    }, { expectedGeneration: row.generation });
    const metadata = await saveMetadata(tx, 'registry_credentials', guid, input.metadata);
    await audit(tx, ctx, 'update', row, { request: auditedRequest(input) });
    return { credential: await loadRow(tx.db, guid), metadata };
  });
}

export async function deleteRegistryCredential(ctx: Ctx, guid: string): Promise<void> {
  const row = await findVisibleRegistryCredential(ctx, guid);
  if (!(await canWrite(ctx, row))) throw notAuthorized();
  await ctx.store.write(async (tx) => {
    await deleteMetadata(tx, 'registry_credentials', [guid]);
    await tx.delete('registry_credentials', guid);
    await audit(tx, ctx, 'delete', row, {});
  });
}

/** For the org and space delete cascades: credentials go with their scope. */
export async function deleteRegistryCredentialsOf(tx: WriteTx, scope: 'organization' | 'space', guids: string[]): Promise<void> {
  if (guids.length === 0) return;
  const rows = await tx.db.selectFrom('registry_credentials').select('guid').where('scope', '=', scope).where('scope_guid', 'in', guids).execute();
  const credGuids = rows.map((r) => r.guid);
  if (credGuids.length === 0) return;
  await deleteMetadata(tx, 'registry_credentials', credGuids);
  await tx.deleteWhere('registry_credentials', (eb) => eb('guid', 'in', credGuids));
}

// ---- use by the docker lifecycle ----

