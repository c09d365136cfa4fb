import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { base, metadataOf } from '../cf/presenter.ts';

export function presentStack(stack: Row<'stacks'>, metadata: Metadata | undefined, l: Linker) {
  return {
    ...base(stack),
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
