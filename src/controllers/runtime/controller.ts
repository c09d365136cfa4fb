import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Runtime } from '../../runtime/runtime.ts';
import type { Store } from '../../store/store.ts';
import { generationOf, sweepConditions, type Condition, type ConditionKind } from '../../store/conditions.ts';
import { recordOutcome, type RecordedCondition } from './record-outcome.ts';
import { ControllerMetrics } from './metrics.ts';
import { NotReady, TerminalError, type ReconcileOutcome, type ReconcileResult } from './outcomes.ts';
import { WorkQueue, type ProcessResult } from './work-queue.ts';

export { NotReady, TerminalError, type ReconcileResult } from './outcomes.ts';

/** One change-feed entry as a watch sees it. */
export interface FeedChange {
  kind: string;
  guid: string;
  op: string;
}

/** Maps a change to the keys (of the reconciler's own kind) it affects; may read the store. */
export type WatchMapper = (change: FeedChange) => readonly string[] | Promise<readonly string[]>;

/** A runtime event (an instance changed state, a task finished) as a watch sees it. */
export type RuntimeEvent = Parameters<Parameters<Runtime['onChange']>[0]>[0];
export type RuntimeMapper = (event: RuntimeEvent) => readonly string[] | Promise<readonly string[]>;

/** The mapper of a watch on the reconciler's own kind: the changed row's guid is the key. */
export const self: WatchMapper = (change) => [change.guid];

/** What a reconcile gets besides its key. */
export interface ReconcileContext {
  /** A logger whose every line carries the controller, the key and this reconcile's id. */
  readonly log: Logger;
  readonly reconcileId: string;
  /**
   * Records a condition of the reconciled resource, or of another one (the app of a process) — written when the
   * reconcile ends, only if it changed.
   */
  condition(condition: Condition, of?: { kind: ConditionKind; guid: string }): void;
}

/** The context of a reconcile run outside a manager: logs to `log`, records no conditions. */
export function standaloneContext(log: Logger): ReconcileContext {
  return { log, reconcileId: randomUUID(), condition: () => undefined };
}

/**
 * One reconciler: level-triggered, idempotent, keyed by the guid of its own kind. What wakes it is declared with
 * it: change-feed kinds mapped to its keys, and runtime events likewise (controller-runtime's watches with map
 * functions), so `reconcile` never decodes a foreign key.
 */
export interface Reconciler {
  readonly name: string;
  /** When the keys are resource guids: conditions and `observed_generation` are recorded for that kind. */
  readonly resource?: ConditionKind;
  /** Change-feed kinds (table names) and how a change maps to keys; a plain list means "the changed guid". */
  readonly watches: Readonly<Record<string, WatchMapper>> | readonly string[];
  /** Runtime events and how they map to keys. */
  readonly runtimeEvents?: Partial<Record<RuntimeEvent['kind'], RuntimeMapper>>;
  /** Every key that may need work, for the start-up and periodic resync. */
  listKeys(): Promise<readonly string[]>;
  /** `ctx` is absent when a test or tool calls a reconciler directly (see `standaloneContext`). */
  reconcile(key: string, ctx?: ReconcileContext): Promise<ReconcileResult>;
  concurrency?: number;
}

export interface ManagerOptions {
  /** Reconcilers (by name) not to run in this process: another process runs them, or a test drives them itself. */
  disabled?: readonly string[];
  pollIntervalMs?: number;
  resyncIntervalMs?: number;
  /** The runtime whose events the reconcilers' `runtimeEvents` watch. */
  runtime?: Pick<Runtime, 'onChange'>;
  metrics?: ControllerMetrics;
  /** Backoff of failed and NotReady keys (tests shorten it). */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
}

interface Entry {
  r: Reconciler;
  q: WorkQueue;
  watches: Map<string, WatchMapper>;
  /** Keys whose last reconcile ended in a TerminalError: only a change-feed entry brings them back. */
  terminal: Set<string>;
}

/**
 * Runs reconcilers: on start every key is listed (nothing is trusted from memory), then the change
 * feed is followed from the latest revision — woken at once by in-process commits and polled so that
 * writes by other replicas are seen too — with a periodic full resync. Each reconcile's outcome is
 * counted, timed and, for resources, recorded as conditions (see outcomes.ts).
 */
export class ControllerManager {
  readonly metrics: ControllerMetrics;
  private readonly entries: Entry[] = [];
  private revision = 0;
  private pollTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private following: Promise<void> | undefined;
  private followAgain = false;
  private readonly onChanges = () => void this.follow();
  private offRuntime: (() => void) | undefined;
  private readonly mapping = new Set<Promise<void>>();
  private running = false;
  private readonly companions: ControllerManager[] = [];

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: ManagerOptions = {},
  ) {
    this.metrics = opts.metrics ?? new ControllerMetrics();
  }

  register(r: Reconciler): void {
    if (this.opts.disabled?.includes(r.name)) return;
    const watches = new Map<string, WatchMapper>(Array.isArray(r.watches) ? r.watches.map((k: string) => [k, self]) : Object.entries(r.watches));
    const entry: Entry = { r, watches, terminal: new Set(), q: undefined as unknown as WorkQueue };
    entry.q = new WorkQueue(
      (key) => this.reconcileOne(entry, key),
      (key, err) => this.log.warn({ err, controller: r.name, key }, 'reconcile failed; will retry'),
      {
        concurrency: r.concurrency ?? 4,
        ...(this.opts.baseBackoffMs !== undefined ? { baseBackoffMs: this.opts.baseBackoffMs } : {}),
        ...(this.opts.maxBackoffMs !== undefined ? { maxBackoffMs: this.opts.maxBackoffMs } : {}),
      },
    );
    this.entries.push(entry);
  }

  /** The names of the reconcilers this manager runs. */
  get names(): string[] {
    return this.entries.map((e) => e.r.name);
  }

  async start(): Promise<void> {
    this.running = true;
    this.revision = await this.store.latestRevision();
    this.store.events.on('changes', this.onChanges);
    // Other replicas' commits, announced by PostgreSQL NOTIFY (src/ha/change-notifier.ts).
    this.store.events.on('remote-changes', this.onChanges);
    this.offRuntime = this.opts.runtime?.onChange((event) => this.onRuntimeEvent(event));
    await this.resync();
    this.pollTimer = setInterval(() => void this.follow(), this.opts.pollIntervalMs ?? 1000);
    this.pollTimer.unref();
    this.resyncTimer = setInterval(() => void this.resync(), this.opts.resyncIntervalMs ?? 30_000);
    this.resyncTimer.unref();
  }

  async resync(): Promise<void> {
    for (const e of this.entries) {
      try {
        for (const key of await e.r.listKeys()) this.add(e, key, false);
      } catch (err) {
        this.log.error({ err, controller: e.r.name }, 'resync failed');
      }
    }
    this.updateDepth();
    await sweepConditions(this.store).catch((err: unknown) => this.log.error({ err }, 'sweeping conditions failed'));
  }

  private add(e: Entry, key: string, changed: boolean): void {
    if (changed) {
      e.terminal.delete(key);
    } else if (e.terminal.has(key)) {
      return;
    }
    e.q.add(key);
  }

  private onRuntimeEvent(event: RuntimeEvent): void {
    for (const e of this.entries) {
      const mapper = e.r.runtimeEvents?.[event.kind];
      if (!mapper) continue;
      const p = (async () => {
        try {
          for (const key of await mapper(event)) this.add(e, key, false);
        } catch (err) {
          this.log.error({ err, controller: e.r.name, event }, 'mapping a runtime event failed');
        }
      })();
      this.mapping.add(p);
      void p.finally(() => this.mapping.delete(p));
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
            const newest = changes[changes.length - 1]!;
            this.metrics.feedLag.set(Math.max(0, (Date.now() - Date.parse(newest.created_at)) / 1000));
            for (const change of changes) {
              this.revision = Math.max(this.revision, change.revision);
              for (const e of this.entries) {
                const mapper = e.watches.get(change.kind);
                if (!mapper) continue;
                try {
                  for (const key of await mapper(change)) this.add(e, key, true);
                } catch (err) {
                  this.log.error({ err, controller: e.r.name, change }, 'mapping a change failed');
                }
              }
            }
          }
        } while (this.followAgain);
        this.metrics.feedLag.set(0);
      } catch (err) {
        this.log.error({ err }, 'following the change feed failed');
      } finally {
        this.following = undefined;
        this.updateDepth();
      }
    })();
    return this.following;
  }

  private updateDepth(): void {
    for (const e of this.entries) this.metrics.depth.set({ controller: e.r.name }, e.q.depth);
  }

  /** One reconcile of one key: runs it with its own logger, then counts, times and records its outcome. */
  private async reconcileOne(e: Entry, key: string): Promise<ProcessResult> {
    const reconcileId = randomUUID();
    const log = this.log.child({ controller: e.r.name, key, reconcileId });
    const recorded: RecordedCondition[] = [];
    const ctx: ReconcileContext = { log, reconcileId, condition: (condition, of) => void recorded.push(of ? { condition, of } : { condition }) };
    const kind = e.r.resource;
    const started = performance.now();
    let outcome: ReconcileOutcome = 'error';
    try {
      // The generation this reconcile starts from is the one its conclusions observe.
      const seen = kind ? await generationOf(this.store.db, kind, key) : undefined;
      let result: ProcessResult;
      try {
        const r = await e.r.reconcile(key, ctx);
        outcome = r && r.requeueAfterMs !== undefined ? 'requeue' : 'success';
        result = r;
      } catch (err) {
        if (!(err instanceof NotReady) && !(err instanceof TerminalError)) throw err;
        const terminal = err instanceof TerminalError;
        outcome = terminal ? 'terminal_error' : 'not_ready';
        ctx.condition({ type: err.conditionType, status: 'False', reason: err.reason, message: err.message });
        if (terminal) {
          log.warn({ reason: err.reason, detail: err.message }, 'reconcile failed for good; waiting for the resource to change');
          e.terminal.add(key);
          e.q.forget(key);
          result = undefined;
        } else {
          log.info({ reason: err.reason }, 'not ready; will retry');
          result = { retry: true };
        }
      }
      await recordOutcome(this.store, { kind: e.r.resource, key, seen, recorded, outcome }).catch((err: unknown) => log.error({ err }, 'recording conditions failed'));
      return result;
    } finally {
      this.metrics.observe(e.r.name, outcome, (performance.now() - started) / 1000);
      this.updateDepth();
    }
  }

  /** Another manager (the one that runs on every replica) whose work `settle` waits for too. */
  settleWith(other: ControllerManager): void {
    this.companions.push(other);
  }

  /** Waits until the feed has been read, runtime events mapped and every queue is idle (for tests and graceful stop). */
  async settle(): Promise<void> {
    await this.follow();
    await Promise.all([...this.mapping]);
    await Promise.all(this.entries.map((e) => e.q.idle()));
    for (const other of this.companions) await other.settle();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.store.events.off('changes', this.onChanges);
    this.store.events.off('remote-changes', this.onChanges);
    this.offRuntime?.();
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const { q } of this.entries) q.stop();
    await Promise.all(this.entries.map((e) => e.q.idle()));
  }
}
