import type { NamedRef } from './config-store.ts';
import { findOrg, findSpace, type Named } from './commands/common.ts';
import type { Session } from './session.ts';

/** After login: the given org/space, else the only one visible (as cf login picks). */
export async function chooseTarget(session: Session, orgName: string | undefined, spaceName: string | undefined): Promise<void> {
  let org: NamedRef | undefined;
  if (orgName !== undefined) {
    org = await findOrg(session.client, orgName);
  } else {
    const orgs = await session.client.listAll<Named>('/v3/organizations', { order_by: 'name' });
    if (orgs.length === 1) org = { guid: orgs[0]!.guid, name: orgs[0]!.name };
  }
  if (!org) return;
  session.config.org = org;
  if (spaceName !== undefined) session.config.space = await findSpace(session.client, org, spaceName);
  else await targetOnlySpace(session, org);
}

export async function targetOnlySpace(session: Session, org: NamedRef): Promise<void> {
  const spaces = await session.client.listAll<Named>('/v3/spaces', { organization_guids: org.guid });
  if (spaces.length === 1) session.config.space = { guid: spaces[0]!.guid, name: spaces[0]!.name };
}

