/**
 * Runs `work` one pass at a time. A call while a pass runs asks for one more pass after it and shares the running
 * promise, so every caller's request is covered by a pass that started after the call, and a burst of calls
 * collapses into a single extra pass. A failed pass is reported to `onError`; the next call starts afresh.
 */
export class SingleFlight {
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly work: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.work();
        } while (this.again);
      } catch (err) {
        this.onError(err);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** Resolves when no pass is running (at once when idle). */
  async idle(): Promise<void> {
    await this.running;
  }
}
