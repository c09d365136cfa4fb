import type { TaskState } from '../domain/tasks.ts';
import type { WriteTx } from '../store/store.ts';

/**
 * Moves a task from one of `from` to `to` (with the given failure reason) and records the change; false when the
 * task is no longer in one of `from`. Comparing states rather than generations keeps metadata updates from
 * conflicting with the controller's transitions. The state is the task's lifecycle (status), so generation stays.
 */
export async function transitionTask(
  tx: WriteTx,
  guid: string,
  from: readonly TaskState[],
  to: TaskState,
  failureReason: string | null = null,
): Promise<boolean> {
  return tx.updateStatus('tasks', guid, { state: to, failure_reason: failureReason }, { where: (eb) => eb('state', 'in', [...from]) });
}
