import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

describe('environment variable groups', () => {
  it('shows both seeded groups, empty, to any user', async () => {
    const user = await t.user('evg-reader');
    for (const name of ['running', 'staging']) {
      const res = await user.get(`/v3/environment_variable_groups/${name}`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        updated_at: expect.stringMatching(TS),
        name,
        var: {},
        links: { self: { href: `http://kiln.test/v3/environment_variable_groups/${name}` } },
      });
    }
  });

  it('404s any other group name', async () => {
    const res = await t.admin.get('/v3/environment_variable_groups/building', { skipSpec: true /* name outside the spec's enum */ });
    expect(res.status).toBe(404);
    expect(res.body.errors[0]).toEqual({ detail: 'Environment variable group not found', title: 'CF-ResourceNotFound', code: 10010 });
    const patch = await t.admin.patch('/v3/environment_variable_groups/building', { var: { A: 'b' } }, { skipSpec: true });
    expect(patch.status).toBe(404);
  });

  it('merges a PATCH: new keys added, given keys overwritten, null removes, others kept', async () => {
    const first = await t.admin.patch('/v3/environment_variable_groups/running', { var: { RAILS_ENV: 'production', DEBUG: 'true', KEEP: 'me' } });
    expect(first.status).toBe(200);
    expect(first.body.var).toEqual({ RAILS_ENV: 'production', DEBUG: 'true', KEEP: 'me' });
    const second = await t.admin.patch('/v3/environment_variable_groups/running', { var: { DEBUG: 'false', RAILS_ENV: null, NEW: '' } });
    expect(second.body).toMatchObject({ name: 'running', var: { DEBUG: 'false', KEEP: 'me', NEW: '' } });
    expect(second.body.var).not.toHaveProperty('RAILS_ENV');
    const read = await t.admin.get('/v3/environment_variable_groups/running');
    expect(read.body.var).toEqual({ DEBUG: 'false', KEEP: 'me', NEW: '' });
    // The staging group is separate.
    expect((await t.admin.get('/v3/environment_variable_groups/staging')).body.var).toEqual({});
    // An empty body changes nothing.
    const noop = await t.admin.patch('/v3/environment_variable_groups/running', {});
    expect(noop.status).toBe(200);
    expect(noop.body.var).toEqual({ DEBUG: 'false', KEEP: 'me', NEW: '' });
    // Removing a key that is not there is fine.
    expect((await t.admin.patch('/v3/environment_variable_groups/running', { var: { ABSENT: null } })).status).toBe(200);
  });

  it('keeps odd but legal keys as plain variables', async () => {
    // Raw JSON: an object literal's `__proto__` would set the prototype instead of a key.
    const res = await t.admin.patch('/v3/environment_variable_groups/staging', undefined, {
      raw: '{"var":{"__proto__":"x","lower.case":"y","PORTS":"z"}}',
    });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.var).sort()).toEqual(['PORTS', '__proto__', 'lower.case']);
    const read = await t.admin.get('/v3/environment_variable_groups/staging');
    expect(Object.getOwnPropertyDescriptor(read.body.var, '__proto__')?.value).toBe('x');
    await t.admin.patch('/v3/environment_variable_groups/staging', undefined, { raw: '{"var":{"__proto__":null,"lower.case":null,"PORTS":null}}' });
    expect((await t.admin.get('/v3/environment_variable_groups/staging')).body.var).toEqual({});
  });

  it('rejects names and values Cloud Foundry rejects, writing nothing', async () => {
    const before = (await t.admin.get('/v3/environment_variable_groups/running')).body;
    const cases: Array<[unknown, string]> = [
      [{ var: { VCAP_SERVICES: 'x' } }, 'Var cannot start with VCAP_'],
      [{ var: { vcap_application: 'x' } }, 'Var cannot start with VCAP_'],
      [{ var: { VMC_THING: 'x' } }, 'Var cannot start with VMC_'],
      [{ var: { port: '8080' } }, 'Var cannot set PORT'],
      [{ var: { '': 'x' } }, 'Var key must be a minimum length of 1'],
      [{ var: { COUNT: 1 } }, "Non-string value in environment variable for key 'COUNT', value '1'"],
      [{ var: { FLAG: true, PORT: '1' } }, "Non-string value in environment variable for key 'FLAG', value 'true', Var cannot set PORT"],
      [{ var: ['A'] }, 'Var must be a hash'],
      [{ var: null }, 'Var must be a hash'],
      [{ var: {}, other: 1 }, "Unknown field(s): 'other'"],
    ];
    for (const [body, detail] of cases) {
      const res = await t.admin.patch('/v3/environment_variable_groups/running', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.errors[0]).toEqual({ detail, title: 'CF-UnprocessableEntity', code: 10008 });
    }
    const notJson = await t.admin.patch('/v3/environment_variable_groups/running', undefined, { raw: '{"var":' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errors[0].title).toBe('CF-MessageParseError');
    expect((await t.admin.get('/v3/environment_variable_groups/running')).body).toEqual(before);
  });

  it('refuses a group too large to store', async () => {
    const res = await t.admin.patch('/v3/environment_variable_groups/staging', { var: { BIG: 'x'.repeat(70_000) } });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toBe('Environment variable group is too large. Specify fewer variables or reduce key/value lengths.');
    expect((await t.admin.get('/v3/environment_variable_groups/staging')).body.var).not.toHaveProperty('BIG');
  });

  it('lets only admins update: 422 for a bad body first, then 403, then 404', async () => {
    const user = await t.user('evg-writer');
    const auditor = await t.user('evg-auditor', ['cloud_controller.global_auditor', 'cloud_controller.admin_read_only']);
    const forbidden = await user.patch('/v3/environment_variable_groups/running', { var: { A: 'b' } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.errors[0]).toMatchObject({ title: 'CF-NotAuthorized', code: 10003 });
    expect((await user.patch('/v3/environment_variable_groups/running', { var: { PORT: '1' } })).status).toBe(422);
    expect((await user.patch('/v3/environment_variable_groups/building', { var: { A: 'b' } }, { skipSpec: true })).status).toBe(403);
    expect((await auditor.patch('/v3/environment_variable_groups/running', { var: { A: 'b' } })).status).toBe(403);
    expect((await auditor.get('/v3/environment_variable_groups/running')).status).toBe(200);
    expect((await t.admin.get('/v3/environment_variable_groups/running')).body.var).not.toHaveProperty('A');
    expect((await t.anonymous.get('/v3/environment_variable_groups/running')).status).toBe(401);
    expect((await t.admin.get('/v3/environment_variable_groups/running?x=1')).status).toBe(400);
  });

  it('audits updates without recording the values', async () => {
    await t.admin.patch('/v3/environment_variable_groups/staging', { var: { SECRET_TOKEN: 'hunter2', GONE: null } });
    const events = await t.admin.get('/v3/audit_events?types=audit.environment_variable_group.update&target_guids=staging');
    expect(events.status).toBe(200);
    const last = events.body.resources.at(-1);
    expect(last).toMatchObject({
      target: { guid: 'staging', type: 'environment_variable_group', name: 'staging' },
      actor: { guid: t.admin.userGuid, type: 'user' },
      data: { request: { var: { SECRET_TOKEN: '[PRIVATE DATA HIDDEN]', GONE: '[PRIVATE DATA HIDDEN]' } } },
      space: null,
      organization: null,
    });
    expect(JSON.stringify(events.body)).not.toContain('hunter2');
  });
});
