/**
 * Diego's crash-restart policy: the first three crashes restart immediately, then the delay starts at 30 s and
 * doubles per crash up to 16 minutes. Injectable (LocalRuntimeOptions.restartDelayMs) so tests run in milliseconds.
 */
export function diegoRestartDelayMs(crashCount: number): number {
  if (crashCount <= 3) return 0;
  const delay = 30_000 * 2 ** (crashCount - 4);
  return Math.min(delay, 16 * 60_000);
}

/** Diego stops restarting an instance after this many crashes; it then stays CRASHED until replaced. */
export const DIEGO_MAX_CRASHES = 200;
/** A crash after running this long starts the count afresh (Diego resets the crash count after 5 minutes). */
export const DIEGO_CRASH_RESET_MS = 5 * 60_000;
