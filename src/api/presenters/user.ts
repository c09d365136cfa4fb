import type { Metadata } from '../../domain/metadata.ts';
import { presentationName } from '../../domain/users.ts';
import type { UserRow } from '../../services/users.ts';
import type { Linker } from '../cf/links.ts';
import { base, metadataOf } from '../cf/presenter.ts';

/** User guids may be client ids with any characters, so they are escaped in links. */
export const userPath = (guid: string) => `/v3/users/${encodeURIComponent(guid)}`;

export function presentUser(user: UserRow, metadata: Metadata | undefined, l: Linker) {
  return {
    ...base(user),
    username: user.username,
    presentation_name: presentationName(user),
    origin: user.origin,
    metadata: metadataOf(metadata),
    links: { self: l.link(userPath(user.guid)) },
  };
}
