import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobController } from '../../../src/controllers/job-controller.ts';
import { KilnError } from '../../../src/domain/errors.ts';
import { JobHandlers, enqueueJob } from '../../../src/lifecycle/jobs.ts';
import { newGuid } from '../../../src/store/store.ts';
import { eventually, reconcilerTest, type ReconcilerTest } from '../../helpers/reconciler-harness.ts';

const handlers = new JobHandlers();
/** How many more times the `flaky.run` handler fails before it succeeds, per resource guid. */
const failuresLeft = new Map<string, number>();
handlers.register('widget.delete', async () => {});
handlers.register('widget.refuse', async () => {
  throw new KilnError('UnprocessableEntity', 'the widget is in use');
});
handlers.register('widget.flaky', async ({ job }) => {
  const left = failuresLeft.get(job.resource_guid) ?? 0;
  failuresLeft.set(job.resource_guid, left - 1);
  if (left > 0) throw new Error('connection reset');
});

let r: ReconcilerTest;
beforeAll(async () => {
  r = await reconcilerTest((t) => jobController(t.kiln.store, handlers));
});
afterAll(() => r.close());

async function job(operation: string, resourceGuid = newGuid()): Promise<string> {
  return r.t.kiln.store.write((tx) => enqueueJob(tx, { operation, resourceType: 'widget', resourceGuid }));
}

const jobRow = (guid: string) => r.t.kiln.store.db.selectFrom('jobs').select(['state', 'errors', 'attempts']).where('guid', '=', guid).executeTakeFirstOrThrow();

describe('the job controller', () => {
  it.each([
    { operation: 'widget.delete', state: 'COMPLETE', errors: [] },
    { operation: 'widget.refuse', state: 'FAILED', errors: [{ detail: 'the widget is in use', title: 'CF-UnprocessableEntity', code: 10008 }] },
    { operation: 'widget.unknown', state: 'FAILED', errors: [{ detail: 'No handler for widget.unknown', title: 'CF-ServerError', code: 10001 }] },
  ])('drives a PROCESSING $operation job to $state', async ({ operation, state, errors }) => {
    const guid = await job(operation);
    await r.settle();
    const row = await jobRow(guid);
    expect(row.state).toBe(state);
    expect(JSON.parse(row.errors)).toEqual(errors);
    const shown = await r.t.admin.get(`/v3/jobs/${guid}`);
    expect(shown.body.state).toBe(state);
  });

  it('retries a job whose handler fails unexpectedly, with backoff, until it completes', async () => {
    const resource = newGuid();
    failuresLeft.set(resource, 2);
    const errorsBefore = await r.reconciles('jobs', 'error');
    const guid = await job('widget.flaky', resource);
    await r.settle();
    const done = await eventually(async () => ((await jobRow(guid)).state === 'COMPLETE' ? jobRow(guid) : undefined), 'the flaky job to complete');
    expect(done.attempts).toBe(2);
    expect(await r.reconciles('jobs', 'error')).toBe(errorsBefore + 2);
  });

  it('fails a job with an unknown error once its handler has failed five times', async () => {
    const resource = newGuid();
    failuresLeft.set(resource, 99);
    const guid = await job('widget.flaky', resource);
    const failed = await eventually(async () => ((await jobRow(guid)).state === 'FAILED' ? jobRow(guid) : undefined), 'the job to fail');
    expect(JSON.parse(failed.errors)).toEqual([{ detail: 'An unknown error occurred.', title: 'UnknownError', code: 10001 }]);
    expect(failed.attempts).toBe(5);
  });
});
