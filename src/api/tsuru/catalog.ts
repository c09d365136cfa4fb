import { ISOLATION_SEGMENT_LIST, SHARED_ISOLATION_SEGMENT_GUID, SHARED_ISOLATION_SEGMENT_NAME } from '../../domain/isolation-segments.ts';
import { isAdmin } from '../../domain/principal.ts';
import { BUILDPACK_LIST, listBuildpacks } from '../../services/buildpacks.ts';
import type { Ctx } from '../../services/context.ts';
import { listIsolationSegments } from '../../services/isolation-segments.ts';
import { listRoles, ROLE_LIST } from '../../services/roles.ts';
import type { Api, AppDeps } from '../context.ts';
import { ctxOf, listAll, listTeams, plans, tsuruOrg } from './mapping.ts';
import { jsonList, param, readForm, route, TsuruError } from './wire.ts';

/**
 * Login and the read-only catalogues: auth schemes, tokens, user info, teams (spaces of the Tsuru org),
 * platforms (buildpacks), plans (memory presets), pools (isolation segments).
 */


/** Names of the isolation segments the caller can see, by guid. */
export async function segmentNames(ctx: Ctx): Promise<Map<string, string>> {
  const segments = await listAll(ISOLATION_SEGMENT_LIST, {}, (p) => listIsolationSegments(ctx, p));
  return new Map(segments.map((s) => [s.guid, s.name]));
}

export function registerTsuruCatalog(app: Api, deps: AppDeps): void {
  // ---- login (optional: TSURU_TOKEN with any Kiln token works as well) ----

  route(app, 'get', '/auth/schemes', (c) => c.json([{ name: 'native', default: true, data: {} }]));
  // Older CLIs ask for the one scheme.
  route(app, 'get', '/auth/scheme', (c) => c.json({ name: 'native', data: {} }));

  const login = async (email: string, password: string) => {
    if (!deps.passwordLogin) throw new TsuruError(501, 'Native login is not available here; use a Kiln token (TSURU_TOKEN) from POST /oauth/token.');
    try {
      return await deps.passwordLogin(email, password);
    } catch {
      // Tsuru's native scheme answers a bad password (or unknown user) with 401.
      throw new TsuruError(401, 'Authentication failed, wrong password.');
    }
  };

  route(app, 'post', '/users/:email/tokens', async (c) => {
    const form = await readForm(c);
    const password = form.get('password');
    if (!password) throw new TsuruError(400, 'You must provide a password to login');
    return c.json({ token: await login(param(c, 'email'), password) });
  });
  route(app, 'post', '/auth/login', async (c) => {
    const form = await readForm(c);
    const email = form.get('email') ?? form.get('username');
    const password = form.get('password');
    if (!email || !password) throw new TsuruError(400, 'You must provide an email and a password to login');
    return c.json({ token: await login(email, password) });
  });

  // Kiln's tokens are signed and expire on their own (KILN_TOKEN_TTL_SECONDS): logout forgets nothing server-side.
  route(app, 'delete', '/users/tokens', (c) => {
    ctxOf(c, deps);
    return c.body(null, 200);
  });

  route(app, 'get', '/users/info', async (c) => {
    const ctx = ctxOf(c, deps);
    const roleRows = await listAll(ROLE_LIST, { user_guids: ctx.principal.guid }, (p) => listRoles(ctx, p));
    const teams = new Map((await listTeams(ctx, deps)).map((t) => [t.guid, t.name]));
    const org = await tsuruOrg(ctx, deps);
    const roles = roleRows.flatMap((r) => {
      if (r.space_guid && teams.has(r.space_guid)) return [{ name: r.type, contexttype: 'team', contextvalue: teams.get(r.space_guid)! }];
      if (org && r.organization_guid === org.guid) return [{ name: r.type, contexttype: 'global', contextvalue: '' }];
      return [];
    });
    if (isAdmin(ctx.principal)) roles.unshift({ name: 'admin', contexttype: 'global', contextvalue: '' });
    return c.json({ email: ctx.principal.email ?? ctx.principal.username ?? ctx.principal.guid, roles, permissions: [], groups: [] });
  });

  route(app, 'get', '/teams', async (c) => {
    const ctx = ctxOf(c, deps);
    const teams = await listTeams(ctx, deps);
    return jsonList(
      c,
      teams.map((t) => ({ name: t.name, tags: [], permissions: [] })),
    );
  });

  route(app, 'get', '/platforms', async (c) => {
    const ctx = ctxOf(c, deps);
    const buildpacks = await listAll(BUILDPACK_LIST, { order_by: 'position' }, (p) => listBuildpacks(ctx, p));
    return jsonList(
      c,
      buildpacks.map((b) => ({ name: b.name, disabled: !b.enabled })),
    );
  });

  route(app, 'get', '/plans', (c) => {
    ctxOf(c, deps);
    return jsonList(c, plans());
  });

  route(app, 'get', '/pools', async (c) => {
    const ctx = ctxOf(c, deps);
    const org = await tsuruOrg(ctx, deps);
    if (!org) return c.body(null, 204);
    const entitled = await listAll(ISOLATION_SEGMENT_LIST, { organization_guids: org.guid, order_by: 'name' }, (p) => listIsolationSegments(ctx, p));
    const segments = entitled.map((s) => ({ guid: s.guid, name: s.name }));
    // An org without a default segment runs its apps on the shared one, entitled or not: it is always a pool.
    if (!segments.some((s) => s.guid === SHARED_ISOLATION_SEGMENT_GUID)) segments.unshift({ guid: SHARED_ISOLATION_SEGMENT_GUID, name: SHARED_ISOLATION_SEGMENT_NAME });
    const defaultGuid = org.default_isolation_segment_guid ?? SHARED_ISOLATION_SEGMENT_GUID;
    const teams = await listTeams(ctx, deps);
    return jsonList(
      c,
      segments.map((s) => {
        const isDefault = s.guid === defaultGuid;
        const members = teams.filter((t) => (t.isolation_segment_guid ?? defaultGuid) === s.guid).map((t) => t.name);
        return { name: s.name, provisioner: 'kiln', default: isDefault, public: isDefault, teams: members, allowed: { team: members } };
      }),
    );
  });
}
