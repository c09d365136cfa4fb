import type { Kysely } from 'kysely';
import { badQuery, notAuthorized, notFound, unprocessable } from '../domain/errors.ts';
import type { ListParams, ListSpec } from '../domain/list-params.ts';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import {
  DEFAULT_STACK_STATE,
  defaultStackStateWarning,
  LIFECYCLE_TYPES,
  parseDefaultFilter,
  STACK_NAME_TAKEN,
  type CreateStack,
  type UpdateStack,
} from '../domain/stacks.ts';
import { isUniqueViolation } from '../store/errors.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import { deleteMetadata, saveMetadata } from '../store/metadata.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import { listApps } from './apps.ts';
import { recordAudit } from '../lifecycle/audit.ts';
import type { Ctx } from './context.ts';
import { nameInUse } from './name-in-use.ts';

export const STACK_LIST: ListSpec = {
  orderBy: ['name'],
  filters: ['names'],
  params: ['default'],
  labelSelector: true,
};

/** `include` values of app lists; `org` is an alias of `space.organization`'s org part. */
export const STACK_APP_INCLUDES = ['space', 'org', 'space.organization'] as const;

/** The query `GET /v3/stacks/:guid/apps` accepts: that of `GET /v3/apps` (the stack filter is implied). */
export const STACK_APPS_LIST: ListSpec = {
  orderBy: ['name', 'state'],
  filters: ['names', 'space_guids', 'organization_guids', 'stacks'],
  params: ['lifecycle_type'],
  labelSelector: true,
  include: STACK_APP_INCLUDES,
};

// ---- apps on a stack (the one place a future apps table plugs in) ----

/** Whether any app (of any tenant) uses the stack; a stack in use cannot be deleted. */
async function appsUseStack(db: Kysely<Database>, stackName: string): Promise<boolean> {
  return (await db.selectFrom('apps').select('guid').where('lifecycle_stack', '=', stackName).executeTakeFirst()) !== undefined;
}

// ---- reading ----

export async function listStacks(ctx: Ctx, params: ListParams): Promise<Page<Row<'stacks'>>> {
  const isDefault = parseDefaultFilter(params.params.default);
  if (typeof isDefault === 'string') throw badQuery(isDefault);
  // Stacks are platform-wide: every authenticated caller sees all of them.
  let q = ctx.store.db.selectFrom('stacks').selectAll('stacks');
  if (params.filters.names) q = q.where('stacks.name', 'in', params.filters.names);
  if (isDefault !== undefined) q = q.where('stacks.is_default', '=', isDefault ? 1 : 0);
  return listPage(q, listOptions('stacks', params));
}

export async function getStack(ctx: Ctx, guid: string): Promise<Row<'stacks'>> {
  const stack = await ctx.store.db.selectFrom('stacks').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!stack) throw notFound('Stack');
  return stack;
}

export async function listStackApps(ctx: Ctx, stack: Row<'stacks'>, params: ListParams): Promise<Page<Row<'apps'>>> {
  const lifecycle = params.params.lifecycle_type;
  if (lifecycle !== undefined && !(LIFECYCLE_TYPES as readonly string[]).includes(lifecycle)) {
    throw badQuery(`Invalid lifecycle_type: '${lifecycle}'`);
  }
  return listApps(ctx, params, { stack: stack.name });
}

// ---- writing (admins only) ----

/** Stacks are managed by admins only; checked before the body is looked at, as upstream does. */
export function requireStackAdmin(ctx: Ctx): void {
  if (!ctx.access.admin) throw notAuthorized();
}

/** The stack an update or delete is about: 404 when missing, then 403 for non-admins. */
export async function getStackForWrite(ctx: Ctx, guid: string): Promise<Row<'stacks'>> {
  const stack = await getStack(ctx, guid);
  requireStackAdmin(ctx);
  return stack;
}

const loadStack = (db: Kysely<Database>, guid: string) =>
  db.selectFrom('stacks').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();

function auditStack(tx: WriteTx, ctx: Ctx, type: string, stack: Pick<Row<'stacks'>, 'guid' | 'name'>, data?: unknown) {
  return recordAudit(tx, {
    type: `audit.stack.${type}`,
    actor: ctx.principal,
    target: { type: 'stack', guid: stack.guid, name: stack.name },
    data: data === undefined ? {} : { request: data },
  });
}

export async function createStack(ctx: Ctx, input: CreateStack): Promise<{ stack: Row<'stacks'>; metadata: Metadata }> {
  requireStackAdmin(ctx);
  validateMetadataRequest(input.metadata);
  // Names are stored trimmed, as upstream's model does.
  const name = input.name.trim();
  try {
    return await ctx.store.write(async (tx) => {
      if (await nameInUse(tx.db, 'stacks', name)) throw unprocessable(STACK_NAME_TAKEN);
      const guid = newGuid();
      await tx.insert('stacks', {
        guid,
        name,
        description: input.description ?? null,
        build_rootfs_image: null,
        run_rootfs_image: null,
        is_default: 0,
        state: input.state ?? DEFAULT_STACK_STATE,
        state_reason: input.state_reason ?? null,
      });
      const metadata = await saveMetadata(tx, 'stacks', guid, input.metadata);
      await auditStack(tx, ctx, 'create', { guid, name }, input);
      return { stack: await loadStack(tx.db, guid), metadata };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw unprocessable(STACK_NAME_TAKEN);
    throw err;
  }
}

/** Updates state and metadata; returns a warning when the default stack's state was set. */
export async function updateStack(
  ctx: Ctx,
  stack: Row<'stacks'>,
  input: UpdateStack,
): Promise<{ stack: Row<'stacks'>; metadata: Metadata; warning?: string }> {
  requireStackAdmin(ctx);
  validateMetadataRequest(input.metadata);
  const result = await ctx.store.write(async (tx) => {
    await tx.update('stacks', stack.guid, {
      ...(input.state !== undefined ? { state: input.state } : {}),
      ...(input.state_reason !== undefined ? { state_reason: input.state_reason } : {}),
    }, { expectedGeneration: stack.generation });
    const metadata = await saveMetadata(tx, 'stacks', stack.guid, input.metadata);
    await auditStack(tx, ctx, 'update', stack, input);
    return { stack: await loadStack(tx.db, stack.guid), metadata };
  });
  const warning = stack.is_default === 1 && input.state !== undefined ? defaultStackStateWarning(stack.name) : undefined;
  return warning ? { ...result, warning } : result;
}

/** Deletes a stack at once (204); refused while apps use it. */
export async function deleteStack(ctx: Ctx, stack: Row<'stacks'>): Promise<void> {
  requireStackAdmin(ctx);
  await ctx.store.write(async (tx) => {
    if (await appsUseStack(tx.db, stack.name)) {
      throw unprocessable(`Cannot delete stack '${stack.name}' because apps are currently using the stack.`);
    }
    await auditStack(tx, ctx, 'delete', stack);
    await deleteMetadata(tx, 'stacks', [stack.guid]);
    if (!(await tx.delete('stacks', stack.guid))) throw notFound('Stack');
  });
}
