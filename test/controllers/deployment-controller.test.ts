import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploymentController } from '../../src/controllers/deployment-controller.ts';
import type { InstanceState, InstanceStatus, Runtime } from '../../src/runtime/runtime.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/**
 * The deployment controller against upstream's deployment updater, step by step (Scale/UpScaler/DownScaler,
 * canary_step_plan, Cancel). The real deployment and process controllers are off; a fake runtime reports the
 * instances each process row asks for, in the state the test chooses, and the test runs one reconcile per step.
 */

let t: TestKiln;
let space: any;

/** Instances by process guid, as the fake runtime reports them. */
const instances = new Map<string, InstanceStatus[]>();
const runtime = {
  listInstances: (filter?: { processGuid?: string }) => (filter?.processGuid ? (instances.get(filter.processGuid) ?? []) : [...instances.values()].flat()),
} as unknown as Runtime;

beforeAll(async () => {
  t = await createTestKiln({}, { disabledControllers: ['deployments', 'processes'] });
  const org = await t.org('dc-org');
  const unlimited = await t.admin.post('/v3/organization_quotas', { name: 'dc-unlimited', relationships: { organizations: { data: [{ guid: org.guid }] } } });
  expect(unlimited.status).toBe(201);
  space = await t.space('dc-space', org.guid);
});
afterAll(() => t.close());

const controller = () => deploymentController({ store: t.kiln.store, runtime, log: pino({ level: 'silent' }), routed: async () => {}, pollMs: 1 });

async function webs(appGuid: string) {
  return t.kiln.store.db.selectFrom('processes').selectAll().where('app_guid', '=', appGuid).where('type', '=', 'web').orderBy('created_at').orderBy('id').execute();
}

/** The runtime catches up with the rows: every process runs its `instances`, new ones in `fresh` state. */
async function converge(appGuid: string, fresh: InstanceState = 'RUNNING') {
  for (const p of await webs(appGuid)) {
    const have = instances.get(p.guid) ?? [];
    const list = Array.from({ length: p.instances }, (_, index): InstanceStatus => {
      const known = have.find((i) => i.index === index && i.version === p.version);
      return known ?? { id: `${p.guid}:${p.version}:${index}`, appGuid, processGuid: p.guid, version: p.version, index, state: fresh, host: '127.0.0.1', port: 1, pid: 1, since: 0, crashCount: 0 };
    });
    instances.set(p.guid, list);
  }
}

/** `old+new` instance counts of the app's web processes (`-` for a process that is gone). */
async function counts(appGuid: string, oldGuid: string, newGuid: string): Promise<string> {
  const rows = await webs(appGuid);
  const of = (g: string) => rows.find((p) => p.guid === g)?.instances ?? '-';
  return `${of(oldGuid)}+${of(newGuid)}`;
}

async function startedApp(name: string, count: number) {
  const app = (await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } } })).body;
  const droplet = await t.droplet(app.guid);
  expect((await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
  expect((await t.admin.post(`/v3/apps/${app.guid}/processes/web/actions/scale`, { instances: count })).status).toBe(202);
  expect((await t.admin.post(`/v3/apps/${app.guid}/actions/start`)).status).toBe(200);
  await converge(app.guid);
  return app.guid as string;
}

async function deploy(appGuid: string, body: Record<string, unknown>) {
  const res = await t.admin.post('/v3/deployments', { relationships: { app: { data: { guid: appGuid } } }, droplet: { guid: await t.droplet(appGuid) }, ...body });
  expect(res.status, res.text).toBe(201);
  return { guid: res.body.guid as string, fresh: res.body.new_processes[0].guid as string };
}

const status = async (guid: string) => (await t.admin.get(`/v3/deployments/${guid}`)).body.status;

/** Runs the runtime and one controller pass per step, recording the counts after each, until `done`. */
async function walk(appGuid: string, oldGuid: string, d: { guid: string; fresh: string }, done: () => Promise<boolean>, limit = 12): Promise<string[]> {
  const c = controller();
  const seen = [await counts(appGuid, oldGuid, d.fresh)];
  for (let i = 0; i < limit && !(await done()); i++) {
    await converge(appGuid);
    await c.reconcile(d.guid);
    seen.push(await counts(appGuid, oldGuid, d.fresh));
  }
  return seen;
}

describe('rolling (upstream Scale)', () => {
  it('moves 3 instances with max_in_flight 1 through 3+1, 2+2, 1+3 and removes the old process', async () => {
    const app = await startedApp('dc-rolling', 3);
    const d = await deploy(app, { options: { max_in_flight: 1 } });
    const seen = await walk(app, app, d, async () => (await status(d.guid)).value === 'FINALIZED');
    expect(seen).toEqual(['3+1', '2+2', '1+3', '-+3']);
    expect((await status(d.guid)).reason).toBe('DEPLOYED');
  });

  it('moves 5 instances with max_in_flight 2 through 5+2, 3+4, 1+5', async () => {
    const app = await startedApp('dc-surge', 5);
    const d = await deploy(app, { options: { max_in_flight: 2 } });
    expect(await walk(app, app, d, async () => (await status(d.guid)).value === 'FINALIZED')).toEqual(['5+2', '3+4', '1+5', '-+5']);
  });

  it('scales up to web_instances, keeping the old side while target − routable still covers it', async () => {
    const app = await startedApp('dc-web-instances', 2);
    const d = await deploy(app, { options: { max_in_flight: 2, web_instances: 4 } });
    // DownScaler keeps max(4 − routable, 0) old instances: 2 while two new ones run, none once four do.
    expect(await walk(app, app, d, async () => (await status(d.guid)).value === 'FINALIZED')).toEqual(['2+2', '2+4', '-+4']);
  });

  it('starts no more than max_in_flight at once and waits while new instances start', async () => {
    const app = await startedApp('dc-starting', 3);
    const d = await deploy(app, { options: { max_in_flight: 1 } });
    await converge(app, 'STARTING');
    await controller().reconcile(d.guid);
    expect(await counts(app, app, d.fresh)).toBe('3+1');
  });

  it('holds the rollout while a new instance crashes, and says so in the status details', async () => {
    const app = await startedApp('dc-crash', 2);
    const d = await deploy(app, { options: { max_in_flight: 1 } });
    await converge(app, 'CRASHED');
    const list = instances.get(d.fresh)!;
    list[0] = { ...list[0]!, lastExit: { code: 1, signal: null, at: 0, reason: 'exited with status 1' } };
    await controller().reconcile(d.guid);
    expect(await counts(app, app, d.fresh)).toBe('2+1');
    const s = await status(d.guid);
    expect(s.reason).toBe('DEPLOYING');
    expect(s.details.error).toMatch(/crashed: exited with status 1/);
  });
});

describe('canary (canary_step_plan)', () => {
  it('keeps every old instance beside one canary, then rolls the rest after continue', async () => {
    const app = await startedApp('dc-canary', 3);
    const d = await deploy(app, { strategy: 'canary' });
    const paused = async () => (await status(d.guid)).reason === 'PAUSED';
    expect(await walk(app, app, d, paused)).toEqual(['3+1', '3+1']);
    expect((await t.admin.post(`/v3/deployments/${d.guid}/actions/continue`)).status).toBe(200);
    expect(await walk(app, app, d, async () => (await status(d.guid)).value === 'FINALIZED')).toEqual(['3+1', '2+2', '1+3', '-+3']);
  });

  it('keeps instances − canary + 1 on the original side at each weighted step', async () => {
    const app = await startedApp('dc-steps', 4);
    const d = await deploy(app, { strategy: 'canary', options: { canary: { steps: [{ instance_weight: 25 }, { instance_weight: 50 }, { instance_weight: 100 }] } } });
    const pausedAt = (step: number) => async () => {
      const s = await status(d.guid);
      return s.reason === 'PAUSED' && s.canary.steps.current === step;
    };
    // 25%: canary 1, original 4; 50%: canary 2, original 3; 100%: canary 4, original 0.
    expect(await walk(app, app, d, pausedAt(1))).toEqual(['4+1', '4+1']);
    expect((await t.admin.post(`/v3/deployments/${d.guid}/actions/continue`)).status).toBe(200);
    expect(await walk(app, app, d, pausedAt(2))).toEqual(['4+1', '4+2', '3+2']);
    expect((await t.admin.post(`/v3/deployments/${d.guid}/actions/continue`)).status).toBe(200);
    expect(await walk(app, app, d, pausedAt(3))).toEqual(['3+2', '2+3', '1+4', '0+4']);
    expect((await t.admin.post(`/v3/deployments/${d.guid}/actions/continue`)).status).toBe(200);
    expect(await walk(app, app, d, async () => (await status(d.guid)).value === 'FINALIZED')).toEqual(['0+4', '-+4']);
  });
});

describe('cancel and supersede', () => {
  it('returns the old process to its original count before removing the new one', async () => {
    const app = await startedApp('dc-cancel', 3);
    const d = await deploy(app, { options: { max_in_flight: 1 } });
    await walk(app, app, d, async () => (await counts(app, app, d.fresh)) === '1+3');
    expect((await t.admin.post(`/v3/deployments/${d.guid}/actions/cancel`)).status).toBe(200);
    const c = controller();
    await c.reconcile(d.guid);
    // Not yet: the old process asks for 3 again, and the new one stays until they run.
    expect(await counts(app, app, d.fresh)).toBe('3+3');
    expect((await status(d.guid)).reason).toBe('CANCELING');
    await converge(app);
    await c.reconcile(d.guid);
    expect(await counts(app, app, d.fresh)).toBe('3+-');
    expect((await status(d.guid)).reason).toBe('CANCELED');
  });

  it('scales the superseded rollout down with the old process, oldest first, and removes it when it reaches 0', async () => {
    const app = await startedApp('dc-supersede', 3);
    const first = await deploy(app, { options: { max_in_flight: 1 } });
    await walk(app, app, first, async () => (await counts(app, app, first.fresh)) === '2+2');
    const second = await deploy(app, { options: { max_in_flight: 1 } });
    expect((await status(first.guid)).reason).toBe('SUPERSEDED');
    const all = async () => {
      const rows = await webs(app);
      const of = (g: string) => rows.find((p) => p.guid === g)?.instances ?? '-';
      return `${of(app)}+${of(first.fresh)}+${of(second.fresh)}`;
    };
    const seen = [await all()];
    const c = controller();
    for (let i = 0; i < 10 && (await status(second.guid)).value !== 'FINALIZED'; i++) {
      await converge(app);
      await c.reconcile(second.guid);
      seen.push(await all());
    }
    // The original target stays 3; the original process goes down first (kept at 0 until the end), then the
    // interim one, removed when it reaches 0.
    expect(seen).toEqual(['2+2+1', '0+2+2', '0+1+3', '-+-+3']);
  });
});
