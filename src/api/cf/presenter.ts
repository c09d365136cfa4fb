import type { Metadata } from '../../domain/metadata.ts';

/** `{"data": {"guid": …}}`, or `{"data": null}` for an unset optional parent. */
export const toOne = (guid: string | null | undefined) => ({ data: guid ? { guid } : null });
export const toMany = (guids: string[]) => ({ data: guids.map((guid) => ({ guid })) });

export const metadataOf = (m: Metadata | undefined): Metadata => m ?? { labels: {}, annotations: {} };
