import { sourceId } from '../gitops/documents.ts';
import type { GitCredentials } from '../gitops/git-source.ts';
import { applyGitSource, type SyncReport } from '../gitops/git-source-sync.ts';
import { gitSourceProblems } from '../domain/git-sources.ts';
import type { KubeObject } from './kube-client.ts';
import { releaseAppliedFrom } from '../services/declared-guard.ts';
import { condition, ensureFinalizer, FINALIZER, gitCredentials, refOf, releaseFinalizer, stamp, writeStatus, type Outcome, type SyncEnv } from './reconcile.ts';
import { GitSourceSpecSchema, type GitSourceSpec, type KubeCondition } from './schemas.ts';

/**
 * The `GitSource` kind: the GitSource reconciler of `/kiln/v1/gitsources` (src/gitops/git-source-sync.ts) driven by a
 * custom resource. Its spec is what the API takes; its status shows the commit applied, the state, and one error
 * per file. As with the API, deleting a GitSource stops the syncing and deletes nothing it applied: the finalizer
 * only lets Kiln take its ownership marks off what it applied, which then stays as ordinary CF objects.
 *
 * A sync fetches and waits for apply jobs (seconds), so it runs beside the controller's single worker, not in it:
 * a reconcile starts one when it is due (a new generation, or `pollMs` since the last), and a later reconcile
 * writes its report into status. Kept in memory; after a restart the first reconcile syncs again, which applies
 * nothing when the commit in status applied cleanly.
 */
interface Run {
  generation: number;
  startedAt: number;
  done?: { report: SyncReport; at: string };
  running: boolean;
}
const runs = new Map<string, Run>();

/** The prune label of what a GitSource resource applied: stable across re-creation under the same name. */
export const gitSourceResourceLabel = (ref: string) => sourceId(`gitsource-resource:${ref}`);

export async function reconcileGitSource(env: SyncEnv, obj: KubeObject, credentials?: (name: string) => GitCredentials | undefined): Promise<Outcome> {
  const ref = refOf('GitSource', obj);
  const key = `${ref}#${obj.metadata.uid ?? ''}`;
  const generation = obj.metadata.generation ?? 1;
  if (obj.metadata.deletionTimestamp) {
    // Nothing it applied is deleted; it stops being declared (CF API writes to it are allowed again).
    if (obj.metadata.finalizers?.includes(FINALIZER)) {
      const released = await env.ctx.store.write((tx) => releaseAppliedFrom(tx, gitSourceResourceLabel(ref)));
      if (released) env.log.info({ gitsource: ref, released }, 'gitsource resource deleted; what it applied stays, no longer declared');
    }
    runs.delete(key);
    await releaseFinalizer(env, 'gitsources', obj);
    return undefined;
  }
  if (await ensureFinalizer(env, 'gitsources', obj)) return undefined;
  const notReady = async (reason: string, message: string, requeueAfterMs?: number): Promise<Outcome> => {
    if (condition(obj, 'Ready')?.reason !== reason) await env.client.event('GitSource', obj, 'Warning', reason, message);
    await writeStatus(env, 'gitsources', obj, {
      ...(obj.status ?? {}),
      observedGeneration: generation,
      state: 'FAILED',
      message,
      conditions: stamp(obj, [{ type: 'Ready', status: 'False', reason, message, observedGeneration: generation }]),
    });
    return requeueAfterMs ? { requeueAfterMs } : undefined;
  };
  const parsed = GitSourceSpecSchema.safeParse(obj.spec ?? {});
  if (!parsed.success) return notReady('InvalidSpec', parsed.error.issues.map((i) => `spec.${i.path.map(String).join('.')}: ${i.message}`).join('; '));
  const spec = parsed.data;
  const problems = gitSourceProblems(spec);
  if (problems.length) return notReady('InvalidSpec', problems.join('; '));
  if (!env.git) return notReady('GitSourcesOff', 'this Kiln syncs no git sources (the kube sync runs without a git deployer)');
  const pollMs = env.git.pollMs;

  const run = runs.get(key);
  if (run?.done && !run.running) {
    await writeReport(env, obj, run.generation, run.done.report, run.done.at);
    if (run.done.report.state !== 'UNCHANGED') env.log.info({ gitsource: ref, ...run.done.report }, 'gitsource resource synced');
    delete run.done;
  }
  if (run?.running) return { requeueAfterMs: 200 };
  const due = !run || run.generation !== generation || Date.now() - run.startedAt >= pollMs;
  if (!due) return { requeueAfterMs: Math.max(200, pollMs - (Date.now() - run.startedAt)) };

  const next: Run = { generation, startedAt: Date.now(), running: true };
  runs.set(key, next);
  if (!obj.status?.state) {
    await writeStatus(env, 'gitsources', obj, {
      observedGeneration: generation,
      conditions: stamp(obj, [{ type: 'Ready', status: 'Unknown', reason: 'Syncing', message: `fetching ${spec.ref ?? 'HEAD'}`, observedGeneration: generation }]),
    });
  }
  const applied = obj.status?.observedGeneration === generation && obj.status?.state === 'APPLIED';
  void (async () => {
    let report: SyncReport;
    try {
      const creds = await credentialsFor(env, obj, spec, credentials);
      report = await applyGitSource(
        env.ctx,
        env.git!.cache,
        { id: gitSourceResourceLabel(ref), name: ref, url: spec.url, ref: spec.ref, path: spec.path, org: spec.org, space: spec.space, lastCommit: obj.status?.commit as string | undefined, lastApplied: applied },
        creds,
      );
    } catch (err) {
      report = { state: 'FAILED', errors: [{ file: '', message: (err as Error).message }], applied: [], pruned: [] };
    }
    next.done = { report, at: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
  })()
    .catch(() => undefined)
    .finally(() => {
      next.running = false;
    });
  return { requeueAfterMs: 200 };
}

async function credentialsFor(env: SyncEnv, obj: KubeObject, spec: GitSourceSpec, named?: (name: string) => GitCredentials | undefined): Promise<GitCredentials | undefined> {
  if (spec.secretRef) return gitCredentials(env, obj, spec.secretRef.name);
  if (!spec.credential) return undefined;
  const creds = named?.(spec.credential);
  if (!creds) throw new Error(`credential ${spec.credential} is not in KILN_GIT_CREDENTIALS_FILE`);
  return creds;
}

async function writeReport(env: SyncEnv, obj: KubeObject, generation: number, report: SyncReport, at: string): Promise<void> {
  if (report.state === 'UNCHANGED') {
    // Nothing new: the status stays, only brought to this generation.
    if (obj.status?.observedGeneration !== generation) await writeStatus(env, 'gitsources', obj, { ...(obj.status ?? {}), observedGeneration: generation });
    return;
  }
  const message =
    report.state === 'FAILED' ? (report.errors[0]?.message ?? 'the sync failed') : report.errors.length ? `${report.errors.length} file(s) in error at ${report.commit}` : `commit ${report.commit} applied`;
  const ready: Omit<KubeCondition, 'lastTransitionTime'> =
    report.state === 'APPLIED'
      ? { type: 'Ready', status: 'True', reason: 'Applied', message, observedGeneration: generation }
      : { type: 'Ready', status: 'False', reason: report.state === 'FAILED' ? 'SyncFailed' : 'FilesInError', message, observedGeneration: generation };
  if (condition(obj, 'Ready')?.message !== message) await env.client.event('GitSource', obj, report.state === 'APPLIED' ? 'Normal' : 'Warning', ready.reason, message);
  // A commit with files in error is applied again at every poll (what failed may succeed), and the second time
  // finds nothing left to prune: `pruned` keeps what applying this commit removed, not only the latest pass.
  const before = obj.status?.commit === report.commit && Array.isArray(obj.status?.pruned) ? (obj.status.pruned as string[]) : [];
  const pruned = [...new Set([...before, ...report.pruned])];
  await writeStatus(env, 'gitsources', obj, {
    observedGeneration: generation,
    // A failed fetch keeps the commit last applied.
    commit: report.commit ?? obj.status?.commit,
    state: report.state,
    message,
    lastAppliedAt: report.state === 'FAILED' ? obj.status?.lastAppliedAt : at,
    errors: report.errors,
    applied: report.applied,
    pruned,
    conditions: stamp(obj, [ready]),
  });
}
