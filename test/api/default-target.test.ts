import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/** The org and space the first start makes so `kiln push` works with no setup (KILN_DEFAULT_ORG/SPACE). */

const open: TestKiln[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
});
async function start(env: Record<string, string>): Promise<TestKiln> {
  const t = await createTestKiln(env);
  open.push(t);
  return t;
}
const names = (list: { resources: Array<{ name: string }> }) => list.resources.map((r) => r.name);

describe('the default org and space', () => {
  it('are created on the first start, named default and dev, with the admin as manager and developer', async () => {
    const t = await start({ KILN_DEFAULT_ORG: 'default', KILN_DEFAULT_SPACE: 'dev' });
    const orgs = (await t.admin.get('/v3/organizations')).body;
    expect(names(orgs)).toEqual(['default']);
    const spaces = (await t.admin.get(`/v3/spaces?organization_guids=${orgs.resources[0].guid}`)).body;
    expect(names(spaces)).toEqual(['dev']);
    const roles = (await t.admin.get(`/v3/roles?user_guids=${t.admin.userGuid}&order_by=created_at`)).body.resources.map((r: { type: string }) => r.type);
    expect(roles.sort()).toEqual(['organization_manager', 'organization_user', 'space_developer', 'space_manager']);
    const audit = (await t.admin.get('/v3/audit_events?types=audit.organization.create,audit.space.create')).body.resources;
    expect(audit.map((e: { actor: { name: string } }) => e.actor.name)).toEqual(['admin', 'admin']);
  });

  it('use the names from KILN_DEFAULT_ORG and KILN_DEFAULT_SPACE', async () => {
    const t = await start({ KILN_DEFAULT_ORG: 'acme', KILN_DEFAULT_SPACE: 'staging' });
    expect(names((await t.admin.get('/v3/organizations')).body)).toEqual(['acme']);
    expect(names((await t.admin.get('/v3/spaces')).body)).toEqual(['staging']);
  });

  it('are not created when KILN_DEFAULT_ORG is empty', async () => {
    const t = await start({ KILN_DEFAULT_ORG: '', KILN_DEFAULT_SPACE: 'dev' });
    expect((await t.admin.get('/v3/organizations')).body.resources).toEqual([]);
  });

  it('leave out the space when KILN_DEFAULT_SPACE is empty', async () => {
    const t = await start({ KILN_DEFAULT_ORG: 'default', KILN_DEFAULT_SPACE: '' });
    expect(names((await t.admin.get('/v3/organizations')).body)).toEqual(['default']);
    expect((await t.admin.get('/v3/spaces')).body.resources).toEqual([]);
  });

  it('are not made again on a later start after the operator deleted them', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-default-target-'));
    try {
      const env = { KILN_DATA_DIR: dataDir, DATABASE_URL: `sqlite:${path.join(dataDir, 'kiln.sqlite')}`, KILN_ADMIN_PASSWORD: 'pw-default-target', KILN_DEFAULT_ORG: 'default' };
      const first = await createTestKiln(env);
      const org = (await first.admin.get('/v3/organizations?names=default')).body.resources[0];
      const del = await first.admin.delete(`/v3/organizations/${org.guid}`);
      expect(del.status).toBe(202);
      expect((await first.awaitJob(del.headers.get('location'))).state).toBe('COMPLETE');
      await first.kiln.stop();
      const second = await createTestKiln(env);
      try {
        expect((await second.admin.get('/v3/organizations')).body.resources).toEqual([]);
      } finally {
        await second.kiln.stop();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
