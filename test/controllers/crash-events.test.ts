import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetCrashes, recordCrashes } from '../../src/controllers/crash-events.ts';
import type { InstanceStatus } from '../../src/runtime/runtime.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  // The process controller would reconcile the synthetic process too; only these calls should record anything.
  t = await createTestKiln({}, { disabledControllers: ['processes'] });
});
afterAll(() => t.close());

const crashed = (processGuid: string, appGuid: string, at: number, crashCount: number): InstanceStatus => ({
  id: `${processGuid}:v1:0`,
  appGuid,
  processGuid,
  version: 'v1',
  index: 0,
  state: 'CRASHED',
  host: '127.0.0.1',
  port: undefined,
  pid: undefined,
  since: at,
  crashCount,
  lastExit: { code: 1, signal: null, at, reason: 'APP/PROC/WEB: Exited with status 1' },
});

describe('crash events', () => {
  it('records each crash once however often the same observation is reconciled, and forgets keys of gone instances', async () => {
    const org = await t.org('crash-org');
    const space = await t.space('crash-space', org.guid);
    const app = (await t.admin.post('/v3/apps', { name: 'crashy', relationships: { space: { data: { guid: space.guid } } } })).body;
    const web = (await t.admin.get(`/v3/apps/${app.guid}/processes`)).body.resources[0];
    const proc = { guid: web.guid, type: 'web', app_guid: app.guid };

    const first = crashed(web.guid, app.guid, 1_700_000_000_000, 1);
    await recordCrashes(t.kiln.store, proc, [first]);
    await recordCrashes(t.kiln.store, proc, [first]);
    await Promise.all([recordCrashes(t.kiln.store, proc, [first]), recordCrashes(t.kiln.store, proc, [first])]);
    const events = async (type: string) => (await t.admin.get(`/v3/audit_events?types=${type}&target_guids=${app.guid}`)).body.resources;
    expect(await events('app.crash')).toHaveLength(1);
    expect(await events('audit.app.process.crash')).toHaveLength(1);
    expect((await events('app.crash'))[0]).toMatchObject({
      actor: { guid: app.guid, type: 'app', name: 'crashy' },
      data: {
        instance: first.id,
        index: 0,
        cell_id: '127.0.0.1',
        exit_status: 1,
        exit_description: 'APP/PROC/WEB: Exited with status 1',
        reason: 'CRASHED',
        crash_count: 1,
        crash_timestamp: 1_700_000_000_000 * 1_000_000,
      },
    });
    expect((await events('audit.app.process.crash'))[0].actor).toEqual({ guid: web.guid, type: 'process', name: 'web' });

    const second = crashed(web.guid, app.guid, 1_700_000_001_000, 2);
    await recordCrashes(t.kiln.store, proc, [second]);
    expect(await events('app.crash')).toHaveLength(2);

    // The instance went away: its keys go, the events stay.
    await recordCrashes(t.kiln.store, proc, []);
    expect(await t.kiln.store.db.selectFrom('instance_crashes').selectAll().where('process_guid', '=', web.guid).execute()).toEqual([]);
    await recordCrashes(t.kiln.store, proc, [second]);
    await forgetCrashes(t.kiln.store, web.guid);
    expect(await t.kiln.store.db.selectFrom('instance_crashes').selectAll().where('process_guid', '=', web.guid).execute()).toEqual([]);
    expect(await events('app.crash')).toHaveLength(3);
  });
});
