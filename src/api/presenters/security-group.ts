import type { Bindings } from '../../services/security-groups.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { toMany } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

/** Security groups carry no metadata upstream; rules are rendered exactly as they were stored. */
export function presentSecurityGroup(group: Row<'security_groups'>, bindings: Bindings | undefined, l: Linker) {
  return {
    guid: group.guid,
    created_at: cfTime(group.created_at),
    updated_at: cfTime(group.updated_at),
    name: group.name,
    rules: JSON.parse(group.rules) as unknown[],
    globally_enabled: { running: group.running_default === 1, staging: group.staging_default === 1 },
    relationships: {
      running_spaces: toMany(bindings?.running ?? []),
      staging_spaces: toMany(bindings?.staging ?? []),
    },
    links: { self: l.link(`/v3/security_groups/${group.guid}`) },
  };
}
