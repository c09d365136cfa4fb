import type { Kysely } from 'kysely';
import { parseJsonStringArray, type AppLifecycleType } from '../domain/apps.ts';
import { STAGING_DEFAULTS, type CreateBuild, type UpdateBuild, type BuildState } from '../domain/builds.ts';
import { badRequest, KilnError, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { SCOPES } from '../domain/principal.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid } from '../store/store.ts';
import { auditApp } from './apps.ts';
import { appScopeFor, findVisibleApp, requireAppManager, requireAppWriter, type AppScope } from './app-scope.ts';
import type { Ctx } from './context.ts';
import { dropletValues } from '../lifecycle/droplets.ts';
import { requireFeature } from './feature-flags.ts';

export const BUILD_LIST: ListSpec = { filters: ['states', 'app_guids', 'package_guids'], labelSelector: true };
export const APP_BUILD_LIST: ListSpec = { filters: ['states'], labelSelector: true };

export interface BuildScope extends AppScope {
  build: Row<'builds'>;
}

export async function listBuilds(ctx: Ctx, params: ListParams, opts: { appGuid?: string } = {}): Promise<Page<Row<'builds'>>> {
  if (opts.appGuid !== undefined) await findVisibleApp(ctx, opts.appGuid);
  let q = ctx.store.db
    .selectFrom('builds')
    .selectAll('builds')
    // apps is joined only for the visibility condition, which global readers skip.
    .$if(!ctx.access.global, (qb) =>
      qb.innerJoin('apps', 'apps.guid', 'builds.app_guid').where((eb) => ctx.access.spaceVisible(eb, 'apps.space_guid')),
    );
  const f = params.filters;
  if (opts.appGuid !== undefined) q = q.where('builds.app_guid', '=', opts.appGuid);
  if (f.states) q = q.where('builds.state', 'in', f.states as BuildState[]); // unknown states match nothing
  if (f.app_guids) q = q.where('builds.app_guid', 'in', f.app_guids);
  if (f.package_guids) q = q.where('builds.package_guid', 'in', f.package_guids);
  return listPage(q, listOptions('builds', params));
}

const isBuildStateUpdater = (ctx: Ctx) => ctx.principal.scopes.has(SCOPES.updateBuildState);

/** A build the caller can read, else 404 `Build not found`. The Build State Updater sees every build. */
export async function findVisibleBuild(ctx: Ctx, guid: string): Promise<BuildScope> {
  const build = await ctx.store.db.selectFrom('builds').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!build) throw notFound('Build');
  if (isBuildStateUpdater(ctx) && !ctx.access.global) {
    const app = await ctx.store.db.selectFrom('apps').selectAll().where('guid', '=', build.app_guid).executeTakeFirstOrThrow();
    const space = await ctx.store.db.selectFrom('spaces').selectAll().where('guid', '=', app.space_guid).executeTakeFirstOrThrow();
    return { build, app, space };
  }
  return { build, ...(await appScopeFor(ctx, build.app_guid, 'Build')) };
}

const loadBuild = (db: Kysely<Database>, guid: string) => db.selectFrom('builds').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

/**
 * `POST /v3/builds`: stages a READY package. The lifecycle is the request's or else the app's; the build
 * controller picks the row up (state STAGING) and turns it into a droplet.
 */
export async function createBuild(ctx: Ctx, input: CreateBuild): Promise<{ build: Row<'builds'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const pkg = await ctx.store.db.selectFrom('packages').selectAll().where('guid', '=', input.package.guid).executeTakeFirst();
  let scope: AppScope | undefined;
  if (pkg) {
    try {
      scope = await findVisibleApp(ctx, pkg.app_guid);
    } catch (err) {
      if (!(err instanceof KilnError && err.errorName === 'ResourceNotFound')) throw err;
    }
  }
  if (!pkg || !scope) throw unprocessable('Unable to use package. Ensure that the package exists and you have access to it.');
  await requireAppManager(ctx, scope);
  if (pkg.state !== 'READY') throw badRequest('Cannot stage package whose state is not ready.');

  const app = scope.app;
  const requested = input.lifecycle;
  const type = requested?.type ?? (pkg.type === 'docker' ? 'docker' : app.lifecycle_type);
  if ((pkg.type === 'docker') !== (type === 'docker')) {
    throw unprocessable(`Cannot stage a ${pkg.type} package with the ${type} lifecycle.`);
  }
  if (type === 'docker' && !ctx.access.admin) await requireFeature(ctx.store.db, 'diego_docker');
  if (type === 'cnb' && !ctx.access.admin) await requireFeature(ctx.store.db, 'diego_cnb');
  let lifecycleData: { buildpacks: string[]; stack: string | null } | Record<string, never> = {};
  if (type !== 'docker') {
    const buildpacks = requested?.buildpacks ?? parseJsonStringArray(app.lifecycle_buildpacks);
    let stack = requested?.stack !== undefined ? requested.stack : app.lifecycle_stack;
    if (typeof stack === 'string') {
      const found = await ctx.store.db.selectFrom('stacks').select('name').where('name', '=', stack).executeTakeFirst();
      if (!found) throw unprocessable('Stack must be an existing stack');
    } else {
      const def = await ctx.store.db.selectFrom('stacks').select('name').where('is_default', '=', 1).executeTakeFirst();
      stack = def?.name ?? null;
    }
    lifecycleData = { buildpacks, stack };
  }

  return ctx.store.write(async (tx) => {
    const staging = await tx.db.selectFrom('builds').select('guid').where('app_guid', '=', app.guid).where('state', '=', 'STAGING').executeTakeFirst();
    if (staging) throw new KilnError('StagingInProgress');
    const guid = newGuid();
    await tx.insert('builds', {
      guid,
      app_guid: app.guid,
      package_guid: pkg.guid,
      state: 'STAGING',
      error: null,
      lifecycle_type: type,
      lifecycle_data: JSON.stringify(lifecycleData),
      staging_memory_in_mb: input.staging_memory_in_mb ?? STAGING_DEFAULTS.memoryInMb,
      staging_disk_in_mb: input.staging_disk_in_mb ?? STAGING_DEFAULTS.diskInMb,
      staging_log_rate_limit_bytes_per_second: input.staging_log_rate_limit_bytes_per_second ?? STAGING_DEFAULTS.logRateLimit,
      droplet_guid: null,
      created_by_guid: ctx.principal.guid,
      created_by_name: ctx.principal.username,
      created_by_email: ctx.principal.email,
    });
    const metadata = await saveMetadata(tx, 'builds', guid, input.metadata);
    await auditApp(tx, ctx, 'build.create', scope, { build_guid: guid, package_guid: pkg.guid });
    return { build: await loadBuild(tx.db, guid), metadata };
  });
}

/**
 * `PATCH /v3/builds/:guid`: metadata for space developers; the outcome of staging (`state` with `lifecycle`
 * or `error`) for the Build State Updater and admins, while the build is still STAGING.
 */
export async function updateBuild(ctx: Ctx, guid: string, input: UpdateBuild): Promise<{ build: Row<'builds'>; metadata: Metadata }> {
  validateMetadataRequest(input.metadata);
  const scope = await findVisibleBuild(ctx, guid);
  const outcome = input.state !== undefined || input.error !== undefined || input.lifecycle !== undefined;
  if (outcome) {
    if (!ctx.access.admin && !isBuildStateUpdater(ctx)) throw notAuthorized();
    if (input.state === undefined) throw unprocessable("State can't be blank");
    if (scope.build.state !== 'STAGING') throw unprocessable(`Build state is ${scope.build.state} and therefore cannot be updated.`);
    if (input.metadata && !(await ctx.access.canWriteSpace(scope.space.guid))) throw notAuthorized();
  } else {
    await requireAppWriter(ctx, scope);
  }
  const { build } = scope;
  return ctx.store.write(async (tx) => {
    if (input.state === 'FAILED') {
      await tx.update('builds', build.guid, { state: 'FAILED', error: input.error ?? null }, { expectedGeneration: build.generation });
    } else if (input.state === 'STAGED') {
      const data = input.lifecycle?.data ?? {};
      const dropletGuid = newGuid();
      await tx.insert('droplets', 
        dropletValues(tx, {
          guid: dropletGuid,
          app_guid: build.app_guid,
          package_guid: build.package_guid,
          build_guid: build.guid,
          state: 'STAGED',
          // The PATCH schema takes any lifecycle type string and it is stored as given (unchanged behaviour).
          lifecycle_type: (input.lifecycle?.type as AppLifecycleType | undefined) ?? build.lifecycle_type,
          process_types: JSON.stringify(data.process_types ?? { web: '' }),
          image: data.image ?? null,
        }),
      );
      await tx.update('builds', build.guid, { state: 'STAGED', error: null, droplet_guid: dropletGuid }, { expectedGeneration: build.generation });
    } else if (input.metadata) {
      tx.changed('builds', build.guid, 'update');
    }
    const metadata = await saveMetadata(tx, 'builds', build.guid, input.metadata);
    return { build: await loadBuild(tx.db, build.guid), metadata };
  });
}
