import { parseJsonObject } from '../../domain/apps.ts';
import type { Metadata } from '../../domain/metadata.ts';
import { REDACTED, REDACTED_IN_LISTS } from '../../domain/processes.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { base, metadataOf, toOne } from '../cf/presenter.ts';

function checksumOf(d: Pick<Row<'droplets'>, 'checksum_sha256' | 'checksum_sha1'>) {
  if (d.checksum_sha256) return { type: 'sha256', value: d.checksum_sha256 };
  if (d.checksum_sha1) return { type: 'sha1', value: d.checksum_sha1 };
  return null;
}

function buildpacksOf(json: string): unknown[] {
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

/**
 * A droplet. Process types and execution metadata are secrets of the space: without secret access they are
 * redacted (`[PRIVATE DATA HIDDEN]`, or `… IN LISTS` when `inList`).
 */
export function presentDroplet(d: Row<'droplets'>, metadata: Metadata | undefined, showSecrets: boolean, l: Linker, inList = false) {
  const self = `/v3/droplets/${d.guid}`;
  const buildpack = d.lifecycle_type !== 'docker';
  const hidden = inList ? REDACTED_IN_LISTS : REDACTED;
  return {
    ...base(d),
    state: d.state,
    error: d.error,
    lifecycle: { type: d.lifecycle_type, data: {} },
    checksum: buildpack ? checksumOf(d) : null,
    buildpacks: buildpack ? buildpacksOf(d.buildpacks) : null,
    stack: buildpack ? d.stack : null,
    image: d.image,
    execution_metadata: showSecrets ? d.execution_metadata : hidden,
    process_types: showSecrets ? parseJsonObject(d.process_types) : { redacted_message: hidden },
    relationships: { app: toOne(d.app_guid) },
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      ...(d.package_guid ? { package: l.link(`/v3/packages/${d.package_guid}`) } : {}),
      app: l.link(`/v3/apps/${d.app_guid}`),
      assign_current_droplet: l.link(`/v3/apps/${d.app_guid}/relationships/current_droplet`, 'PATCH'),
      ...(d.state === 'STAGED' && buildpack ? { download: l.link(`${self}/download`) } : {}),
      ...(d.state === 'AWAITING_UPLOAD' ? { upload: l.link(`${self}/upload`, 'POST') } : {}),
    },
  };
}
