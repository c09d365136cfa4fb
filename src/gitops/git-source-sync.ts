import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { KilnError } from '../domain/errors.ts';
import { deleteApp } from '../services/apps.ts';
import type { Ctx } from '../services/context.ts';
import { applyManifest } from '../services/manifests.ts';
import { createOrganization } from '../services/organizations.ts';
import { createSpace } from '../services/spaces.ts';
import { loadMetadata } from '../store/metadata.ts';
import type { Row } from '../store/schema.ts';
import { documentFiles, gitSourceLabel, parseDocuments, SOURCE_LABEL, SOURCE_PATH_ANNOTATION, type DeclaredApp } from './documents.ts';
import type { GitCredentials, GitSourceCache } from './git-source.ts';

/**
 * The GitSource reconciler: Flux's job for people who run no cluster. For one `git_sources` row it fetches the
 * ref, reads the YAML under `path` (documents.ts), creates the declared orgs and spaces, applies each file's apps
 * through apply_manifest (one job per file and space, so an error names its file), and prunes the apps it applied
 * earlier (label `kiln.dev/applied-from=<source id>`) that the repository no longer declares — except those that
 * came from a file that is broken now (what it declares is unknown, so it is left as it was). The commit
 * applied and the per-file errors are written back to the row.
 */
export interface FileError {
  file: string;
  message: string;
}

export interface SyncReport {
  commit?: string;
  state: 'APPLIED' | 'DEGRADED' | 'FAILED' | 'UNCHANGED';
  errors: FileError[];
  applied: string[];
  pruned: string[];
}

export { gitSourceLabel };
const MANAGED = { 'kiln.dev/managed-by': 'gitsource' };

const problem = (err: unknown) => (err instanceof KilnError ? [err.detail, ...err.more.map((m) => m.detail)].join('; ') : String((err as Error)?.message ?? err));

/**
 * One git source, wherever it is declared: a `git_sources` row (`/kiln/v1/gitsources`) or a `GitSource` custom
 * resource (src/kube). `id` names what the source applied (the prune label); `name` is written on every app.
 */
export interface GitSourceTarget {
  id: string;
  name: string;
  url: string;
  ref?: string | null;
  path?: string | null;
  org?: string | null;
  space?: string | null;
  /** The commit last applied, and whether it applied cleanly (then an unchanged commit is not applied again). */
  lastCommit?: string | null;
  lastApplied?: boolean;
}

export async function syncGitSource(ctx: Ctx, cache: GitSourceCache, row: Row<'git_sources'>, creds?: GitCredentials, opts: { force?: boolean; jobTimeoutMs?: number } = {}): Promise<SyncReport> {
  const report = await applyGitSource(
    ctx,
    cache,
    { id: gitSourceLabel(row.guid), name: row.name, url: row.url, ref: row.ref, path: row.path, org: row.org, space: row.space, lastCommit: row.last_commit, lastApplied: row.state === 'APPLIED' },
    creds,
    opts,
  );
  if (report.state !== 'UNCHANGED') await record(ctx, row, report);
  return report;
}

/** Fetches, applies and prunes one git source; the caller records the report. */
export async function applyGitSource(ctx: Ctx, cache: GitSourceCache, row: GitSourceTarget, creds?: GitCredentials, opts: { force?: boolean; jobTimeoutMs?: number } = {}): Promise<SyncReport> {
  let commit: string;
  let dir: string;
  try {
    commit = await cache.resolve(row.url, row.ref ?? undefined, creds);
    if (!opts.force && commit === row.lastCommit && row.lastApplied) return { commit, state: 'UNCHANGED', errors: [], applied: [], pruned: [] };
    dir = await cache.subdir(await cache.checkout(row.url, commit, creds), row.path ?? undefined);
  } catch (err) {
    return { state: 'FAILED', errors: [{ file: '', message: problem(err) }], applied: [], pruned: [] };
  }
  const label = row.id;
  const files = await documentFiles(dir);
  const texts = await Promise.all(files.map(async (f) => ({ name: path.relative(dir, f), text: await fs.readFile(f, 'utf8') })));
  const declared = parseDocuments(texts, {
    defaultSpace: row.org && row.space ? { org: row.org, space: row.space } : undefined,
    labels: { [SOURCE_LABEL]: label, ...MANAGED },
  });
  const errors: FileError[] = [...declared.errors];
  const broken = new Set(errors.map((e) => e.file));
  const db = ctx.store.db;
  const ownership = { labels: { [SOURCE_LABEL]: label, ...MANAGED }, annotations: { 'kiln.dev/git-source': row.name } };

  const orgGuids = new Map<string, string>();
  for (const o of declared.orgs) {
    if (broken.has(o.file)) continue;
    const found = await db.selectFrom('organizations').select('guid').where('name', '=', o.name).executeTakeFirst();
    try {
      orgGuids.set(o.name, found?.guid ?? (await createOrganization(ctx, { name: o.name, metadata: ownership })).org.guid);
    } catch (err) {
      errors.push({ file: o.file, message: `organization ${o.name}: ${problem(err)}` });
    }
  }
  const orgGuid = async (name: string) => orgGuids.get(name) ?? (await db.selectFrom('organizations').select('guid').where('name', '=', name).executeTakeFirst())?.guid;
  const spaceGuid = async (org: string, name: string) => {
    const og = await orgGuid(org);
    if (!og) return undefined;
    return (await db.selectFrom('spaces').select('guid').where('organization_guid', '=', og).where('name', '=', name).executeTakeFirst())?.guid;
  };
  for (const s of declared.spaces) {
    if (broken.has(s.file) || (await spaceGuid(s.org, s.name))) continue;
    const og = await orgGuid(s.org);
    if (!og) {
      errors.push({ file: s.file, message: `space ${s.org}/${s.name}: organization ${s.org} does not exist` });
      continue;
    }
    try {
      await createSpace(ctx, { name: s.name, relationships: { organization: { data: { guid: og } } }, metadata: ownership });
    } catch (err) {
      errors.push({ file: s.file, message: `space ${s.org}/${s.name}: ${problem(err)}` });
    }
  }

  // One apply per (file, space): an error is the file's.
  const groups = new Map<string, { space: string; org: string; file: string; apps: DeclaredApp[] }>();
  for (const a of declared.apps) {
    if (broken.has(a.file)) continue;
    const key = `${a.file}\n${a.org}/${a.space}`;
    const g = groups.get(key) ?? { org: a.org, space: a.space, file: a.file, apps: [] };
    g.apps.push(a);
    groups.set(key, g);
  }
  const applied: string[] = [];
  for (const g of groups.values()) {
    const sg = await spaceGuid(g.org, g.space);
    if (!sg) {
      errors.push({ file: g.file, message: `space ${g.org}/${g.space} does not exist (declare it with a Space document)` });
      continue;
    }
    const applications = g.apps.map((a) => {
      const m = a.entry.metadata as { labels: Record<string, string>; annotations: Record<string, string> };
      return { ...a.entry, metadata: { labels: m.labels, annotations: { ...m.annotations, [SOURCE_PATH_ANNOTATION]: a.file, 'kiln.dev/git-source': row.name, 'kiln.dev/git-commit': commit } } };
    });
    try {
      const job = await applyManifest(ctx, sg, { applications });
      const failure = await awaitJob(ctx, job, opts.jobTimeoutMs ?? 120_000);
      if (failure) errors.push({ file: g.file, message: failure });
      else applied.push(...g.apps.map((a) => `${g.org}/${g.space}/${a.name}`));
    } catch (err) {
      errors.push({ file: g.file, message: problem(err) });
    }
  }

  // Prune what this source applied and no longer declares (not what came from a file that is broken now).
  const pruned: string[] = [];
  const declaredKeys = new Set<string>();
  for (const a of declared.apps) {
    const sg = await spaceGuid(a.org, a.space);
    if (sg) declaredKeys.add(`${sg}/${a.name.toLowerCase()}`);
  }
  const [prefix, keyName] = SOURCE_LABEL.split('/') as [string, string];
  const labelled = await db
    .selectFrom('apps')
    .innerJoin('labels as l', 'l.resource_guid', 'apps.guid')
    .select(['apps.guid', 'apps.name', 'apps.space_guid'])
    .where('l.resource_type', '=', 'apps')
    .where('l.key_prefix', '=', prefix)
    .where('l.key_name', '=', keyName)
    .where('l.value', '=', label)
    .execute();
  const meta = await loadMetadata(db, 'apps', labelled.map((a) => a.guid));
  for (const app of labelled) {
    if (declaredKeys.has(`${app.space_guid}/${app.name.toLowerCase()}`)) continue;
    const file = meta.get(app.guid)?.annotations[SOURCE_PATH_ANNOTATION];
    if (file && broken.has(file)) continue;
    try {
      await deleteApp(ctx, app.guid);
      pruned.push(app.name);
    } catch (err) {
      errors.push({ file: file ?? '', message: `pruning app ${app.name}: ${problem(err)}` });
    }
  }
  return { commit, state: errors.length ? 'DEGRADED' : 'APPLIED', errors, applied, pruned };
}

async function awaitJob(ctx: Ctx, guid: string, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await ctx.store.db.selectFrom('jobs').select(['state', 'errors']).where('guid', '=', guid).executeTakeFirst();
    if (!job) return 'the apply job disappeared';
    if (job.state === 'COMPLETE') return undefined;
    if (job.state === 'FAILED') return (JSON.parse(job.errors || '[]') as { detail?: string }[]).map((e) => e.detail).join('; ') || 'the apply job failed';
    if (Date.now() > deadline) return 'the apply job did not finish in time';
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function record(ctx: Ctx, row: Row<'git_sources'>, report: SyncReport): Promise<void> {
  await ctx.store.write(async (tx) => {
    // What the sync found: status, so generation stays (it moves only when the source itself is edited).
    await tx.updateStatus('git_sources', row.guid, {
      state: report.state === 'UNCHANGED' ? row.state : report.state,
      message: report.state === 'FAILED' ? report.errors[0]?.message ?? null : report.errors.length ? `${report.errors.length} file(s) in error` : `commit ${report.commit} applied`,
      last_commit: report.commit ?? row.last_commit,
      last_applied_at: report.state === 'FAILED' ? row.last_applied_at : tx.now,
      errors: JSON.stringify(report.errors),
    });
  });
}

/** Syncs every GitSource every `pollMs`, one at a time. */
export class GitSourceSync {
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly opts: { ctx: Ctx; cache: GitSourceCache; pollMs: number; log: Logger; credentials: (name: string) => GitCredentials | undefined },
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.busy) void this.syncAll().catch(() => {});
    }, this.opts.pollMs);
    this.timer.unref();
    void this.syncAll().catch(() => {});
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private current: Promise<void> = Promise.resolve();

  /** Syncs every GitSource once, after any pass already running (passes never overlap). */
  syncAll(force = false): Promise<void> {
    const next = this.current.then(() => this.pass(force));
    this.current = next.catch(() => {});
    return next;
  }

  private busy = false;

  private async pass(force: boolean): Promise<void> {
    this.busy = true;
    try {
      await this.passRows(force);
    } finally {
      this.busy = false;
    }
  }

  private async passRows(force: boolean): Promise<void> {
    for (const row of await this.opts.ctx.store.db.selectFrom('git_sources').selectAll().orderBy('id').execute()) {
      try {
        const creds = row.credential ? this.opts.credentials(row.credential) : undefined;
        if (row.credential && !creds) throw new Error(`credential ${row.credential} is not in KILN_GIT_CREDENTIALS_FILE`);
        const report = await syncGitSource(this.opts.ctx, this.opts.cache, row, creds, { force });
        if (report.state !== 'UNCHANGED') this.opts.log.info({ gitsource: row.name, ...report }, 'gitsource synced');
      } catch (err) {
        this.opts.log.warn({ err, gitsource: row.name }, 'gitsource sync failed');
      }
    }
  }
}
