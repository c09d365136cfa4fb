// Kiln's built-in static file server: no dependencies, listens on $PORT, serves the configured root with
// index.html for directories, optional pushstate fallback, and a 404 page.
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const appDir = path.dirname(here);
const config = JSON.parse(await fs.readFile(path.join(here, 'config.json'), 'utf8'));
const root = await fs.realpath(path.resolve(appDir, config.root ?? '.'));
const port = Number(process.env.PORT ?? 8080);

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.htm': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8', '.txt': 'text/plain; charset=utf-8', '.xml': 'application/xml',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif',
  '.webp': 'image/webp', '.ico': 'image/x-icon', '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf',
  '.wasm': 'application/wasm', '.pdf': 'application/pdf', '.map': 'application/json', '.webmanifest': 'application/manifest+json',
};

const inside = (p) => p === root || p.startsWith(root + path.sep);

async function resolveFile(urlPath) {
  const parts = urlPath.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return { status: 400 };
  if (!config.hostDotFiles && parts.some((p) => p.startsWith('.'))) return { status: 404 };
  if (config.root === '.' && parts.length === 1 && (parts[0] === 'Staticfile' || parts[0] === 'Procfile')) {
    return { status: 404 };
  }
  let file = path.join(root, ...parts);
  try {
    file = await fs.realpath(file);
    if (!inside(file)) return { status: 404 };
    let st = await fs.stat(file);
    if (st.isDirectory()) {
      if (!urlPath.endsWith('/')) return { status: 301, location: `${urlPath}/` };
      file = path.join(file, 'index.html');
      st = await fs.stat(file);
    }
    if (!st.isFile()) return { status: 404 };
    return { status: 200, file, size: st.size, mtime: st.mtime };
  } catch {
    return { status: 404 };
  }
}

async function sendFile(req, res, status, found) {
  res.writeHead(status, {
    'Content-Type': TYPES[path.extname(found.file).toLowerCase()] ?? 'application/octet-stream',
    'Content-Length': found.size,
    'Last-Modified': found.mtime.toUTCString(),
  });
  if (req.method === 'HEAD') return res.end();
  createReadStream(found.file).on('error', () => res.destroy()).pipe(res);
}

const server = http.createServer(async (req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
    return res.end('Method Not Allowed\n');
  }
  let urlPath;
  try {
    urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
  } catch {
    res.writeHead(400, { 'Content-Type': 'text/plain' });
    return res.end('Bad Request\n');
  }
  if (urlPath.includes('\0')) {
    res.writeHead(400, { 'Content-Type': 'text/plain' });
    return res.end('Bad Request\n');
  }
  let found = await resolveFile(urlPath);
  if (found.status === 404 && config.pushstate && path.extname(urlPath) === '') found = await resolveFile('/index.html');
  if (found.status === 200) return sendFile(req, res, 200, found);
  if (found.status === 301) {
    res.writeHead(301, { Location: found.location });
    return res.end();
  }
  if (found.status === 404) {
    const page = await resolveFile('/404.html');
    if (page.status === 200) return sendFile(req, res, 404, page);
  }
  res.writeHead(found.status, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(found.status === 404 ? '<!doctype html><title>404 Not Found</title><h1>404 Not Found</h1>\n' : 'Bad Request\n');
});

server.listen(port, () => console.log(`static file server listening on port ${server.address().port}, serving ${root}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
