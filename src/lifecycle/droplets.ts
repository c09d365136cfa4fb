import type { Row } from '../store/schema.ts';
import type { WriteTx } from '../store/store.ts';
import type { AppLifecycleType } from '../domain/apps.ts';

/** A droplet row with every column set; staging, create and copy fill in what they know. */
export function dropletValues(tx: WriteTx, v: Partial<Omit<Row<'droplets'>, 'id'>> & Pick<Row<'droplets'>, 'guid' | 'app_guid' | 'state'>) {
  return {
    created_at: tx.now,
    updated_at: tx.now,
    generation: 1,
    package_guid: null,
    build_guid: null,
    error: null,
    lifecycle_type: 'buildpack' as AppLifecycleType,
    process_types: '{}',
    execution_metadata: '',
    buildpacks: '[]',
    stack: null,
    image: null,
    checksum_sha256: null,
    checksum_sha1: null,
    blob_key: null,
    size_in_bytes: null,
    source_droplet_guid: null,
    ...v,
  };
}
