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
