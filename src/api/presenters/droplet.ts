import { parseJsonObject } from '../../domain/apps.ts';
import type { Metadata } from '../../domain/metadata.ts';
import { REDACTED, REDACTED_IN_LISTS } from '../../domain/processes.ts';
import type { Row } from '../../store/schema.ts';
import type { Link, Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

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
  const app = l.link(`/v3/apps/${d.app_guid}`);
  const assign = l.link(`/v3/apps/${d.app_guid}/relationships/current_droplet`, 'PATCH');
  // No spreads (see presentSpace): `package` sits before `app`, so it takes a second literal; the trailing
  // optional links are assigned.
  const links: { self: Link; package?: Link; app: Link; assign_current_droplet: Link; download?: Link; upload?: Link } =
    d.package_guid
      ? { self: l.link(self), package: l.link(`/v3/packages/${d.package_guid}`), app, assign_current_droplet: assign }
      : { self: l.link(self), app, assign_current_droplet: assign };
  if (d.state === 'STAGED' && buildpack) links.download = l.link(`${self}/download`);
  if (d.state === 'AWAITING_UPLOAD') links.upload = l.link(`${self}/upload`, 'POST');
  return {
    guid: d.guid,
    created_at: cfTime(d.created_at),
    updated_at: cfTime(d.updated_at),
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
    links,
  };
}
