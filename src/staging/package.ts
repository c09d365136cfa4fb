import fs from 'node:fs/promises';
import path from 'node:path';
import { KilnError } from '../domain/errors.ts';
import { parseResourceMode, type ResourceCache, type ResourceFingerprint } from '../blobstore/resource-cache.ts';
import { ArchiveError, isInside, type ExtractLimits } from './archive.ts';
import { extractZip, zipDirectory } from './zip.ts';

export interface BuildPackageInput {
  /** The uploaded `bits` zip, or null when every file was matched from the cache. */
  bitsZip: string | null;
  /** The upload's `resources` field: files to take from the resource cache. */
  resources: ResourceFingerprint[];
  cache: ResourceCache;
  /** A scratch directory owned by the caller; removed by the caller afterwards. */
  workDir: string;
  limits?: Partial<ExtractLimits>;
  /** Whether to add the uploaded files to the cache, so the next push can skip them. Default true. */
  cacheUploadedFiles?: boolean;
}

export interface BuiltPackage {
  /** The package zip (inside workDir): uploaded and cached files merged, modes preserved. */
  zipPath: string;
  /** The merged tree it was made from (inside workDir). */
  dir: string;
  files: number;
}

/**
 * Builds a package as Cloud Controller does on upload: unzip the uploaded bits safely, copy in each matched
 * resource from the cache (the resource wins over an uploaded file at the same path), then zip the result.
 * Nothing is written outside `workDir`; invalid input raises a KilnError before any blob is stored.
 */
export async function buildPackage(input: BuildPackageInput): Promise<BuiltPackage> {
  const dir = path.join(input.workDir, 'package');
  const planned = input.resources.map((r) => ({ ...r, dest: resourceDestination(dir, r), modeBits: parseResourceMode(r.mode, r.path) }));

  if (input.bitsZip !== null) {
    await extractZip(input.bitsZip, dir, { kind: 'app', limits: input.limits ?? {} });
    if (input.cacheUploadedFiles !== false) await input.cache.addDirectory(dir);
  } else {
    await fs.mkdir(dir, { recursive: true });
  }

  for (const r of planned) {
    if (!(await input.cache.has(r.sha1))) {
      throw new ArchiveError('missing-resource', `Resource ${r.path} (${r.sha1}) is not in the resource cache`, 'app');
    }
    await assertNoLinkOnPath(dir, r.dest, r.path);
    await fs.rm(r.dest, { force: true });
    await input.cache.copyTo(r.sha1, r.dest, r.modeBits);
  }

  const zipPath = path.join(input.workDir, 'package.zip');
  const files = await zipDirectory(dir, zipPath);
  return { zipPath, dir, files };
}

function resourceDestination(root: string, r: ResourceFingerprint): string {
  const name = r.path.replace(/\\/g, '/');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (
    name.length === 0 ||
    name.includes('\0') ||
    name.startsWith('/') ||
    /^[A-Za-z]:/.test(name) ||
    parts.includes('..') ||
    parts.length === 0
  ) {
    throw new KilnError('AppResourcesFilePathInvalid', `Path '${r.path}' is not within the app`);
  }
  const dest = path.join(root, ...parts);
  if (!isInside(root, dest) || dest === root) {
    throw new KilnError('AppResourcesFilePathInvalid', `Path '${r.path}' is not within the app`);
  }
  return dest;
}

/** A resource must not be written through a symlink the uploaded zip planted (even one pointing inside). */
async function assertNoLinkOnPath(root: string, dest: string, original: string): Promise<void> {
  let current = dest;
  while (current !== root) {
    const st = await fs.lstat(current).catch(() => null);
    if (st?.isSymbolicLink() || (current !== dest && st !== null && !st.isDirectory())) {
      throw new KilnError('AppResourcesFilePathInvalid', `Path '${original}' is not within the app`);
    }
    if (current === dest && st?.isDirectory()) {
      throw new KilnError('AppResourcesFilePathInvalid', `Path '${original}' is a directory in the upload`);
    }
    current = path.dirname(current);
  }
}
