import { deleteMetadata } from '../store/metadata.ts';
import type { WriteTx } from '../store/store.ts';
import { deleteAppsOfSpaces } from './apps.ts';
import { deleteRegistryCredentialsOf } from './registry-credentials.ts';
import { deleteRoutesOfSpaces } from './route-deletes.ts';
import { purgeInstance } from './service-plans.ts';

/**
 * Deletes spaces and everything that hangs off them, in the caller's transaction. Resources added by
 * later capabilities (apps, routes, service instances…) add their clean-up here so that deleting an
 * org or a space never leaves orphans.
 */
export async function deleteSpacesCascade(tx: WriteTx, spaceGuids: string[]): Promise<void> {
  if (spaceGuids.length === 0) return;
  await deleteAppsOfSpaces(tx, spaceGuids);
  // Managed instances were deprovisioned before this transaction (a before-hook of the delete job); what is
  // left (user-provided instances, failed ones) goes with the space, as do shares into it.
  const instances = await tx.db.selectFrom('service_instances').select('guid').where('space_guid', 'in', spaceGuids).execute();
  for (const i of instances) await purgeInstance(tx, i.guid);
  await tx.db.deleteFrom('service_instance_shares').where('space_guid', 'in', spaceGuids).execute();
  await deleteRoutesOfSpaces(tx, spaceGuids);
  await deleteRegistryCredentialsOf(tx, 'space', spaceGuids);
  await tx.deleteWhere('roles', (eb) => eb('space_guid', 'in', spaceGuids));
  await tx.db.deleteFrom('security_group_spaces').where('space_guid', 'in', spaceGuids).execute();
  await deleteMetadata(tx, 'spaces', spaceGuids);
  await tx.deleteWhere('spaces', (eb) => eb('guid', 'in', spaceGuids));
}

/** Deletes an org with its spaces, roles, space quotas, private domains and entitlements. */
export async function deleteOrganizationCascade(tx: WriteTx, orgGuid: string): Promise<void> {
  const spaces = await tx.db.selectFrom('spaces').select('guid').where('organization_guid', '=', orgGuid).execute();
  await deleteSpacesCascade(tx, spaces.map((s) => s.guid));
  await deleteRegistryCredentialsOf(tx, 'organization', [orgGuid]);

  await tx.deleteWhere('roles', (eb) => eb('organization_guid', '=', orgGuid));

  const quotas = await tx.db.selectFrom('space_quotas').select('guid').where('organization_guid', '=', orgGuid).execute();
  await deleteMetadata(tx, 'space_quotas', quotas.map((q) => q.guid));
  await tx.deleteWhere('space_quotas', (eb) => eb('organization_guid', '=', orgGuid));

  const domains = await tx.db.selectFrom('domains').select('guid').where('owning_organization_guid', '=', orgGuid).execute();
  const domainGuids = domains.map((d) => d.guid);
  if (domainGuids.length > 0) {
    await tx.db.deleteFrom('domain_shared_organizations').where('domain_guid', 'in', domainGuids).execute();
    await deleteMetadata(tx, 'domains', domainGuids);
    await tx.deleteWhere('domains', (eb) => eb('guid', 'in', domainGuids));
  }
  await tx.db.deleteFrom('domain_shared_organizations').where('organization_guid', '=', orgGuid).execute();
  await tx.db.deleteFrom('isolation_segment_organizations').where('organization_guid', '=', orgGuid).execute();

  await deleteMetadata(tx, 'organizations', [orgGuid]);
  await tx.delete('organizations', orgGuid);
}
