import type { Ctx } from './context.ts';

/** How many rows a table holds (the counts of `/v3/info/usage_summary`). */
export async function countRows(ctx: Pick<Ctx, 'store'>, table: 'domains' | 'organizations'): Promise<number> {
  return Number((await ctx.store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst())?.n ?? 0);
}
