/** What a poll looks at: a value when the state is reached, `undefined` or `false` while it is not yet. */
export type Probe<T> = () => T | undefined | false | Promise<T | undefined | false>;

/** Polls `fn` until it yields a value, failing with `what` at the deadline (tests poll, never sleep). */
export async function until<T>(what: string, fn: Probe<T>, timeoutMs = 30_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
