import { z } from 'zod';

export const ORG_ROLE_TYPES = [
  'organization_user',
  'organization_auditor',
  'organization_manager',
  'organization_billing_manager',
] as const;
export const SPACE_ROLE_TYPES = ['space_auditor', 'space_developer', 'space_manager', 'space_supporter'] as const;
export const ROLE_TYPES = [...ORG_ROLE_TYPES, ...SPACE_ROLE_TYPES] as const;

export const RoleTypeSchema = z.enum(ROLE_TYPES);
export type RoleType = z.infer<typeof RoleTypeSchema>;
export type OrgRoleType = (typeof ORG_ROLE_TYPES)[number];
export type SpaceRoleType = (typeof SPACE_ROLE_TYPES)[number];

export const isOrgRole = (t: string): t is OrgRoleType => (ORG_ROLE_TYPES as readonly string[]).includes(t);
export const isSpaceRole = (t: string): t is SpaceRoleType => (SPACE_ROLE_TYPES as readonly string[]).includes(t);

/** Space roles that can read a space and its contents (org managers of the parent org can too). */
export const SPACE_READER_ROLES: readonly SpaceRoleType[] = SPACE_ROLE_TYPES;

/** Upstream lists the allowed types org roles first, each group in this order, in its validation message. */
const TYPES_IN_MESSAGE_ORDER = [
  'organization_auditor',
  'organization_manager',
  'organization_billing_manager',
  'organization_user',
  'space_auditor',
  'space_manager',
  'space_developer',
  'space_supporter',
] as const;

/** Who a new role is for: a CC/identity user guid (or client id), or a username with an optional origin. */
export type RoleUserRef = { guid: string } | { username: string; origin?: string };

/** A validated `POST /v3/roles` body: exactly one of organizationGuid / spaceGuid, matching the type. */
export type CreateRole =
  | { type: OrgRoleType; user: RoleUserRef; organizationGuid: string }
  | { type: SpaceRoleType; user: RoleUserRef; spaceGuid: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const unknownFields = (keys: string[]) => `Unknown field(s): ${keys.map((k) => `'${k}'`).join(', ')}`;

/** Errors of a to-one `{"data": {"guid": …}}` member, named as upstream names them ("Space guid must be a string"). */
function toOneErrors(name: 'Space' | 'Organization' | 'User', attr: string, value: unknown): string[] {
  const structured =
    isObject(value) &&
    Object.keys(value).join() === 'data' &&
    (value.data === null || (isObject(value.data) && Object.keys(value.data).join() === 'guid'));
  if (!structured) return [`${name} must be structured like this: "${attr}: {"data": {"guid": "valid-guid"}}"`];
  const data = value.data as { guid: unknown } | null;
  if (data === null) return [];
  if (typeof data.guid !== 'string') return [`${name} guid must be a string`, `${name} guid must be between 1 and 200 characters`];
  if (data.guid.length < 1 || data.guid.length > 200) return [`${name} guid must be between 1 and 200 characters`];
  return [];
}

/** The `relationships` problems of a role create body, in upstream's order, each prefixed "Relationships". */
function roleRelationshipErrors(type: unknown, rel: unknown): string[] {
  if (!isObject(rel)) return ["'relationships' is not an object"];
  if (Object.keys(rel).length === 0) return ["'relationships' must include one or more valid relationships"];
  const errors: string[] = [];
  const extra = Object.keys(rel).filter((k) => !['space', 'user', 'organization'].includes(k));
  if (extra.length > 0) errors.push(unknownFields(extra));

  const user = rel.user;
  const userData = isObject(user) ? user.data : undefined;
  const dataObj = isObject(userData) ? userData : undefined;
  const hasGuid = dataObj !== undefined && 'guid' in dataObj;
  const hasUsername = dataObj !== undefined && 'username' in dataObj;
  const hasOrigin = dataObj !== undefined && 'origin' in dataObj;
  let userErrors = 0;
  const userError = (m: string) => {
    errors.push(m);
    userErrors++;
  };
  if (user === undefined || user === null || (isObject(user) && Object.keys(user).length === 0)) userError("User can't be blank");
  if (hasGuid && hasUsername) userError('Username cannot be specified when identifying user by guid');
  if (hasGuid && hasOrigin) userError('User origin cannot be specified when identifying user by guid');
  if (!hasUsername && hasOrigin) userError('User origin cannot be specified without specifying the username');
  if (!hasUsername && !hasGuid) userError('User must have a username or guid specified');

  const spaceData = isObject(rel.space) ? rel.space.data : undefined;
  const orgData = isObject(rel.organization) ? rel.organization.data : undefined;
  const hasSpace = spaceData !== undefined && spaceData !== null;
  const hasOrg = orgData !== undefined && orgData !== null;
  let placeErrors = 0;
  const placeError = (m: string) => {
    errors.push(m);
    placeErrors++;
  };
  if (!hasSpace && !hasOrg) placeError('must specify either a space or an organization.');
  if (hasSpace && typeof type === 'string' && isOrgRole(type)) placeError(`Space cannot be provided with the organization role type: '${type}'.`);
  if (hasOrg && typeof type === 'string' && isSpaceRole(type)) placeError(`Organization cannot be provided with the space role type: '${type}'.`);
  if (hasSpace && hasOrg) placeError('cannot specify both an organization and a space.');
  if (placeErrors === 0 && (hasSpace || rel.organization === undefined)) errors.push(...toOneErrors('Space', 'space', rel.space));
  if (placeErrors === 0 && (hasOrg || rel.space === undefined)) errors.push(...toOneErrors('Organization', 'organization', rel.organization));

  if (userErrors === 0 && hasGuid) errors.push(...toOneErrors('User', 'user', user));
  if (userErrors === 0 && hasUsername && typeof dataObj.username !== 'string') errors.push('Username must be a string');
  if (userErrors === 0 && hasOrigin && dataObj.origin !== null && typeof dataObj.origin !== 'string') {
    errors.push('User origin must be a string');
  }
  return errors;
}

/**
 * Validates a `POST /v3/roles` body the way Cloud Controller does, returning every problem as one list
 * (unknown fields first, then relationships, then type), or the parsed request.
 */
export function parseCreateRole(body: Record<string, unknown>): { errors: string[] } | { role: CreateRole } {
  const errors: string[] = [];
  const extra = Object.keys(body).filter((k) => k !== 'type' && k !== 'relationships');
  if (extra.length > 0) errors.push(unknownFields(extra));
  errors.push(...roleRelationshipErrors(body.type, body.relationships).map((m) => `Relationships ${m}`));
  const type = body.type;
  if (typeof type !== 'string' || !(ROLE_TYPES as readonly string[]).includes(type)) {
    errors.push(`Type must be one of the allowed types [${TYPES_IN_MESSAGE_ORDER.map((t) => `"${t}"`).join(', ')}]`);
  }
  if (errors.length > 0) return { errors };

  // Everything below was checked by roleRelationshipErrors.
  const rel = body.relationships as Record<string, { data: Record<string, string> | null } | undefined>;
  const data = rel.user!.data!;
  const user: RoleUserRef =
    'guid' in data ? { guid: data.guid! } : { username: data.username!, ...(typeof data.origin === 'string' ? { origin: data.origin } : {}) };
  const roleType = type as RoleType;
  if (isSpaceRole(roleType)) return { role: { type: roleType, user, spaceGuid: rel.space!.data!.guid! } };
  return { role: { type: roleType as OrgRoleType, user, organizationGuid: rel.organization!.data!.guid! } };
}

export const CreateRoleSchema = z.record(z.string(), z.unknown()).transform((body, ctx) => {
  const parsed = parseCreateRole(body);
  if ('errors' in parsed) {
    for (const message of parsed.errors) ctx.issues.push({ code: 'custom', message, input: body });
    return z.NEVER;
  }
  return parsed.role;
});

/** The 422 detail the cf CLI recognises ("User '…' already has '…' role") to treat a repeat as success. */
export function duplicateRoleMessage(type: RoleType, userName: string, place: { kind: 'organization' | 'space'; name: string }): string {
  return `User '${userName}' already has '${type}' role in ${place.kind} '${place.name}'.`;
}

export const SPACE_ROLE_NEEDS_ORG_ROLE =
  "Users cannot be assigned roles in a space if they do not have a role in that space's organization.";

/** Audit event types of role changes, e.g. `audit.user.space_developer_add`. */
export const roleAuditType = (type: RoleType, change: 'add' | 'remove') => `audit.user.${type}_${change}`;
