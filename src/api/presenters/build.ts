import { obfuscateBuildpack } from '../../domain/apps.ts';
import { parseBuildLifecycleData } from '../../domain/builds.ts';
import type { Metadata } from '../../domain/metadata.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

function lifecycleOf(b: Pick<Row<'builds'>, 'lifecycle_type' | 'lifecycle_data'>) {
  if (b.lifecycle_type === 'docker') return { type: 'docker', data: {} };
  const data = parseBuildLifecycleData(b.lifecycle_data);
  return { type: b.lifecycle_type, data: { buildpacks: data.buildpacks.map(obfuscateBuildpack), stack: data.stack } };
}

export function presentBuild(b: Row<'builds'>, metadata: Metadata | undefined, l: Linker) {
  // Optional members are assigned rather than spread in: see presentSpace for why.
  const links: { self: Link; app: Link; droplet?: Link } = {
    self: l.link(`/v3/builds/${b.guid}`),
    app: l.link(`/v3/apps/${b.app_guid}`),
  };
  if (b.droplet_guid) links.droplet = l.link(`/v3/droplets/${b.droplet_guid}`);
  return {
    guid: b.guid,
    created_at: cfTime(b.created_at),
    updated_at: cfTime(b.updated_at),
    state: b.state,
    staging_memory_in_mb: b.staging_memory_in_mb,
    staging_disk_in_mb: b.staging_disk_in_mb,
    staging_log_rate_limit_bytes_per_second: Number(b.staging_log_rate_limit_bytes_per_second),
    error: b.error,
    lifecycle: lifecycleOf(b),
    package: { guid: b.package_guid },
    droplet: b.droplet_guid ? { guid: b.droplet_guid } : null,
    created_by: { guid: b.created_by_guid ?? '', name: b.created_by_name, email: b.created_by_email },
    relationships: { app: toOne(b.app_guid) },
    metadata: metadataOf(metadata),
    links,
  };
}
