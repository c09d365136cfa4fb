import type { Kysely } from 'kysely';
import { unprocessable } from '../domain/errors.ts';
import type { Database } from '../store/schema.ts';

/**
 * While a backup of an instance is being made or the instance is being restored from one (service-backups.ts), the
 * instance may not be updated or deleted: the broker would be asked to change what it is copying or overwriting.
 * Answered like any other operation in progress on the instance.
 */
export async function assertNoBackupOperation(db: Kysely<Database>, instanceGuid: string): Promise<void> {
  const busy = await db
    .selectFrom('service_instance_backups')
    .select('last_operation_type')
    .where('service_instance_guid', '=', instanceGuid)
    .where('last_operation_state', '=', 'in progress')
    .executeTakeFirst();
  if (busy) throw unprocessable(`There is an operation in progress for the service instance: a ${busy.last_operation_type === 'create' ? 'backup' : 'restore'} is running`);
}
