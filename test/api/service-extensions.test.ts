import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';
import { PLAN_IDS, startFixtureBroker, type FixtureBroker } from '../fixtures/broker/broker.ts';

/** Service instance backups and plan definitions (issue 15) against the fixture broker's extensions. */

let t: TestKiln;
let broker: FixtureBroker;
let space: any;
let dev: Client;
let auditor: Client;
let outsider: Client;
let serviceAdmin: Client;
const plans: Record<string, string> = {};
let extOffering: string;
let dbOffering: string;

const detail = (res: { body: any }) => res.body.errors[0].detail;
const rel = (guid: string) => ({ data: { guid } });

beforeAll(async () => {
  t = await createTestKiln({ KILN_BROKER_POLL_INTERVAL_SECONDS: '0.05' });
  broker = await startFixtureBroker({ extensions: true });
  const reg = await t.admin.post('/v3/service_brokers', {
    name: 'fixture',
    url: broker.url,
    authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
  });
  expect((await t.awaitJob(reg.headers.get('location'))).state).toBe('COMPLETE');
  for (const p of (await t.admin.get('/v3/service_plans?per_page=100')).body.resources) {
    plans[p.broker_catalog.id] = p.guid;
    await t.admin.patch(`/v3/service_plans/${p.guid}/visibility`, { type: 'public' });
  }
  const offerings = (await t.admin.get('/v3/service_offerings?per_page=100')).body.resources;
  extOffering = offerings.find((o: any) => o.name === 'fixture-ext').guid;
  dbOffering = offerings.find((o: any) => o.name === 'fixture-db').guid;
  const org = await t.org('ext-org');
  space = await t.space('ext-space', org.guid);
  dev = await t.spaceMember('space_developer', space);
  auditor = await t.spaceMember('space_auditor', space);
  outsider = await t.user();
  serviceAdmin = await t.user('svc-admin', ['kiln.service_admin']);
});
afterAll(async () => {
  await t.close();
  await broker.close();
});

async function instance(name: string, planId: string): Promise<string> {
  const res = await dev.post('/v3/service_instances', { type: 'managed', name, relationships: { space: rel(space.guid), service_plan: rel(plans[planId]!) } });
  expect(res.status, res.text).toBe(202);
  expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
  return (await dev.get(`/v3/service_instances?names=${name}`)).body.resources[0].guid;
}

describe('service instance backups', () => {
  let syncInst: string;
  let asyncInst: string;
  beforeAll(async () => {
    syncInst = await instance('bk-sync', PLAN_IDS.ext);
    asyncInst = await instance('bk-async', PLAN_IDS.extAsync);
  });

  it('are created synchronously through the broker: READY with the size the broker reports', async () => {
    const res = await dev.post(`/v3/service_instances/${syncInst}/backups`);
    expect(res.status, res.text).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'service_instance.backup' });
    const list = await dev.get(`/v3/service_instances/${syncInst}/backups`);
    expect(list.body.pagination.total_results).toBe(1);
    const b = list.body.resources[0];
    expect(b).toMatchObject({ state: 'READY', last_operation: { type: 'create', state: 'succeeded' }, relationships: { service_instance: { data: { guid: syncInst } } } });
    expect(b.size_in_bytes).toBe(broker.backups.get(b.guid)!.size_in_bytes);
    expect(b.completed_at).toEqual(expect.any(String));
    const put = broker.requests.find((r) => r.method === 'PUT' && r.path === `/v2/service_instances/${syncInst}/backups/${b.guid}`)!;
    expect(put.query).toEqual({ accepts_incomplete: 'true' });
    expect(put.body).toEqual({ service_id: 'svc-ext', plan_id: PLAN_IDS.ext });
  });

  it('are created asynchronously: the job polls the backup until the broker says succeeded', async () => {
    const res = await dev.post(`/v3/service_instances/${asyncInst}/backups`);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job.state).toBe('COMPLETE');
    const b = (await dev.get(`/v3/service_instances/${asyncInst}/backups`)).body.resources[0];
    expect(b).toMatchObject({ state: 'READY', last_operation: { type: 'create', state: 'succeeded', description: 'backed up' } });
    expect(broker.requests.filter((r) => r.method === 'GET' && r.path === `/v2/service_instances/${asyncInst}/backups/${b.guid}`).length).toBeGreaterThanOrEqual(2);
  });

  it('restore an instance asynchronously from a READY backup and record when', async () => {
    const b = (await dev.get(`/v3/service_instances/${asyncInst}/backups`)).body.resources[0];
    const res = await dev.post(`/v3/service_instances/${asyncInst}/backups/${b.guid}/actions/restore`);
    expect(res.status, res.text).toBe(202);
    expect(await t.awaitJob(res.headers.get('location'))).toMatchObject({ state: 'COMPLETE', operation: 'service_instance.restore' });
    const after = (await dev.get(`/v3/service_instances/${asyncInst}/backups`)).body.resources[0];
    expect(after).toMatchObject({ state: 'READY', last_operation: { type: 'restore', state: 'succeeded' } });
    expect(after.restored_at).toEqual(expect.any(String));
    expect(broker.restores).toContainEqual({ instance: asyncInst, backup: b.guid });
  });

  it('a restore the broker fails fails its job and leaves the backup READY', async () => {
    const b = (await dev.get(`/v3/service_instances/${syncInst}/backups`)).body.resources[0];
    broker.options.failRestore = true;
    const res = await dev.post(`/v3/service_instances/${syncInst}/backups/${b.guid}/actions/restore`);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job.state).toBe('FAILED');
    expect(job.errors[0].detail).toContain('the restore failed');
    expect((await dev.get(`/v3/service_instances/${syncInst}/backups`)).body.resources[0]).toMatchObject({ state: 'READY', last_operation: { type: 'restore', state: 'failed' } });
  });

  it('list filters by state and pages', async () => {
    await t.awaitJob((await dev.post(`/v3/service_instances/${syncInst}/backups`)).headers.get('location'));
    const page = await dev.get(`/v3/service_instances/${syncInst}/backups?per_page=1&order_by=-created_at`);
    expect(page.body.pagination).toMatchObject({ total_results: 2, total_pages: 2 });
    expect((await dev.get(`/v3/service_instances/${syncInst}/backups?states=FAILED`)).body.resources).toHaveLength(0);
    expect((await dev.get(`/v3/service_instances/${syncInst}/backups?states=BOGUS`)).status).toBe(400);
  });

  it('space readers list but may not create or restore; outsiders see 404', async () => {
    expect((await auditor.get(`/v3/service_instances/${syncInst}/backups`)).status).toBe(200);
    expect((await auditor.post(`/v3/service_instances/${syncInst}/backups`)).status).toBe(403);
    const b = (await dev.get(`/v3/service_instances/${syncInst}/backups`)).body.resources[0];
    expect((await auditor.post(`/v3/service_instances/${syncInst}/backups/${b.guid}/actions/restore`)).status).toBe(403);
    expect((await outsider.get(`/v3/service_instances/${syncInst}/backups`)).status).toBe(404);
    expect((await outsider.post(`/v3/service_instances/${syncInst}/backups`)).status).toBe(404);
    expect((await dev.post(`/v3/service_instances/${syncInst}/backups/${crypto.randomUUID()}/actions/restore`)).status).toBe(404);
  });

  it('an offering without the backups feature gets a 422 that says so, as does a user-provided instance', async () => {
    const plain = await instance('bk-plain', PLAN_IDS.small);
    for (const res of [await dev.post(`/v3/service_instances/${plain}/backups`), await dev.get(`/v3/service_instances/${plain}/backups`)]) {
      expect(res.status).toBe(422);
      expect(detail(res)).toBe("The service offering 'fixture-db' does not support backups.");
    }
    const ups = await dev.post('/v3/service_instances', { type: 'user-provided', name: 'bk-ups', relationships: { space: rel(space.guid) } });
    const res = await dev.post(`/v3/service_instances/${ups.body.guid}/backups`);
    expect(res.status).toBe(422);
    expect(detail(res)).toBe('User-provided service instances do not support backups.');
  });

  it('refuses to restore from a backup that is not READY', async () => {
    broker.options.asyncPolls = 1_000_000;
    try {
      const res = await dev.post(`/v3/service_instances/${asyncInst}/backups`);
      const loc = res.headers.get('location')!;
      const creating = (await dev.get(`/v3/service_instances/${asyncInst}/backups?states=CREATING`)).body.resources[0];
      const restore = await dev.post(`/v3/service_instances/${asyncInst}/backups/${creating.guid}/actions/restore`);
      expect(restore.status).toBe(422);
      expect(detail(restore)).toBe('The backup cannot be restored from while its state is CREATING.');
      broker.options.asyncPolls = 0;
      expect((await t.awaitJob(loc)).state).toBe('COMPLETE');
    } finally {
      broker.options.asyncPolls = 1;
    }
  });

  it('while a restore runs, neither a second restore nor a new backup of the instance may start', async () => {
    const ready = (await dev.get(`/v3/service_instances/${asyncInst}/backups?states=READY`)).body.resources;
    broker.options.asyncPolls = 1_000_000;
    try {
      const res = await dev.post(`/v3/service_instances/${asyncInst}/backups/${ready[0].guid}/actions/restore`);
      const loc = res.headers.get('location')!;
      expect((await dev.get(`/v3/service_instances/${asyncInst}/backups?states=RESTORING`)).body.resources).toHaveLength(1);
      for (const refused of [await dev.post(`/v3/service_instances/${asyncInst}/backups/${ready[1].guid}/actions/restore`), await dev.post(`/v3/service_instances/${asyncInst}/backups`)]) {
        expect(refused.status).toBe(422);
        expect(detail(refused)).toBe('A restore of this service instance is in progress.');
      }
      // Nor may the instance be updated or deleted under the restore.
      for (const refused of [await dev.patch(`/v3/service_instances/${asyncInst}`, { parameters: { a: 1 } }), await dev.delete(`/v3/service_instances/${asyncInst}`)]) {
        expect(refused.status).toBe(422);
        expect(detail(refused)).toBe('There is an operation in progress for the service instance: a restore is running');
      }
      broker.options.asyncPolls = 0;
      expect((await t.awaitJob(loc)).state).toBe('COMPLETE');
    } finally {
      broker.options.asyncPolls = 1;
    }
  });

  it('a backup the broker refuses ends FAILED with the broker\'s error on its job', async () => {
    const inst = await instance('bk-forgotten', PLAN_IDS.ext);
    broker.instances.delete(inst);
    const job = await t.awaitJob((await dev.post(`/v3/service_instances/${inst}/backups`)).headers.get('location'));
    expect(job.state).toBe('FAILED');
    expect(job.errors[0]).toMatchObject({ title: 'CF-ServiceBrokerRequestRejected', detail: 'Service broker error: no such instance' });
    expect((await dev.get(`/v3/service_instances/${inst}/backups`)).body.resources[0]).toMatchObject({ state: 'FAILED', size_in_bytes: null, completed_at: null, last_operation: { type: 'create', state: 'failed' } });
  });

  it('creating and restoring are audited on the instance', async () => {
    const events = (await t.admin.get(`/v3/audit_events?target_guids=${asyncInst}&per_page=100`)).body.resources.map((e: any) => e.type);
    expect(events).toEqual(expect.arrayContaining(['audit.service_instance.backup_create', 'audit.service_instance.backup_restore']));
  });

  it('go with their instance when it is deleted', async () => {
    const inst = await instance('bk-doomed', PLAN_IDS.ext);
    await t.awaitJob((await dev.post(`/v3/service_instances/${inst}/backups`)).headers.get('location'));
    const rows = () => t.kiln.store.db.selectFrom('service_instance_backups').select('guid').where('service_instance_guid', '=', inst).execute();
    expect(await rows()).toHaveLength(1);
    expect((await t.awaitJob((await dev.delete(`/v3/service_instances/${inst}`)).headers.get('location'))).state).toBe('COMPLETE');
    await t.kiln.controllers.settle();
    expect(await rows()).toHaveLength(0);
  });

  it('refuses a backup while an operation on the instance is in progress (409)', async () => {
    await t.kiln.store.write((tx) => tx.updateStatus('service_instances', syncInst, { last_operation_state: 'in progress' }));
    try {
      const res = await dev.post(`/v3/service_instances/${syncInst}/backups`);
      expect(res.status).toBe(409);
      expect(detail(res)).toBe('An operation for service instance bk-sync is in progress.');
    } finally {
      await t.kiln.store.write((tx) => tx.updateStatus('service_instances', syncInst, { last_operation_state: 'succeeded' }));
    }
  });
});

describe('plan definition schemas', () => {
  it('list every offering, with null schemas for those without the feature', async () => {
    const res = await t.admin.get('/v3/plan_definition_schemas?per_page=100');
    expect(res.status, res.text).toBe(200);
    const byGuid = new Map(res.body.resources.map((r: any) => [r.guid, r]));
    expect(res.body.pagination.total_results).toBe(4);
    expect((byGuid.get(extOffering) as any).schema).toMatchObject({ version: '1.0.0', ui_schema: { disk_gb: { 'ui:widget': 'updown' } }, json_schema: { type: 'object' } });
    expect((byGuid.get(dbOffering) as any).schema).toBeNull();
  });

  it('get one; a broker error makes the schema null', async () => {
    expect((await t.admin.get(`/v3/plan_definition_schemas/${extOffering}`)).body.schema.version).toBe('1.0.0');
    broker.options.failSchema = true;
    try {
      const res = await t.admin.get(`/v3/plan_definition_schemas/${extOffering}`);
      expect(res.status).toBe(200);
      expect(res.body.schema).toBeNull();
    } finally {
      broker.options.failSchema = false;
    }
    expect((await t.admin.get(`/v3/plan_definition_schemas/${crypto.randomUUID()}`)).status).toBe(404);
  });

  it('are for admins and service admins only', async () => {
    expect((await serviceAdmin.get('/v3/plan_definition_schemas')).status).toBe(200);
    expect((await dev.get('/v3/plan_definition_schemas')).status).toBe(403);
    expect((await dev.get(`/v3/plan_definition_schemas/${extOffering}`)).status).toBe(403);
  });
});

describe('service plan definitions', () => {
  it('list and get the definitions of the plans of offerings with the feature', async () => {
    const list = await t.admin.get('/v3/service_plan_definitions');
    expect(list.status, list.text).toBe(200);
    expect(list.body.resources.map((r: any) => r.guid).sort()).toEqual([plans[PLAN_IDS.ext], plans[PLAN_IDS.extAsync]].sort());
    const one = await serviceAdmin.get(`/v3/service_plan_definitions/${plans[PLAN_IDS.ext]}`);
    expect(one.body).toMatchObject({ definition: { name: 'ext', disk_gb: 1 }, created_at: '2026-01-01T00:00:00Z', resource_version: '1' });
    const plain = await t.admin.get(`/v3/service_plan_definitions/${plans[PLAN_IDS.small]}`);
    expect(plain.status).toBe(422);
    expect(detail(plain)).toBe("The service offering 'fixture-db' does not support plan definitions.");
  });

  it('list filters by offering and plan', async () => {
    expect((await t.admin.get(`/v3/service_plan_definitions?service_offering_guids=${dbOffering}`)).body.resources).toHaveLength(0);
    const one = await t.admin.get(`/v3/service_plan_definitions?service_plan_guids=${plans[PLAN_IDS.extAsync]}`);
    expect(one.body.resources.map((r: any) => r.definition.name)).toEqual(['ext-async']);
    const schemas = await t.admin.get(`/v3/plan_definition_schemas?service_offering_guids=${extOffering},${dbOffering}`);
    expect(schemas.body.pagination.total_results).toBe(2);
  });

  it('create a plan: validated against the schema, sent to the broker, then the catalog is synced', async () => {
    const body = { name: 'large', description: 'Large', definition: { name: 'large', description: 'Large', disk_gb: 50 }, relationships: { service_offering: rel(extOffering) } };
    const res = await serviceAdmin.post('/v3/service_plans', body);
    expect(res.status, res.text).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    const plan = (await t.admin.get(`/v3/service_plans?names=large&service_offering_guids=${extOffering}`)).body.resources[0];
    expect(plan).toMatchObject({ name: 'large', description: 'Large' });
    expect(broker.definitions.get(plan.broker_catalog.id)!.definition).toEqual(body.definition);
    expect((await t.admin.get(`/v3/service_plan_definitions/${plan.guid}`)).body.definition).toEqual(body.definition);
    plans.large = plan.guid;
  });

  it('create refuses a mismatched name, a definition the schema refuses, a taken name and an offering without the feature', async () => {
    const base = { name: 'x', description: 'X', relationships: { service_offering: rel(extOffering) } };
    const mismatch = await t.admin.post('/v3/service_plans', { ...base, definition: { name: 'y', description: 'X' } });
    expect(mismatch.status).toBe(422);
    expect(detail(mismatch)).toBe("The name must match the definition's name.");
    const invalid = await t.admin.post('/v3/service_plans', { ...base, definition: { name: 'x', description: 'X', disk_gb: 1000 } });
    expect(invalid.status).toBe(422);
    expect(detail(invalid)).toContain('/disk_gb must be <= 100');
    const taken = await t.admin.post('/v3/service_plans', { ...base, name: 'large', definition: { name: 'large', description: 'X' } });
    expect(taken.status).toBe(422);
    const noFeature = await t.admin.post('/v3/service_plans', { ...base, relationships: { service_offering: rel(dbOffering) }, definition: { name: 'x', description: 'X' } });
    expect(noFeature.status).toBe(422);
    expect(detail(noFeature)).toBe("The service offering 'fixture-db' does not support plan definitions.");
    expect(broker.requests.some((r) => r.method === 'PUT' && r.body?.definition?.name === 'x')).toBe(false);
  });

  it('a definition the broker refuses fails the job with the broker\'s error and leaves the catalog as it was', async () => {
    broker.options.rejectDefinitions = true;
    try {
      const res = await t.admin.post('/v3/service_plans', { name: 'frozen', description: 'F', definition: { name: 'frozen', description: 'F' }, relationships: { service_offering: rel(extOffering) } });
      const job = await t.awaitJob(res.headers.get('location'));
      expect(job.state).toBe('FAILED');
      expect(job.errors[0]).toMatchObject({ title: 'CF-ServiceBrokerRequestRejected', detail: 'Service broker error: definitions are frozen' });
      expect((await t.admin.get('/v3/service_plans?names=frozen')).body.resources).toHaveLength(0);
      expect(await t.kiln.store.db.selectFrom('service_plan_definition_requests').selectAll().execute()).toEqual([]);
    } finally {
      broker.options.rejectDefinitions = false;
    }
  });

  it('update replaces the definition (broker fields dropped) and resyncs the catalog', async () => {
    const current = (await t.admin.get(`/v3/service_plan_definitions/${plans.large}`)).body;
    const definition = { ...current.definition, description: 'Larger', created_at: 'x', resource_version: '9' };
    const res = await t.admin.patch(`/v3/service_plan_definitions/${plans.large}`, { definition });
    expect(res.status, res.text).toBe(202);
    expect((await t.awaitJob(res.headers.get('location'))).state).toBe('COMPLETE');
    expect((await t.admin.get(`/v3/service_plans/${plans.large}`)).body.description).toBe('Larger');
    const after = (await t.admin.get(`/v3/service_plan_definitions/${plans.large}`)).body;
    expect(after).toMatchObject({ definition: { name: 'large', description: 'Larger', disk_gb: 50 }, resource_version: '2' });
    expect(after.definition).not.toHaveProperty('created_at');
    const bad = await t.admin.patch(`/v3/service_plan_definitions/${plans.large}`, { definition: { name: 'large', description: 'L', colour: 'red' } });
    expect(bad.status).toBe(422);
  });

  it('delete refuses while the plan has instances, then deletes definition and plan', async () => {
    await t.admin.patch(`/v3/service_plans/${plans.large}/visibility`, { type: 'public' });
    const res = await dev.post('/v3/service_instances', { type: 'managed', name: 'on-large', relationships: { space: rel(space.guid), service_plan: rel(plans.large!) } });
    await t.awaitJob(res.headers.get('location'));
    const refused = await t.admin.delete(`/v3/service_plan_definitions/${plans.large}`);
    expect(refused.status).toBe(422);
    expect(detail(refused)).toBe("The service plan 'large' has service instances; delete them before its definition.");
    const guid = (await dev.get('/v3/service_instances?names=on-large')).body.resources[0].guid;
    await t.awaitJob((await dev.delete(`/v3/service_instances/${guid}`)).headers.get('location'));
    const del = await t.admin.delete(`/v3/service_plan_definitions/${plans.large}`);
    expect(del.status, del.text).toBe(202);
    expect((await t.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
    expect((await t.admin.get(`/v3/service_plans/${plans.large}`)).status).toBe(404);
    expect([...broker.definitions.values()].some((d) => d.definition.name === 'large')).toBe(false);
  });

  it('writes are for admins and service admins only; reads too', async () => {
    const body = { name: 'z', description: 'Z', definition: { name: 'z', description: 'Z' }, relationships: { service_offering: rel(extOffering) } };
    expect((await dev.post('/v3/service_plans', body)).status).toBe(403);
    expect((await dev.patch(`/v3/service_plan_definitions/${plans[PLAN_IDS.ext]}`, { definition: { name: 'ext', description: 'd' } })).status).toBe(403);
    expect((await dev.delete(`/v3/service_plan_definitions/${plans[PLAN_IDS.ext]}`)).status).toBe(403);
    expect((await dev.get('/v3/service_plan_definitions')).status).toBe(403);
    expect((await dev.get(`/v3/service_plan_definitions/${plans[PLAN_IDS.ext]}`)).status).toBe(403);
  });
});
