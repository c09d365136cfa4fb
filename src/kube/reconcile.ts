import type { Logger } from 'pino';
import { MANAGED_LABEL, OWNS_ANNOTATION, ownedFields, RESOURCE_ANNOTATION } from '../domain/declared.ts';
import { KilnError } from '../domain/errors.ts';
import type { GitDeployer, GitAppState } from '../gitops/git-apps.ts';
import type { GitCredentials } from '../gitops/git-source.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { deleteApp } from '../services/apps.ts';
import type { Ctx } from '../services/context.ts';
import { applyManifest, manifestDiff } from '../services/manifests.ts';
import { createOrganization, deleteOrganization } from '../services/organizations.ts';
import { createSpace, deleteSpace } from '../services/spaces.ts';
import { conditionsOf } from '../store/conditions.ts';
import { loadMetadata, loadOneMetadata } from '../store/metadata.ts';
import type { KubeClient, KubeObject, Plural } from './kube-client.ts';
import { AppSpecSchema, OrganizationSpecSchema, SpaceSpecSchema, type AppSpec, type KubeCondition } from './schemas.ts';

/**
 * Reconcile functions of the CRD sync controller (see kube-sync.ts), one per kind. Each reads the resource
 * and Kiln's store, acts through Kiln's services, and writes the resource's status; each is idempotent.
 *
 * Who owns what: whatever the controller creates in Kiln carries the label `kiln.dev/managed-by: kubernetes`
 * and the annotation `kiln.dev/resource: <Kind>/<namespace>/<name>`. An App resource never takes over a CF app
 * of the same name that another resource (or a `cf push`) made: it reports `Synced=False, AppOwnedElsewhere`.
 * Deleting a resource deletes only what it made, and an org or space only once nothing else lives in it.
 */
export interface SyncEnv {
  ctx: Ctx;
  client: KubeClient;
  runtime: Runtime | undefined;
  log: Logger;
  git?: GitDeployer;
}

export type Outcome = { requeueAfterMs?: number } | undefined;

export const FINALIZER = 'kiln.dev/sync';
export { MANAGED_LABEL, RESOURCE_ANNOTATION };

export const refOf = (kind: string, obj: KubeObject) => `${kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
export const ownership = (ref: string) => ({ labels: { [MANAGED_LABEL]: 'kubernetes' }, annotations: { [RESOURCE_ANNOTATION]: ref } });

export async function ownedBy(env: SyncEnv, resourceType: string, guid: string, ref: string): Promise<boolean> {
  return (await loadOneMetadata(env.ctx.store.db, resourceType, guid)).annotations[RESOURCE_ANNOTATION] === ref;
}

/** Adds the finalizer; true when it had to (the update that follows brings the resource back). */
export async function ensureFinalizer(env: SyncEnv, plural: Plural, obj: KubeObject): Promise<boolean> {
  const finalizers = obj.metadata.finalizers ?? [];
  if (finalizers.includes(FINALIZER)) return false;
  await env.client.patch(plural, obj, { metadata: { finalizers: [...finalizers, FINALIZER], resourceVersion: obj.metadata.resourceVersion } });
  return true;
}

export async function releaseFinalizer(env: SyncEnv, plural: Plural, obj: KubeObject): Promise<void> {
  const finalizers = obj.metadata.finalizers ?? [];
  if (!finalizers.includes(FINALIZER)) return;
  await env.client.patch(plural, obj, { metadata: { finalizers: finalizers.filter((f) => f !== FINALIZER), resourceVersion: obj.metadata.resourceVersion } });
}

export const condition = (obj: KubeObject, type: string) => ((obj.status?.conditions ?? []) as KubeCondition[]).find((c) => c.type === type);

/** Conditions with `lastTransitionTime` kept from the resource's current status unless the status flipped. */
export function stamp(obj: KubeObject, conditions: Omit<KubeCondition, 'lastTransitionTime'>[]): KubeCondition[] {
  const before = ((obj.status?.conditions ?? []) as KubeCondition[]).reduce((m, c) => m.set(c.type, c), new Map<string, KubeCondition>());
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return conditions.map((c) => {
    const old = before.get(c.type);
    return { ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now };
  });
}

/** Writes status when it differs from what the resource shows (a no-op write would wake the informer again). */
export async function writeStatus(env: SyncEnv, plural: Plural, obj: KubeObject, status: Record<string, unknown>): Promise<void> {
  const clean = JSON.parse(JSON.stringify(status)) as Record<string, unknown>;
  if (JSON.stringify(sortKeys(clean)) === JSON.stringify(sortKeys(obj.status ?? {}))) return;
  // A merge patch leaves keys that are gone from the new status; null them out.
  const nulls = Object.fromEntries(Object.keys(obj.status ?? {}).filter((k) => !(k in clean)).map((k) => [k, null]));
  await env.client.patchStatus(plural, obj, { ...nulls, ...clean });
}

export function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => [k, sortKeys(x)]));
  return v;
}

export const problem = (err: unknown) => (err instanceof KilnError ? [err.detail, ...err.more.map((m) => m.detail)].join('; ') : String((err as Error)?.message ?? err));

// ---- Organization

export async function reconcileOrganization(env: SyncEnv, obj: KubeObject): Promise<Outcome> {
  const db = env.ctx.store.db;
  const ref = refOf('Organization', obj);
  const spec = OrganizationSpecSchema.parse(obj.spec ?? {});
  const name = spec.name ?? obj.metadata.name;
  const org = await db.selectFrom('organizations').selectAll().where('name', '=', name).executeTakeFirst();
  if (obj.metadata.deletionTimestamp) {
    if (org && (await ownedBy(env, 'organizations', org.guid, ref))) {
      const spaces = await db.selectFrom('spaces').select('guid').where('organization_guid', '=', org.guid).execute();
      const ours = await loadMetadata(db, 'spaces', spaces.map((s) => s.guid));
      // Spaces declared by resources go first (their own finalizers delete them); anything else keeps the org.
      if (spaces.some((s) => ours.get(s.guid)?.labels[MANAGED_LABEL] === 'kubernetes')) return { requeueAfterMs: 500 };
      if (spaces.length === 0) {
        await deleteOrganization(env.ctx, org.guid);
        return { requeueAfterMs: 300 };
      }
      env.log.info({ org: name }, 'kube sync: the org holds spaces not declared by resources; it stays');
    }
    await releaseFinalizer(env, 'organizations', obj);
    return undefined;
  }
  if (await ensureFinalizer(env, 'organizations', obj)) return undefined;
  let guid = org?.guid;
  let reason = 'Exists';
  if (!org) {
    guid = (await createOrganization(env.ctx, { name, metadata: ownership(ref) })).org.guid;
    reason = 'Created';
    await env.client.event('Organization', obj, 'Normal', 'Created', `organization ${name} created in Kiln`);
  }
  const generation = obj.metadata.generation;
  await writeStatus(env, 'organizations', obj, {
    observedGeneration: generation,
    guid,
    conditions: stamp(obj, [{ type: 'Ready', status: 'True', reason: obj.status?.guid === guid && obj.status?.conditions ? currentReason(obj, reason) : reason, message: `organization ${name}`, observedGeneration: generation }]),
  });
  return undefined;
}

/** Keep the first reason a Ready=True condition gave (Created stays Created on later reconciles). */
export function currentReason(obj: KubeObject, fallback: string): string {
  const ready = ((obj.status?.conditions ?? []) as KubeCondition[]).find((c) => c.type === 'Ready' && c.status === 'True');
  return ready?.reason ?? fallback;
}

// ---- Space

export async function findSpace(env: SyncEnv, orgName: string, spaceName: string) {
  return env.ctx.store.db
    .selectFrom('spaces')
    .innerJoin('organizations', 'organizations.guid', 'spaces.organization_guid')
    .select(['spaces.guid as guid', 'spaces.name as name', 'organizations.guid as orgGuid'])
    .where('organizations.name', '=', orgName)
    .where('spaces.name', '=', spaceName)
    .executeTakeFirst();
}

export async function reconcileSpace(env: SyncEnv, obj: KubeObject): Promise<Outcome> {
  const db = env.ctx.store.db;
  const ref = refOf('Space', obj);
  const spec = SpaceSpecSchema.parse(obj.spec ?? {});
  const name = spec.name ?? obj.metadata.name;
  const space = await findSpace(env, spec.org, name);
  if (obj.metadata.deletionTimestamp) {
    if (space && (await ownedBy(env, 'spaces', space.guid, ref))) {
      const apps = await db.selectFrom('apps').select('guid').where('space_guid', '=', space.guid).execute();
      const meta = await loadMetadata(db, 'apps', apps.map((a) => a.guid));
      if (apps.some((a) => meta.get(a.guid)?.labels[MANAGED_LABEL] === 'kubernetes')) return { requeueAfterMs: 500 };
      if (apps.length === 0) {
        await deleteSpace(env.ctx, space.guid);
        return { requeueAfterMs: 300 };
      }
      env.log.info({ space: name }, 'kube sync: the space holds apps not declared by resources; it stays');
    }
    await releaseFinalizer(env, 'spaces', obj);
    return undefined;
  }
  if (await ensureFinalizer(env, 'spaces', obj)) return undefined;
  const generation = obj.metadata.generation;
  if (!space) {
    const org = await db.selectFrom('organizations').select('guid').where('name', '=', spec.org).executeTakeFirst();
    if (!org) {
      await writeStatus(env, 'spaces', obj, {
        observedGeneration: generation,
        conditions: stamp(obj, [{ type: 'Ready', status: 'False', reason: 'OrganizationNotFound', message: `organization ${spec.org} does not exist`, observedGeneration: generation }]),
      });
      return { requeueAfterMs: 5000 };
    }
    const made = await createSpace(env.ctx, { name, relationships: { organization: { data: { guid: org.guid } } }, metadata: ownership(ref) });
    await env.client.event('Space', obj, 'Normal', 'Created', `space ${spec.org}/${name} created in Kiln`);
    await writeStatus(env, 'spaces', obj, {
      observedGeneration: generation,
      guid: made.space.guid,
      conditions: stamp(obj, [{ type: 'Ready', status: 'True', reason: 'Created', message: `space ${spec.org}/${name}`, observedGeneration: generation }]),
    });
    return undefined;
  }
  await writeStatus(env, 'spaces', obj, {
    observedGeneration: generation,
    guid: space.guid,
    conditions: stamp(obj, [{ type: 'Ready', status: 'True', reason: currentReason(obj, 'Exists'), message: `space ${spec.org}/${name}`, observedGeneration: generation }]),
  });
  return undefined;
}

// ---- App

/** The manifest `applications[]` entry an App resource stands for. */
export function manifestEntry(obj: KubeObject, spec: AppSpec): Record<string, unknown> {
  const { org: _o, space: _s, source, name, metadata, services, ...rest } = spec;
  const own = ownership(refOf('App', obj));
  const entry: Record<string, unknown> = { name: name ?? obj.metadata.name, ...rest };
  if (services) entry.services = services.map((s) => (s.binding_name || s.parameters ? s : s.name));
  if (source?.image) entry.docker = { image: source.image };
  // What the resource declares is what it owns: CF API writes to it are refused (domain/declared.ts).
  const owns = ownedFields(entry);
  entry.metadata = { labels: { ...metadata?.labels, ...own.labels }, annotations: { ...metadata?.annotations, ...own.annotations, [OWNS_ANNOTATION]: owns } };
  return entry;
}

/**
 * Apply jobs queued by this process, per resource, and the fields a re-apply reverted (lost on restart; then a
 * generation whose number is in status counts as applied).
 */
const applyJobs = new Map<string, { generation: number; job: string; reverted?: string[]; persists?: string[] }>();

async function applyInFlight(env: SyncEnv, ref: string): Promise<boolean> {
  const job = applyJobs.get(ref);
  if (!job) return false;
  const row = await env.ctx.store.db.selectFrom('jobs').select('state').where('guid', '=', job.job).executeTakeFirst();
  return row !== undefined && row.state !== 'COMPLETE' && row.state !== 'FAILED';
}

export async function reconcileApp(env: SyncEnv, obj: KubeObject): Promise<Outcome> {
  const db = env.ctx.store.db;
  const ref = refOf('App', obj);
  const generation = obj.metadata.generation ?? 1;
  const parsed = AppSpecSchema.safeParse(obj.spec ?? {});
  const spec = parsed.success ? parsed.data : undefined;
  const appName = spec?.name ?? obj.metadata.name;
  const space = spec ? await findSpace(env, spec.org, spec.space) : undefined;
  const app = space
    ? await db
        .selectFrom('apps')
        .selectAll()
        .where('space_guid', '=', space.guid)
        .where((eb) => eb(eb.fn('lower', ['name']), '=', appName.toLowerCase()))
        .executeTakeFirst()
    : undefined;
  const ours = app ? await ownedBy(env, 'apps', app.guid, ref) : false;

  if (obj.metadata.deletionTimestamp) {
    if (app && ours) {
      if (app.status !== 'deleting') await env.client.event('App', obj, 'Normal', 'Deleting', `deleting ${appName} from ${spec!.org}/${spec!.space}`);
      await deleteApp(env.ctx, app.guid);
      return { requeueAfterMs: 300 };
    }
    applyJobs.delete(`${ref}#${obj.metadata.uid ?? ''}`);
    if (app) env.git?.forget(app.guid);
    await releaseFinalizer(env, 'apps', obj);
    return undefined;
  }
  if (await ensureFinalizer(env, 'apps', obj)) return undefined;

  const blocked = async (reason: string, message: string, requeueAfterMs?: number): Promise<Outcome> => {
    if (condition(obj, 'Synced')?.reason !== reason) await env.client.event('App', obj, 'Warning', reason, message);
    await writeStatus(env, 'apps', obj, {
      observedGeneration: generation,
      lastError: message,
      conditions: stamp(obj, [
        { type: 'Synced', status: 'False', reason, message, observedGeneration: generation },
        { type: 'Ready', status: 'False', reason, message, observedGeneration: generation },
      ]),
    });
    return requeueAfterMs ? { requeueAfterMs } : undefined;
  };
  if (!spec) return blocked('InvalidSpec', parsed.error!.issues.map((i) => `spec.${i.path.join('.')}: ${i.message}`).join('; '));
  if (!space) return blocked('SpaceNotFound', `space ${spec.org}/${spec.space} does not exist (declare it with a Space resource)`, 5000);
  if (app && !ours) return blocked('AppOwnedElsewhere', `app ${appName} in ${spec.org}/${spec.space} was not created by this resource; it is left alone`, 10_000);

  const doc = { applications: [manifestEntry(obj, spec)] };
  // The informer's copy may not show the status this process wrote a moment ago; what it applied itself counts.
  const jobKey = `${ref}#${obj.metadata.uid ?? ''}`;
  const applied = app !== undefined && (obj.status?.observedGeneration === generation || applyJobs.get(jobKey)?.generation === generation);
  let reverted: string[] | undefined;
  // A rolling deployment in flight (a git commit rolling out, a cf push) changes processes on its way: not drift,
  // and CF refuses to scale meanwhile; drift is looked for once it has finished.
  if (applied && app.status !== 'deleting' && !(await applyInFlight(env, jobKey)) && !(await deploymentActive(env, app.guid))) {
    // The resource owns what it declares: a CF API write that changed it (cf scale, cf set-env…) is reverted
    // by applying the resource again, and reported. What CF's manifest diff does not compare is left alone.
    const drift = await manifestDiff(env.ctx, space.guid, doc);
    if (drift.length > 0) reverted = drift.map((d) => d.path.replace(/^\/applications\/0/, ''));
    // A difference the last re-apply did not remove is one an apply cannot remove (manifests add, they do not
    // take away routes or services): reported, not retried on every resync.
    const last = applyJobs.get(jobKey);
    if (last && drift.length === 0) delete last.persists;
    if (reverted && last?.generation === generation && last.reverted?.join() === reverted.join()) {
      last.persists = reverted;
      reverted = undefined;
    }
  }
  if (!applied || reverted) {
    try {
      const job = await applyManifest(env.ctx, space.guid, doc);
      applyJobs.set(jobKey, { generation, job, reverted });
      if (reverted) {
        env.log.info({ resource: ref, fields: reverted }, 'kube sync: reverted CF API changes to fields the resource declares');
        await env.client.event('App', obj, 'Warning', 'DriftReverted', `changes made outside the resource were reverted: ${reverted.join(', ')}`);
      } else await env.client.event('App', obj, 'Normal', app ? 'Applied' : 'Created', `generation ${generation} applied to ${appName} in ${spec.org}/${spec.space}`);
    } catch (err) {
      if (!(err instanceof KilnError)) throw err;
      return blocked('ManifestRejected', problem(err));
    }
  }
  return appStatus(env, obj, spec, space.guid, appName, generation);
}

/** What Kiln knows about the app, as the resource's status. */
async function appStatus(env: SyncEnv, obj: KubeObject, spec: AppSpec, spaceGuid: string, appName: string, generation: number): Promise<Outcome> {
  const db = env.ctx.store.db;
  const ref = refOf('App', obj);
  const app = await db
    .selectFrom('apps')
    .selectAll()
    .where('space_guid', '=', spaceGuid)
    .where((eb) => eb(eb.fn('lower', ['name']), '=', appName.toLowerCase()))
    .executeTakeFirst();
  if (!app) return { requeueAfterMs: 300 };
  const web = await db.selectFrom('processes').select(['guid', 'instances']).where('app_guid', '=', app.guid).where('type', '=', 'web').executeTakeFirst();
  const desired = web ? Number(web.instances) : 0;
  const ready = web && env.runtime ? env.runtime.listInstances({ processGuid: web.guid }).filter((i) => i.state === 'RUNNING').length : 0;
  const route = await db
    .selectFrom('route_destinations')
    .innerJoin('routes', 'routes.guid', 'route_destinations.route_guid')
    .innerJoin('domains', 'domains.guid', 'routes.domain_guid')
    .select(['routes.host', 'routes.path', 'domains.name'])
    .where('route_destinations.app_guid', '=', app.guid)
    .orderBy('routes.created_at')
    .executeTakeFirst();
  const revision = await db.selectFrom('revisions').select('version').where('app_guid', '=', app.guid).orderBy('version', 'desc').executeTakeFirst();

  // Kiln's conditions describe the CR's generation once Kiln has caught up with what was applied.
  const caughtUp = Number(app.observed_generation) >= Number(app.generation);
  const kiln = await conditionsOf(db, 'app', app.guid);
  const conditions: Omit<KubeCondition, 'lastTransitionTime'>[] = kiln.map((c) => ({
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message,
    observedGeneration: caughtUp ? generation : generation - 1,
  }));
  const job = applyJobs.get(`${ref}#${obj.metadata.uid ?? ''}`);
  const jobRow = job?.generation === generation ? await db.selectFrom('jobs').select(['state', 'errors']).where('guid', '=', job.job).executeTakeFirst() : undefined;
  let synced: Omit<KubeCondition, 'lastTransitionTime'> = { type: 'Synced', status: 'True', reason: 'ManifestApplied', message: `generation ${generation} applied`, observedGeneration: generation };
  if (jobRow?.state === 'FAILED') {
    const errors = JSON.parse(jobRow.errors || '[]') as { detail?: string }[];
    synced = { type: 'Synced', status: 'False', reason: 'ManifestApplyFailed', message: errors.map((e) => e.detail).join('; ') || 'the apply job failed', observedGeneration: generation };
  } else if (jobRow && jobRow.state !== 'COMPLETE') synced = { type: 'Synced', status: 'Unknown', reason: 'Applying', message: 'the manifest is being applied', observedGeneration: generation };
  else if (job?.generation === generation && job.persists)
    synced = { type: 'Synced', status: 'False', reason: 'DriftPersists', message: `Kiln differs from the resource where applying it cannot help: ${job.persists.join(', ')}`, observedGeneration: generation };
  else if (job?.generation === generation && job.reverted)
    synced = { type: 'Synced', status: 'True', reason: 'DriftReverted', message: `changes made outside the resource were reverted: ${job.reverted.join(', ')}`, observedGeneration: generation };
  conditions.push(synced);
  conditions.push(...rolloutConditions(app, await latestDeployment(env, app.guid), ready, desired, generation));
  let git: GitAppState | undefined;
  if (spec.source?.git && !env.git)
    conditions.push({ type: 'SourceReady', status: 'False', reason: 'GitSourcesOff', message: 'this Kiln deploys no git sources (the kube sync runs without a git deployer)', observedGeneration: generation });
  else if (spec.source?.git && env.git && synced.status !== 'Unknown') {
    const src = spec.source.git;
    git = env.git.ensure(env.ctx, app.guid, src, () => gitCredentials(env, obj, src.secretRef?.name));
    conditions.push(sourceCondition(git, generation));
  } else if (spec.source?.git) conditions.push({ type: 'SourceReady', status: 'Unknown', reason: 'WaitingForApply', message: 'the manifest is applied first', observedGeneration: generation });
  else env.git?.forget(app.guid);
  if (!conditions.some((c) => c.type === 'Ready')) conditions.push({ type: 'Ready', status: 'Unknown', reason: 'Reconciling', message: 'Kiln has not reported on the app yet', observedGeneration: generation });
  conditions.sort((a, b) => a.type.localeCompare(b.type));
  const failing = conditions.find((c) => c.status === 'False');
  const host = route ? `${route.host ? `${route.host}.` : ''}${route.name}${route.path}` : undefined;
  await writeStatus(env, 'apps', obj, {
    observedGeneration: generation,
    guid: app.guid,
    state: app.status === 'deleting' ? 'DELETING' : app.state,
    instances: `${ready}/${desired}`,
    readyInstances: ready,
    desiredInstances: desired,
    url: host,
    droplet: app.droplet_guid ?? undefined,
    revision: revision ? Number(revision.version) : undefined,
    commit: git?.deployedCommit,
    lastError: failing?.message || undefined,
    conditions: stamp(obj, conditions),
  });
  if (synced.status === 'Unknown' || (git && git.phase !== 'Deployed' && git.phase !== 'Failed')) return { requeueAfterMs: 300 };
  return git ? { requeueAfterMs: Math.max(300, env.git!.pollMs) } : undefined;
}

/** `SourceReady` from what the git deployer knows. */
function sourceCondition(git: GitAppState, generation: number): Omit<KubeCondition, 'lastTransitionTime'> {
  if (git.phase === 'Deployed') return { type: 'SourceReady', status: 'True', reason: 'CommitDeployed', message: git.message, observedGeneration: generation };
  if (git.phase === 'Failed') return { type: 'SourceReady', status: 'False', reason: git.reason ?? 'Failed', message: git.message, observedGeneration: generation };
  return { type: 'SourceReady', status: 'Unknown', reason: git.phase, message: git.message, observedGeneration: generation };
}

/** Credentials from the Secret an App's `source.git.secretRef` names (`username`/`password` or `ssh-privatekey`). */
export async function gitCredentials(env: SyncEnv, obj: KubeObject, secret: string | undefined): Promise<GitCredentials | undefined> {
  if (!secret) return undefined;
  let data: Record<string, string>;
  try {
    data = await env.client.secretData(obj.metadata.namespace ?? 'default', secret);
  } catch (err) {
    throw new Error(`secret ${secret} cannot be read: ${(err as { code?: number }).code === 404 ? 'not found' : (err as Error).message}`);
  }
  const creds: GitCredentials = { username: data.username, password: data.password, sshPrivateKey: data['ssh-privatekey'] };
  if (!creds.username && !creds.password && !creds.sshPrivateKey) throw new Error(`secret ${secret} holds neither username/password nor ssh-privatekey`);
  return creds;
}

async function deploymentActive(env: SyncEnv, appGuid: string): Promise<boolean> {
  const row = await env.ctx.store.db.selectFrom('deployments').select('guid').where('app_guid', '=', appGuid).where('status_value', '=', 'ACTIVE').executeTakeFirst();
  return row !== undefined;
}

async function latestDeployment(env: SyncEnv, appGuid: string) {
  return env.ctx.store.db
    .selectFrom('deployments')
    .select(['state', 'status_reason', 'strategy'])
    .where('app_guid', '=', appGuid)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .executeTakeFirst();
}

/**
 * `Running` (every desired web instance runs) and `Deployed` (the current droplet is rolled out: no deployment
 * in flight, the last one not canceled) — the two conditions beyond Kiln's own that the issue's kstatus users
 * read.
 */
function rolloutConditions(
  app: { state: string; droplet_guid: string | null },
  deployment: { state: string; status_reason: string; strategy: string } | undefined,
  ready: number,
  desired: number,
  generation: number,
): Omit<KubeCondition, 'lastTransitionTime'>[] {
  const of = `${ready}/${desired} web instances running`;
  const running: Omit<KubeCondition, 'lastTransitionTime'> =
    app.state !== 'STARTED'
      ? { type: 'Running', status: 'False', reason: 'Stopped', message: 'the app is stopped', observedGeneration: generation }
      : ready >= desired
        ? { type: 'Running', status: 'True', reason: 'AllInstancesRunning', message: of, observedGeneration: generation }
        : { type: 'Running', status: 'False', reason: 'InstancesNotRunning', message: of, observedGeneration: generation };
  let deployed: Omit<KubeCondition, 'lastTransitionTime'>;
  if (!app.droplet_guid) deployed = { type: 'Deployed', status: 'False', reason: 'NoDroplet', message: 'the app has no current droplet', observedGeneration: generation };
  else if (deployment && !['DEPLOYED', 'CANCELED'].includes(deployment.state))
    deployed = { type: 'Deployed', status: 'False', reason: 'Deploying', message: `a ${deployment.strategy} deployment is ${deployment.state.toLowerCase()}`, observedGeneration: generation };
  else if (deployment?.state === 'CANCELED')
    deployed = { type: 'Deployed', status: 'False', reason: 'DeploymentCanceled', message: `the last deployment was canceled (${deployment.status_reason})`, observedGeneration: generation };
  else deployed = { type: 'Deployed', status: 'True', reason: deployment ? 'DeploymentFinished' : 'DropletCurrent', message: 'the current droplet is rolled out', observedGeneration: generation };
  return [running, deployed];
}
