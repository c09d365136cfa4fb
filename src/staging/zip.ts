import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import yazl from 'yazl';
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

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
/** "Version made by" host systems whose external attributes carry a Unix mode (Unix, macOS). */
const UNIX_HOSTS = new Set([3, 19]);
const MAX_LINK_TARGET = 4096;

export interface ExtractOptions {
  limits?: Partial<ExtractLimits>;
  kind?: ArchiveKind;
}

export interface ExtractResult {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
}

type EntryType = 'file' | 'directory' | 'symlink';

function classify(entry: yauzl.Entry): { type: EntryType | 'other'; mode: number | null } {
  const host = entry.versionMadeBy >> 8;
  const unixMode = UNIX_HOSTS.has(host) ? (entry.externalFileAttributes >>> 16) & 0xffff : 0;
  const format = unixMode & S_IFMT;
  const mode = unixMode === 0 ? null : unixMode & 0o7777;
  if (entry.fileName.endsWith('/') || format === S_IFDIR) return { type: 'directory', mode };
  if (format === S_IFLNK) return { type: 'symlink', mode };
  if (format === 0 || format === S_IFREG) return { type: 'file', mode };
  return { type: 'other', mode };
}

/** yauzl reports malformed names and sizes as plain Errors; turn them into the matching rejection. */
function translate(err: unknown, kind: ArchiveKind): unknown {
  if (err instanceof ArchiveError) return err;
  const message = clientSafeMessage(err);
  if (message.startsWith('absolute path')) return new ArchiveError('absolute-path', `Absolute path(s) not allowed`, kind);
  if (message.startsWith('invalid relative path')) {
    return new ArchiveError('path-traversal', 'Relative path(s) outside of root folder', kind);
  }
  if ((err as NodeJS.ErrnoException).code === 'ENOENT' && (err as NodeJS.ErrnoException).syscall === 'open') {
    return err;
  }
  return new ArchiveError('corrupt', `Invalid zip archive (${message})`, kind);
}

/**
 * Extracts a client-supplied zip into `dest`, which must not exist yet or be empty. Entries that would land
 * outside `dest`, symlinks that resolve outside it, more entries or more decompressed bytes than the limits
 * allow, and damaged archives raise an ArchiveError — and then `dest` holds nothing of the archive.
 * Symlinks are created after every file, so no file is ever written through a link from the same archive.
 */
export async function extractZip(zipPath: string, dest: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const kind = options.kind ?? 'app';
  const limits = { ...DEFAULT_EXTRACT_LIMITS, ...options.limits };
  const root = path.resolve(dest);
  const cleanup = await prepareDestination(root);
  let zip: yauzl.ZipFile | undefined;
  try {
    zip = await yauzl
      .openPromise(zipPath, { decodeStrings: true, validateEntrySizes: true, strictFileNames: false, autoClose: false })
      .catch((err: unknown) => {
        throw translate(err, kind);
      });
    if (zip.entryCount > limits.maxEntries) {
      throw new ArchiveError('too-many-entries', `The archive has more than ${limits.maxEntries} entries`, kind);
    }
    const result: ExtractResult = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
    const links: Array<{ at: string; target: string }> = [];
    const dirModes: Array<{ at: string; mode: number }> = [];
    let seen = 0;
    const iterator = zip.eachEntry();
    while (true) {
      let next: IteratorResult<yauzl.Entry>;
      try {
        next = await iterator.next();
      } catch (err) {
        throw translate(err, kind);
      }
      if (next.done) break;
      const entry = next.value;
      if (++seen > limits.maxEntries) {
        throw new ArchiveError('too-many-entries', `The archive has more than ${limits.maxEntries} entries`, kind);
      }
      const name = safeEntryName(entry.fileName, kind);
      const { type, mode } = classify(entry);
      if (type === 'other') {
        throw new ArchiveError('unsupported-entry', `Unsupported entry type: ${entry.fileName}`, kind);
      }
      if (entry.isEncrypted()) throw new ArchiveError('unsupported-entry', `Encrypted entry: ${entry.fileName}`, kind);
      const target = path.join(root, name);
      if (name === '') {
        if (type === 'directory') continue;
        throw new ArchiveError('corrupt', `Invalid file name ${JSON.stringify(entry.fileName)}`, kind);
      }
      if (type === 'directory') {
        await fs.mkdir(target, { recursive: true });
        dirModes.push({ at: target, mode: (mode ?? 0o755) | 0o700 });
        result.directories++;
        continue;
      }
      // Cheap early refusal on what the headers claim; the real count below is what protects us.
      if (entry.uncompressedSize > limits.maxTotalBytes - result.bytes) throw tooLarge(limits, kind);
      const stream = await zip.openReadStreamPromise(entry).catch((err: unknown) => {
        throw translate(err, kind);
      });
      // yauzl's internal pipe re-emits a size-check error once our consumer has detached; the consumer
      // below still sees the first emission, this only keeps the duplicate from crashing the process.
      stream.on('error', () => {});
      if (type === 'symlink') {
        const linkTarget = (await readAll(stream, MAX_LINK_TARGET, kind)).toString('utf8');
        result.bytes += linkTarget.length;
        if (!symlinkStaysInside(root, target, linkTarget)) {
          throw new ArchiveError('symlink-escape', `Symlink(s) point outside of root folder: ${entry.fileName}`, kind);
        }
        links.push({ at: target, target: linkTarget });
        continue;
      }
      await fs.mkdir(path.dirname(target), { recursive: true });
      const before = result.bytes;
      const counter = async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          result.bytes += chunk.length;
          if (result.bytes > limits.maxTotalBytes) throw tooLarge(limits, kind);
          yield chunk;
        }
      };
      const fileMode = (mode ?? 0o644) & 0o777;
      try {
        await pipeline(stream, counter, createWriteStream(target, { mode: fileMode | 0o600 }));
      } catch (err) {
        throw translate(err, kind);
      }
      await fs.chmod(target, fileMode | 0o600);
      if (result.bytes - before !== entry.uncompressedSize) {
        throw new ArchiveError('corrupt', `Invalid zip archive (size mismatch for ${entry.fileName})`, kind);
      }
      result.files++;
    }
    for (const link of links) {
      await fs.mkdir(path.dirname(link.at), { recursive: true });
      await fs.symlink(link.target, link.at).catch((err: unknown) => {
        throw translate(err, kind);
      });
      result.symlinks++;
    }
    await verifySymlinks(root, kind);
    // Deepest first, so restricting a parent never blocks setting a child.
    for (const d of dirModes.reverse()) await fs.chmod(d.at, d.mode);
    return result;
  } catch (err) {
    const opened = zip !== undefined;
    zip?.close();
    zip = undefined;
    await cleanup();
    // Past opening, a filesystem error (ENOTDIR, EEXIST, ENAMETOOLONG ...) means entries that contradict
    // each other or cannot exist: the archive's fault, not the server's.
    throw opened ? translate(err, kind) : err;
  } finally {
    zip?.close();
  }
}

function tooLarge(limits: ExtractLimits, kind: ArchiveKind): ArchiveError {
  return new ArchiveError('too-large', `The archive expands to more than ${limits.maxTotalBytes} bytes`, kind);
}

async function readAll(stream: Readable, max: number, kind: ArchiveKind): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) throw new ArchiveError('corrupt', 'Symlink target too long', kind);
      chunks.push(chunk);
    }
  } catch (err) {
    stream.destroy();
    throw translate(err, kind);
  }
  return Buffer.concat(chunks);
}

export interface ZipEntryInfo {
  name: string;
  type: EntryType;
  mode: number | null;
  size: number;
}

/** Lists a zip's entries without extracting (names as stored; used by tests and buildpack inspection). */
export async function listZip(zipPath: string): Promise<ZipEntryInfo[]> {
  const zip = await yauzl.openPromise(zipPath, { decodeStrings: true, strictFileNames: false, autoClose: false });
  try {
    const out: ZipEntryInfo[] = [];
    for await (const entry of zip.eachEntry()) {
      const { type, mode } = classify(entry);
      out.push({ name: entry.fileName, type: type === 'other' ? 'file' : type, mode, size: entry.uncompressedSize });
    }
    return out;
  } finally {
    zip.close();
  }
}

/**
 * The bytes a zip claims to expand to: the sum of its central directory's uncompressed sizes. Only the directory
 * at the end of the file is read, nothing is inflated, so a bomb is measured in milliseconds. (A zip whose
 * headers understate its content is still caught by extractZip, which counts what really comes out.)
 */
export async function zipExpandedSize(zipPath: string, kind: ArchiveKind = 'app'): Promise<number> {
  let zip: yauzl.ZipFile | undefined;
  try {
    zip = await yauzl.openPromise(zipPath, { decodeStrings: false, autoClose: false });
    let total = 0;
    for await (const entry of zip.eachEntry()) total += entry.uncompressedSize;
    return total;
  } catch (err) {
    throw translate(err, kind);
  } finally {
    zip?.close();
  }
}

export interface ZipDirectoryOptions {
  /** Relative paths (POSIX) to leave out, e.g. files the server already has by SHA-1. */
  exclude?: (relPath: string, type: EntryType) => boolean;
}

/**
 * Zips a directory the way the cf CLI does: directory entries with a trailing `/`, Unix modes in the
 * headers, symlinks stored as links (not followed), regular files deflated. Entries are sorted so the same
 * tree always gives the same entry order.
 */
export async function zipDirectory(dir: string, outFile: string, options: ZipDirectoryOptions = {}): Promise<number> {
  const root = path.resolve(dir);
  const zip = new yazl.ZipFile();
  const done = pipeline(zip.outputStream, createWriteStream(outFile));
  let count = 0;
  const mtime = new Date(0);
  try {
    const entries = (await fs.readdir(root, { recursive: true, withFileTypes: true })).sort((a, b) =>
      path.join(a.parentPath, a.name).localeCompare(path.join(b.parentPath, b.name)),
    );
    for (const entry of entries) {
      const abs = path.join(entry.parentPath, entry.name);
      const rel = path.relative(root, abs).split(path.sep).join('/');
      const st = await fs.lstat(abs);
      const type: EntryType | null = st.isDirectory()
        ? 'directory'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isFile()
            ? 'file'
            : null;
      if (type === null || options.exclude?.(rel, type)) continue;
      if (type === 'directory') {
        zip.addEmptyDirectory(rel, { mode: S_IFDIR | (st.mode & 0o7777), mtime });
      } else if (type === 'symlink') {
        zip.addBuffer(Buffer.from(await fs.readlink(abs)), rel, { mode: S_IFLNK | 0o777, mtime, compress: false });
      } else {
        zip.addReadStreamLazy(rel, { mode: S_IFREG | (st.mode & 0o7777), mtime, size: st.size }, (cb) =>
          cb(null, createReadStream(abs)),
        );
      }
      count++;
    }
  } finally {
    zip.end();
  }
  await done;
  return count;
}
