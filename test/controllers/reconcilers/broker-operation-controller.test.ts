import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerOperationController } from '../../../src/controllers/broker-operation-controller.ts';
import { jobController } from '../../../src/controllers/job-controller.ts';
import { registerJobHandlers } from '../../../src/services/job-handlers.ts';
import { JobHandlers } from '../../../src/lifecycle/jobs.ts';
import { eventually, reconcilerTest, type ReconcilerTest } from '../../helpers/reconciler-harness.ts';
import { PLAN_IDS, startFixtureBroker, type FixtureBroker } from '../../fixtures/broker/broker.ts';

let r: ReconcilerTest;
let broker: FixtureBroker;
let controller: ReturnType<typeof brokerOperationController>;
let spaceGuid: string;
let asyncPlan: string;

beforeAll(async () => {
  broker = await startFixtureBroker({ asyncPolls: 2 });
  r = await reconcilerTest((t) => {
    const handlers = new JobHandlers();
    // A poll interval long enough that only the test decides when the next poll is due.
    const ops = registerJobHandlers(handlers, t.kiln.store, undefined, { timeoutMs: 5000, pollIntervalMs: 60_000 });
    controller = brokerOperationController(t.kiln.store, ops);
    return [jobController(t.kiln.store, handlers), controller];
  });
  const reg = await r.t.admin.post('/v3/service_brokers', { name: 'b', url: broker.url, authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } } });
  await r.settle();
  expect((await r.t.admin.get(new URL(reg.headers.get('location')!).pathname)).body.state).toBe('COMPLETE');
  asyncPlan = (await r.t.admin.get('/v3/service_plans?names=async')).body.resources[0].guid;
  const org = await r.t.org('o');
  spaceGuid = (await r.t.space('s', org.guid)).guid;
});
afterAll(async () => {
  await r.close();
  await broker.close();
});

const row = (name: string) => r.t.kiln.store.db.selectFrom('service_instances').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
const polls = (guid: string) => broker.requests.filter((q) => q.path === `/v2/service_instances/${guid}/last_operation`).length;

describe('the broker-operation reconciler', () => {
  it('waits for poll_next_at, then polls until the broker is done, and completes the POLLING job', async () => {
    const res = await r.t.admin.post('/v3/service_instances', {
      type: 'managed',
      name: 'async-1',
      relationships: { space: { data: { guid: spaceGuid } }, service_plan: { data: { guid: asyncPlan } } },
    });
    await r.settle();
    const inst = await row('async-1');
    const jobPath = new URL(res.headers.get('location')!).pathname;
    // The job polled once at once, then handed over.
    expect(polls(inst.guid)).toBe(1);
    expect((await r.t.admin.get(jobPath)).body.state).toBe('POLLING');
    expect(inst).toMatchObject({ last_operation_state: 'in progress', last_operation_description: 'working (1)', broker_operation: `provision-${inst.guid}` });
    expect(await controller.listKeys()).toContain(`service_instances/${inst.guid}`);

    // Not due yet: the reconciler asks to be called back, and does not poll.
    const early = await controller.reconcile(`service_instances/${inst.guid}`);
    expect(early?.requeueAfterMs).toBeGreaterThan(50_000);
    expect(polls(inst.guid)).toBe(1);

    // Due (as after a restart that took a while): each reconcile polls once.
    const due = async () => r.t.kiln.store.db.updateTable('service_instances').set({ poll_next_at: Date.now() - 1 }).where('guid', '=', inst.guid).execute();
    await due();
    const again = await controller.reconcile(`service_instances/${inst.guid}`);
    expect(again?.requeueAfterMs).toBeGreaterThan(50_000);
    expect((await row('async-1')).last_operation_description).toBe('working (2)');
    await due();
    expect(await controller.reconcile(`service_instances/${inst.guid}`)).toBeUndefined();
    await r.settle();
    expect((await row('async-1')).last_operation_state).toBe('succeeded');
    await eventually(async () => ((await r.t.admin.get(jobPath)).body.state === 'COMPLETE' ? true : undefined), 'the job to complete');
    expect(await controller.listKeys()).not.toContain(`service_instances/${inst.guid}`);
  });

  it('does nothing for a key whose operation is over or whose row is gone', async () => {
    expect(await controller.reconcile('service_instances/no-such-guid')).toBeUndefined();
    expect(await controller.reconcile('service_credential_bindings/no-such-guid')).toBeUndefined();
  });

  it('the fixture plan ids stay the ones the catalog names', () => {
    expect(PLAN_IDS.async).toBe('plan-async');
  });
});
