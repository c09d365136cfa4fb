/**
 * Who may see and who may change an app, and the resources that hang off it (packages, builds, droplets,
 * processes, tasks, revisions, sidecars, deployments…): CONVENTIONS.md §13. One implementation of "find the
 * app this caller can read, else 404" and of the write guards of §8.3 step 7, for every use-case that needs them.
 */
import { KilnError, notAuthorized, notFound } from '../domain/errors.ts';
import type { Row } from '../store/schema.ts';
import { assertOrgWritable, assertSpaceWritable } from './access.ts';
import type { Ctx } from './context.ts';
import { assertNotLockedByOthers } from './lock-guard.ts';

/** An app with the space it lives in (every app use-case needs both for authorization). */
export interface AppScope {
  app: Row<'apps'>;
  space: Row<'spaces'>;
}

/** The app and its space when the caller can read it (a role in its space, org manager, or a global reader). */
export async function readableApp(ctx: Ctx, guid: string): Promise<AppScope | undefined> {
  const app = await ctx.store.db.selectFrom('apps').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!app) return undefined;
  const space = await ctx.store.db.selectFrom('spaces').selectAll().where('guid', '=', app.space_guid).executeTakeFirst();
  if (!space || !(await ctx.access.canReadSpace(space))) return undefined;
  return { app, space };
}

/** Resolves an app the caller can read (a role in its space, org manager, or a global reader), else 404. */
export async function findVisibleApp(ctx: Ctx, guid: string): Promise<AppScope> {
  const scope = await readableApp(ctx, guid);
  if (!scope) throw notFound('App');
  return scope;
}

/** The app of a resource that belongs to one (package, droplet, build…): an invisible app is that resource's 404. */
export async function appScopeFor(ctx: Ctx, appGuid: string, resource: string): Promise<AppScope> {
  try {
    return await findVisibleApp(ctx, appGuid);
  } catch (err) {
    if (err instanceof KilnError && err.errorName === 'ResourceNotFound') throw notFound(resource);
    throw err;
  }
}

// ---- write guards ----

/**
 * §8.3 step 7 for a write inside a space: space and org not being deleted, org not suspended (admins bypass).
 * Returns the org, which audit events name.
 */
export async function assertSpaceMutable(ctx: Ctx, space: Row<'spaces'>): Promise<Row<'organizations'>> {
  assertSpaceWritable(space);
  const org = await ctx.store.db.selectFrom('organizations').selectAll().where('guid', '=', space.organization_guid).executeTakeFirstOrThrow();
  assertOrgWritable(ctx.access, org);
  return org;
}

/** Also refuses writes while someone else holds a lock on the app or its space (services/lock-guard.ts). */
export async function assertAppMutable(ctx: Ctx, scope: AppScope): Promise<void> {
  if (scope.app.status === 'deleting') throw new KilnError('ResourceBeingDeleted', 'app');
  await assertSpaceMutable(ctx, scope.space);
  await assertNotLockedByOthers(ctx.store.db, ctx.principal, { appGuid: scope.app.guid, spaceGuid: scope.space.guid });
}

/** Space developer (or admin): create, rename, re-lifecycle and delete apps. */
export async function requireAppWriter(ctx: Ctx, scope: AppScope): Promise<void> {
  if (!(await ctx.access.canWriteSpace(scope.space.guid))) throw notAuthorized();
  await assertAppMutable(ctx, scope);
}

/** Space developer or supporter (or admin): start/stop, scale, env vars, droplet, processes. */
export async function requireAppManager(ctx: Ctx, scope: AppScope): Promise<void> {
  if (!(await ctx.access.canManageApps(scope.space.guid))) throw notAuthorized();
  await assertAppMutable(ctx, scope);
}

/** Admins, admin read-only and space developers read an app's secrets (its manifest, a revision's env vars); others 403. */
export async function requireAppSecretsReader(ctx: Ctx, scope: Pick<AppScope, 'space'>): Promise<void> {
  if (!(await ctx.access.canReadSpaceSecrets(scope.space.guid))) throw notAuthorized();
}
