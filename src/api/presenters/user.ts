import type { Metadata } from '../../domain/metadata.ts';
import { presentationName } from '../../domain/users.ts';
import type { UserRow } from '../../services/users.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** User guids may be client ids with any characters, so they are escaped in links. */
export const userPath = (guid: string) => `/v3/users/${encodeURIComponent(guid)}`;

export function presentUser(user: UserRow, metadata: Metadata | undefined, l: Linker) {
  return {
    guid: user.guid,
    created_at: cfTime(user.created_at),
    updated_at: cfTime(user.updated_at),
    username: user.username,
    presentation_name: presentationName(user),
    origin: user.origin,
    metadata: metadataOf(metadata),
    links: { self: l.link(userPath(user.guid)) },
  };
}
