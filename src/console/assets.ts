import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * The web console's static files, read once into memory: Kiln's own (src/console/public, plain ES modules with no
 * build step) and the three front-end libraries they import (Preact, its hooks, htm), taken from node_modules so
 * `npm install` is all the setup.
 *
 * Files are served only by exact lookup in this table, never by joining a request path onto a folder, so no
 * spelling of `..`, encoded slashes or backslashes can reach a file outside it: an unknown name is simply absent.
 */
export interface ConsoleAsset {
  body: Buffer;
  contentType: string;
  /** Strong validator: a hash of the body. */
  etag: string;
  cacheControl: string;
}

export interface ConsoleAssets {
  /** Keyed by the path under `/console/` (`app.js`, `vendor/preact@11.2.0/preact.mjs`); `''` is the page. */
  files: ReadonlyMap<string, ConsoleAsset>;
  /** The page's Content-Security-Policy (allows its one inline script, the import map, by hash). */
  csp: string;
}

export const CONSOLE_PREFIX = '/console';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json; charset=utf-8',
};

/** Kiln's own files change with Kiln: the browser revalidates them (a 304 when unchanged). */
const REVALIDATE = 'no-cache';
/** Library files live under a versioned path, so one URL always names the same bytes. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

const PUBLIC_DIR = path.join(import.meta.dirname, 'public');
const IMPORT_MAP_MARKER = '<!-- import map -->';

interface Library {
  /** The bare specifier the console's modules import. */
  specifier: string;
  /** The npm package that provides it. */
  pkg: string;
  /** Its ES module, relative to the package folder. */
  file: string;
}

const LIBRARIES: Library[] = [
  { specifier: 'preact', pkg: 'preact', file: 'dist/preact.mjs' },
  { specifier: 'preact/hooks', pkg: 'preact', file: 'hooks/dist/hooks.mjs' },
  { specifier: 'htm', pkg: 'htm', file: 'dist/htm.mjs' },
];

function asset(body: Buffer, name: string, cacheControl: string): ConsoleAsset {
  const type = CONTENT_TYPES[path.extname(name)];
  if (!type) throw new Error(`console asset ${name} has no known content type`);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, contentType: type, etag, cacheControl };
}

/** The folder of an installed package (found from its main entry, as some packages do not export package.json). */
function packageDir(pkg: string): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve(pkg));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      const json = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (json.name === pkg && json.version) return { dir, version: json.version };
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the folder of the ${pkg} package`);
    dir = up;
  }
}

/** Every file under `dir` with a known content type, as posix paths relative to it. */
function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(path.join(dir, entry.name), rel));
    else if (entry.isFile() && CONTENT_TYPES[path.extname(entry.name)]) out.push(rel);
  }
  return out;
}

/** Reads the console's files and the libraries it imports; throws when a library is not installed. */
export function loadConsoleAssets(): ConsoleAssets {
  const files = new Map<string, ConsoleAsset>();
  const imports: Record<string, string> = {};
  for (const lib of LIBRARIES) {
    const { dir, version } = packageDir(lib.pkg);
    const name = `vendor/${lib.pkg}@${version}/${lib.file.split('/').pop()!}`;
    const body = fs.readFileSync(path.join(dir, lib.file));
    // The sourceMappingURL comment would point at a file that is not served; drop it rather than 404 in devtools.
    const code = Buffer.from(body.toString('utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
    files.set(name, asset(code, name, IMMUTABLE));
    imports[lib.specifier] = `${CONSOLE_PREFIX}/${name}`;
  }
  for (const rel of listFiles(PUBLIC_DIR)) {
    if (rel === 'index.html') continue;
    files.set(rel, asset(fs.readFileSync(path.join(PUBLIC_DIR, rel)), rel, REVALIDATE));
  }
  const template = fs.readFileSync(path.join(PUBLIC_DIR, 'index.html'), 'utf8');
  if (!template.includes(IMPORT_MAP_MARKER)) throw new Error(`console index.html lacks the ${IMPORT_MAP_MARKER} marker`);
  const importMap = JSON.stringify({ imports });
  const page = template.replace(IMPORT_MAP_MARKER, `<script type="importmap">${importMap}</script>`);
  files.set('', asset(Buffer.from(page), 'index.html', REVALIDATE));
  const mapHash = createHash('sha256').update(importMap).digest('base64');
  const csp = [
    "default-src 'self'",
    `script-src 'self' 'sha256-${mapHash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ].join('; ');
  return { files, csp };
}

let loaded: ConsoleAssets | undefined;

/** The assets of this process, read on first use. */
export function consoleAssets(): ConsoleAssets {
  loaded ??= loadConsoleAssets();
  return loaded;
}
