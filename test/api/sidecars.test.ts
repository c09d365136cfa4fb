import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, createTestKiln, type TestKiln } from '../helpers/harness.ts';

/** Every Sidecars operation (OPERATIONS.md "Sidecars"), its validation and who may do what (Appendix B). */

let t: TestKiln;
let org: any;
let space: any;
let app: any;
let workerGuid: string;
let dev: Client;
let auditor: Client;
let supporter: Client;
let orgManager: Client;
let outsider: Client;

beforeAll(async () => {
  t = await createTestKiln();
  org = await t.org('sc-org');
  space = await t.space('sc-space', org.guid);
  dev = await userWith('space_developer');
  auditor = await userWith('space_auditor');
  supporter = await userWith('space_supporter');
  orgManager = await t.user();
  await t.grant(orgManager, 'organization_manager', { org: org.guid });
  outsider = await t.user();
  app = await createApp('sc-app');
  const droplet = await t.droplet(app.guid, { web: 'node server.js', worker: 'node worker.js' });
  expect((await t.admin.patch(`/v3/apps/${app.guid}/relationships/current_droplet`, { data: { guid: droplet } })).status).toBe(200);
  const worker = await dev.get(`/v3/apps/${app.guid}/processes/worker`);
  expect(worker.status, worker.text).toBe(200);
  workerGuid = worker.body.guid;
});
afterAll(() => t.close());

async function createApp(name: string) {
  const res = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

const userWith = (role: string): Promise<Client> => t.spaceMember(role, space);

const create = (client: Client, body: Record<string, unknown>, appGuid = app.guid) => client.post(`/v3/apps/${appGuid}/sidecars`, body);
const detail = (res: { body: any }) => res.body.errors?.[0]?.detail;

describe('creating and reading sidecars', () => {
  let sidecar: any;

  it('creates a user sidecar for process types and shows it', async () => {
    const res = await create(dev, { name: 'auth', command: 'bundle exec rackup', process_types: ['web', 'worker', 'web'], memory_in_mb: 300 });
    expect(res.status, res.text).toBe(201);
    sidecar = res.body;
    expect(sidecar).toMatchObject({
      guid: expect.any(String),
      name: 'auth',
      command: 'bundle exec rackup',
      process_types: ['web', 'worker'],
      memory_in_mb: 300,
      origin: 'user',
      relationships: { app: { data: { guid: app.guid } } },
    });
    expect(sidecar.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(sidecar.links.self.href).toBe(`http://kiln.test/v3/sidecars/${sidecar.guid}`);
    expect(sidecar.links.app.href).toBe(`http://kiln.test/v3/apps/${app.guid}`);

    const got = await auditor.get(`/v3/sidecars/${sidecar.guid}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(sidecar);
    expect((await orgManager.get(`/v3/sidecars/${sidecar.guid}`)).status).toBe(200);
  });

  it('memory is optional (null)', async () => {
    const res = await create(dev, { name: 'logger', command: './log-shipper', process_types: ['worker'] });
    expect(res.status, res.text).toBe(201);
    expect(res.body.memory_in_mb).toBeNull();
  });

  it('lists the app sidecars and the sidecars of one process', async () => {
    const all = await auditor.get(`/v3/apps/${app.guid}/sidecars`);
    expect(all.status).toBe(200);
    expect(all.body.resources.map((s: any) => s.name)).toEqual(['auth', 'logger']);
    expect(all.body.pagination.total_results).toBe(2);

    const web = await auditor.get(`/v3/processes/${app.guid}/sidecars`);
    expect(web.status).toBe(200);
    expect(web.body.resources.map((s: any) => s.name)).toEqual(['auth']);
    const worker = await auditor.get(`/v3/processes/${workerGuid}/sidecars?order_by=-created_at`);
    expect(worker.body.resources.map((s: any) => s.name)).toEqual(['logger', 'auth']);

    const paged = await dev.get(`/v3/apps/${app.guid}/sidecars?per_page=1&page=2`);
    expect(paged.body.resources.map((s: any) => s.name)).toEqual(['logger']);
    expect(paged.body.pagination.previous.href).toContain(`/v3/apps/${app.guid}/sidecars?page=1&per_page=1`);
  });

  it('rejects unknown list parameters and label selectors', async () => {
    expect((await dev.get(`/v3/apps/${app.guid}/sidecars?names=auth`)).status).toBe(400);
    expect((await dev.get(`/v3/processes/${app.guid}/sidecars?label_selector=a=b`)).status).toBe(400);
    expect((await dev.get(`/v3/apps/${app.guid}/sidecars?order_by=name`)).status).toBe(400);
  });

  it('404s for unknown or invisible apps, processes and sidecars', async () => {
    expect(detail(await dev.get(`/v3/apps/${randomUUID()}/sidecars`))).toBe('App not found');
    expect(detail(await dev.get(`/v3/processes/${randomUUID()}/sidecars`))).toBe('Process not found');
    expect(detail(await dev.get(`/v3/sidecars/${randomUUID()}`))).toBe('Sidecar not found');
    expect((await outsider.get(`/v3/apps/${app.guid}/sidecars`)).status).toBe(404);
    expect((await outsider.get(`/v3/processes/${app.guid}/sidecars`)).status).toBe(404);
    expect(detail(await outsider.get(`/v3/sidecars/${sidecar.guid}`))).toBe('Sidecar not found');
    expect((await create(outsider, { name: 'x', command: 'y', process_types: ['web'] })).status).toBe(404);
    expect((await outsider.patch(`/v3/sidecars/${sidecar.guid}`, { command: 'z' })).status).toBe(404);
    expect((await outsider.delete(`/v3/sidecars/${sidecar.guid}`)).status).toBe(404);
  });

  it('403s writes for roles that can only read (auditor, supporter, org manager)', async () => {
    for (const client of [auditor, supporter, orgManager]) {
      const res = await create(client, { name: 'x', command: 'y', process_types: ['web'] });
      expect(res.status).toBe(403);
      expect(res.body.errors[0].title).toBe('CF-NotAuthorized');
      expect((await client.patch(`/v3/sidecars/${sidecar.guid}`, { command: 'z' })).status).toBe(403);
      expect((await client.delete(`/v3/sidecars/${sidecar.guid}`)).status).toBe(403);
    }
    expect((await t.anonymous.get(`/v3/sidecars/${sidecar.guid}`)).status).toBe(401);
  });

  it('records audit events for mutations, without the command text', async () => {
    const rows = await t.kiln.store.db
      .selectFrom('audit_events')
      .selectAll()
      .where('type', '=', 'audit.app.sidecar.create')
      .where('target_guid', '=', app.guid)
      .execute();
    expect(rows.length).toBe(2);
    expect(rows.map((r) => r.data).join()).not.toContain('bundle exec rackup');
  });
});

describe('validation', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['missing name', { command: 'c', process_types: ['web'] }, "Name can't be blank"],
    ['blank name', { name: '', command: 'c', process_types: ['web'] }, "Name can't be blank"],
    ['long name', { name: 'n'.repeat(256), command: 'c', process_types: ['web'] }, 'Name is too long (maximum is 255 characters)'],
    ['non-string name', { name: 3, command: 'c', process_types: ['web'] }, 'Name must be a string'],
    ['missing command', { name: 'n', process_types: ['web'] }, "Command can't be blank"],
    ['long command', { name: 'n', command: 'c'.repeat(4097), process_types: ['web'] }, 'Command is too long (maximum is 4096 characters)'],
    ['missing process types', { name: 'n', command: 'c' }, 'Process types must have at least 1 process_type'],
    ['empty process types', { name: 'n', command: 'c', process_types: [] }, 'Process types must have at least 1 process_type'],
    ['process types not an array', { name: 'n', command: 'c', process_types: 'web' }, 'Process types must be an array'],
    ['process type not a string', { name: 'n', command: 'c', process_types: [1] }, 'Process types must be an array of strings'],
    ['memory not a number', { name: 'n', command: 'c', process_types: ['web'], memory_in_mb: 'big' }, 'Memory in mb is not a number'],
    ['memory zero', { name: 'n', command: 'c', process_types: ['web'], memory_in_mb: 0 }, 'Memory in mb must be greater than 0'],
    ['memory fraction', { name: 'n', command: 'c', process_types: ['web'], memory_in_mb: 1.5 }, 'Memory in mb must be an integer'],
    ['unknown field', { name: 'n', command: 'c', process_types: ['web'], origin: 'buildpack' }, "Unknown field(s): 'origin'"],
  ];
  for (const [label, body, message] of cases) {
    it(`422 for ${label}`, async () => {
      const res = await create(dev, body);
      expect(res.status, res.text).toBe(422);
      expect(res.body.errors[0].title).toBe('CF-UnprocessableEntity');
      expect(res.body.errors[0].detail).toContain(message);
    });
  }

  it('400 for a body that is not JSON', async () => {
    const res = await dev.request('POST', `/v3/apps/${app.guid}/sidecars`, undefined, { raw: '{nope' });
    expect(res.status).toBe(400);
  });

  it('names are unique per app, not across apps', async () => {
    const other = await createApp('sc-other');
    expect((await create(dev, { name: 'dup', command: 'a', process_types: ['web'] })).status).toBe(201);
    const again = await create(dev, { name: 'dup', command: 'b', process_types: ['web'] });
    expect(again.status).toBe(422);
    expect(detail(again)).toBe("Sidecar with name 'dup' already exists for given app");
    expect((await create(dev, { name: 'dup', command: 'a', process_types: ['web'] }, other.guid)).status).toBe(201);
  });

  it('sidecar memory must stay below the memory of each process it runs with', async () => {
    const mem = await createApp('sc-mem');
    // The web process has the default 1024 MB.
    const tooBig = await create(dev, { name: 'big', command: 'c', process_types: ['web'], memory_in_mb: 1024 }, mem.guid);
    expect(tooBig.status).toBe(422);
    expect(detail(tooBig)).toBe('The memory allocation defined is too large to run with the dependent "web" process');
    expect((await create(dev, { name: 'a', command: 'c', process_types: ['web'], memory_in_mb: 600 }, mem.guid)).status).toBe(201);
    // Together with the first, a second one would take all of web's memory.
    const sum = await create(dev, { name: 'b', command: 'c', process_types: ['web'], memory_in_mb: 424 }, mem.guid);
    expect(detail(sum)).toBe('The memory allocation defined is too large to run with the dependent "web" process');
    expect((await create(dev, { name: 'b', command: 'c', process_types: ['web'], memory_in_mb: 423 }, mem.guid)).status).toBe(201);
    // Types without a process (yet) are not checked.
    expect((await create(dev, { name: 'c', command: 'c', process_types: ['clock'], memory_in_mb: 4096 }, mem.guid)).status).toBe(201);
  });
});

describe('updating and deleting', () => {
  let sidecar: any;
  beforeAll(async () => {
    const res = await create(dev, { name: 'upd', command: 'old', process_types: ['web'], memory_in_mb: 100 });
    expect(res.status, res.text).toBe(201);
    sidecar = res.body;
  });

  it('updates name, command, process types and memory', async () => {
    const res = await dev.patch(`/v3/sidecars/${sidecar.guid}`, { name: 'upd2', command: 'new', process_types: ['worker'], memory_in_mb: 200 });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ guid: sidecar.guid, name: 'upd2', command: 'new', process_types: ['worker'], memory_in_mb: 200, origin: 'user' });
    expect((await dev.get(`/v3/processes/${app.guid}/sidecars`)).body.resources.map((s: any) => s.name)).not.toContain('upd2');
    expect((await dev.get(`/v3/processes/${workerGuid}/sidecars`)).body.resources.map((s: any) => s.name)).toContain('upd2');
  });

  it('a partial update keeps the other fields; memory can be cleared', async () => {
    const res = await dev.patch(`/v3/sidecars/${sidecar.guid}`, { memory_in_mb: null });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ name: 'upd2', command: 'new', process_types: ['worker'], memory_in_mb: null });
    expect((await dev.patch(`/v3/sidecars/${sidecar.guid}`, {})).status).toBe(200);
  });

  it('validates updates like creates', async () => {
    expect(detail(await dev.patch(`/v3/sidecars/${sidecar.guid}`, { process_types: [] }))).toBe('Process types must have at least 1 process_type');
    expect(detail(await dev.patch(`/v3/sidecars/${sidecar.guid}`, { name: '' }))).toBe("Name can't be blank");
    expect(detail(await dev.patch(`/v3/sidecars/${sidecar.guid}`, { bogus: 1 }))).toBe("Unknown field(s): 'bogus'");
    expect(detail(await dev.patch(`/v3/sidecars/${sidecar.guid}`, { name: 'auth' }))).toBe("Sidecar with name 'auth' already exists for given app");
    // Keeping its own name is not a conflict.
    expect((await dev.patch(`/v3/sidecars/${sidecar.guid}`, { name: 'upd2' })).status).toBe(200);
    // Its own earlier reservation does not count against it, the others' do (auth reserves 300 MB on worker).
    expect((await dev.patch(`/v3/sidecars/${sidecar.guid}`, { memory_in_mb: 723 })).status).toBe(200);
    const tooBig = await dev.patch(`/v3/sidecars/${sidecar.guid}`, { memory_in_mb: 724 });
    expect(detail(tooBig)).toBe('The memory allocation defined is too large to run with the dependent "worker" process');
    const unchanged = await dev.get(`/v3/sidecars/${sidecar.guid}`);
    expect(unchanged.body.memory_in_mb).toBe(723);
  });

  it('deletes (204) and the sidecar is gone from every list', async () => {
    const res = await dev.delete(`/v3/sidecars/${sidecar.guid}`);
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect((await dev.get(`/v3/sidecars/${sidecar.guid}`)).status).toBe(404);
    expect((await dev.delete(`/v3/sidecars/${sidecar.guid}`)).status).toBe(404);
    expect((await dev.get(`/v3/processes/${workerGuid}/sidecars`)).body.resources.map((s: any) => s.name)).toEqual(['auth', 'logger']);
    const types = await t.kiln.store.db.selectFrom('sidecar_process_types').selectAll().where('sidecar_guid', '=', sidecar.guid).execute();
    expect(types).toEqual([]);
    const audits = await t.kiln.store.db.selectFrom('audit_events').select('type').where('type', 'like', 'audit.app.sidecar.%').execute();
    expect(new Set(audits.map((a) => a.type))).toEqual(new Set(['audit.app.sidecar.create', 'audit.app.sidecar.update', 'audit.app.sidecar.delete']));
  });
});

describe('deleting the app', () => {
  it('removes its sidecars and their process types', async () => {
    const doomed = await createApp('sidecar-doomed');
    const created = await create(dev, { name: 'gone-soon', command: 'sleep 100', process_types: ['web'] }, doomed.guid);
    expect(created.status, created.text).toBe(201);
    const del = await t.admin.delete(`/v3/apps/${doomed.guid}`);
    expect((await t.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
    const left = await t.kiln.store.db.selectFrom('sidecars').select('guid').where('app_guid', '=', doomed.guid).execute();
    const types = await t.kiln.store.db.selectFrom('sidecar_process_types').select('type').where('app_guid', '=', doomed.guid).execute();
    expect([left, types]).toEqual([[], []]);
  });
});
