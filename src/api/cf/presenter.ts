import type { Metadata } from '../../domain/metadata.ts';
import { cfTime } from './timestamps.ts';

/** The members every resource starts with, in upstream key order. */
export function base(row: { guid: string; created_at: string; updated_at: string }) {
  return { guid: row.guid, created_at: cfTime(row.created_at), updated_at: cfTime(row.updated_at) };
}

/** `{"data": {"guid": …}}`, or `{"data": null}` for an unset optional parent. */
export const toOne = (guid: string | null | undefined) => ({ data: guid ? { guid } : null });
export const toMany = (guids: string[]) => ({ data: guids.map((guid) => ({ guid })) });

export const metadataOf = (m: Metadata | undefined): Metadata => m ?? { labels: {}, annotations: {} };
