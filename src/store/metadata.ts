import { CompiledQuery, type Kysely } from 'kysely';
import { joinKey, mergeMetadata, splitKey, type Metadata, type MetadataRequest } from '../domain/metadata.ts';
import type { Database } from './schema.ts';
import type { WriteTx } from './store.ts';

const empty = (): Metadata => ({ labels: {}, annotations: {} });

// SQL text of the metadata queries per dialect, table and chunk size: every list page runs the same two
// queries, and building and compiling them through kysely each time cost more than SQLite took to run them.
const metadataSql = new WeakMap<object, Map<string, string>>();

async function metadataRows(db: Kysely<Database>, table: 'labels' | 'annotations', resourceType: string, guids: string[]) {
  const parameters = [resourceType, ...guids];
  const cache = metadataSql.get(db.getExecutor().adapter) ?? new Map<string, string>();
  metadataSql.set(db.getExecutor().adapter, cache);
  const key = `${table}:${guids.length}`;
  let text = cache.get(key);
  if (text === undefined) {
    const compiled = db
      .selectFrom(table)
      .select(['resource_guid', 'key_prefix', 'key_name', 'value'])
      .where('resource_type', '=', resourceType)
      .where('resource_guid', 'in', guids)
      .orderBy('id')
      .compile();
    // Only reused when the placeholders are exactly [resourceType, ...guids], in that order.
    const same = compiled.parameters.length === parameters.length && compiled.parameters.every((p, i) => p === parameters[i]);
    if (!same) return (await db.executeQuery(compiled)).rows;
    text = compiled.sql;
    cache.set(key, text);
  }
  return (await db.executeQuery<MetadataRow>(CompiledQuery.raw(text, parameters))).rows;
}

interface MetadataRow {
  resource_guid: string;
  key_prefix: string;
  key_name: string;
  value: string;
}

/** Labels and annotations of many resources in two queries. */
export async function loadMetadata(
  db: Kysely<Database>,
  resourceType: string,
  guids: string[],
): Promise<Map<string, Metadata>> {
  const out = new Map<string, Metadata>(guids.map((g) => [g, empty()]));
  if (guids.length === 0) return out;
  for (const table of ['labels', 'annotations'] as const) {
    // Chunked so a page of 5000 stays under SQLite's bound-parameter limit.
    for (let i = 0; i < guids.length; i += 900) {
      const rows = await metadataRows(db, table, resourceType, guids.slice(i, i + 900));
      for (const r of rows) {
        const m = out.get(r.resource_guid);
        if (m) m[table][joinKey(r.key_prefix, r.key_name)] = r.value;
      }
    }
  }
  return out;
}

export async function loadOneMetadata(db: Kysely<Database>, resourceType: string, guid: string): Promise<Metadata> {
  return (await loadMetadata(db, resourceType, [guid])).get(guid) ?? empty();
}

/** Applies a metadata request (set/delete per key) inside a write; returns the resulting metadata. */
export async function saveMetadata(
  tx: WriteTx,
  resourceType: string,
  guid: string,
  request: MetadataRequest | undefined,
): Promise<Metadata> {
  const current = await loadOneMetadata(tx.db, resourceType, guid);
  if (!request || (!request.labels && !request.annotations)) return current;
  const next = mergeMetadata(current, request);
  for (const table of ['labels', 'annotations'] as const) {
    const changes = request[table];
    if (!changes) continue;
    for (const [key, value] of Object.entries(changes)) {
      const { prefix, name } = splitKey(key);
      await tx.db
        .deleteFrom(table)
        .where('resource_guid', '=', guid)
        .where('key_prefix', '=', prefix)
        .where('key_name', '=', name)
        .execute();
      if (value !== null) {
        await tx.db
          .insertInto(table)
          .values({ resource_type: resourceType, resource_guid: guid, key_prefix: prefix, key_name: name, value })
          .execute();
      }
    }
  }
  return next;
}

export async function deleteMetadata(tx: WriteTx, resourceType: string, guids: string[]): Promise<void> {
  if (guids.length === 0) return;
  for (const table of ['labels', 'annotations'] as const) {
    for (let i = 0; i < guids.length; i += 900) {
      await tx.db
        .deleteFrom(table)
        .where('resource_type', '=', resourceType)
        .where('resource_guid', 'in', guids.slice(i, i + 900))
        .execute();
    }
  }
}
