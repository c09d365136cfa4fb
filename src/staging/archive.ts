import fs from 'node:fs/promises';
import path from 'node:path';
import { KilnError } from '../domain/errors.ts';

/** Why an archive was refused; tests and logs use it, clients see the detail text. */
export type ArchiveRejection =
  | 'path-traversal'
  | 'absolute-path'
  | 'symlink-escape'
  | 'unsupported-entry'
  | 'too-many-entries'
  | 'too-large'
  | 'corrupt'
  | 'missing-resource';

/** What the archive is, which decides the wording of the message the client gets. */
export type ArchiveKind = 'app' | 'buildpack' | 'droplet';

const PREFIX: Record<ArchiveKind, string> = {
  app: 'The app upload is invalid',
  buildpack: 'Buildpack zip error',
  droplet: 'The droplet upload is invalid',
};

/**
 * A client-supplied archive that cannot be accepted. Always a 422 (CF-UnprocessableEntity): the request was
 * well-formed but its content is unusable, and nothing of it was kept.
 */
export class ArchiveError extends KilnError {
  readonly reason: ArchiveRejection;
  constructor(reason: ArchiveRejection, message: string, kind: ArchiveKind = 'app') {
    super('UnprocessableEntity', `${PREFIX[kind]}: ${message}`);
    this.reason = reason;
  }
}

export interface ExtractLimits {
  /** Entries (files, directories, links) the archive may hold. */
  maxEntries: number;
  /** Bytes the archive may expand to, counted as they are really decompressed, not as headers claim. */
  maxTotalBytes: number;
}

export const DEFAULT_EXTRACT_LIMITS: ExtractLimits = {
  maxEntries: 100_000,
  maxTotalBytes: 2 * 1024 * 1024 * 1024,
};

/**
 * Checks an archive entry name and returns it as a clean relative POSIX path ('' for the root itself).
 * Backslashes count as separators because Windows zip tools write them.
 */
export function safeEntryName(raw: string, kind: ArchiveKind): string {
  if (raw.includes('\0')) throw new ArchiveError('corrupt', `Invalid file name ${JSON.stringify(raw)}`, kind);
  const name = raw.replace(/\\/g, '/');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) {
    throw new ArchiveError('absolute-path', `Absolute path(s) not allowed: ${raw}`, kind);
  }
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new ArchiveError('path-traversal', `Relative path(s) outside of root folder: ${raw}`, kind);
  }
  return parts.join('/');
}

export function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Whether a symlink at `linkPath` (inside `root`) with `target` stays inside `root` — judged lexically, which
 * is only sound while no other symlink sits on the way; `verifySymlinks` checks the real paths afterwards.
 */
export function symlinkStaysInside(root: string, linkPath: string, target: string): boolean {
  if (target.length === 0 || path.isAbsolute(target) || /^[A-Za-z]:/.test(target) || target.includes('\0')) {
    return false;
  }
  return isInside(root, path.resolve(path.dirname(linkPath), target));
}

/**
 * After extraction, resolves every symlink under `root` for real: chains such as `a -> b/..` where `b` is
 * itself a link can leave the root even when each link looks harmless on its own.
 */
export async function verifySymlinks(root: string, kind: ArchiveKind): Promise<void> {
  const realRoot = await fs.realpath(root);
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isSymbolicLink()) continue;
    const link = path.join(entry.parentPath, entry.name);
    const target = await fs.readlink(link);
    if (!symlinkStaysInside(root, link, target)) {
      throw new ArchiveError('symlink-escape', `Symlink(s) point outside of root folder: ${path.relative(root, link)}`, kind);
    }
    let real: string;
    try {
      real = await fs.realpath(link);
    } catch {
      // Dangling (or looping) links cannot be followed out of the root; the lexical check above suffices.
      continue;
    }
    if (!isInside(realRoot, real)) {
      throw new ArchiveError('symlink-escape', `Symlink(s) point outside of root folder: ${path.relative(root, link)}`, kind);
    }
  }
}

/**
 * Prepares `dest` for an extraction that must leave nothing behind on failure: a new directory is removed
 * entirely, an existing empty one is emptied again. Refuses non-empty directories so cleanup never deletes
 * anything the extraction did not write.
 */
export async function prepareDestination(dest: string): Promise<() => Promise<void>> {
  const existing = await fs.readdir(dest).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (existing === null) {
    await fs.mkdir(dest, { recursive: true });
    return () => fs.rm(dest, { recursive: true, force: true });
  }
  if (existing.length > 0) throw new Error(`extraction target is not empty: ${dest}`);
  return async () => {
    for (const name of await fs.readdir(dest)) await fs.rm(path.join(dest, name), { recursive: true, force: true });
  };
}
