import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Kysely, KyselyPlugin, Transaction } from 'kysely';
import { concurrentUpdate } from '../domain/errors.ts';
import type { DbHandle, Dialect } from './db.ts';
import type { Database, ResourceTable, RowUpdate } from './schema.ts';
import { SecretBox } from './secret-box.ts';

export type ChangeOp = 'create' | 'update' | 'delete';

export interface Change {
  kind: string;
  guid: string;
  op: ChangeOp;
}

/** A write in progress: the transaction plus the change-feed entries it will append on commit. */
export interface WriteTx {
  readonly db: Transaction<Database>;
  /** The transaction's timestamp: every row it touches gets the same one. */
  readonly now: string;
  /** The store's SecretBox, for values a write seals or opens (secret-box.ts). */
  readonly secrets: SecretBox;
  changed(kind: string, guid: string, op: ChangeOp): void;
  /** Emits `event` on `Store.events` once the transaction has committed (never if it rolls back). */
  emitAfterCommit(event: string, payload: unknown): void;
  /**
   * Updates one resource row only if its generation is still `expectedGeneration` (optimistic
   * concurrency) and records the change. Throws a CF 422 when another write got there first.
   */
  update<T extends ResourceTable>(
    table: T,
    guid: string,
    expectedGeneration: number,
    patch: Omit<RowUpdate<T>, 'id' | 'guid' | 'created_at' | 'generation' | 'updated_at'>,
  ): Promise<void>;
}

export const newGuid = (): string => randomUUID();

/** Marks async contexts that run inside `Store.write`. */
const insideWrite = new AsyncLocalStorage<true>();

/**
 * Using `store.db` inside `store.write` would wait forever for the single SQLite connection the transaction
 * holds (and read uncommitted-invisible data on PostgreSQL). This plugin turns that mistake into an immediate error.
 */
const outsideWriteGuard: KyselyPlugin = {
  transformQuery(args) {
    if (insideWrite.getStore()) throw new Error('store.db used inside store.write(): use tx.db for queries in a write');
    return args.node;
  },
  async transformResult(args) {
    return args.result;
  },
};
export const nowIso = (): string => new Date().toISOString();

/**
 * The store: desired state in SQL, written only through `write`, which wraps each use-case in one
 * transaction and appends what it touched to the change feed (`changes`). Reconcilers follow the feed.
 */
export class Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /** Emits 'changes' after each commit so in-process watchers wake at once instead of at their next poll. */
  readonly events = new EventEmitter();
  /**
   * Encrypts secrets at rest. A throwaway key until the server installs the configured one (buildKiln does so
   * before anything is written); a store opened by a tool without it cannot read stored credentials.
   */
  secrets = new SecretBox(randomBytes(32));

  /**
   * Run inside every write after its use-case and before the change feed is appended, with the changes it made:
   * derived records that must commit or roll back with the change (app usage events) hang here, so no write
   * path can forget them. A hook writes through `tx.db` and must not call `tx.changed`.
   */
  readonly beforeCommit: Array<(tx: WriteTx, changes: readonly Change[]) => Promise<void>> = [];

  private readonly base: Kysely<Database>;
  /** See {@link DbHandle.dataVersion}. */
  readonly dataVersion: () => string | Promise<string>;

  constructor(handle: DbHandle) {
    this.base = handle.db;
    this.dataVersion = handle.dataVersion;
    this.db = handle.db.withPlugin(outsideWriteGuard);
    this.dialect = handle.dialect;
    this.events.setMaxListeners(100);
  }

  async write<T>(fn: (tx: WriteTx) => Promise<T>): Promise<T> {
    if (insideWrite.getStore()) throw new Error('store.write() called inside store.write(): pass the WriteTx down instead');
    const pending: Change[] = [];
    const afterCommit: Array<[string, unknown]> = [];
    const result = await insideWrite.run(true, () => this.base.transaction().execute(async (trx) => {
      const now = nowIso();
      const tx: WriteTx = {
        db: trx,
        now,
        secrets: this.secrets,
        emitAfterCommit: (event, payload) => {
          afterCommit.push([event, payload]);
        },
        changed: (kind, guid, op) => {
          if (!pending.some((c) => c.kind === kind && c.guid === guid && c.op === op)) {
            pending.push({ kind, guid, op });
          }
        },
        update: async (table, guid, expectedGeneration, patch) => {
          // kysely cannot narrow a generic table union; the patch type is checked at the call site.
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          const res = await (trx as unknown as Kysely<any>)
            .updateTable(table as string)
            .set({ ...(patch as Record<string, unknown>), updated_at: now, generation: expectedGeneration + 1 })
            .where('guid', '=', guid)
            .where('generation', '=', expectedGeneration)
            .executeTakeFirst();
          if (Number(res.numUpdatedRows) !== 1) throw concurrentUpdate(table.replace(/s$/, '').replace(/_/g, ' '));
          tx.changed(table, guid, 'update');
        },
      };
      const value = await fn(tx);
      if (pending.length > 0) for (const hook of this.beforeCommit) await hook(tx, pending);
      if (pending.length > 0) {
        await trx
          .insertInto('changes')
          .values(pending.map((c) => ({ kind: c.kind, guid: c.guid, op: c.op, created_at: now })))
          .execute();
        // On PostgreSQL a trigger notifies every replica LISTENing at commit (migration 0076, src/ha/change-notifier.ts).
      }
      return value;
    }));
    if (pending.length > 0) this.events.emit('changes', pending);
    for (const [event, payload] of afterCommit) this.events.emit(event, payload);
    return result;
  }

  /** Highest revision in the change feed (0 when empty). */
  async latestRevision(): Promise<number> {
    const row = await this.db
      .selectFrom('changes')
      .select((eb) => eb.fn.max('revision').as('rev'))
      .executeTakeFirst();
    return Number(row?.rev ?? 0);
  }

  /** Changes after `revision`, oldest first. */
  async changesSince(revision: number, limit = 500) {
    return this.db
      .selectFrom('changes')
      .selectAll()
      .where('revision', '>', revision)
      .orderBy('revision')
      .limit(limit)
      .execute();
  }

  async close(): Promise<void> {
    await this.base.destroy();
  }
}
