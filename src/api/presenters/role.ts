import { isSpaceRole } from '../../domain/roles.ts';
import type { RoleRow } from '../../services/roles.ts';
import type { Linker } from '../cf/links.ts';
import { toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';
import { userPath } from './user.ts';

/** A role names its user and exactly one of organization / space; the other parent is `{"data": null}`. */
export function presentRole(role: RoleRow, l: Linker) {
  const space = isSpaceRole(role.type);
  const self = l.link(`/v3/roles/${role.guid}`);
  const user = l.link(userPath(role.user_guid));
  return {
    guid: role.guid,
    created_at: cfTime(role.created_at),
    updated_at: cfTime(role.updated_at),
    type: role.type,
    // Upstream names the role's own parent first and the absent one after it.
    relationships: space
      ? { user: { data: { guid: role.user_guid } }, space: toOne(role.space_guid), organization: toOne(null) }
      : { user: { data: { guid: role.user_guid } }, organization: toOne(role.organization_guid), space: toOne(null) },
    // Two literals rather than a spread of the parent link: see presentSpace for why.
    links: space
      ? { self, user, space: l.link(`/v3/spaces/${role.space_guid}`) }
      : { self, user, organization: l.link(`/v3/organizations/${role.organization_guid}`) },
  };
}
