import type { Kysely } from 'kysely';
import { notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import {
  duplicateSidecarName,
  sidecarMemoryFits,
  sidecarMemoryTooLarge,
  type CreateSidecar,
  type UpdateSidecar,
} from '../domain/sidecars.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { auditApp } from './apps.ts';
import { findVisibleApp, requireAppWriter, appScopeFor, type AppScope } from './app-scope.ts';
import type { Ctx } from './context.ts';
import { findVisibleProcess } from './processes.ts';
import { nameInUse } from './name-in-use.ts';

/** Both sidecar lists: created_at/updated_at ordering only, no filters beyond guids, no label selector. */
export const SIDECAR_LIST: ListSpec = {};

export interface SidecarScope extends AppScope {
  sidecar: Row<'sidecars'>;
}

/** A sidecar with the process types it runs with, as presenters and the process controller need it. */
export interface SidecarView {
  sidecar: Row<'sidecars'>;
  processTypes: string[];
}

// ---- reading ----

/** Process types of some sidecars, sorted, keyed by sidecar guid. */
export async function processTypesOf(db: Kysely<Database>, sidecarGuids: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(sidecarGuids.map((g) => [g, []]));
  if (sidecarGuids.length === 0) return out;
  const rows = await db
    .selectFrom('sidecar_process_types')
    .select(['sidecar_guid', 'type'])
    .where('sidecar_guid', 'in', sidecarGuids)
    .orderBy('type')
    .execute();
  for (const r of rows) out.get(r.sidecar_guid)?.push(r.type);
  return out;
}

export async function viewsOf(db: Kysely<Database>, sidecars: Array<Row<'sidecars'>>): Promise<SidecarView[]> {
  const types = await processTypesOf(db, sidecars.map((s) => s.guid));
  return sidecars.map((sidecar) => ({ sidecar, processTypes: types.get(sidecar.guid) ?? [] }));
}

/** A sidecar the caller can read: its app must be visible, else 404 `Sidecar not found`. */
export async function findVisibleSidecar(ctx: Ctx, guid: string): Promise<SidecarScope> {
  const sidecar = await ctx.store.db.selectFrom('sidecars').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!sidecar) throw notFound('Sidecar');
  return { sidecar, ...(await appScopeFor(ctx, sidecar.app_guid, 'Sidecar')) };
}

export async function getSidecar(ctx: Ctx, guid: string): Promise<SidecarView> {
  const { sidecar } = await findVisibleSidecar(ctx, guid);
  return (await viewsOf(ctx.store.db, [sidecar]))[0]!;
}

export async function listAppSidecars(ctx: Ctx, params: ListParams, appGuid: string): Promise<Page<SidecarView>> {
  const { app } = await findVisibleApp(ctx, appGuid);
  const q = ctx.store.db.selectFrom('sidecars').selectAll('sidecars').where('sidecars.app_guid', '=', app.guid);
  const page = await listPage(q, listOptions('sidecars', params));
  return { rows: await viewsOf(ctx.store.db, page.rows), total: page.total };
}

/** The sidecars that run with a process: those of its app naming its type. */
export async function listProcessSidecars(ctx: Ctx, params: ListParams, processGuid: string): Promise<Page<SidecarView>> {
  const { process } = await findVisibleProcess(ctx, processGuid);
  const q = ctx.store.db
    .selectFrom('sidecars')
    .selectAll('sidecars')
    .where('sidecars.app_guid', '=', process.app_guid)
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('sidecar_process_types')
          .select('sidecar_process_types.sidecar_guid')
          .whereRef('sidecar_process_types.sidecar_guid', '=', 'sidecars.guid')
          .where('sidecar_process_types.type', '=', process.type),
      ),
    );
  const page = await listPage(q, listOptions('sidecars', params));
  return { rows: await viewsOf(ctx.store.db, page.rows), total: page.total };
}

// ---- writing ----

const loadSidecar = (db: Kysely<Database>, guid: string) => db.selectFrom('sidecars').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

/** Names are unique per app (upstream's model validation, checked in the write so it sees committed rivals). */
async function assertNameFree(tx: WriteTx, appGuid: string, name: string, exceptGuid?: string): Promise<void> {
  if (await nameInUse(tx.db, 'sidecars', name, { within: { app_guid: appGuid }, except: exceptGuid })) throw unprocessable(duplicateSidecarName(name));
}

/**
 * Upstream's SidecarCreate/SidecarUpdate memory rule: for every existing process of the types the sidecar runs
 * with, the memory all its sidecars reserve (this one included) must stay below the process's memory. Types
 * without a process yet (they appear with a droplet) are not checked.
 */
async function assertMemoryFits(tx: WriteTx, appGuid: string, types: string[], memoryMb: number | null, exceptGuid?: string): Promise<void> {
  if (memoryMb === null || types.length === 0) return;
  const processes = await tx.db
    .selectFrom('processes')
    .select(['type', 'memory_in_mb'])
    .where('app_guid', '=', appGuid)
    .where('type', 'in', types)
    .orderBy('type')
    .execute();
  for (const p of processes) {
    let q = tx.db
      .selectFrom('sidecars')
      .innerJoin('sidecar_process_types', 'sidecar_process_types.sidecar_guid', 'sidecars.guid')
      .select('sidecars.memory_in_mb')
      .where('sidecar_process_types.app_guid', '=', appGuid)
      .where('sidecar_process_types.type', '=', p.type);
    if (exceptGuid) q = q.where('sidecars.guid', '!=', exceptGuid);
    const others = (await q.execute()).reduce((sum, r) => sum + (r.memory_in_mb ?? 0), 0);
    if (!sidecarMemoryFits(others + memoryMb, p.memory_in_mb)) throw unprocessable(sidecarMemoryTooLarge(p.type));
  }
}

async function setProcessTypes(tx: WriteTx, sidecar: Pick<Row<'sidecars'>, 'guid' | 'app_guid'>, types: string[]): Promise<void> {
  await tx.db.deleteFrom('sidecar_process_types').where('sidecar_guid', '=', sidecar.guid).execute();
  await tx.db
    .insertInto('sidecar_process_types')
    .values(types.map((type) => ({ sidecar_guid: sidecar.guid, type, app_guid: sidecar.app_guid })))
    .execute();
}

/** Creates a user sidecar. It runs from the next start of the instances of its process types (as upstream). */
export async function createSidecar(ctx: Ctx, appGuid: string, input: CreateSidecar): Promise<SidecarView> {
  const scope = await findVisibleApp(ctx, appGuid);
  await requireAppWriter(ctx, scope);
  const memory = input.memory_in_mb ?? null;
  return ctx.store.write(async (tx) => {
    await assertNameFree(tx, scope.app.guid, input.name);
    await assertMemoryFits(tx, scope.app.guid, input.process_types, memory);
    const guid = newGuid();
    await tx.insert('sidecars', {
      guid,
      app_guid: scope.app.guid,
      name: input.name,
      command: input.command,
      memory_in_mb: memory,
      origin: 'user',
    });
    await setProcessTypes(tx, { guid, app_guid: scope.app.guid }, input.process_types);
    await auditApp(tx, ctx, 'sidecar.create', scope, { sidecar_guid: guid, sidecar_name: input.name, request: sidecarRequest(input) });
    return { sidecar: await loadSidecar(tx.db, guid), processTypes: [...input.process_types].sort() };
  });
}

export async function updateSidecar(ctx: Ctx, guid: string, input: UpdateSidecar): Promise<SidecarView> {
  const scope = await findVisibleSidecar(ctx, guid);
  await requireAppWriter(ctx, scope);
  const s = scope.sidecar;
  return ctx.store.write(async (tx) => {
    const types = input.process_types ?? (await processTypesOf(tx.db, [s.guid])).get(s.guid) ?? [];
    const memory = input.memory_in_mb !== undefined ? input.memory_in_mb : s.memory_in_mb;
    if (input.name !== undefined && input.name !== s.name) await assertNameFree(tx, s.app_guid, input.name, s.guid);
    await assertMemoryFits(tx, s.app_guid, types, memory, s.guid);
    await tx.update('sidecars', s.guid, {
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.command !== undefined ? { command: input.command } : {}),
      ...(input.memory_in_mb !== undefined ? { memory_in_mb: input.memory_in_mb } : {}),
    }, { expectedGeneration: s.generation });
    if (input.process_types) await setProcessTypes(tx, s, input.process_types);
    await auditApp(tx, ctx, 'sidecar.update', scope, { sidecar_guid: s.guid, sidecar_name: input.name ?? s.name, request: sidecarRequest(input) });
    return { sidecar: await loadSidecar(tx.db, s.guid), processTypes: [...types].sort() };
  });
}

export async function deleteSidecar(ctx: Ctx, guid: string): Promise<void> {
  const scope = await findVisibleSidecar(ctx, guid);
  await requireAppWriter(ctx, scope);
  await ctx.store.write(async (tx) => {
    await tx.db.deleteFrom('sidecar_process_types').where('sidecar_guid', '=', guid).execute();
    await tx.delete('sidecars', guid);
    await auditApp(tx, ctx, 'sidecar.delete', scope, { sidecar_guid: guid, sidecar_name: scope.sidecar.name });
  });
}

/** Commands may carry secrets (as process commands do): audit events record that one was given, not its text. */
function sidecarRequest(input: UpdateSidecar): Record<string, unknown> {
  return input.command !== undefined ? { ...input, command: '[PRIVATE DATA HIDDEN]' } : { ...input };
}
