import fs from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import {
  ArchiveError,
  DEFAULT_EXTRACT_LIMITS,
  prepareDestination,
  safeEntryName,
  symlinkStaysInside,
  verifySymlinks,
  type ArchiveKind,
  type ExtractLimits,
} from './archive.ts';
import { clientSafeMessage } from '../domain/client-safe.ts';

const ALLOWED = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

export interface TarExtractOptions {
  limits?: Partial<ExtractLimits>;
  kind?: ArchiveKind;
}

/**
 * Extracts a gzipped tarball (a droplet) into `dest`, which must not exist yet or be empty. The whole archive
 * is read once to check every entry (names, link targets, types, entry count, real size) before anything is
 * written; a failure at any point leaves `dest` without any of the archive's content.
 */
export async function extractTarGz(file: string, dest: string, options: TarExtractOptions = {}): Promise<void> {
  const kind = options.kind ?? 'droplet';
  const limits = { ...DEFAULT_EXTRACT_LIMITS, ...options.limits };
  const root = path.resolve(dest);
  await inspect(file, root, limits, kind);
  const cleanup = await prepareDestination(root);
  try {
    await tar.x({ file, cwd: root, strict: true, preservePaths: false, preserveOwner: false, noMtime: true });
    await verifySymlinks(root, kind);
  } catch (err) {
    await cleanup();
    if (err instanceof ArchiveError) throw err;
    throw new ArchiveError('corrupt', `Invalid tarball (${clientSafeMessage(err)})`, kind);
  }
}

async function inspect(file: string, root: string, limits: ExtractLimits, kind: ArchiveKind): Promise<void> {
  let entries = 0;
  let bytes = 0;
  let failure: ArchiveError | null = null;
  const check = (entry: tar.ReadEntry): void => {
    if (++entries > limits.maxEntries) {
      throw new ArchiveError('too-many-entries', `The archive has more than ${limits.maxEntries} entries`, kind);
    }
    if (!ALLOWED.has(entry.type)) {
      throw new ArchiveError('unsupported-entry', `Unsupported entry type ${entry.type}: ${entry.path}`, kind);
    }
    const name = safeEntryName(entry.path, kind);
    // Sizes in tar headers are the bytes that really follow in the (decompressed) stream we are reading.
    bytes += entry.size;
    if (bytes > limits.maxTotalBytes) {
      throw new ArchiveError('too-large', `The archive expands to more than ${limits.maxTotalBytes} bytes`, kind);
    }
    if (entry.type === 'SymbolicLink') {
      if (!symlinkStaysInside(root, path.join(root, name), entry.linkpath ?? '')) {
        throw new ArchiveError('symlink-escape', `Symlink(s) point outside of root folder: ${entry.path}`, kind);
      }
    } else if (entry.type === 'Link') {
      // Hard link targets are archive paths, relative to the archive root.
      safeEntryName(entry.linkpath ?? '/', kind);
    }
  };
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (entry) => {
        if (failure) return entry.resume();
        try {
          check(entry);
        } catch (err) {
          failure = err instanceof ArchiveError ? err : new ArchiveError('corrupt', clientSafeMessage(err), kind);
        }
        entry.resume();
      },
    });
  } catch (err) {
    const message = clientSafeMessage(err);
    // node-tar's own bomb guard (decompressed/compressed ratio) trips before our byte count on extreme input.
    if (/decompression ratio/.test(message)) {
      throw new ArchiveError('too-large', `The archive expands too much (${message})`, kind);
    }
    throw new ArchiveError('corrupt', `Invalid tarball (${message})`, kind);
  }
  if (failure) throw failure;
  if (entries === 0) {
    // tar.t accepts any non-tar input as an empty archive; an empty droplet is never valid either.
    const st = await fs.stat(file);
    throw new ArchiveError('corrupt', st.size === 0 ? 'Empty file' : 'Invalid tarball (no entries)', kind);
  }
}

/** Writes `entries` (paths relative to `cwd`) into a gzipped tarball, keeping modes and storing links as links. */
export async function createTarGz(cwd: string, entries: string[], outFile: string): Promise<void> {
  await tar.c({ gzip: true, file: outFile, cwd, portable: true }, entries);
}

/** Paths of a tarball's entries, for tests and diagnostics. */
export async function listTarGz(file: string): Promise<Array<{ path: string; type: string; mode: number | undefined }>> {
  const out: Array<{ path: string; type: string; mode: number | undefined }> = [];
  await tar.t({ file, onReadEntry: (e) => out.push({ path: e.path, type: e.type, mode: e.mode }) });
  return out;
}
