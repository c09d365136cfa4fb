import type { Kysely } from 'kysely';
import { APPLIED_FROM_LABEL, declarationOf, isReconciler, MANAGED_LABEL, type Declaration } from '../domain/declared.ts';
import { unprocessable } from '../domain/errors.ts';
import type { Principal } from '../domain/principal.ts';
import { loadOneMetadata } from '../store/metadata.ts';
import type { Database } from '../store/schema.ts';
import type { WriteTx } from '../store/store.ts';

/** The declaration behind a CF object (domain/declared.ts), read from its metadata. */
export async function declarationFor(db: Kysely<Database>, resourceType: string, guid: string): Promise<Declaration | undefined> {
  return declarationOf(await loadOneMetadata(db, resourceType, guid));
}

/**
 * Refuses a write by anyone but Kiln's reconcilers when it touches owned fields (`fields`: what the write would
 * change; empty for a delete, which any declaration refuses). Ownership marks (`metadata.kiln.dev/…`) are always
 * owned.
 */
export function refuseDeclaredWrite(principal: Pick<Principal, 'guid'>, d: Declaration | undefined, type: string, name: string, fields: string[] | 'delete'): void {
  if (!d || isReconciler(principal)) return;
  const owns = d.owns;
  const hit = fields === 'delete' ? [] : fields.filter((f) => owns === '*' || owns.has(f) || f.startsWith('metadata.kiln.dev/'));
  if (fields !== 'delete' && hit.length === 0) return;
  const list = [...new Set(hit)];
  throw unprocessable(`${type} '${name}' is managed by ${d.owner}${list.length ? `, which declares ${list.join(', ')}` : ''}; change the ${d.instead} instead`);
}

/** Looks the declaration up and refuses the write when it touches owned fields (nothing is read for Kiln's reconcilers). */
export async function assertNotDeclared(
  db: Kysely<Database>,
  principal: Pick<Principal, 'guid'>,
  target: { resourceType: string; guid: string; type: string; name: string },
  fields: string[] | 'delete',
): Promise<void> {
  if (isReconciler(principal) || (fields !== 'delete' && fields.length === 0)) return;
  refuseDeclaredWrite(principal, await declarationFor(db, target.resourceType, target.guid), target.type, target.name, fields);
}

/**
 * A GitSource that goes away (deleted through `/kiln/v1/gitsources`, or its resource deleted) deletes nothing it
 * applied; what it applied becomes ordinary CF objects: their `kiln.dev/managed-by` label goes, in the caller's
 * write, so nothing stays refused in the name of a source that no longer exists.
 */
export async function releaseAppliedFrom(tx: WriteTx, source: string): Promise<number> {
  const [prefix, name] = APPLIED_FROM_LABEL.split('/') as [string, string];
  const [mPrefix, mName] = MANAGED_LABEL.split('/') as [string, string];
  const rows = await tx.db.selectFrom('labels').select(['resource_type', 'resource_guid']).where('key_prefix', '=', prefix).where('key_name', '=', name).where('value', '=', source).execute();
  for (const r of rows) {
    await tx.db.deleteFrom('labels').where('resource_guid', '=', r.resource_guid).where('key_prefix', '=', mPrefix).where('key_name', '=', mName).execute();
    tx.changed(r.resource_type, r.resource_guid, 'update');
  }
  return rows.length;
}
