import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import yazl from 'yazl';

export type FixtureEntry =
  | { type: 'file'; name: string; content?: string | Buffer; mode?: number }
  | { type: 'dir'; name: string; mode?: number }
  | { type: 'symlink'; name: string; target: string };

/**
 * Builds a zip with yazl. yazl refuses unsafe names (as it should), so entries named with `..`, a leading
 * `/` or a drive letter are written under a placeholder of the same length that is patched afterwards in
 * both the local header and the central directory (the CRC covers data, not names).
 */
export async function makeZip(file: string, entries: FixtureEntry[]): Promise<string> {
  const zip = new yazl.ZipFile();
  const patches: Array<[Buffer, Buffer]> = [];
  entries.forEach((e, i) => {
    let name = e.name;
    if (!isSafe(name)) {
      const placeholder = `p${i}_`.padEnd(name.length, 'q');
      if (placeholder.length !== name.length) throw new Error(`name too short to patch: ${name}`);
      patches.push([Buffer.from(placeholder), Buffer.from(name)]);
      name = placeholder;
    }
    const mtime = new Date(0);
    if (e.type === 'dir') zip.addEmptyDirectory(name, { mode: 0o040000 | (e.mode ?? 0o755), mtime });
    else if (e.type === 'symlink') zip.addBuffer(Buffer.from(e.target), name, { mode: 0o120777, mtime });
    else zip.addBuffer(Buffer.from(e.content ?? ''), name, { mode: 0o100000 | (e.mode ?? 0o644), mtime });
  });
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  let buf: Buffer = Buffer.concat(chunks);
  for (const [from, to] of patches) buf = replaceAll(buf, from, to);
  await fsp.writeFile(file, buf);
  return file;
}

function isSafe(name: string): boolean {
  return !name.startsWith('/') && !/^[A-Za-z]:/.test(name) && !name.split(/[\\/]/).includes('..') && !name.includes('\\');
}

function replaceAll(buf: Buffer, from: Buffer, to: Buffer): Buffer {
  const out = Buffer.from(buf);
  let at = out.indexOf(from);
  let count = 0;
  while (at !== -1) {
    to.copy(out, at);
    count++;
    at = out.indexOf(from, at + from.length);
  }
  if (count < 2) throw new Error(`expected the name in both headers, found ${count}`);
  return out;
}

export function tempDir(prefix = 'kiln-staging-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Every path under dir (relative, sorted), to prove that nothing was written. */
export async function tree(dir: string): Promise<string[]> {
  const entries = await fsp.readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.map(String).sort();
}
