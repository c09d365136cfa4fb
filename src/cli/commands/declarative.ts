import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { documentFiles, parseDocuments, SOURCE_LABEL, SOURCE_PATH_ANNOTATION, sourceId, type Declared, type DeclaredApp } from '../../gitops/documents.ts';
import type { ApiClient } from '../api-client.ts';
import { ok, printJson, status, table } from '../output.ts';
import { CliError, Session, type CliIO, type LoginFlags } from '../session.ts';
import type { Runner } from './runner.ts';

/**
 * `kiln apply -f`, `kiln diff -f`, `kiln delete -f`: kiln.dev resources (Organization, Space, App) or plain CF
 * manifests from files, made true through the CF V3 API like any client (org and space creation,
 * apply_manifest per space, manifest_diff for the field-by-field diff). Every app applied from a FILE|DIR
 * carries the label `kiln.dev/applied-from=<hash of its absolute path>`; `--prune` deletes the apps with that
 * label that the files no longer declare.
 */
interface FileOpts extends LoginFlags {
  filename: string;
  prune?: boolean;
  dryRun?: boolean;
}

/** `--api`, `--username`, `--password`: log in for this run only, as `kiln push` does. */
export function loginOptions(cmd: Command): Command {
  return cmd
    .option('--api <url>', 'API URL (default: the saved one, $KILN_API, else http://localhost:9000)')
    .option('--username <user>', 'log in with this user for this run (default: $KILN_USERNAME) …')
    .option('--password <password>', "… and password (default: $KILN_PASSWORD); otherwise $KILN_TOKEN, else the 'kiln login' session");
}

interface Ref {
  guid: string;
  name: string;
}

interface Plan {
  declared: Declared;
  source: string;
  orgs: Map<string, Ref | undefined>;
  spaces: Map<string, Ref | undefined>;
  /** Declared apps grouped by `org/space`. */
  groups: Map<string, DeclaredApp[]>;
  prune: { guid: string; name: string; where: string }[];
}

const spaceKey = (org: string, space: string) => `${org}/${space}`;

async function readPlan(session: Session, io: CliIO, opts: FileOpts, prune: boolean): Promise<Plan> {
  const target = path.resolve(opts.filename);
  const files = await documentFiles(target).catch((err: Error) => {
    throw new CliError(`cannot read ${opts.filename}: ${err.message}`);
  });
  const texts = await Promise.all(files.map(async (f) => ({ name: path.relative(process.cwd(), f) || f, text: await fs.readFile(f, 'utf8') })));
  const source = sourceId(target);
  const cfg = session.config;
  const declared = parseDocuments(texts, {
    defaultSpace: cfg.org?.name && cfg.space?.name ? { org: cfg.org.name, space: cfg.space.name } : undefined,
    labels: { [SOURCE_LABEL]: source },
    annotations: { [SOURCE_PATH_ANNOTATION]: target.slice(0, 5000) },
  });
  if (declared.errors.length > 0) throw new CliError(declared.errors.map((e) => `${e.file}: ${e.message}`).join('\n'));
  for (const a of declared.apps) if (a.git) io.err.write(`note: app ${a.name} declares source.git; kiln apply sets its manifest, the bits come from a Kiln server's git deployer (an App resource) or kiln push\n`);
  const client = session.client;
  const orgs = new Map<string, Ref | undefined>();
  const spaces = new Map<string, Ref | undefined>();
  const groups = new Map<string, DeclaredApp[]>();
  const allOrgs = new Set([...declared.orgs.map((o) => o.name), ...declared.spaces.map((s) => s.org), ...declared.apps.map((a) => a.org)]);
  for (const name of allOrgs) orgs.set(name, (await client.listAll<Ref>('/v3/organizations', { names: name }))[0]);
  const allSpaces = new Map<string, { org: string; space: string }>();
  for (const s of declared.spaces) allSpaces.set(spaceKey(s.org, s.name), { org: s.org, space: s.name });
  for (const a of declared.apps) allSpaces.set(spaceKey(a.org, a.space), { org: a.org, space: a.space });
  for (const [key, s] of allSpaces) {
    const org = orgs.get(s.org);
    spaces.set(key, org ? (await client.listAll<Ref>('/v3/spaces', { names: s.space, organization_guids: org.guid }))[0] : undefined);
  }
  for (const a of declared.apps) groups.set(spaceKey(a.org, a.space), [...(groups.get(spaceKey(a.org, a.space)) ?? []), a]);
  const pruneList: Plan['prune'] = [];
  if (prune) {
    const labelled = await client.listAll<Ref & { relationships: { space: { data: { guid: string } } } }>('/v3/apps', { label_selector: `${SOURCE_LABEL}=${source}` });
    const spaceNames = new Map<string, string>();
    for (const app of labelled) {
      const sg = app.relationships.space.data.guid;
      if (!spaceNames.has(sg)) {
        const s = await client.get<{ name: string; relationships: { organization: { data: { guid: string } } } }>(`/v3/spaces/${sg}`);
        const o = await client.get<{ name: string }>(`/v3/organizations/${s.relationships.organization.data.guid}`);
        spaceNames.set(sg, spaceKey(o.name, s.name));
      }
      const where = spaceNames.get(sg)!;
      const kept = (groups.get(where) ?? []).some((a) => a.name.toLowerCase() === app.name.toLowerCase());
      if (!kept) pruneList.push({ guid: app.guid, name: app.name, where });
    }
  }
  return { declared, source, orgs, spaces, groups, prune: pruneList };
}

const show = (v: unknown) => (v === undefined ? '(none)' : JSON.stringify(v));

/** The changes applying the plan would make, one line each (`+` create, `~` change, `-` delete). */
async function planChanges(client: ApiClient, plan: Plan): Promise<string[]> {
  const lines: string[] = [];
  for (const [name, ref] of plan.orgs) if (!ref) lines.push(`+ organization ${name}`);
  for (const [key, ref] of plan.spaces) if (!ref) lines.push(`+ space ${key}`);
  for (const [key, apps] of plan.groups) {
    const space = plan.spaces.get(key);
    if (!space) {
      for (const a of apps) lines.push(`+ app ${key}/${a.name}`);
      continue;
    }
    const res = await client.request<{ diff: { op: string; path: string; was?: unknown; value?: unknown }[] }>('POST', `/v3/spaces/${space.guid}/manifest_diff`, {
      yaml: stringify({ applications: apps.map((a) => a.entry) }),
    });
    const byApp = new Map<number, string[]>();
    for (const d of res.body.diff ?? []) {
      const m = /^\/applications\/(\d+)(\/.*)?$/.exec(d.path);
      if (!m) continue;
      const i = Number(m[1]);
      const field = (m[2] ?? '')
        .slice(1)
        .split('/')
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
        .join('.');
      if (!field && d.op === 'add') {
        byApp.set(i, ['(new)']);
        continue;
      }
      if (byApp.get(i)?.[0] === '(new)') continue;
      const text = d.op === 'add' ? `${field}: + ${show(d.value)}` : d.op === 'remove' ? `${field}: - ${show(d.was)}` : `${field}: ${show(d.was)} → ${show(d.value)}`;
      byApp.set(i, [...(byApp.get(i) ?? []), text]);
    }
    for (const [i, changes] of [...byApp].sort(([a], [b]) => a - b)) {
      const name = apps[i]?.name ?? `#${i}`;
      if (changes[0] === '(new)') lines.push(`+ app ${key}/${name}`);
      else for (const c of changes) lines.push(`~ app ${key}/${name}: ${c}`);
    }
  }
  for (const p of plan.prune) lines.push(`- app ${p.where}/${p.name}`);
  return lines;
}

async function applyPlan(session: Session, io: CliIO, plan: Plan): Promise<void> {
  const client = session.client;
  for (const [name, ref] of plan.orgs) {
    if (ref) continue;
    if (!plan.declared.orgs.some((o) => o.name === name)) throw new CliError(`organization ${name} does not exist; declare it with an Organization document`);
    status(io, `Creating org ${name}...`);
    plan.orgs.set(name, await client.post<Ref>('/v3/organizations', { name }));
  }
  for (const [key, ref] of plan.spaces) {
    if (ref) continue;
    const [org, name] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
    if (!plan.declared.spaces.some((s) => s.org === org && s.name === name)) throw new CliError(`space ${key} does not exist; declare it with a Space document`);
    status(io, `Creating space ${key}...`);
    plan.spaces.set(key, await client.post<Ref>('/v3/spaces', { name, relationships: { organization: { data: { guid: plan.orgs.get(org)!.guid } } } }));
  }
  for (const [key, apps] of plan.groups) {
    status(io, `Applying ${apps.length} app(s) to ${key}: ${apps.map((a) => a.name).join(', ')}...`);
    const res = await client.request('POST', `/v3/spaces/${plan.spaces.get(key)!.guid}/actions/apply_manifest`, { yaml: stringify({ applications: apps.map((a) => a.entry) }) });
    await client.awaitJob(res.headers.get('location'));
  }
  for (const p of plan.prune) {
    status(io, `Pruning app ${p.where}/${p.name} (no longer declared)...`);
    const res = await client.request('DELETE', `/v3/apps/${p.guid}`);
    await client.awaitJob(res.headers.get('location'));
  }
}

export function registerDeclarativeCommands(program: Command, run: Runner, setExit: (code: number) => void): void {
  loginOptions(program.command('apply'))
    .description('make the orgs, spaces and apps declared in FILE|DIR (kiln.dev resources or CF manifests) true')
    .requiredOption('-f, --filename <path>', 'a YAML file, or a directory of them')
    .option('--prune', 'delete apps applied earlier from the same FILE|DIR that it no longer declares')
    .option('--dry-run', 'print what would change and change nothing')
    .action((opts: FileOpts) =>
      run(async (io) => {
        const session = await Session.forCommand(io, opts);
        const plan = await readPlan(session, io, opts, !!opts.prune);
        if (opts.dryRun) {
          const lines = await planChanges(session.client, plan);
          io.out.write(lines.length ? `${lines.join('\n')}\n` : 'No changes.\n');
          return;
        }
        await applyPlan(session, io, plan);
        io.out.write(`Applied ${plan.declared.apps.length} app(s), ${plan.declared.spaces.length} space(s), ${plan.declared.orgs.length} org(s)${plan.prune.length ? `; pruned ${plan.prune.length}` : ''}.\n`);
      }),
    );

  loginOptions(program.command('diff'))
    .description('show, field by field, what kiln apply -f would change; exit 0 when nothing, 1 when something')
    .requiredOption('-f, --filename <path>', 'a YAML file, or a directory of them')
    .option('--prune', 'include the apps --prune would delete')
    .action(async (opts: FileOpts) => {
      // Like kubectl diff: 0 when nothing would change, 1 when something would, >1 (FAILED) on an error.
      let changed = false;
      await run(async (io) => {
        const session = await Session.forCommand(io, opts);
        const plan = await readPlan(session, io, opts, !!opts.prune);
        const lines = await planChanges(session.client, plan);
        if (lines.length === 0) return;
        io.out.write(`${lines.join('\n')}\n`);
        changed = true;
      });
      if (changed) setExit(1);
    });
}

/**
 * `kiln delete -f FILE|DIR` (or `--filename`): the apps the files declare, then their spaces and orgs once
 * nothing else is in them. (`kiln delete APP -f` keeps cf's meaning, force; see commands/apps.ts.)
 */
export async function deleteFromFiles(io: CliIO, filename: string, login: LoginFlags = {}): Promise<void> {
  const session = await Session.forCommand(io, login);
  const client = session.client;
  const plan = await readPlan(session, io, { filename }, false);
  for (const [key, apps] of plan.groups) {
    const space = plan.spaces.get(key);
    if (!space) continue;
    for (const a of apps) {
      const found = (await client.listAll<Ref>('/v3/apps', { names: a.name, space_guids: space.guid }))[0];
      if (!found) continue;
      status(io, `Deleting app ${key}/${a.name}...`);
      const res = await client.request('DELETE', `/v3/apps/${found.guid}`);
      await client.awaitJob(res.headers.get('location'));
    }
  }
  for (const s of plan.declared.spaces) {
    const space = plan.spaces.get(spaceKey(s.org, s.name));
    if (!space) continue;
    if ((await client.listAll<Ref>('/v3/apps', { space_guids: space.guid })).length > 0) {
      io.err.write(`space ${s.org}/${s.name} still holds apps; it stays\n`);
      continue;
    }
    status(io, `Deleting space ${s.org}/${s.name}...`);
    const res = await client.request('DELETE', `/v3/spaces/${space.guid}`);
    await client.awaitJob(res.headers.get('location'));
  }
  for (const o of plan.declared.orgs) {
    const org = plan.orgs.get(o.name);
    if (!org) continue;
    if ((await client.listAll<Ref>('/v3/spaces', { organization_guids: org.guid })).length > 0) {
      io.err.write(`organization ${o.name} still holds spaces; it stays\n`);
      continue;
    }
    status(io, `Deleting org ${o.name}...`);
    const res = await client.request('DELETE', `/v3/organizations/${org.guid}`);
    await client.awaitJob(res.headers.get('location'));
  }
  io.out.write('Deleted.\n');
}

/** `kiln delete -f X`: X is taken as FILE|DIR when it exists and looks like a path (a slash, or .yml/.yaml). */
export function looksLikeDocuments(arg: string): boolean {
  return (arg.includes('/') || /\.ya?ml$/i.test(arg)) && existsSync(arg);
}

interface GitSourceView {
  guid: string;
  name: string;
  url: string;
  ref: string | null;
  path: string | null;
  status: { state: string; message: string | null; last_commit: string | null; errors: { file: string; message: string }[] };
}

/** gitsources, create-gitsource, delete-gitsource: `/kiln/v1/gitsources` (admins). */
export function registerGitSourceCommands(program: Command, run: Runner): void {
  program
    .command('gitsources')
    .description('list the GitSources (repositories of YAML Kiln keeps applied) and what they last applied')
    .option('--json', 'print them as JSON')
    .action((opts: { json?: boolean }) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { resources } = await session.client.get<{ resources: GitSourceView[] }>('/kiln/v1/gitsources');
        if (opts.json) return printJson(io, resources);
        if (resources.length === 0) return status(io, "No GitSources. Create one with 'kiln create-gitsource NAME --url URL'.");
        io.out.write(table(io, ['name', 'url', 'ref', 'path', 'state', 'commit', 'errors'], resources.map((r) => [r.name, r.url, r.ref ?? 'HEAD', r.path ?? '.', r.status.state, r.status.last_commit?.slice(0, 12) ?? '', r.status.errors.length])));
        for (const r of resources) for (const e of r.status.errors) io.err.write(`${r.name}: ${e.file ? `${e.file}: ` : ''}${e.message}\n`);
      }),
    );
  program
    .command('create-gitsource')
    .description('point Kiln at a repository path of YAML to keep applied, with prune')
    .argument('<name>', 'GitSource name')
    .requiredOption('--url <url>', 'repository URL (https://, ssh://, file:// or a path)')
    .option('--ref <ref>', 'branch, tag or commit')
    .option('--path <path>', 'directory of YAML in the repository')
    .option('-o, --org <org>', 'with --space: where plain CF manifests go')
    .option('-s, --space <space>', 'see --org')
    .option('--credential <name>', 'a name in the server\'s KILN_GIT_CREDENTIALS_FILE')
    .action((name: string, opts: { url: string; ref?: string; path?: string; org?: string; space?: string; credential?: string }) =>
      run(async (io) => {
        const session = await Session.open(io);
        status(io, `Creating GitSource ${name} as ${session.who()}...`);
        await session.client.post('/kiln/v1/gitsources', { name, ...opts });
        ok(io);
      }),
    );
  program
    .command('delete-gitsource')
    .description('stop keeping a GitSource applied (what it applied stays)')
    .argument('<name>', 'GitSource name')
    .action((name: string) =>
      run(async (io) => {
        const session = await Session.open(io);
        const { resources } = await session.client.get<{ resources: GitSourceView[] }>('/kiln/v1/gitsources');
        const found = resources.find((r) => r.name === name);
        if (!found) throw new CliError(`GitSource '${name}' not found.`);
        await session.client.request('DELETE', `/kiln/v1/gitsources/${found.guid}`);
        ok(io);
      }),
    );
}
