import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

/** The cf CLI's test for "this role already exists" (cf-cli-flows.md §1.7). */
const ALREADY_HAS = /User '.*' already has '.*' role/;

async function newOrg(name: string): Promise<string> {
  const res = await t.admin.post('/v3/organizations', { name });
  expect(res.status).toBe(201);
  return res.body.guid;
}

async function newSpace(as: Client, orgGuid: string, name: string): Promise<string> {
  const res = await as.post('/v3/spaces', { name, relationships: { organization: { data: { guid: orgGuid } } } });
  expect(res.status).toBe(201);
  return res.body.guid;
}

type UserData = { guid: string } | { username: string; origin?: string };

const orgRole = (type: string, user: UserData, org: string) => ({
  type,
  relationships: { user: { data: user }, organization: { data: { guid: org } } },
});
const spaceRole = (type: string, user: UserData, space: string) => ({
  type,
  relationships: { user: { data: user }, space: { data: { guid: space } } },
});

async function grant(body: unknown): Promise<string> {
  const res = await t.admin.post('/v3/roles', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.guid;
}

async function setFlag(name: string, enabled: boolean): Promise<void> {
  await t.kiln.store.write(async (tx) => {
    await tx.db
      .insertInto('feature_flags')
      .values({ name, enabled: enabled ? 1 : 0, custom_error_message: null, updated_at: tx.now })
      .onConflict((oc) => oc.column('name').doUpdateSet({ enabled: enabled ? 1 : 0 }))
      .execute();
  });
}

describe('roles', () => {
  it('runs the cf create-space role sequence for a non-admin org manager', async () => {
    const org = await newOrg('cli-org');
    // The manager has never called the API: CC learns about them from the identity provider on the fly.
    const mgr = await t.user('cli-manager');
    const managerRole = await t.admin.post('/v3/roles', orgRole('organization_manager', { username: 'cli-manager', origin: 'uaa' }, org));
    expect(managerRole.status).toBe(201);
    expect(managerRole.body.relationships.user.data.guid).toBe(mgr.userGuid);

    const space = await newSpace(mgr, org, 'cli-space');
    const me = { username: 'cli-manager', origin: 'uaa' };

    const orgUser = await mgr.post('/v3/roles', orgRole('organization_user', me, org));
    expect(orgUser.status).toBe(201);
    expect(orgUser.body).toMatchObject({
      type: 'organization_user',
      relationships: { user: { data: { guid: mgr.userGuid } }, organization: { data: { guid: org } }, space: { data: null } },
      links: {
        self: { href: `http://kiln.test/v3/roles/${orgUser.body.guid}` },
        user: { href: `http://kiln.test/v3/users/${mgr.userGuid}` },
        organization: { href: `http://kiln.test/v3/organizations/${org}` },
      },
    });
    expect(orgUser.body.links.space).toBeUndefined();

    const spaceManager = await mgr.post('/v3/roles', spaceRole('space_manager', me, space));
    expect(spaceManager.status).toBe(201);
    expect(spaceManager.body.relationships).toEqual({
      user: { data: { guid: mgr.userGuid } },
      organization: { data: null },
      space: { data: { guid: space } },
    });
    expect(spaceManager.body.links.space.href).toBe(`http://kiln.test/v3/spaces/${space}`);

    const again = await mgr.post('/v3/roles', orgRole('organization_user', me, org));
    expect(again.status).toBe(422);
    expect(again.body.errors[0]).toEqual({
      detail: "User 'cli-manager' already has 'organization_user' role in organization 'cli-org'.",
      title: 'CF-UnprocessableEntity',
      code: 10008,
    });
    expect(again.body.errors[0].detail).toMatch(ALREADY_HAS);

    const developer = await mgr.post('/v3/roles', spaceRole('space_developer', me, space));
    expect(developer.status).toBe(201);

    const dupSpace = await mgr.post('/v3/roles', spaceRole('space_developer', me, space));
    expect(dupSpace.status).toBe(422);
    expect(dupSpace.body.errors[0].detail).toBe("User 'cli-manager' already has 'space_developer' role in space 'cli-space'.");

    const mine = await mgr.get(`/v3/roles?space_guids=${space}`);
    expect(mine.body.resources.map((r: any) => r.type).sort()).toEqual(['space_developer', 'space_manager']);
  });

  it('assigns roles like cf set-space-role / set-org-role, with or without an origin, or by guid', async () => {
    const org = await newOrg('ssr-org');
    const space = await newSpace(t.admin, org, 'ssr-space');
    const dev = await t.user('ssr-dev');
    expect((await t.admin.post('/v3/roles', orgRole('organization_user', { username: 'ssr-dev' }, org))).status).toBe(201);
    expect((await t.admin.post('/v3/roles', spaceRole('space_auditor', { username: 'ssr-dev' }, space))).status).toBe(201);
    expect((await t.admin.post('/v3/roles', spaceRole('space_supporter', { guid: dev.userGuid! }, space))).status).toBe(201);
    expect((await t.admin.post('/v3/roles', orgRole('organization_auditor', { guid: dev.userGuid! }, org))).status).toBe(201);
    const roles = await t.admin.get(`/v3/roles?user_guids=${dev.userGuid}`);
    expect(roles.body.resources.map((r: any) => r.type)).toEqual([
      'organization_user',
      'space_auditor',
      'space_supporter',
      'organization_auditor',
    ]);
    const byType = await t.admin.get(`/v3/roles?types=space_auditor,space_supporter&organization_guids=${org}`);
    expect(byType.body.pagination.total_results).toBe(0); // space roles have no organization
    const spaceRoles = await t.admin.get(`/v3/roles?types=space_auditor,space_supporter&space_guids=${space}`);
    expect(spaceRoles.body.pagination.total_results).toBe(2);
  });

  it('explains unknown users, orgs and spaces with the upstream 422s', async () => {
    const org = await newOrg('unknown-org');
    const space = await newSpace(t.admin, org, 'unknown-space');
    await t.user('lonely'); // exists in the identity provider but holds no role

    const cases: Array<[unknown, string]> = [
      [orgRole('organization_user', { username: 'ghost', origin: 'uaa' }, org), "No user exists with the username 'ghost' and origin 'uaa'."],
      [orgRole('organization_user', { username: 'ghost' }, org), "No user exists with the username 'ghost'."],
      [orgRole('organization_user', { guid: 'no-such-user' }, org), 'Invalid user. Ensure that the user exists and you have access to it.'],
      [spaceRole('space_developer', { guid: 'no-such-user' }, space), "Users cannot be assigned roles in a space if they do not have a role in that space's organization."],
      [spaceRole('space_developer', { username: 'lonely', origin: 'uaa' }, space), "Users cannot be assigned roles in a space if they do not have a role in that space's organization."],
      [spaceRole('space_developer', { username: 'ghost' }, space), "Users cannot be assigned roles in a space if they do not have a role in that space's organization."],
      [orgRole('organization_user', { username: 'lonely' }, 'no-such-org'), 'Invalid organization. Ensure that the organization exists and you have access to it.'],
      [spaceRole('space_developer', { username: 'lonely' }, 'no-such-space'), 'Invalid space. Ensure that the space exists and you have access to it.'],
    ];
    for (const [body, detail] of cases) {
      const res = await t.admin.post('/v3/roles', body);
      expect(res.status, detail).toBe(422);
      expect(res.body.errors[0]).toEqual({ detail, title: 'CF-UnprocessableEntity', code: 10008 });
    }
    const none = await t.admin.get(`/v3/roles?organization_guids=${org}`);
    expect(none.body.pagination.total_results).toBe(0);
  });

  it('asks for an origin when a username exists in several', async () => {
    const org = await newOrg('ambiguous-org');
    await t.user('twin');
    // Cloud Controller also remembers users of other origins from their tokens.
    await t.kiln.store.write((tx) => tx.insert('users', { guid: 'ldap-twin', username: 'twin', origin: 'ldap' }));
    const res = await t.admin.post('/v3/roles', orgRole('organization_user', { username: 'twin' }, org));
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toBe(
      "Ambiguous user. User with username 'twin' exists in the following origins: ldap, uaa. Specify an origin to disambiguate.",
    );
    const ldap = await t.admin.post('/v3/roles', orgRole('organization_user', { username: 'twin', origin: 'ldap' }, org));
    expect(ldap.status).toBe(201);
    expect(ldap.body.relationships.user.data.guid).toBe('ldap-twin');
  });

  it('validates the body as Cloud Controller does and writes nothing', async () => {
    const org = await newOrg('validation-org');
    const cases: Array<[unknown, string]> = [
      [{ type: 'organization_user' }, "Relationships 'relationships' is not an object"],
      [{ type: 'organization_user', relationships: {} }, "Relationships 'relationships' must include one or more valid relationships"],
      [
        { ...orgRole('organization_user', { guid: 'x' }, org), color: 'red' },
        "Unknown field(s): 'color'",
      ],
      [
        orgRole('boss', { guid: 'x' }, org),
        'Type must be one of the allowed types ["organization_auditor", "organization_manager", "organization_billing_manager", "organization_user", "space_auditor", "space_manager", "space_developer", "space_supporter"]',
      ],
      [spaceRole('organization_user', { guid: 'x' }, 's'), "Relationships Space cannot be provided with the organization role type: 'organization_user'."],
      [orgRole('space_developer', { guid: 'x' }, org), "Relationships Organization cannot be provided with the space role type: 'space_developer'."],
      [{ type: 'organization_user', relationships: { user: { data: { guid: 'x' } } } }, 'Relationships must specify either a space or an organization.'],
      [orgRole('organization_user', { guid: 'x', username: 'y' } as UserData, org), 'Relationships Username cannot be specified when identifying user by guid'],
      [orgRole('organization_user', { origin: 'uaa' } as unknown as UserData, org), 'Relationships User origin cannot be specified without specifying the username, Relationships User must have a username or guid specified'],
      [orgRole('organization_user', { guid: 42 } as unknown as UserData, org), 'Relationships User guid must be a string, Relationships User guid must be between 1 and 200 characters'],
      [
        { type: 'organization_user', relationships: { user: { data: { guid: 'x' } }, organization: { data: { guid: org } }, space: { data: { guid: 's' } } } },
        "Relationships Space cannot be provided with the organization role type: 'organization_user'., Relationships cannot specify both an organization and a space.",
      ],
      [{ type: 'organization_user', relationships: { user: { data: { guid: 'x' } }, organization: { data: { guid: org, name: 'x' } } } }, 'Relationships Organization must be structured like this: "organization: {"data": {"guid": "valid-guid"}}"'],
    ];
    for (const [body, detail] of cases) {
      const res = await t.admin.post('/v3/roles', body);
      expect(res.status, detail).toBe(422);
      expect(res.body.errors[0].detail).toBe(detail);
    }
    const notJson = await t.admin.post('/v3/roles', undefined, { raw: '{"type":' });
    expect(notJson.status).toBe(400);
    expect((await t.admin.get(`/v3/roles?organization_guids=${org}`)).body.pagination.total_results).toBe(0);
  });

  it('lets org managers manage their org, space managers their space, and nobody else', async () => {
    const org = await newOrg('perm-org');
    const otherOrg = await newOrg('perm-other-org');
    const space = await newSpace(t.admin, org, 'perm-space');
    const otherSpace = await newSpace(t.admin, org, 'perm-other-space');
    const sm = await t.user('perm-sm');
    const sd = await t.user('perm-sd');
    const target = await t.user('perm-target');
    const stranger = await t.user('perm-stranger');
    for (const u of [sm, sd, target]) await grant(orgRole('organization_user', { guid: u.userGuid! }, org));
    await grant(spaceRole('space_manager', { guid: sm.userGuid! }, space));
    await grant(spaceRole('space_developer', { guid: sd.userGuid! }, space));

    const tgt = { guid: target.userGuid! };
    expect((await sm.post('/v3/roles', spaceRole('space_auditor', tgt, space))).status).toBe(201);
    // A space or org the caller cannot read is answered like one that does not exist (CONVENTIONS.md §13.3), so
    // nobody can tell another tenant's guids from made-up ones by the answer.
    expect((await sm.post('/v3/roles', spaceRole('space_auditor', tgt, otherSpace))).status).toBe(422);
    expect((await sm.post('/v3/roles', orgRole('organization_auditor', tgt, org))).status).toBe(403);
    expect((await sd.post('/v3/roles', spaceRole('space_developer', tgt, space))).status).toBe(403);
    const strangerTry = await stranger.post('/v3/roles', orgRole('organization_user', tgt, otherOrg));
    const madeUp = await stranger.post('/v3/roles', orgRole('organization_user', tgt, '00000000-0000-4000-8000-000000000000'));
    expect(strangerTry.status).toBe(422);
    expect(strangerTry.body).toEqual(madeUp.body);
    expect(strangerTry.body.errors[0]).toEqual({
      detail: 'Invalid organization. Ensure that the organization exists and you have access to it.',
      title: 'CF-UnprocessableEntity',
      code: 10008,
    });
    const strangerSpace = await stranger.post('/v3/roles', spaceRole('space_auditor', tgt, space));
    expect(strangerSpace.status).toBe(422);
    expect(strangerSpace.body.errors[0].detail).toBe('Invalid space. Ensure that the space exists and you have access to it.');
    expect((await t.admin.get(`/v3/roles?user_guids=${target.userGuid}&organization_guids=${otherOrg}`)).body.resources).toEqual([]);

    // Two identical requests racing: exactly one wins, the other gets the CLI's "already has" 422.
    const race = await Promise.all([1, 2].map(() => t.admin.post('/v3/roles', orgRole('organization_auditor', tgt, org))));
    expect(race.map((r) => r.status).sort()).toEqual([201, 422]);
    expect(race.find((r) => r.status === 422)!.body.errors[0].detail).toMatch(ALREADY_HAS);

    const om = await t.user('perm-om');
    await grant(orgRole('organization_manager', { guid: om.userGuid! }, otherOrg));
    expect((await t.admin.patch(`/v3/organizations/${otherOrg}`, { suspended: true })).status).toBe(200);
    const suspended = await om.post('/v3/roles', orgRole('organization_auditor', { guid: om.userGuid! }, otherOrg));
    expect(suspended.status).toBe(403);
    expect(suspended.body.errors[0].title).toBe('CF-OrgSuspended');
    expect((await t.admin.post('/v3/roles', orgRole('organization_auditor', { guid: om.userGuid! }, otherOrg))).status).toBe(201);

    // set_roles_by_username gates username-based assignment for everyone but admins.
    await setFlag('set_roles_by_username', false);
    try {
      const off = await sm.post('/v3/roles', spaceRole('space_developer', { username: 'perm-target', origin: 'uaa' }, space));
      expect(off.status).toBe(403);
      expect(off.body.errors[0]).toMatchObject({ title: 'CF-FeatureDisabled', detail: 'Feature Disabled: set_roles_by_username' });
      expect((await sm.post('/v3/roles', spaceRole('space_developer', tgt, space))).status).toBe(201);
      expect((await t.admin.post('/v3/roles', spaceRole('space_manager', { username: 'perm-target' }, space))).status).toBe(201);
    } finally {
      await setFlag('set_roles_by_username', true);
    }
  });

  it('shows roles only where the caller can read the org or space', async () => {
    const org = await newOrg('vis-org');
    const spaceA = await newSpace(t.admin, org, 'vis-a');
    const spaceB = await newSpace(t.admin, org, 'vis-b');
    const alice = await t.user('vis-alice');
    const bob = await t.user('vis-bob');
    const outsider = await t.user('vis-outsider');
    await grant(orgRole('organization_user', { guid: alice.userGuid! }, org));
    await grant(orgRole('organization_user', { guid: bob.userGuid! }, org));
    const aliceDev = await grant(spaceRole('space_developer', { guid: alice.userGuid! }, spaceA));
    const bobDev = await grant(spaceRole('space_developer', { guid: bob.userGuid! }, spaceB));

    const aliceSees = await alice.get(`/v3/roles?organization_guids=${org}`);
    expect(aliceSees.body.pagination.total_results).toBe(2);
    const spaceRoles = await alice.get(`/v3/roles?space_guids=${spaceA},${spaceB}`);
    expect(spaceRoles.body.resources.map((r: any) => r.guid)).toEqual([aliceDev]);
    expect((await alice.get(`/v3/roles/${bobDev}`)).status).toBe(404);
    expect((await alice.get(`/v3/roles/${aliceDev}`)).status).toBe(200);
    const del = await alice.delete(`/v3/roles/${bobDev}`);
    expect(del.status).toBe(404);
    expect(del.body.errors[0]).toEqual({ detail: 'Role not found', title: 'CF-ResourceNotFound', code: 10010 });
    // Visible but not hers to manage → 403.
    expect((await alice.delete(`/v3/roles/${aliceDev}`)).status).toBe(403);

    expect((await outsider.get('/v3/roles')).body.pagination.total_results).toBe(0);
    expect((await outsider.get(`/v3/roles/${aliceDev}`)).status).toBe(404);

    const auditor = await t.user('vis-auditor', ['cloud_controller.global_auditor']);
    const all = await auditor.get(`/v3/roles?space_guids=${spaceA},${spaceB}`);
    expect(all.body.pagination.total_results).toBe(2);
  });

  it('includes users, spaces and organizations as full objects', async () => {
    const org = await newOrg('inc-org');
    const space = await newSpace(t.admin, org, 'inc-space');
    const u = await t.user('inc-user');
    const orgRoleGuid = await grant(orgRole('organization_user', { guid: u.userGuid! }, org));
    const spaceRoleGuid = await grant(spaceRole('space_auditor', { guid: u.userGuid! }, space));

    const list = await t.admin.get(`/v3/roles?user_guids=${u.userGuid}&include=user,space,organization`);
    expect(list.status).toBe(200);
    expect(list.body.resources.map((r: any) => r.guid)).toEqual([orgRoleGuid, spaceRoleGuid]);
    expect(list.body.included.users).toHaveLength(1);
    expect(list.body.included.users[0]).toMatchObject({ guid: u.userGuid, username: 'inc-user', presentation_name: 'inc-user', origin: 'uaa' });
    expect(list.body.included.organizations.map((o: any) => o.name)).toEqual(['inc-org']);
    expect(list.body.included.spaces.map((s: any) => s.name)).toEqual(['inc-space']);
    expect(list.body.included.spaces[0].relationships.organization.data.guid).toBe(org);
    expect(list.body.pagination.first.href).toContain('include=user%2Cspace%2Corganization');

    const single = await t.admin.get(`/v3/roles/${spaceRoleGuid}?include=space`);
    expect(single.body.included).toEqual({ spaces: [expect.objectContaining({ guid: space })] });
    const orgOnly = await t.admin.get(`/v3/roles/${spaceRoleGuid}?include=organization`);
    expect(orgOnly.body.included).toEqual({ organizations: [] }); // a space role has no organization parent

    const bad = await t.admin.get('/v3/roles?include=app');
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].detail).toContain("Invalid included resource: 'app'");
    expect((await t.admin.get(`/v3/roles/${spaceRoleGuid}?include=user,user`)).status).toBe(400);
    expect((await t.admin.get(`/v3/roles/${spaceRoleGuid}?color=red`)).status).toBe(400);
  });

  it('deletes roles through a job and keeps org users while they hold space roles', async () => {
    const org = await newOrg('del-org');
    const space = await newSpace(t.admin, org, 'del-space');
    const mgr = await t.user('del-mgr');
    const u = await t.user('del-user');
    await grant(orgRole('organization_manager', { guid: mgr.userGuid! }, org));
    const member = await grant(orgRole('organization_user', { guid: u.userGuid! }, org));
    const dev = await grant(spaceRole('space_developer', { guid: u.userGuid! }, space));

    const refused = await mgr.delete(`/v3/roles/${member}`);
    expect(refused.status).toBe(422);
    expect(refused.body.errors[0].detail).toBe('Cannot delete organization_user role while user has roles in spaces in that organization.');

    const res = await mgr.delete(`/v3/roles/${dev}`);
    expect(res.status).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'role.delete', errors: [] });
    expect(job.links.role).toBeUndefined();
    expect((await t.admin.get(`/v3/roles/${dev}`)).status).toBe(404);

    const leave = await mgr.delete(`/v3/roles/${member}`);
    expect(leave.status).toBe(202);
    expect((await t.awaitJob(leave.headers.get('location'))).state).toBe('COMPLETE');
    expect((await t.admin.get(`/v3/roles?user_guids=${u.userGuid}`)).body.pagination.total_results).toBe(0);

    const events = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', u.userGuid!).orderBy('id').execute();
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['audit.user.space_developer_add', 'audit.user.space_developer_remove', 'audit.user.organization_user_remove']),
    );
  });
});
