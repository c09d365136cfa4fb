import type { Command } from 'commander';
import { ok, printJson, prompt, promptSecret, status, table } from '../output.ts';
import { CliError, requestToken, Session, tokenUserGuid } from '../session.ts';
import { chooseTarget, targetOnlySpace } from '../targeting.ts';
import { findOrg, findSpace, type Named } from './common.ts';
import type { Runner } from './runner.ts';

/** login, logout, target, orgs, spaces, create-org, create-space. */
export function registerAuthCommands(program: Command, run: Runner): void {
  program
    .command('login')
    .description('log in to Kiln (saves the token in ~/.kiln/config.json)')
    .option('-a, --api <url>', 'API URL (default: the saved one, $KILN_API, else http://localhost:9000)')
    .option('-u, --username <user>', 'user name')
    .option('-p, --password <password>', 'password (asked for on a terminal when left out)')
    .option('-o, --org <org>', 'org to target')
    .option('-s, --space <space>', 'space to target')
    .action((opts: { api?: string; username?: string; password?: string; org?: string; space?: string }) =>
      run(async (io) => {
        const session = await Session.open(io, opts.api, { autoLogin: false });
        status(io, `API endpoint: ${session.api}\n`);
        const root = await session.client.root();
        const interactive = process.stdin.isTTY === true;
        const username = opts.username ?? io.env.KILN_USERNAME ?? (interactive ? await prompt('Username: ') : undefined);
        const password = opts.password ?? io.env.KILN_PASSWORD ?? (interactive ? await promptSecret('Password: ') : undefined);
        if (!username || !password) throw new CliError('Give a user name and password: kiln login -u USER -p PASSWORD', 2);
        status(io, 'Authenticating...');
        const tokens = await requestToken(root.login, { grant_type: 'password', username, password }, io.fetch);
        // A new login starts a new target, as cf login does.
        const config = session.config;
        for (const key of ['org', 'space', 'accessToken', 'refreshToken'] as const) delete config[key];
        Object.assign(config, { api: session.api, loginUrl: root.login, logCacheUrl: root.logCache, username });
        session.keepTokens(tokens);
        await session.save();
        ok(io);
        await chooseTarget(session, opts.org, opts.space);
        await session.save();
        io.out.write('\n');
        printTarget(io, session);
      }),
    );

  program
    .command('logout')
    .description('forget the saved login')
    .action(() =>
      run(async (io) => {
        const session = await Session.open(io, undefined, { autoLogin: false });
        status(io, 'Logging out...');
        for (const key of ['accessToken', 'refreshToken', 'username', 'org', 'space'] as const) delete session.config[key];
        await session.save();
        ok(io);
      }),
    );

  program
    .command('target')
    .description('show or set the targeted org and space')
    .option('-o, --org <org>', 'org to target')
    .option('-s, --space <space>', 'space to target')
    .option('--json', 'print the target as JSON')
    .action((opts: { org?: string; space?: string; json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        session.requireLogin();
        if (opts.org !== undefined) {
          session.config.org = await findOrg(session.client, opts.org);
          delete session.config.space;
          // cf targets the only space of an org by itself.
          if (opts.space === undefined) await targetOnlySpace(session, session.config.org);
        }
        if (opts.space !== undefined) session.config.space = await findSpace(session.client, session.requireOrg(), opts.space);
        if (opts.org !== undefined || opts.space !== undefined) await session.save();
        if (opts.json) {
          const { api, username, org, space } = session.config;
          printJson(io, { api: api ?? session.api, user: username ?? null, org: org ?? null, space: space ?? null });
          return;
        }
        printTarget(io, session);
      }),
    );

  program
    .command('orgs')
    .description('list the orgs you can see')
    .option('--json', 'print the orgs as JSON')
    .action((opts: { json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        session.requireLogin();
        const orgs = await session.client.listAll<Named>('/v3/organizations', { order_by: 'name' });
        if (opts.json) return printJson(io, orgs);
        status(io, `Getting orgs as ${session.who()}...\n`);
        if (orgs.length === 0) return status(io, "No orgs found. Create one with 'kiln create-org NAME'.");
        io.out.write(table(io, ['name'], orgs.map((o) => [o.name])));
      }),
    );

  program
    .command('spaces')
    .description('list the spaces of the targeted org')
    .option('--json', 'print the spaces as JSON')
    .action((opts: { json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        const org = session.requireOrg();
        const spaces = await session.client.listAll<Named>('/v3/spaces', { order_by: 'name', organization_guids: org.guid });
        if (opts.json) return printJson(io, spaces);
        status(io, `Getting spaces in org ${org.name} as ${session.who()}...\n`);
        if (spaces.length === 0) return status(io, "No spaces found. Create one with 'kiln create-space NAME'.");
        io.out.write(table(io, ['name'], spaces.map((s) => [s.name])));
      }),
    );

  program
    .command('create-org')
    .description('create an org and make you its manager')
    .argument('<name>', 'org name')
    .action((name: string) =>
      run(async (io) => {
        const session = await Session.open(io);
        session.requireLogin();
        status(io, `Creating org ${name} as ${session.who()}...`);
        const org = await session.client.post<Named>('/v3/organizations', { name });
        // As cf create-org does: the creator manages the new org (the server may already have done it).
        await grantSelf(session, [
          { type: 'organization_user', organization: org.guid },
          { type: 'organization_manager', organization: org.guid },
        ]);
        ok(io);
        status(io, `\nTIP: Use 'kiln target -o "${name}"' to target the new org.`);
      }),
    );

  program
    .command('create-space')
    .description('create a space in the targeted org (or -o ORG) and make you its manager and developer')
    .argument('<name>', 'space name')
    .option('-o, --org <org>', 'org to create it in')
    .action((name: string, opts: { org?: string }) =>
      run(async (io) => {
        const session = await Session.open(io);
        session.requireLogin();
        const org = opts.org !== undefined ? await findOrg(session.client, opts.org) : session.requireOrg();
        status(io, `Creating space ${name} in org ${org.name} as ${session.who()}...`);
        const space = await session.client.post<Named>('/v3/spaces', { name, relationships: { organization: { data: { guid: org.guid } } } });
        await grantSelf(session, [
          { type: 'space_manager', space: space.guid },
          { type: 'space_developer', space: space.guid },
        ]);
        ok(io);
        status(io, `\nTIP: Use 'kiln target -o "${org.name}" -s "${name}"' to target the new space.`);
      }),
    );
}

function printTarget(io: Parameters<typeof status>[0], session: Session): void {
  const { username, org, space } = session.config;
  io.out.write(
    [
      `API endpoint:   ${session.config.api ?? session.api}`,
      `user:           ${username ?? ''}`,
      `org:            ${org?.name ?? "No org targeted, use 'kiln target -o ORG'"}`,
      `space:          ${space?.name ?? (org ? "No space targeted, use 'kiln target -s SPACE'" : '')}`,
    ].join('\n') + '\n',
  );
}

/** Gives the logged-in user roles; one that already exists is fine. */
async function grantSelf(session: Session, roles: Array<{ type: string; organization?: string; space?: string }>): Promise<void> {
  const userGuid = tokenUserGuid(session.config.accessToken ?? '');
  if (!userGuid) return;
  for (const role of roles) {
    const relationships: Record<string, { data: { guid: string } }> = { user: { data: { guid: userGuid } } };
    if (role.organization) relationships.organization = { data: { guid: role.organization } };
    if (role.space) relationships.space = { data: { guid: role.space } };
    try {
      await session.client.post('/v3/roles', { type: role.type, relationships });
    } catch (err) {
      // 422: the role exists already (the server grants an org's creator its roles itself).
      if ((err as { status?: number }).status !== 422) throw err;
    }
  }
}
