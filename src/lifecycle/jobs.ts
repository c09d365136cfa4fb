import type { Kysely } from 'kysely';
import { KilnError, notFound } from '../domain/errors.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type Store, type WriteTx } from '../store/store.ts';
import type { Principal } from '../domain/principal.ts';

export type JobState = 'PROCESSING' | 'POLLING' | 'COMPLETE' | 'FAILED';

export interface JobSpec {
  /** `<resource_type>.<verb>`, e.g. `organization.delete`. */
  operation: string;
  resourceType: string;
  resourceGuid: string;
  userGuid?: string | null;
}

/** What a job handler gets: the job row and a way to add warnings. */
export interface JobContext {
  job: Row<'jobs'>;
  warn(detail: string): void;
}

/**
 * A job handler does the asynchronous part of an operation. It must be idempotent: after a crash the
 * job is still PROCESSING and the handler runs again from the start.
 */
export type JobHandler = (ctx: JobContext) => Promise<void | 'polling'>;

/**
 * A job failure whose CF error has no catalogue entry: Cloud Controller renders broker errors (its
 * `HttpResponseError`s) through V3ErrorHasher as `CF-<class>` with code 10001 and the message as detail.
 */
export class JobError extends Error {
  constructor(
    readonly title: string,
    readonly detail: string,
    readonly code = 10001,
  ) {
    super(detail);
    this.name = 'JobError';
  }
}

/** A job's `errors` entry for a failure. */
export function jobErrorEntry(err: KilnError | JobError): { detail: string; title: string; code: number } {
  return err instanceof JobError ? { detail: err.detail, title: err.title, code: err.code } : { detail: err.detail, title: `CF-${err.errorName}`, code: err.code };
}

/**
 * Ends a POLLING job (its handler returned 'polling'; whatever polls the broker finishes it) inside `tx`.
 * Jobs already COMPLETE or FAILED are left alone, so a repeated reconcile is harmless.
 */
export async function finishPollingJobs(tx: WriteTx, resourceGuid: string, failure?: KilnError | JobError): Promise<void> {
  const jobs = await tx.db.selectFrom('jobs').select('guid').where('resource_guid', '=', resourceGuid).where('state', 'in', ['POLLING', 'PROCESSING']).execute();
  for (const j of jobs) {
    await tx.db
      .updateTable('jobs')
      .set({ state: failure ? 'FAILED' : 'COMPLETE', errors: JSON.stringify(failure ? [jobErrorEntry(failure)] : []), updated_at: tx.now })
      .where('guid', '=', j.guid)
      .execute();
    tx.changed('jobs', j.guid, 'update');
  }
}

/** Records a PROCESSING job inside the caller's transaction; the job controller picks it up after commit. */
export async function enqueueJob(tx: WriteTx, spec: JobSpec): Promise<string> {
  const guid = newGuid();
  await tx.db
    .insertInto('jobs')
    .values({
      guid,
      created_at: tx.now,
      updated_at: tx.now,
      operation: spec.operation,
      state: 'PROCESSING',
      resource_type: spec.resourceType,
      resource_guid: spec.resourceGuid,
      errors: '[]',
      warnings: '[]',
      user_guid: spec.userGuid ?? null,
      attempts: 0,
    })
    .execute();
  tx.changed('jobs', guid, 'create');
  return guid;
}

/** A job that has nothing to do (e.g. deleting unmapped routes when there are none) is born COMPLETE. */
export async function completedJob(tx: WriteTx, spec: JobSpec): Promise<string> {
  const guid = await enqueueJob(tx, spec);
  await tx.db.updateTable('jobs').set({ state: 'COMPLETE' }).where('guid', '=', guid).execute();
  return guid;
}

/**
 * Starts the asynchronous delete of one resource (operation `<type>.delete`): a repeated request while one is
 * in flight gets that job back; otherwise `inWrite` (audit, marking the row) runs in the write that enqueues it.
 */
export async function startDeleteJob(ctx: { store: Store; principal: Principal }, resourceType: string, resourceGuid: string, inWrite: (tx: WriteTx) => Promise<unknown>): Promise<string> {
  const operation = `${resourceType}.delete`;
  const inFlight = await jobInFlight(ctx.store.db, operation, resourceGuid);
  if (inFlight) return inFlight;
  return ctx.store.write(async (tx) => {
    await inWrite(tx);
    return enqueueJob(tx, { operation, resourceType, resourceGuid, userGuid: ctx.principal.guid });
  });
}

/** The guid of a job for this operation and resource still under way, so a repeated request hands it back. */
export async function jobInFlight(db: Kysely<Database>, operation: string, resourceGuid: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('jobs')
    .select('guid')
    .where('operation', '=', operation)
    .where('resource_guid', '=', resourceGuid)
    .where('state', '=', 'PROCESSING')
    .executeTakeFirst();
  return row?.guid;
}

export async function getJob(db: Kysely<Database>, guid: string): Promise<Row<'jobs'>> {
  const job = await db.selectFrom('jobs').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!job) throw notFound('Job');
  return job;
}

export class JobHandlers {
  private readonly handlers = new Map<string, JobHandler>();
  private readonly befores = new Map<string, Array<(ctx: JobContext) => Promise<void>>>();

  register(operation: string, handler: JobHandler): void {
    this.handlers.set(operation, handler);
  }

  /**
   * Work another capability must do before an operation's handler, outside its transaction (e.g. unbinding an
   * app's service bindings at the broker before the app delete removes its rows). Must be idempotent too.
   */
  before(operation: string, hook: (ctx: JobContext) => Promise<void>): void {
    const list = this.befores.get(operation) ?? [];
    list.push(hook);
    this.befores.set(operation, list);
  }

  hooksBefore(operation: string): ReadonlyArray<(ctx: JobContext) => Promise<void>> {
    return this.befores.get(operation) ?? [];
  }

  get(operation: string): JobHandler | undefined {
    return this.handlers.get(operation);
  }
}

/** Runs one job to completion; failures that are KilnErrors fail the job with that CF error. */
export async function runJob(store: Store, handlers: JobHandlers, guid: string, maxAttempts = 5): Promise<void> {
  const job = await store.db.selectFrom('jobs').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!job || job.state !== 'PROCESSING') return;
  const warnings: Array<{ detail: string }> = JSON.parse(job.warnings);
  const handler = handlers.get(job.operation);
  const finish = (state: JobState, errors: unknown[]) =>
    store.write(async (tx) => {
      await tx.db
        .updateTable('jobs')
        .set({ state, errors: JSON.stringify(errors), warnings: JSON.stringify(warnings), updated_at: tx.now })
        .where('guid', '=', guid)
        // A job another writer already ended (a broker operation concluded by its poller) keeps that ending.
        .where('state', '=', 'PROCESSING')
        .execute();
      tx.changed('jobs', guid, 'update');
    });
  if (!handler) {
    await finish('FAILED', [{ detail: `No handler for ${job.operation}`, title: 'CF-ServerError', code: 10001 }]);
    return;
  }
  try {
    const jobCtx: JobContext = { job, warn: (detail) => warnings.push({ detail }) };
    for (const hook of handlers.hooksBefore(job.operation)) await hook(jobCtx);
    const outcome = await handler(jobCtx);
    // Polling jobs are finished by the reconciler that polls (see finishPollingJobs), unless it already did.
    if (outcome === 'polling') {
      await store.write(async (tx) => {
        await tx.db.updateTable('jobs').set({ state: 'POLLING', updated_at: tx.now }).where('guid', '=', guid).where('state', '=', 'PROCESSING').execute();
        tx.changed('jobs', guid, 'update');
      });
      return;
    }
    await finish('COMPLETE', []);
  } catch (err) {
    if (err instanceof KilnError) {
      await finish('FAILED', [err, ...err.more].map((e) => ({ detail: e.detail, title: `CF-${e.errorName}`, code: e.code })));
      return;
    }
    if (err instanceof JobError) {
      await finish('FAILED', [jobErrorEntry(err)]);
      return;
    }
    const attempts = job.attempts + 1;
    await store.db.updateTable('jobs').set({ attempts }).where('guid', '=', guid).execute();
    if (attempts >= maxAttempts) {
      await finish('FAILED', [{ detail: 'An unknown error occurred.', title: 'UnknownError', code: 10001 }]);
      return;
    }
    throw err; // the work queue retries with backoff
  }
}
