/**
 * How a reconcile ends, besides returning normally (done) or `{ requeueAfterMs }` (look again later):
 *
 * - `NotReady`: not there yet, for a reason the user can act on or wait out (`DropletNotStaged`). Recorded as a
 *   `Ready=False` condition with that reason and retried with the key's exponential backoff.
 * - `TerminalError`: can never succeed as the resource stands (a 422-class failure). Recorded the same way, counted,
 *   and not retried — not even by the periodic resync — until a change-feed entry for the key says the resource
 *   changed.
 *
 * Any other error is unexpected: logged, counted as `error` and retried with backoff, without a condition.
 */
abstract class RecordedFailure extends Error {
  constructor(
    /** The condition's reason: CamelCase, for machines (`DropletNotStaged`). */
    readonly reason: string,
    message = '',
    /** The condition type to record (default `Ready`). */
    readonly conditionType = 'Ready',
  ) {
    super(message || reason);
    this.name = new.target.name;
  }
}

export class NotReady extends RecordedFailure {}

export class TerminalError extends RecordedFailure {}

/** A normal end of a reconcile: done, or look again after `requeueAfterMs` (polling the runtime, a deadline). */
export type ReconcileResult = { requeueAfterMs?: number } | void;

/** The `result` label of `kiln_reconcile_total`. */
export type ReconcileOutcome = 'success' | 'requeue' | 'not_ready' | 'terminal_error' | 'error';
