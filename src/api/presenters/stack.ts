import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

export function presentStack(stack: Row<'stacks'>, metadata: Metadata | undefined, l: Linker) {
  return {
    guid: stack.guid,
    created_at: cfTime(stack.created_at),
    updated_at: cfTime(stack.updated_at),
    name: stack.name,
    description: stack.description,
    state: stack.state,
    state_reason: stack.state_reason,
    // Upstream falls back to the stack name when no image is configured.
    run_rootfs_image: stack.run_rootfs_image ?? stack.name,
    build_rootfs_image: stack.build_rootfs_image ?? stack.name,
    default: stack.is_default === 1,
    metadata: metadataOf(metadata),
    links: { self: l.link(`/v3/stacks/${stack.guid}`) },
  };
}
