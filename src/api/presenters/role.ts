import { isSpaceRole } from '../../domain/roles.ts';
import type { RoleRow } from '../../services/roles.ts';
import type { Linker } from '../cf/links.ts';
import { base, toOne } from '../cf/presenter.ts';
import { userPath } from './user.ts';

/** A role names its user and exactly one of organization / space; the other parent is `{"data": null}`. */
export function presentRole(role: RoleRow, l: Linker) {
  const space = isSpaceRole(role.type);
  return {
    ...base(role),
    type: role.type,
    // Upstream names the role's own parent first and the absent one after it.
    relationships: space
      ? { user: { data: { guid: role.user_guid } }, space: toOne(role.space_guid), organization: toOne(null) }
      : { user: { data: { guid: role.user_guid } }, organization: toOne(role.organization_guid), space: toOne(null) },
    links: {
      self: l.link(`/v3/roles/${role.guid}`),
      user: l.link(userPath(role.user_guid)),
      ...(space ? { space: l.link(`/v3/spaces/${role.space_guid}`) } : { organization: l.link(`/v3/organizations/${role.organization_guid}`) }),
    },
  };
}
