import { ADMIN_SCOPES } from '../identity/identity-service.ts';
import type { Principal } from '../domain/principal.ts';
import type { Store } from '../store/store.ts';
import { Access } from './access.ts';
import type { Ctx } from './context.ts';
import { createOrganization } from './organizations.ts';
import { createRole } from './roles.ts';
import { createSpace } from './spaces.ts';

export interface DefaultTarget {
  org: string;
  /** Null: create only the org. */
  space: string | null;
}

/**
 * The org and space a fresh installation starts with, so `kiln push` works right after the first start.
 * Made as the admin would with `cf create-org` and `cf create-space` (audit events, and the admin as org
 * manager, space manager and space developer), so nothing about them is special afterwards: they can be
 * renamed or deleted, and are not made again on later starts.
 */
export async function createDefaultTarget(
  store: Store,
  admin: { guid: string; username: string },
  wanted: DefaultTarget,
): Promise<{ orgGuid: string; spaceGuid: string | null }> {
  const principal: Principal = { guid: admin.guid, username: admin.username, origin: 'uaa', email: null, isClient: false, scopes: new Set(ADMIN_SCOPES) };
  const ctx: Ctx = { store, access: new Access(store.db, principal), principal };
  const user = { guid: admin.guid };
  const { org } = await createOrganization(ctx, { name: wanted.org });
  for (const type of ['organization_user', 'organization_manager'] as const) await createRole(ctx, { type, user, organizationGuid: org.guid });
  if (wanted.space === null) return { orgGuid: org.guid, spaceGuid: null };
  const { space } = await createSpace(ctx, { name: wanted.space, relationships: { organization: { data: { guid: org.guid } } } });
  for (const type of ['space_manager', 'space_developer'] as const) await createRole(ctx, { type, user, spaceGuid: space.guid });
  return { orgGuid: org.guid, spaceGuid: space.guid };
}
