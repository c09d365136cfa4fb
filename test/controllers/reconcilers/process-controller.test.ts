import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processController } from '../../../src/controllers/process-controller.ts';
import { reconcilerTest, type ReconcilerTest } from '../../helpers/reconciler-harness.ts';
import { appFixture, currentDroplet, noDropletFiles } from './fixtures.ts';

let r: ReconcilerTest;
beforeAll(async () => {
  r = await reconcilerTest((t, runtime) =>
    processController({ store: t.kiln.store, runtime, droplets: noDropletFiles, log: pino({ level: 'silent' }), cfApi: () => 'http://kiln.test', drain: async () => {} }),
  );
});
afterAll(() => r.close());

const start = async (app: string) => expect((await r.t.admin.post(`/v3/apps/${app}/actions/start`)).status).toBe(200);
const scale = async (proc: string, instances: number) => expect((await r.t.admin.post(`/v3/processes/${proc}/actions/scale`, { instances })).status).toBe(202);
const states = (processGuid: string) => r.runtime.listInstances({ processGuid }).map((i) => `${i.index}:${i.state}`).sort();

describe('the process controller', () => {
  it('starts a scaled-up instance with what its version launched with; a restart, or a start after a stop, takes the new env', async () => {
    const f = await appFixture(r.t, 'frozen-env');
    await currentDroplet(r.t, f.app);
    const setEnv = async (v: string) => expect((await r.t.admin.patch(`/v3/apps/${f.app}/environment_variables`, { var: { LEVEL: v } })).status).toBe(200);
    const levels = () => [...r.runtime.instances.values()].filter((i) => i.spec.processGuid === f.web).map((i) => `${i.spec.index}:${i.spec.env.LEVEL}`).sort();
    await setEnv('one');
    await start(f.app);
    await r.settle();
    await setEnv('two');
    await scale(f.web, 2);
    await r.settle();
    // Like a Diego LRP: cf set-env reaches instances at the next restart, not through a scale-up.
    expect(levels()).toEqual(['0:one', '1:one']);
    expect((await r.t.admin.post(`/v3/apps/${f.app}/actions/restart`)).status).toBe(200);
    await r.settle();
    expect(levels().filter((l) => l.endsWith('two'))).toEqual(['0:two', '1:two']);
    expect((await r.t.admin.post(`/v3/apps/${f.app}/actions/stop`)).status).toBe(200);
    await r.settle();
    await setEnv('three');
    await start(f.app);
    await r.settle();
    expect(levels().filter((l) => l.endsWith('three'))).toEqual(['0:three', '1:three']);
  });

  it('runs nothing for a stopped app and says so in its Ready condition', async () => {
    const f = await appFixture(r.t, 'stopped-app');
    await currentDroplet(r.t, f.app);
    await r.settle();
    expect(states(f.web)).toEqual([]);
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ status: 'False', reason: 'Stopped' });
  });

  it('reports DropletNotStaged, retries, and runs nothing while a started app has no droplet', async () => {
    const f = await appFixture(r.t, 'no-droplet');
    // The API refuses to start an app without a droplet; an app can still get there (its droplet deleted).
    await r.t.kiln.store.write(async (tx) => {
      const app = await tx.db.selectFrom('apps').select('generation').where('guid', '=', f.app).executeTakeFirstOrThrow();
      await tx.update('apps', f.app, { state: 'STARTED' }, { expectedGeneration: app.generation });
    });
    await r.settle();
    expect(states(f.web)).toEqual([]);
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ status: 'False', reason: 'DropletNotStaged' });
    const app = await r.conditions('app', f.app);
    expect(app.Staged).toMatchObject({ status: 'False', reason: 'DropletNotStaged' });
    expect(app.Ready).toMatchObject({ status: 'False', reason: 'DropletNotStaged' });
    const first = await r.reconciles('processes', 'not_ready');
    expect(first).toBeGreaterThan(0);
    // NotReady is retried with backoff (5 ms doubling to 40 ms here).
    await new Promise((res) => setTimeout(res, 150));
    expect(await r.reconciles('processes', 'not_ready')).toBeGreaterThan(first);
  });

  it('starts the wanted instances, reports Starting, then Running once they pass their health check', async () => {
    const f = await appFixture(r.t, 'runs');
    await currentDroplet(r.t, f.app);
    await scale(f.web, 2);
    await start(f.app);
    await r.settle();
    expect(states(f.web)).toEqual(['0:STARTING', '1:STARTING']);
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ status: 'False', reason: 'Starting', message: '0/2 instances running' });

    r.runtime.runAll(f.web);
    await r.settle();
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ status: 'True', reason: 'Running', message: '2/2 instances running' });
    const app = await r.conditions('app', f.app);
    expect(app.Ready).toMatchObject({ status: 'True', reason: 'Running' });
    expect(app.Staged).toMatchObject({ status: 'True', reason: 'DropletStaged' });
    const row = await r.t.kiln.store.db.selectFrom('processes').select(['generation', 'observed_generation']).where('guid', '=', f.web).executeTakeFirstOrThrow();
    expect(row.observed_generation).toBe(row.generation);
    expect((await r.conditions('process', f.web)).Ready!.observedGeneration).toBe(row.generation);
  });

  it('reports Crashing with the exit reason when an instance crashes, and Running again once it is back', async () => {
    const f = await appFixture(r.t, 'crashes');
    await currentDroplet(r.t, f.app);
    await start(f.app);
    await r.settle();
    r.runtime.runAll(f.web);
    await r.settle();
    const [instance] = r.runtime.listInstances({ processGuid: f.web });
    r.runtime.crash(instance!.id, 'APP/PROC/WEB: Exited with status 137 (out of memory)');
    await r.settle();
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({
      status: 'False',
      reason: 'Crashing',
      message: 'instance 0 crashed: APP/PROC/WEB: Exited with status 137 (out of memory); 0/1 instances running',
    });
    const crashedAt = (await r.conditions('process', f.web)).Ready!.lastTransitionTime;
    r.runtime.setState(instance!.id, 'RUNNING');
    await r.settle();
    const ready = (await r.conditions('process', f.web)).Ready!;
    expect(ready).toMatchObject({ status: 'True', reason: 'Running' });
    expect(ready.lastTransitionTime >= crashedAt).toBe(true);
  });

  it('reports HealthCheckFailing when an instance stays STARTING past its health check timeout', async () => {
    const f = await appFixture(r.t, 'unhealthy');
    await currentDroplet(r.t, f.app);
    expect((await r.t.admin.patch(`/v3/processes/${f.web}`, { health_check: { type: 'port', data: { timeout: 1 } } })).status).toBe(200);
    await start(f.app);
    await r.settle();
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ reason: 'Starting' });
    await new Promise((res) => setTimeout(res, 1100));
    await r.manager.resync();
    await r.settle();
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ status: 'False', reason: 'HealthCheckFailing' });
  });

  it('stops surplus instances when scaled down, and every instance when the app stops', async () => {
    const f = await appFixture(r.t, 'scales');
    await currentDroplet(r.t, f.app);
    await scale(f.web, 3);
    await start(f.app);
    await r.settle();
    r.runtime.runAll(f.web);
    await scale(f.web, 1);
    await r.settle();
    expect(states(f.web)).toEqual(['0:RUNNING']);
    expect((await r.t.admin.post(`/v3/apps/${f.app}/actions/stop`)).status).toBe(200);
    await r.settle();
    expect(states(f.web)).toEqual([]);
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ status: 'False', reason: 'Stopped' });
  });

  it('records a process without a start command as a TerminalError and retries it only once the process changes', async () => {
    const f = await appFixture(r.t, 'no-command');
    await currentDroplet(r.t, f.app, {});
    await start(f.app);
    await r.settle();
    expect(states(f.web)).toEqual([]);
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ status: 'False', reason: 'NoStartCommand' });
    const terminal = await r.reconciles('processes', 'terminal_error');
    expect(terminal).toBeGreaterThan(0);

    // Neither backoff nor the periodic resync brings it back.
    await new Promise((res) => setTimeout(res, 150));
    await r.manager.resync();
    await r.settle();
    expect(await r.reconciles('processes', 'terminal_error')).toBe(terminal);

    // A change to the process is a change-feed entry for its key: reconciled again, and now it can run.
    expect((await r.t.admin.patch(`/v3/processes/${f.web}`, { command: 'node server.js' })).status).toBe(200);
    await r.settle();
    expect(states(f.web)).toEqual(['0:STARTING']);
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ status: 'False', reason: 'Starting' });
  });

  it('removes the conditions of a process that no longer exists', async () => {
    const f = await appFixture(r.t, 'deleted');
    await currentDroplet(r.t, f.app);
    await start(f.app);
    await r.settle();
    expect(Object.keys(await r.conditions('process', f.web))).toEqual(['Ready']);
    await r.t.kiln.store.write(async (tx) => {
      await tx.db.deleteFrom('processes').where('guid', '=', f.web).execute();
      tx.changed('processes', f.web, 'delete');
    });
    await r.settle();
    expect(states(f.web)).toEqual([]);
    expect(await r.conditions('process', f.web)).toEqual({});
  });
});

describe('conditions of deleted resources', () => {
  it('are swept by the resync when the process controller recorded them for an app that is gone', async () => {
    const f = await appFixture(r.t, 'app-gone');
    await currentDroplet(r.t, f.app);
    await start(f.app);
    await r.settle();
    expect(Object.keys(await r.conditions('app', f.app)).sort()).toEqual(['Ready', 'Staged']);
    await r.t.kiln.store.write(async (tx) => {
      await tx.db.deleteFrom('processes').where('app_guid', '=', f.app).execute();
      await tx.db.deleteFrom('droplets').where('app_guid', '=', f.app).execute();
      await tx.db.deleteFrom('apps').where('guid', '=', f.app).execute();
      tx.changed('apps', f.app, 'delete');
      tx.changed('processes', f.web, 'delete');
    });
    await r.settle();
    expect(states(f.web)).toEqual([]);
    // No reconciler owns apps: their conditions stay until the sweep.
    expect(Object.keys(await r.conditions('app', f.app)).sort()).toEqual(['Ready', 'Staged']);
    await r.manager.resync();
    expect(await r.conditions('app', f.app)).toEqual({});
    expect(await r.conditions('process', f.web)).toEqual({});
  });
});

describe('the process controller with file-based bindings', () => {
  it('starts instances with binding files instead of VCAP_SERVICES when the app asks for them', async () => {
    const f = await appFixture(r.t, 'k8s-bindings');
    await currentDroplet(r.t, f.app);
    expect((await r.t.admin.patch(`/v3/apps/${f.app}/features/service-binding-k8s`, { enabled: true })).status).toBe(200);
    const ups = await r.t.admin.post('/v3/service_instances', { type: 'user-provided', name: 'my-ups', relationships: { space: { data: { guid: f.space } } }, credentials: { pw: 'x' } });
    await r.t.admin.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: { data: { guid: ups.body.guid } }, app: { data: { guid: f.app } } } });
    await start(f.app);
    await r.settle();
    const [spec] = [...r.runtime.instances.values()].filter((i) => i.spec.processGuid === f.web).map((i) => i.spec);
    expect(spec!.env.VCAP_SERVICES).toBeUndefined();
    expect(spec!.bindingFiles).toMatchObject({ kind: 'k8s', files: { 'my-ups/pw': 'x', 'my-ups/type': 'user-provided' } });
  });

  it('reports IncompatibleBindings and starts nothing when a binding name is no servicebinding.io name', async () => {
    const f = await appFixture(r.t, 'bad-binding');
    await currentDroplet(r.t, f.app);
    expect((await r.t.admin.patch(`/v3/apps/${f.app}/features/service-binding-k8s`, { enabled: true })).status).toBe(200);
    const ups = await r.t.admin.post('/v3/service_instances', { type: 'user-provided', name: 'Not_Valid', relationships: { space: { data: { guid: f.space } } }, credentials: { pw: 'x' } });
    await r.t.admin.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: { data: { guid: ups.body.guid } }, app: { data: { guid: f.app } } } });
    await start(f.app);
    await r.settle();
    expect(states(f.web)).toEqual([]);
    expect((await r.conditions('process', f.web)).Ready).toMatchObject({ status: 'False', reason: 'IncompatibleBindings' });
  });
});
