import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { PLAN_IDS, startFixtureBroker, type FixtureBroker } from '../fixtures/broker/broker.ts';

/**
 * Backup and plan-definition jobs survive a Kiln restart (issue 15): two Kilns, one after the other, on one SQLite
 * file and one encryption key. The first is stopped while a job is PROCESSING (its job controller disabled, so it
 * never reached the broker) or POLLING (the broker accepted it and answers `in progress`); the second finishes it.
 */

let dir: string;
let env: Record<string, string>;
let broker: FixtureBroker;
let t: TestKiln | undefined;
let spaceGuid: string;
let instanceGuid: string;
let extOffering: string;

const start = async (disabledControllers: string[] = []) => {
  t = await createTestKiln(env, { disabledControllers });
  return t;
};
const stop = async () => {
  await t!.kiln.stop();
  t = undefined;
};

async function jobState(k: TestKiln, location: string, wanted: string): Promise<any> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    await k.kiln.controllers.settle();
    const job = (await k.admin.get(new URL(location).pathname)).body;
    if (job.state === wanted) return job;
    if (Date.now() > deadline) throw new Error(`job still ${job.state}, not ${wanted}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-restart-'));
  env = {
    DATABASE_URL: `sqlite:${path.join(dir, 'kiln.db')}`,
    KILN_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    KILN_ADMIN_PASSWORD: randomBytes(12).toString('hex'),
    KILN_BROKER_POLL_INTERVAL_SECONDS: '0.05',
  };
  broker = await startFixtureBroker({ extensions: true });
  const k = await start();
  const reg = await k.admin.post('/v3/service_brokers', {
    name: 'fixture',
    url: broker.url,
    authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
  });
  expect((await k.awaitJob(reg.headers.get('location'))).state).toBe('COMPLETE');
  const plan = (await k.admin.get(`/v3/service_plans?names=ext-async`)).body.resources[0];
  expect(plan.broker_catalog.id).toBe(PLAN_IDS.extAsync);
  extOffering = plan.relationships.service_offering.data.guid;
  const org = await k.org('restart-org');
  spaceGuid = (await k.space('restart-space', org.guid)).guid;
  const res = await k.admin.post('/v3/service_instances', { type: 'managed', name: 'restart-db', relationships: { space: { data: { guid: spaceGuid } }, service_plan: { data: { guid: plan.guid } } } });
  expect((await k.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
  instanceGuid = (await k.admin.get('/v3/service_instances?names=restart-db')).body.resources[0].guid;
});
afterAll(async () => {
  if (t) await t.kiln.stop();
  await broker.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('across a Kiln restart', () => {
  let backupGuid: string;

  it('a backup whose broker operation is being polled completes after the restart', async () => {
    broker.options.asyncPolls = 1_000_000;
    const res = await t!.admin.post(`/v3/service_instances/${instanceGuid}/backups`);
    const location = res.headers.get('location')!;
    await jobState(t!, location, 'POLLING');
    backupGuid = (await t!.admin.get(`/v3/service_instances/${instanceGuid}/backups`)).body.resources[0].guid;
    await stop();

    broker.options.asyncPolls = 0;
    const k = await start();
    expect((await jobState(k, location, 'COMPLETE')).operation).toBe('service_instance.backup');
    expect((await k.admin.get(`/v3/service_instances/${instanceGuid}/backups`)).body.resources[0]).toMatchObject({ guid: backupGuid, state: 'READY', last_operation: { type: 'create', state: 'succeeded' } });
  });

  it('a restore whose job had not run yet is sent to the broker and completes after the restart', async () => {
    await stop();
    const k = await start(['jobs']);
    const res = await k.admin.post(`/v3/service_instances/${instanceGuid}/backups/${backupGuid}/actions/restore`);
    const location = res.headers.get('location')!;
    await k.kiln.controllers.settle();
    expect((await k.admin.get(new URL(location).pathname)).body.state).toBe('PROCESSING');
    expect(broker.requests.some((r) => r.path.endsWith(`/backups/${backupGuid}/restore`))).toBe(false);
    await stop();

    broker.options.asyncPolls = 1;
    const k2 = await start();
    expect((await jobState(k2, location, 'COMPLETE')).operation).toBe('service_instance.restore');
    expect(broker.restores).toContainEqual({ instance: instanceGuid, backup: backupGuid });
    expect((await k2.admin.get(`/v3/service_instances/${instanceGuid}/backups`)).body.resources[0]).toMatchObject({ state: 'READY', last_operation: { type: 'restore', state: 'succeeded' } });
  });

  it('a plan created while its job was pending exists after the restart', async () => {
    await stop();
    const k = await start(['jobs']);
    const res = await k.admin.post('/v3/service_plans', {
      name: 'after-restart',
      description: 'Made across a restart',
      definition: { name: 'after-restart', description: 'Made across a restart', disk_gb: 3 },
      relationships: { service_offering: { data: { guid: extOffering } } },
    });
    expect(res.status, res.text).toBe(202);
    const location = res.headers.get('location')!;
    await stop();

    const k2 = await start();
    await jobState(k2, location, 'COMPLETE');
    expect((await k2.admin.get(`/v3/service_plans?names=after-restart&service_offering_guids=${extOffering}`)).body.resources).toHaveLength(1);
  });
});
