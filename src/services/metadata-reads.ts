import type { Metadata } from '../domain/metadata.ts';
import { loadMetadata, loadOneMetadata } from '../store/metadata.ts';
import type { Ctx } from './context.ts';

/** Labels and annotations of one resource (reads need only the store, not the caller). */
export function metadataOf(ctx: Pick<Ctx, 'store'>, resourceType: string, guid: string): Promise<Metadata> {
  return loadOneMetadata(ctx.store.db, resourceType, guid);
}

/** Labels and annotations of many resources, by guid (every guid present, empty when it has none). */
export function metadataOfMany(ctx: Pick<Ctx, 'store'>, resourceType: string, guids: string[]): Promise<Map<string, Metadata>> {
  return loadMetadata(ctx.store.db, resourceType, guids);
}
