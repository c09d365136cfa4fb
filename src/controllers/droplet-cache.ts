import fs from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Blobstore } from '../blobstore/blobstore.ts';
import { extractDroplet } from '../staging/droplet.ts';

const TMP_PREFIX = '.tmp-';
const TRASH_PREFIX = '.trash-';
/** Long enough to cover a controller pass between handing a droplet out and the runtime reporting its instance. */
export const DEFAULT_PRUNE_GRACE_MS = 10 * 60 * 1000;

/**
 * Extracted droplets for the local runtime, one directory per droplet guid under `<dataDir>/droplets/`.
 * Instances of a droplet share its directory (as a fast local stand-in for a container's copy). Extraction goes
 * to a temporary directory renamed into place, so a crash mid-way never leaves a half droplet behind.
 */
export class DropletCache {
  private readonly pending = new Map<string, Promise<string>>();
  /** When each droplet was last handed out: a caller may be about to start it with a keep set computed earlier. */
  private readonly handedOut = new Map<string, number>();
  /** Removals in progress: an `ensure` of the same droplet waits for them and extracts it afresh. */
  private readonly removing = new Map<string, Promise<void>>();

  constructor(
    private readonly root: string,
    private readonly blobs: Blobstore,
    private readonly now: () => number = Date.now,
  ) {}

  dirFor(dropletGuid: string): string {
    return path.join(this.root, dropletGuid);
  }

  ensure(dropletGuid: string, blobKey: string): Promise<string> {
    // Recorded synchronously, so a prune deciding in the same tick already sees the droplet as in use.
    this.handedOut.set(dropletGuid, this.now());
    let p = this.pending.get(dropletGuid);
    if (!p) {
      // A failed removal is no reason not to extract: extract() checks what is on disk itself.
      const removal = (this.removing.get(dropletGuid) ?? Promise.resolve()).catch(() => undefined);
      p = removal
        .then(() => this.extract(dropletGuid, blobKey))
        .then((dir) => {
          // The grace counts from when the caller can use the directory, however long the extraction took.
          this.handedOut.set(dropletGuid, this.now());
          return dir;
        })
        .finally(() => this.pending.delete(dropletGuid));
      this.pending.set(dropletGuid, p);
    }
    return p;
  }

  private async extract(dropletGuid: string, blobKey: string): Promise<string> {
    const dir = this.dirFor(dropletGuid);
    if (await fs.stat(path.join(dir, 'app')).then(() => true, () => false)) return dir;
    await fs.mkdir(this.root, { recursive: true });
    const tmp = path.join(this.root, `${TMP_PREFIX}${dropletGuid}-${randomUUID()}`);
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

  /**
   * Removes extracted droplets not in `keep`, nor being extracted, nor handed out by `ensure` within `graceMs`
   * (a controller may have read the store before the keep set was computed and be about to start it), and the
   * leftovers of extractions or removals interrupted by a crash. A droplet is renamed away before it is deleted,
   * so an `ensure` racing the removal never sees a half-deleted directory. Returns the droplet guids removed.
   */
  async prune(keep: ReadonlySet<string>, opts: { graceMs?: number } = {}): Promise<string[]> {
    const graceMs = opts.graceMs ?? DEFAULT_PRUNE_GRACE_MS;
    const entries = await fs.readdir(this.root).catch(() => [] as string[]);
    const removed: string[] = [];
    for (const name of entries) {
      if (name.startsWith('.')) {
        if (this.isLeftover(name)) await fs.rm(path.join(this.root, name), { recursive: true, force: true });
        continue;
      }
      // Decided and marked without an await in between, so no `ensure` can slip between the check and the mark.
      if (!this.prunable(name, keep, graceMs)) continue;
      const trash = path.join(this.root, `${TRASH_PREFIX}${name}-${randomUUID()}`);
      const removal = (async () => {
        if (await fs.rename(path.join(this.root, name), trash).then(() => true, () => false)) {
          await fs.rm(trash, { recursive: true, force: true });
          removed.push(name);
        }
      })().finally(() => this.removing.delete(name));
      this.removing.set(name, removal);
      await removal;
    }
    for (const [guid, at] of this.handedOut) if (this.now() - at > graceMs) this.handedOut.delete(guid);
    return removed;
  }

  private prunable(dropletGuid: string, keep: ReadonlySet<string>, graceMs: number): boolean {
    if (keep.has(dropletGuid) || this.pending.has(dropletGuid) || this.removing.has(dropletGuid)) return false;
    const at = this.handedOut.get(dropletGuid);
    return at === undefined || this.now() - at > graceMs;
  }

  /** A temporary directory no extraction or removal in this process is using (one a crash left behind). */
  private isLeftover(name: string): boolean {
    for (const guid of [...this.pending.keys(), ...this.removing.keys()]) {
      if (name.startsWith(`${TMP_PREFIX}${guid}-`) || name.startsWith(`${TRASH_PREFIX}${guid}-`)) return false;
    }
    return name.startsWith(TMP_PREFIX) || name.startsWith(TRASH_PREFIX);
  }
}
