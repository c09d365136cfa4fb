import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { KilnError } from '../domain/errors.ts';
import type { Store } from '../store/store.ts';
import { FilesystemBlobstore } from '../blobstore/filesystem.ts';
import { parseEncryptionKey } from '../store/secret-box.ts';
import { ResourceCache } from '../blobstore/resource-cache.ts';

/**
 * Everything packages, droplets and staging need besides the database: the blobstore, the resource cache
 * (inside it), scratch space for uploads and staging, the per-app buildpack caches and the signer of
 * download URLs. One instance is shared by the API and the build controller.
 */
export interface Bits {
  blobstore: FilesystemBlobstore;
  resourceCache: ResourceCache;
  /** Scratch directory for uploads and staging; emptied at start (anything there is from a crashed run). */
  workRoot: string;
  /** Persistent buildpack caches, one directory per app. */
  buildpackCacheRoot: string;
  maxPackageBytes: number;
  /** Signs and checks the short-lived URLs that package/droplet downloads redirect to. */
  urls: BlobUrlSigner;
}

export const packageBlobKey = (guid: string) => `packages/${guid}`;
export const dropletBlobKey = (guid: string) => `droplets/${guid}`;
/** What a remote staging run (a Kubernetes Job) downloads: the package, the buildpacks and the staging settings. */
export const stagingInputBlobKey = (buildGuid: string) => `staging-input/${buildGuid}`;
/** Where a remote staging run uploads the droplet it built. */
export const stagingDropletBlobKey = (buildGuid: string) => `staging-droplets/${buildGuid}`;

/** The row a package or droplet blob key belongs to (the inverse of the two above), or undefined for another key. */
export function blobKeyOwner(key: string): { table: 'packages' | 'droplets'; guid: string } | undefined {
  const m = /^(packages|droplets)\/([^/]+)$/.exec(key);
  return m ? { table: m[1] as 'packages' | 'droplets', guid: m[2]! } : undefined;
}

/**
 * Creates the filesystem blobstore under `<data dir>/blobs` and prepares scratch space. Call once per
 * process and share the result (the API's AppDeps.bits and the build controller).
 */
export async function createBlobstore(config: Config): Promise<Bits> {
  // Blobs live in the shared dir: with several replicas it is storage they all mount (see README, "Several replicas").
  const blobstore = new FilesystemBlobstore(path.join(config.sharedDir, 'blobs'));
  await blobstore.init();
  const workRoot = path.join(config.dataDir, 'work');
  await fs.rm(workRoot, { recursive: true, force: true });
  await fs.mkdir(workRoot, { recursive: true });
  const buildpackCacheRoot = path.join(config.dataDir, 'buildpack-cache');
  await fs.mkdir(buildpackCacheRoot, { recursive: true });
  return {
    blobstore,
    resourceCache: new ResourceCache(blobstore),
    workRoot,
    buildpackCacheRoot,
    maxPackageBytes: config.maxPackageBytes,
    urls: new BlobUrlSigner(await urlSigningKey(config)),
  };
}

/**
 * The key signing blob URLs: a URL one replica signs must verify on every other (a pod may fetch its droplet
 * through another replica). With a shared dir, the key kept there; else derived from KILN_ENCRYPTION_KEY when it is
 * set (replicas sharing that key agree); else random per process.
 */
async function urlSigningKey(config: Config): Promise<Buffer> {
  if (config.sharedDir !== config.dataDir) return sharedUrlKey(config.sharedDir);
  if (config.encryptionKey === undefined) return randomBytes(32);
  return createHmac('sha256', parseEncryptionKey(config.encryptionKey)).update('kiln blob url signing').digest();
}

/** The blob URL signing key in the shared dir, created by whichever replica starts first. */
async function sharedUrlKey(dir: string): Promise<Buffer> {
  const file = path.join(dir, 'blob-url-key');
  await fs.mkdir(dir, { recursive: true });
  try {
    await fs.writeFile(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const hex = (await fs.readFile(file, 'utf8')).trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${file} does not hold a 32-byte hex key`);
  return Buffer.from(hex, 'hex');
}

const shared = new Map<string, Promise<Bits>>();

/**
 * The Bits of a data directory, created on first use. Lets the API and the build controller work before the
 * server passes an explicit instance; both end up with the same one for the same data directory.
 */
export function bitsFor(config: Config): Promise<Bits> {
  let bits = shared.get(config.dataDir);
  if (!bits) {
    bits = createBlobstore(config);
    shared.set(config.dataDir, bits);
    bits.catch(() => shared.delete(config.dataDir));
  }
  return bits;
}

/** Registers an explicitly created instance so `bitsFor` hands out the same one. */
export function shareBits(config: Config, bits: Bits): void {
  shared.set(config.dataDir, Promise.resolve(bits));
}

/**
 * Download URLs are redirects to `/blobs/<key>?expires=…&signature=…`, served without a token: the HMAC proves
 * the API authorized this download a moment ago, as a blobstore's signed URL does in Cloud Foundry.
 */
export class BlobUrlSigner {
  constructor(private readonly key: Buffer) {}

  private mac(blobKey: string, expires: number): string {
    return createHmac('sha256', this.key).update(`${blobKey}\n${expires}`).digest('hex');
  }

  /** Path and query of a URL that serves `blobKey` until `ttlSeconds` from now. */
  sign(blobKey: string, ttlSeconds = 3600, now = Date.now()): string {
    const expires = Math.floor(now / 1000) + ttlSeconds;
    return `/blobs/${blobKey}?expires=${expires}&signature=${this.mac(blobKey, expires)}`;
  }

  verify(blobKey: string, expires: string | undefined, signature: string | undefined, now = Date.now()): boolean {
    if (!expires || !signature || !/^\d{1,12}$/.test(expires) || !/^[0-9a-f]{64}$/.test(signature)) return false;
    const exp = Number(expires);
    if (exp * 1000 < now) return false;
    return timingSafeEqual(Buffer.from(this.mac(blobKey, exp), 'hex'), Buffer.from(signature, 'hex'));
  }

  /**
   * Path and query of a URL that accepts one PUT of `blobKey` until `ttlSeconds` from now (staging pods upload
   * droplets with it). Signed over a different text than downloads, so neither URL works as the other.
   */
  signUpload(blobKey: string, ttlSeconds = 3600, now = Date.now()): string {
    const expires = Math.floor(now / 1000) + ttlSeconds;
    return `/blobs/${blobKey}?expires=${expires}&signature=${this.mac(`PUT\n${blobKey}`, expires)}`;
  }

  verifyUpload(blobKey: string, expires: string | undefined, signature: string | undefined, now = Date.now()): boolean {
    return this.verify(`PUT\n${blobKey}`, expires, signature, now);
  }
}

/**
 * Marks a package or droplet whose upload failed as FAILED with the reason (when it is still
 * PROCESSING_UPLOAD), deleting the blob stored for it, if any. Best effort: the original error is what the
 * caller reports.
 */
export async function failUpload(
  store: Store,
  bits: Bits,
  upload: { table: 'packages' | 'droplets'; guid: string; storedKey: string | null; err: unknown },
): Promise<void> {
  if (upload.storedKey) await bits.blobstore.delete(upload.storedKey).catch(() => undefined);
  const reason = upload.err instanceof KilnError ? upload.err.detail : 'An unknown error occurred.';
  await store
    .write(async (tx) => {
      // Both tables have the same upload columns; kysely cannot type an update over a union of tables.
      await tx.update(upload.table as 'packages', upload.guid, { state: 'FAILED', error: reason }, { where: (eb) => eb('state', '=', 'PROCESSING_UPLOAD') });
    })
    .catch(() => undefined);
}
