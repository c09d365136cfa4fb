import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';

/**
 * Files the cf CLI never uploads, whatever `.cfignore` says (cf-cli-flows §5.4 step 4). node_modules is not
 * among them: CF uploads it unless `.cfignore` lists it, and so does Kiln.
 */
export const DEFAULT_IGNORES = ['.cfignore', '.DS_Store', '.git', '.gitignore', '.hg', '.svn', '_darcs', 'manifest.yml', 'manifest.yaml'];

export type AppEntryType = 'file' | 'directory' | 'symlink';

/** One uploadable entry of the app directory; `path` is POSIX and relative, directories without a trailing `/`. */
export interface AppEntry {
  path: string;
  type: AppEntryType;
  /** Permission bits (e.g. 0o644); owner read/write is always set, as Cloud Controller rejects anything less. */
  mode: number;
  size: number;
  /** SHA-1 hex of the content, regular files only. */
  sha1: string | null;
  /** Symlink target as stored on disk. */
  linkTarget: string | null;
}

/** A file as `POST /v3/resource_matches` and the upload's `resources` field describe it. */
export interface ResourceDescription {
  path: string;
  mode: string;
  checksum: { value: string };
  size_in_bytes: number;
}

interface IgnoreRule {
  negate: boolean;
  dirOnly: boolean;
  regex: RegExp;
}

/** Translates one gitignore-style glob (already stripped of `!`, leading and trailing `/`) into a regex body. */
function globToRegex(glob: string): string {
  let out = '';
  let i = 0;
  while (i < glob.length) {
    const ch = glob[i]!;
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/';
        const atEnd = i + 2 === glob.length;
        if (atStart && glob[i + 2] === '/') {
          out += '(?:.*/)?';
          i += 3;
          continue;
        }
        if (atStart && atEnd) {
          out += '.*';
          i += 2;
          continue;
        }
        // `**` not forming a whole segment behaves like `*` in gitignore.
        out += '[^/]*';
        i += 2;
        continue;
      }
      out += '[^/]*';
      i++;
    } else if (ch === '?') {
      out += '[^/]';
      i++;
    } else if (ch === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close === -1) {
        out += '\\[';
        i++;
        continue;
      }
      let body = glob.slice(i + 1, close);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close + 1;
    } else if (ch === '\\' && i + 1 < glob.length) {
      out += glob[i + 1]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      i += 2;
    } else {
      out += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      i++;
    }
  }
  return out;
}

function compileRule(line: string): IgnoreRule | null {
  // Trailing blanks are not part of a pattern unless escaped; leading blanks are.
  let pattern = line.replace(/\r$/, '').replace(/(?<!\\)\s+$/, '');
  if (pattern === '' || pattern.startsWith('#')) return null;
  let negate = false;
  if (pattern.startsWith('!')) {
    negate = true;
    pattern = pattern.slice(1);
  } else if (pattern.startsWith('\\!') || pattern.startsWith('\\#')) {
    pattern = pattern.slice(1);
  }
  let dirOnly = false;
  while (pattern.endsWith('/')) {
    dirOnly = true;
    pattern = pattern.slice(0, -1);
  }
  if (pattern.startsWith('./')) pattern = pattern.slice(2);
  // A slash at the start or in the middle ties the pattern to the app root; otherwise it matches at any depth.
  const anchored = pattern.includes('/');
  pattern = pattern.replace(/^\/+/, '');
  if (pattern === '') return null;
  const body = globToRegex(pattern);
  const regex = new RegExp(anchored || pattern.startsWith('**') ? `^${body}$` : `^(?:.*/)?${body}$`);
  return { negate, dirOnly, regex };
}

/**
 * gitignore-style matching as the cf CLI applies `.cfignore`: the last matching rule wins, `!` re-includes,
 * a trailing `/` matches directories only, and an ignored directory's whole subtree is left out.
 */
export class CfIgnore {
  private readonly rules: IgnoreRule[];

  constructor(lines: readonly string[]) {
    this.rules = lines.map(compileRule).filter((r): r is IgnoreRule => r !== null);
  }

  static fromText(text: string, withDefaults = true): CfIgnore {
    return new CfIgnore([...(withDefaults ? DEFAULT_IGNORES : []), ...text.split('\n')]);
  }

  /** `relPath` is POSIX and relative to the app root. */
  ignores(relPath: string, isDirectory: boolean): boolean {
    let ignored = false;
    for (const rule of this.rules) {
      if (rule.dirOnly && !isDirectory) continue;
      if (rule.regex.test(relPath)) ignored = !rule.negate;
    }
    return ignored;
  }
}

async function sha1File(file: string): Promise<string> {
  const hash = createHash('sha1');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** Reads `<dir>/.cfignore` (when present) together with the built-in ignores. */
export async function loadCfIgnore(dir: string): Promise<CfIgnore> {
  let text = '';
  try {
    text = await fs.readFile(path.join(dir, '.cfignore'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return CfIgnore.fromText(text);
}

/**
 * Walks the app directory like `cf push` does: every file, directory and symlink not ignored, with SHA-1 and
 * size of each regular file. Symlinks are recorded, not followed. Sorted by path so zips are reproducible.
 */
export async function gatherAppEntries(dir: string, ignore?: CfIgnore): Promise<AppEntry[]> {
  const root = path.resolve(dir);
  const rootStat = await fs.stat(root).catch(() => null);
  if (!rootStat?.isDirectory()) throw new Error(`'${dir}' is not a directory`);
  const rules = ignore ?? (await loadCfIgnore(root));
  const out: AppEntry[] = [];
  const walk = async (absDir: string, relDir: string): Promise<void> => {
    const names = (await fs.readdir(absDir)).sort();
    for (const name of names) {
      const abs = path.join(absDir, name);
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      const st = await fs.lstat(abs);
      if (st.isDirectory()) {
        if (rules.ignores(rel, true)) continue;
        out.push({ path: rel, type: 'directory', mode: (st.mode & 0o777) | 0o700, size: 0, sha1: null, linkTarget: null });
        await walk(abs, rel);
      } else if (st.isSymbolicLink()) {
        if (rules.ignores(rel, false)) continue;
        out.push({ path: rel, type: 'symlink', mode: 0o777, size: 0, sha1: null, linkTarget: await fs.readlink(abs) });
      } else if (st.isFile()) {
        if (rules.ignores(rel, false)) continue;
        out.push({ path: rel, type: 'file', mode: (st.mode & 0o777) | 0o600, size: st.size, sha1: await sha1File(abs), linkTarget: null });
      }
      // Sockets, FIFOs and devices cannot be part of an app.
    }
  };
  await walk(root, '');
  return out;
}

export function describeResource(e: AppEntry): ResourceDescription {
  return { path: e.path, mode: e.mode.toString(8), checksum: { value: e.sha1 ?? '' }, size_in_bytes: e.size };
}

/** Files worth asking the server about: only non-empty regular files are matched (cf-cli-flows §5.4). */
export function matchCandidates(entries: readonly AppEntry[]): ResourceDescription[] {
  return entries.filter((e) => e.type === 'file' && e.size > 0 && e.sha1 !== null).map(describeResource);
}

/**
 * Splits the entries by the server's answer: files whose SHA-1 it already holds are left out of the zip and
 * listed in the upload's `resources` field instead (every path with that content, not only the one asked about).
 */
export function splitByMatches(
  entries: readonly AppEntry[],
  matched: ReadonlyArray<{ checksum?: { value?: string } | undefined }>,
): { matched: ResourceDescription[]; toZip: AppEntry[] } {
  const known = new Set(matched.map((m) => m.checksum?.value?.toLowerCase()).filter((v): v is string => !!v));
  const out: { matched: ResourceDescription[]; toZip: AppEntry[] } = { matched: [], toZip: [] };
  for (const e of entries) {
    if (e.type === 'file' && e.size > 0 && e.sha1 !== null && known.has(e.sha1)) out.matched.push(describeResource(e));
    else out.toZip.push(e);
  }
  return out;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/**
 * Writes the entries into a deflated zip the way the cf CLI builds `package.zip`: directory entries ending in
 * `/`, Unix modes in the headers, symlinks stored as links. A fixed mtime keeps the same tree byte-identical.
 */
export async function writeAppZip(dir: string, entries: readonly AppEntry[], outFile: string): Promise<number> {
  const root = path.resolve(dir);
  const zip = new yazl.ZipFile();
  const done = pipeline(zip.outputStream, createWriteStream(outFile));
  const mtime = new Date(Date.UTC(2000, 0, 1));
  for (const e of entries) {
    if (e.type === 'directory') {
      zip.addEmptyDirectory(`${e.path}/`, { mode: S_IFDIR | e.mode, mtime });
    } else if (e.type === 'symlink') {
      zip.addBuffer(Buffer.from(e.linkTarget ?? ''), e.path, { mode: S_IFLNK | 0o777, mtime, compress: false });
    } else {
      const abs = path.join(root, ...e.path.split('/'));
      zip.addReadStreamLazy(e.path, { mode: S_IFREG | e.mode, mtime, size: e.size }, (cb) => cb(null, createReadStream(abs)));
    }
  }
  zip.end();
  await done;
  return (await fs.stat(outFile)).size;
}
