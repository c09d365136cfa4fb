import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  AliasNode,
  DeleteQueryNode,
  InsertQueryNode,
  TableNode,
  UpdateQueryNode,
  type Expression,
  type ExpressionBuilder,
  type Kysely,
  type KyselyPlugin,
  type OperationNode,
  type RootOperationNode,
  type SqlBool,
  type Transaction,
  type UpdateQueryBuilder,
  type UpdateResult,
} from 'kysely';
import { concurrentUpdate } from '../domain/errors.ts';
import type { DbHandle, Dialect } from './db.ts';
import type { Database, NewRow, ResourceTable, RowUpdate } from './schema.ts';
import { SecretBox } from './secret-box.ts';

export type ChangeOp = 'create' | 'update' | 'delete';

export interface Change {
  kind: string;
  guid: string;
  op: ChangeOp;
}

/** Columns the write vocabulary owns on every resource row: callers never set them. */
type OwnedColumn = 'id' | 'guid' | 'created_at' | 'updated_at' | 'generation';

/** A new resource row: what the caller decides (the guid is optional; one is made when absent). */
export type NewResource<T extends ResourceTable> = Omit<NewRow<T>, OwnedColumn> & { guid?: string };

/** What an update may change on a resource row: values, or SQL expressions of the row (`sql\`position + 1\``). */
export type ResourcePatch<T extends ResourceTable> = {
  [K in keyof Omit<RowUpdate<T>, OwnedColumn>]?: RowUpdate<T>[K] | Expression<NonNullable<RowUpdate<T>[K]>>;
};

/** A condition on the rows of `T`, e.g. `(eb) => eb('app_guid', '=', appGuid)`. */
export type RowFilter<T extends ResourceTable> = (eb: ExpressionBuilder<Database, T>) => Expression<SqlBool>;

export interface UpdateOptions<T extends ResourceTable> {
  /**
   * Optimistic concurrency: update only if the row is still at this generation; otherwise a CF 422
   * (`concurrentUpdate`), because another write got there first. Desired-state updates only.
   */
  expectedGeneration?: number;
  /** A further condition on the row (e.g. its state); when it does not hold nothing is written and the call returns false. */
  where?: RowFilter<T>;
}

/**
 * A write in progress: the transaction plus the change-feed entries it will append on commit.
 *
 * Resource rows (tables with guid, timestamps and generation — `ResourceTable`) are written only through the
 * vocabulary below, which stamps `updated_at` (and `created_at`), moves `generation` for desired-state changes
 * and records the change-feed entry itself; a raw insert, update or delete of a resource table through `db` is
 * refused (see {@link resourceWriteGuard}). Other tables (join tables, settings, jobs, events, conditions…) are
 * written through `db` directly.
 *
 * Status changes are on the change feed too: watchers of another kind follow them (the app controller wakes
 * when a build is STAGED, the deployment controller when a process's instances change) and the API's
 * consumers see `updated_at` move. They only leave `generation` alone, so a reconciler writing status does not
 * make its own resource look like it has new desired state (`observed_generation` < `generation`).
 */
export interface WriteTx {
  /** The transaction, for reads and for writes to non-resource tables. */
  readonly db: Transaction<Database>;
  /** The transaction's timestamp: every row it touches gets the same one. */
  readonly now: string;
  /** The store's SecretBox, for values a write seals or opens (secret-box.ts). */
  readonly secrets: SecretBox;
  /**
   * Records a change-feed entry by hand: for kinds that are not resource tables (jobs, feature flags,
   * environment variable groups) and for a resource whose own row did not change but whose watchers must look
   * again (a route when its destinations change). Resource row writes record their own.
   */
  changed(kind: string, guid: string, op: ChangeOp): void;
  /** Emits `event` on `Store.events` once the transaction has committed (never if it rolls back). */
  emitAfterCommit(event: string, payload: unknown): void;

  /**
   * Inserts a resource row at generation 1 stamped `now`, records 'create' and returns its guid (made when absent).
   * The owned columns are always the vocabulary's: a row built elsewhere that carries them has them overwritten.
   */
  insert<T extends ResourceTable>(table: T, row: NewResource<T>): Promise<string>;
  /**
   * {@link insert}, but a row already holding one of `conflict`'s unique values (default: the guid) is left alone:
   * returns the guid when inserted, undefined when not (and then records nothing).
   */
  insertIfAbsent<T extends ResourceTable>(
    table: T,
    row: NewResource<T>,
    conflict?: ReadonlyArray<keyof Database[T] & string>,
  ): Promise<string | undefined>;
  /**
   * A desired-state change of one row: applies `patch`, bumps `generation`, stamps `updated_at` and records
   * 'update'. Returns false (writing nothing) when the row does not exist or `opts.where` does not hold; with
   * `opts.expectedGeneration`, a row at another generation is a CF 422 instead.
   */
  update<T extends ResourceTable>(table: T, guid: string, patch: ResourcePatch<T>, opts?: UpdateOptions<T>): Promise<boolean>;
  /** {@link update} of every row matching `where`; returns their guids (each gets its change entry). */
  updateWhere<T extends ResourceTable>(table: T, where: RowFilter<T>, patch: ResourcePatch<T>): Promise<string[]>;
  /**
   * An observed-state change of one row (what a reconciler, upload or broker operation found): like
   * {@link update} but `generation` stays.
   */
  updateStatus<T extends ResourceTable>(
    table: T,
    guid: string,
    patch: ResourcePatch<T>,
    opts?: Pick<UpdateOptions<T>, 'where'>,
  ): Promise<boolean>;
  /** {@link updateStatus} of every row matching `where`; returns their guids. */
  updateStatusWhere<T extends ResourceTable>(table: T, where: RowFilter<T>, patch: ResourcePatch<T>): Promise<string[]>;
  /** Deletes one row and records 'delete'; false when it did not exist. */
  delete<T extends ResourceTable>(table: T, guid: string, opts?: Pick<UpdateOptions<T>, 'where'>): Promise<boolean>;
  /** Deletes every row matching `where`; returns their guids (each gets its change entry). */
  deleteWhere<T extends ResourceTable>(table: T, where: RowFilter<T>): Promise<string[]>;
  /**
   * Marks `generation` as observed by a reconciler (never moving `observed_generation` backwards). Bookkeeping of
   * the controllers, not a change of the resource: no `updated_at`, no generation, and no change-feed entry (which
   * would wake the reconciler that wrote it, forever).
   */
  observeGeneration(table: ObservedTable, guid: string, generation: number): Promise<void>;
  /**
   * Escape hatch for storage-format rewrites invisible to the API — re-sealing secrets under the current key
   * (rewrap-secrets.ts): the row's value is unchanged, so no timestamp, generation or change entry moves.
   * Writes `patch` only where `unchanged` still holds (a concurrent write has sealed its own value). Nothing else
   * may use it.
   */
  reseal(table: ResourceTable, guid: string, patch: Record<string, string>, unchanged?: Record<string, string>): Promise<void>;
}

/** Resource tables with an `observed_generation` column. */
export type ObservedTable = {
  [K in ResourceTable]: Database[K] extends { observed_generation: unknown } ? K : never;
}[ResourceTable];

/** Every resource table, checked against the schema both ways (a missing or extra name does not compile). */
const RESOURCE_TABLES: Record<ResourceTable, true> = {
  organizations: true,
  spaces: true,
  users: true,
  roles: true,
  stacks: true,
  domains: true,
  organization_quotas: true,
  space_quotas: true,
  isolation_segments: true,
  security_groups: true,
  apps: true,
  processes: true,
  packages: true,
  builds: true,
  droplets: true,
  routes: true,
  route_destinations: true,
  buildpacks: true,
  tasks: true,
  revisions: true,
  deployments: true,
  sidecars: true,
  route_policies: true,
  locks: true,
  registry_credentials: true,
  service_brokers: true,
  service_offerings: true,
  service_plans: true,
  service_instances: true,
  service_credential_bindings: true,
  service_route_bindings: true,
  service_instance_backups: true,
  service_plan_definition_requests: true,
  git_sources: true,
};
const isResourceTable = (name: string): boolean => Object.hasOwn(RESOURCE_TABLES, name);

/** The table an insert, update or delete writes, if the query is one. */
function writtenTable(node: RootOperationNode): string | undefined {
  const nameOf = (n: OperationNode | undefined): string | undefined => {
    if (!n) return undefined;
    if (TableNode.is(n)) return n.table.identifier.name;
    if (AliasNode.is(n)) return nameOf(n.node);
    return undefined;
  };
  if (InsertQueryNode.is(node)) return nameOf(node.into);
  if (UpdateQueryNode.is(node)) return nameOf(node.table);
  if (DeleteQueryNode.is(node)) return node.from.froms.map(nameOf).find((n) => n !== undefined);
  return undefined;
}

/**
 * Installed on `WriteTx.db`: a raw insert, update or delete of a resource table would skip the timestamps,
 * the generation and the change feed the vocabulary keeps, so it is refused before it reaches the database.
 * (Raw SQL text is not inspected; none writes resource tables.)
 */
export const resourceWriteGuard: KyselyPlugin = {
  transformQuery(args) {
    const table = writtenTable(args.node);
    if (table !== undefined && isResourceTable(table)) {
      throw new Error(`raw write to resource table ${table}: use tx.insert/update/updateStatus/delete (store.ts)`);
    }
    return args.node;
  },
  async transformResult(args) {
    return args.result;
  },
};

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

/** The vocabulary's untyped view of the database (see writeVocabulary). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyResourceDb = Kysely<any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyUpdate = UpdateQueryBuilder<any, string, string, UpdateResult>;

/**
 * The vocabulary's queries, on the transaction without {@link resourceWriteGuard}. kysely cannot type a query over
 * a table named by a type parameter, so these run untyped; the interface above checks every call site.
 */
function writeVocabulary(
  trx: Transaction<Database>,
  now: string,
  record: (kind: string, guid: string, op: ChangeOp) => void,
): Omit<WriteTx, 'db' | 'now' | 'secrets' | 'changed' | 'emitAfterCommit'> {
  const db = trx as unknown as AnyResourceDb;
  // A RowFilter is written against the typed builder; here it runs on the untyped one of the same table.
  type AnyFilter = (eb: unknown) => Expression<SqlBool>;
  const filter = (where: unknown) => where as AnyFilter as never;
  const insertQuery = (table: string, row: Record<string, unknown>) => {
    const guid = typeof row.guid === 'string' ? row.guid : newGuid();
    return { guid, query: db.insertInto(table).values({ ...row, guid, created_at: now, updated_at: now, generation: 1 } as never) };
  };
  const updateRows = async (
    table: string,
    patch: object,
    bump: boolean,
    narrow: (q: AnyUpdate) => AnyUpdate,
  ): Promise<string[]> => {
    const q = db
      .updateTable(table)
      .set((eb) => ({ ...(patch as Record<string, unknown>), updated_at: now, ...(bump ? { generation: eb('generation', '+', 1) } : {}) }) as never);
    const rows = await narrow(q).returning('guid').execute();
    for (const r of rows as Array<{ guid: string }>) record(table, r.guid, 'update');
    return rows.map((r: { guid: string }) => r.guid);
  };
  return {
    insert: async (table, row) => {
      const { guid, query } = insertQuery(table, row as Record<string, unknown>);
      await query.execute();
      record(table, guid, 'create');
      return guid;
    },
    insertIfAbsent: async (table, row, conflict = ['guid']) => {
      const { guid, query } = insertQuery(table, row as Record<string, unknown>);
      const rows = await query
        .onConflict((oc) => oc.columns(conflict as never).doNothing())
        .returning('guid')
        .execute();
      if (rows.length === 0) return undefined;
      record(table, guid, 'create');
      return guid;
    },
    update: async (table, guid, patch, opts = {}) => {
      const { expectedGeneration, where } = opts;
      const updated = await updateRows(table, patch, true, (q) => {
        let n = q.where('guid', '=', guid);
        if (expectedGeneration !== undefined) n = n.where('generation', '=', expectedGeneration);
        return where ? n.where(filter(where)) : n;
      });
      if (updated.length === 0 && expectedGeneration !== undefined) throw concurrentUpdate(table.replace(/s$/, '').replace(/_/g, ' '));
      return updated.length > 0;
    },
    updateWhere: (table, where, patch) => updateRows(table, patch, true, (q) => q.where(filter(where))),
    updateStatus: async (table, guid, patch, opts = {}) => {
      const updated = await updateRows(table, patch, false, (q) => {
        const n = q.where('guid', '=', guid);
        return opts.where ? n.where(filter(opts.where)) : n;
      });
      return updated.length > 0;
    },
    updateStatusWhere: (table, where, patch) => updateRows(table, patch, false, (q) => q.where(filter(where))),
    delete: async (table, guid, opts = {}) => {
      let q = db.deleteFrom(table as string).where('guid', '=', guid);
      if (opts.where) q = q.where(filter(opts.where));
      const rows = await q.returning('guid').execute();
      for (const r of rows as Array<{ guid: string }>) record(table, r.guid, 'delete');
      return rows.length > 0;
    },
    deleteWhere: async (table, where) => {
      const rows = await db.deleteFrom(table as string).where(filter(where)).returning('guid').execute();
      for (const r of rows as Array<{ guid: string }>) record(table, r.guid, 'delete');
      return rows.map((r: { guid: string }) => r.guid);
    },
    observeGeneration: async (table, guid, generation) => {
      // Never moves backwards: a slower reconcile of an older generation must not undo a newer one's mark.
      await db
        .updateTable(table)
        .set({ observed_generation: generation })
        .where('guid', '=', guid)
        .where('observed_generation', '<', generation)
        .execute();
    },
    reseal: async (table, guid, patch, unchanged = {}) => {
      let q = db.updateTable(table).set(patch).where('guid', '=', guid);
      for (const [col, v] of Object.entries(unchanged)) q = q.where(col, '=', v);
      await q.execute();
    },
  };
}

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
      const record = (kind: string, guid: string, op: ChangeOp) => {
        if (!pending.some((c) => c.kind === kind && c.guid === guid && c.op === op)) pending.push({ kind, guid, op });
      };
      const tx: WriteTx = {
        db: trx.withPlugin(resourceWriteGuard),
        now,
        secrets: this.secrets,
        emitAfterCommit: (event, payload) => {
          afterCommit.push([event, payload]);
        },
        changed: record,
        ...writeVocabulary(trx, now, record),
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
