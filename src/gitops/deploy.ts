import fs from 'node:fs/promises';
import path from 'node:path';
import { CreateBuildSchema } from '../domain/builds.ts';
import { CreateDeploymentSchema } from '../domain/deployments.ts';
import { CreatePackageSchema } from '../domain/packages.ts';
import { zipDirectory } from '../staging/zip.ts';
import type { Bits } from '../lifecycle/blobs.ts';
import { createBuild } from '../services/builds.ts';
import type { Ctx } from '../services/context.ts';
import { createDeployment } from '../services/deployments.ts';
import { createPackage, findVisiblePackage, processUpload } from '../services/packages.ts';

/** Annotations Kiln puts on what it makes from a git commit (package, build, deployment). */
export const COMMIT_ANNOTATION = 'kiln.dev/git-commit';
export const SOURCE_ANNOTATION = 'kiln.dev/git-source';

export type DeployPhase = 'package' | 'stage' | 'deploy';

export interface CommitDeploy {
  commit: string;
  packageGuid: string;
  buildGuid: string;
  dropletGuid: string;
  deploymentGuid: string;
  revisionGuid: string | null;
  /** Milliseconds spent per phase. */
  timings: Record<DeployPhase, number>;
}

export interface DeployInput {
  appGuid: string;
  /** The directory whose files are the app's bits (a checked-out tree, or part of one). */
  dir: string;
  commit: string;
  /** `url#ref:path`, as shown to people (no credentials). */
  source: string;
  /** How long staging may take before this gives up (the build itself is left to the build controller). */
  stageTimeoutMs?: number;
  onPhase?: (phase: DeployPhase) => void;
}

export class DeployError extends Error {
  constructor(
    readonly phase: DeployPhase,
    message: string,
  ) {
    super(message);
    this.name = 'DeployError';
  }
}

/**
 * Deploys the bits in a directory the way `cf push` does, through the same services the CF API uses: a bits
 * package (zipped like the cf CLI zips an app directory, received by the package upload service), a build
 * staged by the build controller, then a rolling deployment of its droplet. The deployment and the package
 * carry the commit as an annotation and the revision's description names it.
 */
export async function deployCommit(ctx: Ctx, bits: Bits, input: DeployInput): Promise<CommitDeploy> {
  const annotations = { [COMMIT_ANNOTATION]: input.commit, [SOURCE_ANNOTATION]: input.source.slice(0, 5000) };
  const timings: Record<DeployPhase, number> = { package: 0, stage: 0, deploy: 0 };
  let t0 = Date.now();

  input.onPhase?.('package');
  const created = await createPackage(ctx, CreatePackageSchema.parse({ type: 'bits', relationships: { app: { data: { guid: input.appGuid } } }, metadata: { annotations } }));
  const work = await fs.mkdtemp(path.join(bits.workRoot, 'git-package-'));
  try {
    const zip = path.join(work, 'app.zip');
    await zipDirectory(input.dir, zip, { exclude: (rel) => rel === '.git' || rel.startsWith('.git/') });
    await processUpload(ctx, await findVisiblePackage(ctx, created.pkg.guid), { bitsFile: zip, resources: undefined }, bits);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
  timings.package = Date.now() - t0;

  t0 = Date.now();
  input.onPhase?.('stage');
  const { build } = await createBuild(ctx, CreateBuildSchema.parse({ package: { guid: created.pkg.guid }, metadata: { annotations } }));
  const deadline = Date.now() + (input.stageTimeoutMs ?? 15 * 60_000);
  let staged = build;
  const db = ctx.store.db;
  while (staged.state === 'STAGING') {
    if (Date.now() > deadline) throw new DeployError('stage', `staging commit ${input.commit.slice(0, 12)} took longer than ${Math.round((input.stageTimeoutMs ?? 900_000) / 1000)} s`);
    await new Promise((r) => setTimeout(r, 100));
    staged = await db.selectFrom('builds').selectAll().where('guid', '=', build.guid).executeTakeFirstOrThrow();
  }
  if (staged.state !== 'STAGED' || !staged.droplet_guid) throw new DeployError('stage', `staging commit ${input.commit.slice(0, 12)} failed: ${staged.error ?? staged.state}`);
  timings.stage = Date.now() - t0;

  t0 = Date.now();
  input.onPhase?.('deploy');
  const { deployment } = await createDeployment(
    ctx,
    CreateDeploymentSchema.parse({ relationships: { app: { data: { guid: input.appGuid } } }, droplet: { guid: staged.droplet_guid }, strategy: 'rolling', metadata: { annotations } }),
  );
  if (deployment.revision_guid) {
    const guid = deployment.revision_guid;
    await ctx.store.write(async (tx) => {
      const rev = await tx.db.selectFrom('revisions').select('description').where('guid', '=', guid).executeTakeFirst();
      if (!rev || (rev.description ?? '').includes(input.commit)) return;
      // A note Kiln adds to the revision it made, not a change the user asked for: generation stays.
      await tx.updateStatus('revisions', guid, { description: `${rev.description ?? ''} Git commit ${input.commit} from ${input.source}.`.slice(0, 5000) });
    });
  }
  timings.deploy = Date.now() - t0;
  return {
    commit: input.commit,
    packageGuid: created.pkg.guid,
    buildGuid: build.guid,
    dropletGuid: staged.droplet_guid,
    deploymentGuid: deployment.guid,
    revisionGuid: deployment.revision_guid,
    timings,
  };
}
