import fs from 'node:fs/promises';
import path from 'node:path';
import { CreateBuildSchema } from '../../domain/builds.ts';
import { CreateDeploymentSchema } from '../../domain/deployments.ts';
import { KilnError } from '../../domain/errors.ts';
import { CreatePackageSchema } from '../../domain/packages.ts';
import type { LogEnvelope } from '../../logs/log-store.ts';
import { type AppScope, requireAppManager, requireAppWriter } from '../../services/app-scope.ts';
import { bitsFor, type Bits } from '../../lifecycle/blobs.ts';
import { BUILD_LIST, createBuild, findVisibleBuild, listBuilds } from '../../services/builds.ts';
import type { Ctx } from '../../services/context.ts';
import { cancelDeployment, createDeployment, DEPLOYMENT_LIST, listDeployments } from '../../services/deployments.ts';
import * as packages from '../../services/packages.ts';
import { extractTarGz } from '../../staging/tarball.ts';
import { zipDirectory } from '../../staging/zip.ts';
import type { Api, AppDeps } from '../context.ts';
import { receiveMultipart } from '../cf/multipart.ts';
import { ctxOf, listAll, resolveApp } from './mapping.ts';
import { followDeployment, followUnits, until } from './rollout.ts';
import { errorText, param, readForm, route, streamResponse, TsuruError } from './wire.ts';

/**
 * Deploy ⇄ package + upload + build + rolling deployment, in one request as Tsuru does it (research/tsuru.md
 * §3.6): the archive is received, the CF package/build/deployment are created through their services, and the
 * response is the build and rollout output as text, ending with `OK` only on success.
 *
 * The event id (`X-Tsuru-Eventid`) is the CF package's guid: the record every later step hangs off (its build,
 * that build's droplet, the deployment of the droplet), so `POST /events/{id}/cancel` can find them again.
 * A cancel stops a deploy still uploading or staging in this process, and cancels the CF deployment once
 * there is one (a rollback, as `cf cancel-deployment`).
 *
 * What survives a crash is what the services wrote: a package READY or FAILED, a build the build controller
 * finishes, a deployment the deployment controller finishes. Only the response (and the in-process cancel
 * handle) is lost; the CLI sees the connection drop without `OK`, and the CF side shows how far it got.
 */

/** Deploys running in this process by event id, so a cancel can stop one between CF steps. */
const running = new Map<string, { abort: AbortController; reason?: string }>();

/** tsuru-client's upload field is `file`: a gzip tar of the app directory. */
const FILE_FIELD = 'file';

export function registerTsuruDeploy(app: Api, deps: AppDeps): void {
  const bitsOf = (): Promise<Bits> => (deps.bits ? Promise.resolve(deps.bits) : bitsFor(deps.config));

  route(app, 'post', '/apps/:app/deploy', async (c) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    // Authorization before a byte of a possibly large body is read.
    await requireAppWriter(ctx, scope);
    const multipart = /^multipart\/form-data/i.test(c.req.header('content-type') ?? '');
    const bits = await bitsOf();
    let received: Awaited<ReturnType<typeof receiveMultipart>> | undefined;
    let zip: { dir: string; file: string } | undefined;
    let image: string | undefined;
    try {
      if (multipart) {
        received = await receiveMultipart(c, bits.workRoot, FILE_FIELD, { fileBytes: bits.maxPackageBytes, fieldBytes: deps.config.maxJsonBytes });
        image = received.fields.image || undefined;
        if (received.file !== null && image) throw new TsuruError(400, 'You must provide only one of: file, image.');
        for (const unsupported of ['dockerfile', 'archive-url', 'archiveurl']) {
          if (received.fields[unsupported]) throw new TsuruError(501, `${unsupported} deploys have no CF V3 equivalent; deploy an archive (file) instead.`);
        }
        if (received.file === null && !image) throw new TsuruError(400, 'You must provide the file (a tar.gz of the app) or an image.');
        if (/^(1|t|true)$/i.test(received.fields['new-version'] ?? '')) {
          throw new TsuruError(501, 'new-version deploys (versions side by side) have no CF V3 equivalent: CF runs one revision at a time; deploy without --new-version.');
        }
        // Converted before anything is created: a bad archive is a plain 400 and leaves no package behind.
        if (received.file !== null) zip = await tarballToZip(received.file, bits);
        await fs.rm(received.dir, { recursive: true, force: true });
        received = undefined;
      } else {
        const form = await readForm(c);
        if (form.get('archive-url') || form.get('dockerfile')) throw new TsuruError(501, 'archive-url and dockerfile deploys have no CF V3 equivalent; deploy an archive (file) instead.');
        image = form.get('image');
        if (!image) throw new TsuruError(400, 'You must provide the file (a tar.gz of the app) or an image.');
      }
      const pkg = await packages.createPackage(
        ctx,
        CreatePackageSchema.parse({
          type: image ? 'docker' : 'bits',
          ...(image ? { data: { image } } : {}),
          relationships: { app: { data: { guid: scope.app.guid } } },
        }),
      );
      const eventId = pkg.pkg.guid;
      const bitsZip = zip;
      zip = undefined; // the stream owns the scratch files now
      const entry = { abort: new AbortController() } as { abort: AbortController; reason?: string };
      running.set(eventId, entry);
      return streamResponse(c, { contentType: 'text', keepalive: 'please wait...\n', headers: { 'X-Tsuru-Eventid': eventId } }, async (w) => {
        const say = (m: string) => w.raw(m.endsWith('\n') ? m : `${m}\n`);
        try {
          await deploy(ctx, deps, scope, eventId, bitsZip?.file ?? null, bits, say, entry.abort.signal);
          say('OK');
        } catch (err) {
          const { text, status } = errorText(err);
          if (status >= 500 && !(err instanceof TsuruError)) c.get('log')?.error({ err }, 'tsuru deploy failed');
          say(`\nERROR: ${entry.reason ? `deploy canceled: ${entry.reason}` : text}`);
        } finally {
          running.delete(eventId);
          if (bitsZip) await fs.rm(bitsZip.dir, { recursive: true, force: true });
        }
      });
    } finally {
      if (received) await fs.rm(received.dir, { recursive: true, force: true });
      if (zip) await fs.rm(zip.dir, { recursive: true, force: true });
    }
  });

  route(app, 'post', '/events/:id/cancel', async (c) => {
    const ctx = ctxOf(c, deps);
    const form = await readForm(c);
    const reason = form.get('reason') ?? '';
    if (reason.trim() === '') throw new TsuruError(400, 'You must provide a reason to cancel this event.');
    const id = param(c, 'id');
    let scope: packages.PackageScope;
    try {
      scope = await packages.findVisiblePackage(ctx, id);
    } catch (err) {
      if (err instanceof KilnError && err.status === 404) throw new TsuruError(404, 'Event not found.');
      throw err;
    }
    await requireAppManager(ctx, scope);
    const live = running.get(id);
    if (live) {
      live.reason = reason;
      live.abort.abort();
      return c.body(null, 204);
    }
    // A deploy this process is not running (another Kiln, or the request went away): cancel its deployment.
    const builds = await listAll(BUILD_LIST, { package_guids: id }, (p) => listBuilds(ctx, p));
    const droplets = new Set(builds.map((b) => b.droplet_guid).filter((g): g is string => g !== null));
    const active = await listAll(DEPLOYMENT_LIST, { app_guids: scope.app.guid, status_values: 'ACTIVE' }, (p) => listDeployments(ctx, p));
    const target = active.find((d) => droplets.has(d.droplet_guid));
    if (!target) throw new TsuruError(400, 'Event is not running: there is nothing to cancel.');
    await cancelDeployment(ctx, target.guid);
    return c.body(null, 204);
  });
}

/** The CF steps of one deploy, reporting as it goes; throws on failure or cancel. */
async function deploy(
  ctx: Ctx,
  deps: AppDeps,
  scope: AppScope,
  packageGuid: string,
  zipFile: string | null,
  bits: Bits,
  say: (m: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const canceled = () => {
    if (signal.aborted) throw new TsuruError(400, 'deploy canceled');
  };
  if (zipFile !== null) {
    const stat = await fs.stat(zipFile);
    say(`Uploaded the archive (${stat.size} bytes as a package)`);
    canceled();
    const pkgScope = await packages.authorizeUpload(ctx, packageGuid);
    await packages.processUpload(ctx, pkgScope, { bitsFile: zipFile, resources: undefined }, bits);
  }
  canceled();
  say('---- Building application image ----');
  const { build } = await createBuild(ctx, CreateBuildSchema.parse({ package: { guid: packageGuid } }));
  const staged = await followStaging(ctx, deps, scope.app.guid, build.guid, say, signal);
  canceled();
  if (!staged) throw new TsuruError(400, 'deploy canceled');
  say('---- Deploying application ----');
  const input = CreateDeploymentSchema.parse({ relationships: { app: { data: { guid: scope.app.guid } } }, droplet: { guid: staged } });
  const { deployment } = await createDeployment(ctx, input);
  say(` ---> rolling deployment ${deployment.guid}`);
  await followDeployment(ctx, deployment.guid, say, { cancel: signal });
  // A deployment of a stopped app finishes at once (CF starts it in place); Tsuru's deploy ends with its units up.
  await followUnits(ctx, deps, scope, 'web', say, signal);
  if (signal.aborted) throw new TsuruError(400, 'deploy canceled');
}

/** Tsuru uploads a gzip tar; CF packages are zips: unpack safely (the staging extractor's checks) and re-zip. */
async function tarballToZip(tarball: string, bits: Bits): Promise<{ dir: string; file: string }> {
  const dir = await fs.mkdtemp(path.join(bits.workRoot, 'tsuru-'));
  try {
    const tree = path.join(dir, 'tree');
    await extractTarGz(tarball, tree, { kind: 'app', limits: { maxTotalBytes: bits.maxPackageBytes } });
    const file = path.join(dir, 'package.zip');
    await zipDirectory(tree, file);
    await fs.rm(tree, { recursive: true, force: true });
    return { dir, file };
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Streams the build's staging log lines until it is STAGED (its droplet guid) or FAILED; undefined on cancel. */
async function followStaging(ctx: Ctx, deps: AppDeps, appGuid: string, buildGuid: string, say: (m: string) => void, signal: AbortSignal): Promise<string | undefined> {
  const onLog = (e: LogEnvelope) => {
    if (e.sourceId === appGuid && e.sourceType === 'STG') say(`  ${e.payload}`);
  };
  deps.logs?.events.on('log', onLog);
  try {
    const build = await until(
      'staging to finish',
      async () => {
        const { build: b } = await findVisibleBuild(ctx, buildGuid);
        return b.state === 'STAGING' ? undefined : b;
      },
      signal,
    );
    if (!build) return undefined;
    if (build.state !== 'STAGED' || !build.droplet_guid) throw new TsuruError(400, `staging failed: ${build.error ?? 'unknown error'}`);
    return build.droplet_guid;
  } finally {
    deps.logs?.events.off('log', onLog);
  }
}

/** For tests and handlers: whether a deploy is running here under this event id. */
export const deployRunning = (eventId: string): boolean => running.has(eventId);
