import { SPACE_FEATURES } from '../../domain/spaces.ts';
import type { Metadata } from '../../domain/metadata.ts';
import type { SpaceFeature, UsageSummary } from '../../services/spaces.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { base, metadataOf, toOne } from '../cf/presenter.ts';

export function presentSpace(space: Row<'spaces'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/spaces/${space.guid}`;
  return {
    ...base(space),
    name: space.name,
    relationships: {
      organization: toOne(space.organization_guid),
      quota: toOne(space.space_quota_guid),
    },
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      organization: l.link(`/v3/organizations/${space.organization_guid}`),
      features: l.link(`${self}/features`),
      apply_manifest: l.link(`${self}/actions/apply_manifest`, 'POST'),
      ...(space.space_quota_guid ? { quota: l.link(`/v3/space_quotas/${space.space_quota_guid}`) } : {}),
    },
  };
}

export const presentSpaceFeature = (f: SpaceFeature) => ({
  name: f.name,
  description: SPACE_FEATURES[f.name],
  enabled: f.enabled,
});

/** `GET /v3/spaces/:guid/usage_summary` and `GET /v3/organizations/:guid/usage_summary`. */
export function presentUsageSummary(
  owner: { type: 'space' | 'organization'; guid: string },
  usage: UsageSummary,
  l: Linker,
) {
  const path = `/v3/${owner.type === 'space' ? 'spaces' : 'organizations'}/${owner.guid}`;
  return {
    usage_summary: usage,
    links: {
      self: l.link(`${path}/usage_summary`),
      [owner.type]: l.link(path),
    },
  };
}
