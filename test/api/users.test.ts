import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type Client, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

async function newOrg(name: string): Promise<string> {
  const res = await t.admin.post('/v3/organizations', { name });
  expect(res.status).toBe(201);
  return res.body.guid;
}

async function newSpace(orgGuid: string, name: string): Promise<string> {
  const res = await t.admin.post('/v3/spaces', { name, relationships: { organization: { data: { guid: orgGuid } } } });
  expect(res.status).toBe(201);
  return res.body.guid;
}

async function grant(type: string, user: Client, place: { organization: string } | { space: string }): Promise<string> {
  const [key, guid] = 'organization' in place ? ['organization', place.organization] : ['space', place.space];
  const res = await t.admin.post('/v3/roles', { type, relationships: { user: { data: { guid: user.userGuid } }, [key]: { data: { guid } } } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.guid;
}

/** An account of another identity origin (the built-in provider's own users are all 'uaa'). */
async function externalAccount(guid: string, username: string, origin: string): Promise<void> {
  await t.kiln.store.write(async (tx) => {
    await tx.db
      .insertInto('identity_users')
      .values({
        guid,
        created_at: tx.now,
        updated_at: tx.now,
        username,
        origin,
        email: null,
        given_name: null,
        family_name: null,
        password_hash: '!',
        scopes: 'cloud_controller.read',
        active: 1,
      })
      .execute();
  });
}

const names = (res: { body: any }) => res.body.resources.map((u: any) => u.username);

describe('users', () => {
  it('presents the caller and finds users by name, origin, guid and label', async () => {
    const alice = await t.user('users-alice');
    const me = await alice.get(`/v3/users/${alice.userGuid}`);
    expect(me.status).toBe(200);
    expect(me.body).toEqual({
      guid: alice.userGuid,
      created_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/),
      updated_at: expect.stringMatching(/Z$/),
      username: 'users-alice',
      presentation_name: 'users-alice',
      origin: 'uaa',
      metadata: { labels: {}, annotations: {} },
      links: { self: { href: `http://kiln.test/v3/users/${alice.userGuid}` } },
    });
    await t.user('users-bob');
    await (await t.user('users-carol')).get('/v3/users'); // make CC see carol

    const exact = await t.admin.get('/v3/users?usernames=users-alice,USERS-CAROL');
    expect(names(exact)).toEqual(['users-alice', 'users-carol']);
    const partial = await t.admin.get('/v3/users?partial_usernames=ers-a,rol&origins=uaa');
    expect(names(partial)).toEqual(['users-alice', 'users-carol']);
    const wildcard = await t.admin.get('/v3/users?partial_usernames=%25');
    expect(wildcard.body.pagination.total_results).toBe(0);
    const otherOrigin = await t.admin.get('/v3/users?usernames=users-alice&origins=ldap');
    expect(otherOrigin.body.pagination.total_results).toBe(0);
    const byGuid = await t.admin.get(`/v3/users?guids=${alice.userGuid}`);
    expect(names(byGuid)).toEqual(['users-alice']);

    const labelled = await t.admin.patch(`/v3/users/${alice.userGuid}`, { metadata: { labels: { team: 'blue' }, annotations: { note: 'x' } } });
    expect(labelled.status).toBe(200);
    expect(labelled.body.metadata).toEqual({ labels: { team: 'blue' }, annotations: { note: 'x' } });
    expect(names(await t.admin.get('/v3/users?label_selector=team%3Dblue'))).toEqual(['users-alice']);
    const cleared = await t.admin.patch(`/v3/users/${alice.userGuid}`, { metadata: { labels: { team: null } } });
    expect(cleared.body.metadata).toEqual({ labels: {}, annotations: { note: 'x' } });

    const originsAlone = await t.admin.get('/v3/users?origins=uaa');
    expect(originsAlone.status).toBe(422);
    expect(originsAlone.body.errors[0].detail).toBe('Origins filter cannot be provided without usernames or partial_usernames filter.');
    const both = await t.admin.get('/v3/users?usernames=a&partial_usernames=b');
    expect(both.status).toBe(422);
    expect((await t.admin.get('/v3/users?names=x')).status).toBe(400);
    expect((await t.admin.get('/v3/users?order_by=username')).status).toBe(400);
  });

  it('shows users only to those sharing an org with them', async () => {
    const org = await newOrg('users-vis-org');
    const space = await newSpace(org, 'users-vis-space');
    const dana = await t.user('users-dana');
    const erin = await t.user('users-erin');
    const frank = await t.user('users-frank');
    const stranger = await t.user('users-stranger');
    await grant('organization_user', dana, { organization: org });
    await grant('organization_user', erin, { organization: org });
    await grant('space_developer', erin, { space });
    await frank.get('/v3/users'); // known to CC, but in no org

    const seen = await dana.get('/v3/users');
    expect(names(seen).sort()).toEqual(['users-dana', 'users-erin']);
    expect((await dana.get(`/v3/users/${erin.userGuid}`)).status).toBe(200);
    const hidden = await dana.get(`/v3/users/${frank.userGuid}`);
    expect(hidden.status).toBe(404);
    expect(hidden.body.errors[0]).toEqual({ detail: 'User not found', title: 'CF-ResourceNotFound', code: 10010 });
    expect(names(await stranger.get('/v3/users'))).toEqual(['users-stranger']);

    const auditor = await t.user('users-auditor', ['cloud_controller.global_auditor']);
    const everyone = await auditor.get('/v3/users?partial_usernames=users-');
    expect(names(everyone)).toEqual(expect.arrayContaining(['users-dana', 'users-erin', 'users-frank', 'users-stranger']));

    // Visible but only admins may change or delete users.
    expect((await dana.patch(`/v3/users/${erin.userGuid}`, { metadata: { labels: { a: 'b' } } })).status).toBe(403);
    expect((await dana.delete(`/v3/users/${erin.userGuid}`)).status).toBe(403);
    expect((await stranger.delete(`/v3/users/${erin.userGuid}`)).status).toBe(404);
  });

  it('lists the members of an org and of a space', async () => {
    const org = await newOrg('members-org');
    const space = await newSpace(org, 'members-space');
    const gina = await t.user('members-gina');
    const hank = await t.user('members-hank');
    const outsider = await t.user('members-outsider');
    await grant('organization_manager', gina, { organization: org });
    await grant('organization_user', hank, { organization: org });
    await grant('space_auditor', hank, { space });

    const orgUsers = await gina.get(`/v3/organizations/${org}/users`);
    expect(orgUsers.status).toBe(200);
    expect(names(orgUsers)).toEqual(['members-gina', 'members-hank']);
    expect(orgUsers.body.pagination.first.href).toBe(`http://kiln.test/v3/organizations/${org}/users?page=1&per_page=50`);
    const spaceUsers = await gina.get(`/v3/spaces/${space}/users`);
    expect(names(spaceUsers)).toEqual(['members-hank']);
    const filtered = await gina.get(`/v3/organizations/${org}/users?partial_usernames=gin`);
    expect(names(filtered)).toEqual(['members-gina']);
    const badFilter = await gina.get(`/v3/spaces/${space}/users?origins=uaa`);
    expect(badFilter.status).toBe(400);
    expect(badFilter.body.errors[0].detail).toBe(
      'The query parameter is invalid: Origins filter cannot be provided without usernames or partial_usernames filter.',
    );

    expect((await outsider.get(`/v3/organizations/${org}/users`)).status).toBe(404);
    expect((await outsider.get(`/v3/spaces/${space}/users`)).status).toBe(404);
    // A space role is enough to read the space's member list.
    expect((await hank.get(`/v3/spaces/${space}/users`)).status).toBe(200);
  });

  it('creates users by guid or by username and origin, admins only', async () => {
    const created = await t.admin.post('/v3/users', { guid: 'ci-pipeline-client', metadata: { labels: { kind: 'robot' } } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      guid: 'ci-pipeline-client',
      username: null,
      presentation_name: 'ci-pipeline-client',
      origin: null,
      metadata: { labels: { kind: 'robot' }, annotations: {} },
      links: { self: { href: 'http://kiln.test/v3/users/ci-pipeline-client' } },
    });
    const dup = await t.admin.post('/v3/users', { guid: 'ci-pipeline-client' });
    expect(dup.status).toBe(422);
    expect(dup.body.errors[0]).toEqual({ detail: "User with guid 'ci-pipeline-client' already exists.", title: 'CF-UnprocessableEntity', code: 10008 });

    await externalAccount('ldap-ivy-id', 'ivy', 'ldap');
    const byName = await t.admin.post('/v3/users', { username: 'ivy', origin: 'ldap' });
    expect(byName.status).toBe(201);
    expect(byName.body).toMatchObject({ guid: 'ldap-ivy-id', username: 'ivy', origin: 'ldap', presentation_name: 'ivy' });
    const again = await t.admin.post('/v3/users', { username: 'ivy', origin: 'ldap' });
    expect(again.body.errors[0].detail).toBe("User with username 'ivy' and origin 'ldap' already exists.");

    const cases: Array<[unknown, string]> = [
      [{}, "Guid or 'username' and 'origin' must be provided"],
      [{ guid: 'a', username: 'b' }, "Username cannot be provided with 'guid'"],
      [{ username: 'b' }, "Username can only be provided together with 'origin'"],
      [{ username: 'b', origin: 'uaa' }, "Origin cannot be 'uaa' when creating a user by username"],
      [{ guid: 7 }, 'Guid must be a string, Guid must be between 1 and 200 characters'],
      [{ guid: 'x', colour: 'red' }, "Unknown field(s): 'colour'"],
      [{ username: 'nobody', origin: 'ldap' }, "No user exists with the username 'nobody' and origin 'ldap'."],
    ];
    for (const [body, detail] of cases) {
      const res = await t.admin.post('/v3/users', body);
      expect(res.status, detail).toBe(422);
      expect(res.body.errors[0].detail).toBe(detail);
    }

    const jo = await t.user('users-jo');
    const refused = await jo.post('/v3/users', { guid: 'sneaky' });
    expect(refused.status).toBe(403);
    expect((await t.admin.get('/v3/users?guids=sneaky')).body.pagination.total_results).toBe(0);
  });

  it('updates metadata only', async () => {
    const kim = await t.user('users-kim');
    await kim.get('/v3/users');
    const res = await t.admin.patch(`/v3/users/${kim.userGuid}`, { username: 'someone-else' });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].detail).toBe("Unknown field(s): 'username'");
    const badLabel = await t.admin.patch(`/v3/users/${kim.userGuid}`, { metadata: { labels: { 'bad key!': 'v' } } });
    expect(badLabel.status).toBe(422);
    expect((await t.admin.patch('/v3/users/no-such-user', { metadata: {} })).status).toBe(404);
  });

  it('deletes a user and their roles through a job', async () => {
    const org = await newOrg('users-del-org');
    const lee = await t.user('users-lee');
    const role = await grant('organization_auditor', lee, { organization: org });
    const res = await t.admin.delete(`/v3/users/${lee.userGuid}`);
    expect(res.status).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'user.delete', errors: [] });
    expect(job.links.user).toBeUndefined();
    expect((await t.admin.get(`/v3/users/${lee.userGuid}`)).status).toBe(404);
    expect((await t.admin.get(`/v3/roles/${role}`)).status).toBe(404);
    expect((await t.admin.delete('/v3/users/no-such-user')).status).toBe(404);
  });
});
