import { SPACE_FEATURES } from '../../domain/spaces.ts';
import type { Metadata } from '../../domain/metadata.ts';
import type { SpaceFeature, UsageSummary } from '../../services/spaces.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

// Built as plain literals on purpose: `{ ...base(row), … }` followed by more members leaves V8 with slow
// objects (several µs each to build, and JSON.stringify falls off its fast path), which dominated list pages.
export function presentSpace(space: Row<'spaces'>, metadata: Metadata | undefined, l: Linker) {
  const self = l.href(`/v3/spaces/${space.guid}`);
  const quota = space.space_quota_guid;
  const links: {
    self: Link;
    organization: Link;
    features: Link;
    apply_manifest: Link;
    quota?: Link;
  } = {
    self: { href: self },
    organization: l.link(`/v3/organizations/${space.organization_guid}`),
    features: { href: `${self}/features` },
    apply_manifest: { href: `${self}/actions/apply_manifest`, method: 'POST' },
  };
  if (quota) links.quota = l.link(`/v3/space_quotas/${quota}`);
  return {
    guid: space.guid,
    created_at: cfTime(space.created_at),
    updated_at: cfTime(space.updated_at),
    name: space.name,
    relationships: {
      organization: toOne(space.organization_guid),
      quota: toOne(quota),
    },
    metadata: metadataOf(metadata),
    links,
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
