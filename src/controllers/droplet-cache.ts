import fs from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Blobstore } from '../blobstore/blobstore.ts';
import { extractDroplet } from '../staging/droplet.ts';

/**
 * Extracted droplets for the local runtime, one directory per droplet guid under `<dataDir>/droplets/`.
 * Instances of a droplet share its directory (as a fast local stand-in for a container's copy). Extraction goes
 * to a temporary directory renamed into place, so a crash mid-way never leaves a half droplet behind.
 */
export class DropletCache {
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly root: string,
    private readonly blobs: Blobstore,
  ) {}

  dirFor(dropletGuid: string): string {
    return path.join(this.root, dropletGuid);
  }

  ensure(dropletGuid: string, blobKey: string): Promise<string> {
    let p = this.pending.get(dropletGuid);
    if (!p) {
      p = this.extract(dropletGuid, blobKey).finally(() => this.pending.delete(dropletGuid));
      this.pending.set(dropletGuid, p);
    }
    return p;
  }

  private async extract(dropletGuid: string, blobKey: string): Promise<string> {
    const dir = this.dirFor(dropletGuid);
    if (await fs.stat(path.join(dir, 'app')).then(() => true, () => false)) return dir;
    await fs.mkdir(this.root, { recursive: true });
    const tmp = path.join(this.root, `.tmp-${dropletGuid}-${randomUUID()}`);
    try {
      await extractDroplet(await this.blobs.localPath(blobKey), tmp);
      await fs.rename(tmp, dir);
    } catch (err) {
      await fs.rm(tmp, { recursive: true, force: true });
      // Another extraction may have won the rename race; that result is as good as ours.
      if (await fs.stat(path.join(dir, 'app')).then(() => true, () => false)) return dir;
      throw err;
    }
    return dir;
  }

  /** Removes extracted droplets not in `keep` (called by garbage collection, never for running droplets). */
  async prune(keep: ReadonlySet<string>): Promise<void> {
    const entries = await fs.readdir(this.root).catch(() => [] as string[]);
    for (const name of entries) {
      if (!keep.has(name)) await fs.rm(path.join(this.root, name), { recursive: true, force: true });
    }
  }
}
