import type { TaskState } from '../domain/tasks.ts';
import type { WriteTx } from '../store/store.ts';

/**
 * Moves a task from one of `from` to `to` (with the given failure reason) and records the change; false when the
 * task is no longer in one of `from`. Comparing states rather than generations keeps metadata updates from
 * conflicting with the controller's transitions.
 */
export async function transitionTask(
  tx: WriteTx,
  guid: string,
  from: readonly string[],
  to: TaskState,
  failureReason: string | null = null,
): Promise<boolean> {
  const res = await tx.db
    .updateTable('tasks')
    .set((eb) => ({ state: to, failure_reason: failureReason, updated_at: tx.now, generation: eb('generation', '+', 1) }))
    .where('guid', '=', guid)
    .where('state', 'in', [...from])
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) return false;
  tx.changed('tasks', guid, 'update');
  return true;
}
