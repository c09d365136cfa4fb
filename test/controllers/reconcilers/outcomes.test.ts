import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotReady, TerminalError, self, type Reconciler } from '../../../src/controllers/runtime/controller.ts';
import { eventually, reconcilerTest, type ReconcilerTest } from '../../helpers/reconciler-harness.ts';
import { appFixture } from './fixtures.ts';

/** What the test reconciler does next, per app guid. */
const plan = new Map<string, 'not-ready' | 'terminal' | 'ok'>();
/** Reconciles per app guid. */
const runs = new Map<string, number>();
const appReconciler: Reconciler = {
  name: 'app-probe',
  resource: 'app',
  watches: { apps: self },
  listKeys: async () => [...plan.keys()],
  async reconcile(key) {
    runs.set(key, (runs.get(key) ?? 0) + 1);
    const next = plan.get(key);
    if (next === 'not-ready') throw new NotReady('WaitingForSomething', 'something is not there yet');
    if (next === 'terminal') throw new TerminalError('InvalidSpec', 'the spec can never work');
  },
};

let r: ReconcilerTest;
beforeAll(async () => {
  r = await reconcilerTest(() => appReconciler);
});
afterAll(() => r.close());

const appRow = (guid: string) => r.t.kiln.store.db.selectFrom('apps').select(['generation', 'observed_generation']).where('guid', '=', guid).executeTakeFirstOrThrow();

describe('reconcile outcomes recorded as conditions', () => {
  it('records NotReady as Ready=False with its reason, and a later success as Ready=True', async () => {
    const f = await appFixture(r.t, 'outcome-not-ready');
    plan.set(f.app, 'not-ready');
    expect((await r.t.admin.patch(`/v3/apps/${f.app}`, { name: 'outcome-not-ready-2' })).status).toBe(200);
    await r.settle();
    expect((await r.conditions('app', f.app)).Ready).toMatchObject({ status: 'False', reason: 'WaitingForSomething', message: 'something is not there yet' });
    const failedAt = (await r.conditions('app', f.app)).Ready!.lastTransitionTime;

    // The retry with backoff picks the change up without any event.
    plan.set(f.app, 'ok');
    const ready = await eventually(async () => {
      const c = (await r.conditions('app', f.app)).Ready;
      return c?.status === 'True' ? c : undefined;
    }, 'Ready=True');
    expect(ready.reason).toBe('Reconciled');
    expect(ready.lastTransitionTime >= failedAt).toBe(true);
    const row = await appRow(f.app);
    expect(row.observed_generation).toBe(row.generation);
    expect(ready.observedGeneration).toBe(row.generation);
  });

  it('records a TerminalError, does not retry it, and reconciles again once the app changes', async () => {
    const f = await appFixture(r.t, 'outcome-terminal');
    plan.set(f.app, 'terminal');
    expect((await r.t.admin.patch(`/v3/apps/${f.app}`, { name: 'outcome-terminal-2' })).status).toBe(200);
    await r.settle();
    expect((await r.conditions('app', f.app)).Ready).toMatchObject({ status: 'False', reason: 'InvalidSpec', message: 'the spec can never work' });
    const before = runs.get(f.app);
    const terminalCount = await r.reconciles('app-probe', 'terminal_error');
    await new Promise((res) => setTimeout(res, 100));
    await r.manager.resync();
    await r.settle();
    expect(runs.get(f.app)).toBe(before);

    plan.set(f.app, 'ok');
    expect((await r.t.admin.patch(`/v3/apps/${f.app}`, { name: 'outcome-terminal-3' })).status).toBe(200);
    await r.settle();
    expect(runs.get(f.app)).toBe(before! + 1);
    expect(await r.reconciles('app-probe', 'terminal_error')).toBe(terminalCount);
    expect((await r.conditions('app', f.app)).Ready).toMatchObject({ status: 'True', reason: 'Reconciled' });
  });
});
