import type { Logger } from 'pino';
import type { Bits } from '../lifecycle/blobs.ts';
import type { Ctx } from '../services/context.ts';
import { loadOneMetadata } from '../store/metadata.ts';
import { COMMIT_ANNOTATION, DeployError, SOURCE_ANNOTATION, deployCommit, type DeployPhase } from './deploy.ts';
import { GitSourceCache, redactUrl, type GitCredentials } from './git-source.ts';

/**
 * Keeps git-sourced apps at their ref's commit: `ensure` (called by whoever reconciles the app, on every pass)
 * polls the ref at most once per `pollMs`, and when it names a commit other than the one deployed, deploys it
 * in the background (deployCommit: package, stage, rolling deployment). It never blocks the caller; it
 * returns what it knows, which the caller turns into status.
 *
 * What is deployed is read back from Kiln, not remembered: the commit and source annotations of the package
 * behind the app's current droplet, or of the app's latest deployment. A restart therefore does not redeploy.
 * A commit that failed to stage is not retried until the ref moves or the source changes.
 */
export interface GitAppSource {
  url: string;
  ref?: string;
  path?: string;
}

export type GitAppPhase = 'Fetching' | 'Packaging' | 'Staging' | 'Deploying' | 'Deployed' | 'Failed';

export interface GitAppState {
  phase: GitAppPhase;
  /** The commit the ref named at the last poll. */
  commit?: string;
  /** The commit whose droplet is (being) rolled out. */
  deployedCommit?: string;
  /** `FetchFailed`, `PackagingFailed`, `StagingFailed`, `DeployFailed` when phase is Failed. */
  reason?: string;
  message: string;
  /** Milliseconds of the last deploy's phases (fetch, package, stage, deploy). */
  timings?: Record<string, number>;
}

export interface GitDeployerOptions {
  bits: Bits;
  cacheDir: string;
  pollMs: number;
  log: Logger;
  git?: string;
  /** See GitSourceCacheOptions.allowLocal. */
  allowLocal?: boolean;
}

interface Entry {
  key: string;
  state: GitAppState;
  lastPoll: number;
  running: boolean;
  failedCommit?: string;
}

export const sourceKey = (s: GitAppSource) => `${redactUrl(s.url)}#${s.ref || 'HEAD'}:${s.path || '.'}`;

export class GitDeployer {
  readonly cache: GitSourceCache;
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly opts: GitDeployerOptions) {
    this.cache = new GitSourceCache({ cacheDir: opts.cacheDir, git: opts.git, allowLocal: opts.allowLocal ?? false });
  }

  get pollMs(): number {
    return this.opts.pollMs;
  }

  /** What is known about the app's source; starts a poll (and a deploy) in the background when one is due. */
  ensure(ctx: Ctx, appGuid: string, source: GitAppSource, credentials: () => Promise<GitCredentials | undefined>): GitAppState {
    const key = sourceKey(source);
    let e = this.entries.get(appGuid);
    if (!e || e.key !== key) {
      e = { key, state: { phase: 'Fetching', message: `fetching ${key}` }, lastPoll: 0, running: false };
      this.entries.set(appGuid, e);
    }
    if (!e.running && Date.now() - e.lastPoll >= this.opts.pollMs) {
      e.running = true;
      e.lastPoll = Date.now();
      const entry = e;
      void this.poll(ctx, appGuid, source, entry, credentials).finally(() => {
        entry.running = false;
        entry.lastPoll = Date.now();
      });
    }
    return { ...e.state };
  }

  /** Drops what is known about an app (it was deleted, or no longer has a git source). */
  forget(appGuid: string): void {
    this.entries.delete(appGuid);
  }

  private async poll(ctx: Ctx, appGuid: string, source: GitAppSource, e: Entry, credentials: () => Promise<GitCredentials | undefined>): Promise<void> {
    const t0 = Date.now();
    let commit: string;
    let creds: GitCredentials | undefined;
    try {
      creds = await credentials();
      commit = await this.cache.resolve(source.url, source.ref, creds);
    } catch (err) {
      e.state = { ...e.state, phase: 'Failed', reason: 'FetchFailed', message: (err as Error).message };
      this.opts.log.warn({ err, app: appGuid, source: e.key }, 'git source: fetch failed');
      return;
    }
    const fetchMs = Date.now() - t0;
    const deployed = await this.deployedCommit(ctx, appGuid, e.key);
    if (deployed === commit) {
      e.state = { phase: 'Deployed', commit, deployedCommit: commit, message: `commit ${commit} of ${e.key} is deployed`, timings: e.state.timings };
      return;
    }
    if (e.failedCommit === commit) {
      e.state = { ...e.state, commit };
      return;
    }
    const phaseName: Record<DeployPhase, GitAppPhase> = { package: 'Packaging', stage: 'Staging', deploy: 'Deploying' };
    try {
      const tree = await this.cache.checkout(source.url, commit, creds);
      const dir = await this.cache.subdir(tree, source.path);
      this.opts.log.info({ app: appGuid, source: e.key, commit }, 'git source: deploying a new commit');
      const done = await deployCommit(ctx, this.opts.bits, {
        appGuid,
        dir,
        commit,
        source: e.key,
        onPhase: (p) => (e.state = { ...e.state, phase: phaseName[p], commit, reason: undefined, message: `${phaseName[p].toLowerCase()} commit ${commit} of ${e.key}` }),
      });
      e.failedCommit = undefined;
      e.state = {
        phase: 'Deployed',
        commit,
        deployedCommit: commit,
        message: `commit ${commit} of ${e.key} is deployed`,
        timings: { fetch: fetchMs, ...done.timings },
      };
    } catch (err) {
      const phase = err instanceof DeployError ? err.phase : e.state.phase === 'Fetching' ? 'package' : (Object.entries(phaseName).find(([, v]) => v === e.state.phase)?.[0] as DeployPhase | undefined) ?? 'package';
      const reason = { package: 'PackagingFailed', stage: 'StagingFailed', deploy: 'DeployFailed' }[phase];
      e.failedCommit = commit;
      e.state = { ...e.state, phase: 'Failed', commit, reason, message: `commit ${commit}: ${problem(err)}` };
      this.opts.log.warn({ err, app: appGuid, source: e.key, commit }, 'git source: deploy failed');
    }
  }

  /** The commit Kiln last deployed from this source to the app, read from the package and deployment annotations. */
  private async deployedCommit(ctx: Ctx, appGuid: string, key: string): Promise<string | undefined> {
    const db = ctx.store.db;
    const app = await db.selectFrom('apps').select('droplet_guid').where('guid', '=', appGuid).executeTakeFirst();
    if (app?.droplet_guid) {
      const droplet = await db.selectFrom('droplets').select('package_guid').where('guid', '=', app.droplet_guid).executeTakeFirst();
      if (droplet?.package_guid) {
        const a = (await loadOneMetadata(db, 'packages', droplet.package_guid)).annotations;
        if (a[SOURCE_ANNOTATION] === key && a[COMMIT_ANNOTATION]) return a[COMMIT_ANNOTATION];
      }
    }
    const last = await db.selectFrom('deployments').select(['guid', 'state']).where('app_guid', '=', appGuid).orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
    if (last && last.state !== 'CANCELED') {
      const a = (await loadOneMetadata(db, 'deployments', last.guid)).annotations;
      if (a[SOURCE_ANNOTATION] === key && a[COMMIT_ANNOTATION]) return a[COMMIT_ANNOTATION];
    }
    return undefined;
  }
}

function problem(err: unknown): string {
  const e = err as { detail?: string; message?: string };
  return e?.detail ?? e?.message ?? String(err);
}
