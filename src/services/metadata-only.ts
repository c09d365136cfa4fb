import type { Kysely } from 'kysely';
import { validateMetadataRequest, type Metadata } from '../domain/metadata.ts';
import { MetadataOnlySchema } from '../domain/services.ts';
import { saveMetadata } from '../store/metadata.ts';
import type { ResourceTable, Row } from '../store/schema.ts';
import type { Store } from '../store/store.ts';

/**
 * A PATCH that may change only `metadata` (service offerings, plans, credential and route bindings): parses the body
 * (anything else is refused by the strict schema), bumps the row's generation and updated_at, saves the labels and
 * annotations, and returns the row as now stored — in one transaction.
 */
export async function updateMetadataOnly<T extends ResourceTable>(
  store: Store,
  table: T,
  row: { guid: string; generation: number },
  body: unknown,
): Promise<{ row: Row<T>; metadata: Metadata }> {
  const input = MetadataOnlySchema.parse(body);
  validateMetadataRequest(input.metadata);
  return store.write(async (tx) => {
    // An empty patch: only generation and updated_at move (kysely cannot prove `{}` fits every table's update type).
    await tx.update(table, row.guid, {} as never, { expectedGeneration: row.generation });
    const metadata = await saveMetadata(tx, table, row.guid, input.metadata);
    // kysely cannot type a select over a table named by a type parameter; the row is that table's by construction.
    const db = tx.db as unknown as Kysely<Record<string, { guid: string }>>;
    const stored = (await db.selectFrom(table as string).selectAll().where('guid', '=', row.guid).executeTakeFirstOrThrow()) as unknown as Row<T>;
    return { row: stored, metadata };
  });
}
