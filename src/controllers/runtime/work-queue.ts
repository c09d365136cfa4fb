import PQueue from 'p-queue';

export interface WorkQueueOptions {
  concurrency: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * What one run asks of the queue: nothing (done), a look again after `requeueAfterMs`, or `retry` — a run that
 * did not get there yet and comes back with the key's exponential backoff, as a thrown error does.
 */
export type ProcessResult = { requeueAfterMs?: number; retry?: boolean } | void;

/**
 * A keyed work queue in the style of client-go's: a key is never processed by two workers at once;
 * adding a key that is already waiting is a no-op; a key added while it is being processed runs once
 * more afterwards; failures requeue with per-key exponential backoff.
 */
export class WorkQueue {
  private readonly queue: PQueue;
  private readonly waiting = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; due: number }>();
  private stopped = false;

  constructor(
    private readonly process: (key: string) => Promise<ProcessResult>,
    private readonly onError: (key: string, err: unknown) => void,
    private readonly opts: WorkQueueOptions,
  ) {
    this.queue = new PQueue({ concurrency: opts.concurrency });
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    this.waiting.add(key);
    void this.queue.add(() => this.run(key));
  }

  /** Queues the key after `delayMs`; a timer already set for the key keeps whichever fires first. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    const due = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing) {
      if (existing.due <= due) return;
      clearTimeout(existing.timer);
    }
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { timer, due });
  }

  /** Keys waiting or running now (the `kiln_workqueue_depth` gauge). */
  get depth(): number {
    return this.waiting.size + this.active.size;
  }

  /** Drops any pending retry of the key and forgets its failures (the key is to be left alone). */
  forget(key: string): void {
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing.timer);
    this.timers.delete(key);
    this.failures.delete(key);
  }

  private backoff(key: string): void {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const base = this.opts.baseBackoffMs ?? 100;
    this.addAfter(key, Math.min(base * 2 ** (n - 1), this.opts.maxBackoffMs ?? 60_000));
  }

  private async run(key: string): Promise<void> {
    this.waiting.delete(key);
    this.active.add(key);
    try {
      const result = await this.process(key);
      if (result?.retry) this.backoff(key);
      else {
        this.failures.delete(key);
        if (result && result.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
      }
    } catch (err) {
      this.onError(key, err);
      this.backoff(key);
    } finally {
      this.active.delete(key);
      if (this.dirty.delete(key)) this.add(key);
    }
  }

  /** Resolves when nothing is waiting or running (timers for later retries may still be pending). */
  async idle(): Promise<void> {
    await this.queue.onIdle();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    this.queue.clear();
  }
}
