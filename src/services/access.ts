import type { Expression, ExpressionBuilder, Kysely, SqlBool } from 'kysely';
import { sql } from 'kysely';
import { KilnError, notAuthorized, notFound } from '../domain/errors.ts';
import { isAdmin, readsAllSecrets, readsEverything, type Principal } from '../domain/principal.ts';
import { ORG_ROLE_TYPES, SPACE_ROLE_TYPES, type RoleType } from '../domain/roles.ts';
import type { Database, Row } from '../store/schema.ts';
import { everyRow } from '../store/every-row.ts';

interface RoleRow {
  type: string;
  organization_guid: string | null;
  space_guid: string | null;
}

// Visibility conditions are embedded in queries over many different tables, so the builder's table
// set is left open; the conditions themselves only reference `roles` and `spaces`.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Eb = ExpressionBuilder<Database, any>;

/**
 * What one caller may see and do, per CONVENTIONS.md §13. Built per request; the caller's roles are
 * loaded once, lazily. Lists use the SQL visibility conditions so they never load other tenants' rows.
 */
export class Access {
  private rolesPromise: Promise<RoleRow[]> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    readonly principal: Principal,
  ) {}

  get admin(): boolean {
    return isAdmin(this.principal);
  }

  /** Admin, admin read-only and global auditor see every resource. */
  get global(): boolean {
    return readsEverything(this.principal);
  }

  get globalSecrets(): boolean {
    return readsAllSecrets(this.principal);
  }

  get userGuid(): string {
    return this.principal.guid;
  }

  roles(): Promise<RoleRow[]> {
    this.rolesPromise ??= this.db
      .selectFrom('roles')
      .select(['type', 'organization_guid', 'space_guid'])
      .where('user_guid', '=', this.principal.guid)
      .execute();
    return this.rolesPromise;
  }

  async orgRoles(orgGuid: string): Promise<Set<string>> {
    return new Set((await this.roles()).filter((r) => r.organization_guid === orgGuid).map((r) => r.type));
  }

  async spaceRoles(spaceGuid: string): Promise<Set<string>> {
    return new Set((await this.roles()).filter((r) => r.space_guid === spaceGuid).map((r) => r.type));
  }

  async hasOrgRole(orgGuid: string, ...types: RoleType[]): Promise<boolean> {
    const mine = await this.orgRoles(orgGuid);
    return types.some((t) => mine.has(t));
  }

  async hasSpaceRole(spaceGuid: string, ...types: RoleType[]): Promise<boolean> {
    const mine = await this.spaceRoles(spaceGuid);
    return types.some((t) => mine.has(t));
  }

  // ---- visibility as SQL (for lists) ----

  /** Org guids the caller can read: any org role, or a space role in one of its spaces. */
  readableOrgGuids(eb: Eb) {
    return eb
      .selectFrom('roles')
      .select(sql<string>`coalesce(roles.organization_guid, (select s.organization_guid from spaces s where s.guid = roles.space_guid))`.as('g'))
      .where('roles.user_guid', '=', this.principal.guid);
  }

  /** Space guids the caller can read: a space role there, or org manager of its org. */
  readableSpaceGuids(eb: Eb) {
    return eb
      .selectFrom('spaces as rs')
      .select('rs.guid')
      .where((w) =>
        w.or([
          w(
            'rs.guid',
            'in',
            w
              .selectFrom('roles')
              .select('roles.space_guid')
              .where('roles.user_guid', '=', this.principal.guid)
              .where('roles.type', 'in', [...SPACE_ROLE_TYPES]),
          ),
          w(
            'rs.organization_guid',
            'in',
            w
              .selectFrom('roles')
              .select('roles.organization_guid')
              .where('roles.user_guid', '=', this.principal.guid)
              .where('roles.type', '=', 'organization_manager'),
          ),
        ]),
      );
  }

  /**
   * `column IN readable orgs` — or true for global readers. List queries skip the call for global readers (even
   * `1 = 1` keeps SQLite from counting off an index); the fallback (everyRow) stays as a safe default.
   */
  orgVisible(eb: Eb, column: string): Expression<SqlBool> {
    if (this.global) return everyRow();
    return eb(sql.ref(column), 'in', this.readableOrgGuids(eb));
  }

  spaceVisible(eb: Eb, column: string): Expression<SqlBool> {
    if (this.global) return everyRow();
    return eb(sql.ref(column), 'in', this.readableSpaceGuids(eb));
  }

  // ---- checks for one resource ----

  async canReadOrg(orgGuid: string): Promise<boolean> {
    if (this.global) return true;
    const roles = await this.roles();
    if (roles.some((r) => r.organization_guid === orgGuid)) return true;
    const spaceGuids = roles.filter((r) => r.space_guid).map((r) => r.space_guid!);
    if (spaceGuids.length === 0) return false;
    const hit = await this.db
      .selectFrom('spaces')
      .select('guid')
      .where('guid', 'in', spaceGuids)
      .where('organization_guid', '=', orgGuid)
      .executeTakeFirst();
    return hit !== undefined;
  }

  async canReadSpace(space: Pick<Row<'spaces'>, 'guid' | 'organization_guid'>): Promise<boolean> {
    if (this.global) return true;
    if (await this.hasSpaceRole(space.guid, ...SPACE_ROLE_TYPES)) return true;
    return this.hasOrgRole(space.organization_guid, 'organization_manager');
  }

  /** Org manager (or admin): update the org, manage its spaces, quotas, domains and roles. */
  async canManageOrg(orgGuid: string): Promise<boolean> {
    return this.admin || this.hasOrgRole(orgGuid, 'organization_manager');
  }

  /** Space developer (or admin): create/update/delete apps and other contents of the space. */
  async canWriteSpace(spaceGuid: string): Promise<boolean> {
    return this.admin || this.hasSpaceRole(spaceGuid, 'space_developer');
  }

  /** Space developer or supporter: start/stop/scale apps, manage routes and deployments. */
  async canManageApps(spaceGuid: string): Promise<boolean> {
    return this.admin || this.hasSpaceRole(spaceGuid, 'space_developer', 'space_supporter');
  }

  /** Space manager or org manager: update the space itself, manage its roles. */
  async canUpdateSpace(space: Pick<Row<'spaces'>, 'guid' | 'organization_guid'>): Promise<boolean> {
    if (this.admin) return true;
    if (await this.hasSpaceRole(space.guid, 'space_manager')) return true;
    return this.hasOrgRole(space.organization_guid, 'organization_manager');
  }

  async canReadSpaceSecrets(spaceGuid: string): Promise<boolean> {
    return this.globalSecrets || this.hasSpaceRole(spaceGuid, 'space_developer');
  }

  /** Throws 403 unless `allowed`; call only after the resource was found visible (404 otherwise). */
  static require(allowed: boolean): void {
    if (!allowed) throw notAuthorized();
  }
}

/** Org roles, in the order the CLI and docs list them. */
export const ORG_ROLES = ORG_ROLE_TYPES;

/** Resolves an org the caller can read, or 404s as if it did not exist. */
export async function findVisibleOrg(access: Access, db: Kysely<Database>, guid: string): Promise<Row<'organizations'>> {
  const org = await db.selectFrom('organizations').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!org || !(await access.canReadOrg(org.guid))) throw notFound('Organization');
  return org;
}

export async function findVisibleSpace(access: Access, db: Kysely<Database>, guid: string): Promise<Row<'spaces'>> {
  const space = await db.selectFrom('spaces').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!space || !(await access.canReadSpace(space))) throw notFound('Space');
  return space;
}

/** Write guards of CONVENTIONS.md §8.3 step 7: deleting orgs/spaces, suspended orgs (admins bypass). */
export function assertOrgWritable(access: Access, org: Pick<Row<'organizations'>, 'status' | 'suspended'>): void {
  if (org.status === 'deleting') throw new KilnError('ResourceBeingDeleted', 'organization');
  if (org.suspended && !access.admin) throw new KilnError('OrgSuspended');
}

export function assertSpaceWritable(space: Pick<Row<'spaces'>, 'status'>): void {
  if (space.status === 'deleting') throw new KilnError('ResourceBeingDeleted', 'space');
}
