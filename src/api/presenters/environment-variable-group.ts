import type { EnvironmentVariableGroup } from '../../services/environment-variable-groups.ts';
import type { Linker } from '../cf/links.ts';
import { cfTime } from '../cf/timestamps.ts';

export function presentEnvironmentVariableGroup(group: EnvironmentVariableGroup, l: Linker) {
  return {
    updated_at: cfTime(group.updatedAt),
    name: group.name,
    var: group.variables,
    links: { self: l.link(`/v3/environment_variable_groups/${group.name}`) },
  };
}
