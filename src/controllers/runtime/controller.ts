import type { Logger } from 'pino';
import type { Store } from '../../store/store.ts';
import { WorkQueue, type ProcessResult } from './work-queue.ts';

/** One reconciler: level-triggered, idempotent, keyed by resource guid. */
export interface Reconciler {
  readonly name: string;
  /** Change-feed kinds (table names) whose changes enqueue keys. */
  readonly watches: readonly string[];
  /** Maps a change to the key to reconcile (default: the changed row's guid). */
  keyFor?(change: { kind: string; guid: string; op: string }): string | undefined;
  /** Every key that may need work, for the start-up and periodic resync. */
  listKeys(): Promise<string[]>;
  reconcile(key: string): Promise<ProcessResult>;
  concurrency?: number;
}

export interface ManagerOptions {
  /** Reconcilers (by name) not to run in this process: another process runs them, or a test drives them itself. */
  disabled?: readonly string[];
  pollIntervalMs?: number;
  resyncIntervalMs?: number;
}

/**
 * Runs reconcilers: on start every key is listed (nothing is trusted from memory), then the change
 * feed is followed from the latest revision — woken at once by in-process commits and polled so that
 * writes by other replicas are seen too — with a periodic full resync.
 */
export class ControllerManager {
  private readonly entries: Array<{ r: Reconciler; q: WorkQueue }> = [];
  private revision = 0;
  private pollTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private following: Promise<void> | undefined;
  private followAgain = false;
  private readonly onChanges = () => void this.follow();
  private running = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: ManagerOptions = {},
  ) {}

  register(r: Reconciler): void {
    if (this.opts.disabled?.includes(r.name)) return;
    const q = new WorkQueue(
      (key) => r.reconcile(key),
      (key, err) => this.log.warn({ err, controller: r.name, key }, 'reconcile failed; will retry'),
      { concurrency: r.concurrency ?? 4 },
    );
    this.entries.push({ r, q });
  }

  async start(): Promise<void> {
    this.running = true;
    this.revision = await this.store.latestRevision();
    this.store.events.on('changes', this.onChanges);
    await this.resync();
    this.pollTimer = setInterval(() => void this.follow(), this.opts.pollIntervalMs ?? 1000);
    this.pollTimer.unref();
    this.resyncTimer = setInterval(() => void this.resync(), this.opts.resyncIntervalMs ?? 30_000);
    this.resyncTimer.unref();
  }

  async resync(): Promise<void> {
    for (const { r, q } of this.entries) {
      try {
        for (const key of await r.listKeys()) q.add(key);
      } catch (err) {
        this.log.error({ err, controller: r.name }, 'resync failed');
      }
    }
  }

  /** Reads new change-feed rows and enqueues their keys; concurrent calls coalesce into one more pass. */
  private follow(): Promise<void> {
    if (!this.running) return Promise.resolve();
    if (this.following) {
      this.followAgain = true;
      return this.following;
    }
    this.following = (async () => {
      try {
        do {
          this.followAgain = false;
          for (;;) {
            const changes = await this.store.changesSince(this.revision);
            if (changes.length === 0) break;
            for (const change of changes) {
              this.revision = Math.max(this.revision, change.revision);
              for (const { r, q } of this.entries) {
                if (!r.watches.includes(change.kind)) continue;
                const key = r.keyFor ? r.keyFor(change) : change.guid;
                if (key) q.add(key);
              }
            }
          }
        } while (this.followAgain);
      } catch (err) {
        this.log.error({ err }, 'following the change feed failed');
      } finally {
        this.following = undefined;
      }
    })();
    return this.following;
  }

  /** Queues a key for one reconciler by name (for events that do not come from the change feed, e.g. the runtime's). */
  enqueue(name: string, key: string): void {
    this.entries.find((e) => e.r.name === name)?.q.add(key);
  }

  /** Waits until the feed has been read and every queue is idle (for tests and graceful stop). */
  async settle(): Promise<void> {
    await this.follow();
    await Promise.all(this.entries.map((e) => e.q.idle()));
  }

  async stop(): Promise<void> {
    this.running = false;
    this.store.events.off('changes', this.onChanges);
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const { q } of this.entries) q.stop();
    await Promise.all(this.entries.map((e) => e.q.idle()));
  }
}
