import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConsoleAssets } from '../../src/console/assets.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/** The web console's page and static files at /console (none of it is CF V3 API, so no openapi.json check). */

let t: TestKiln;
let server: http.Server;
let port: number;
beforeAll(async () => {
  t = await createTestKiln();
  server = http.createServer(getRequestListener(t.kiln.app.fetch));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await t.close();
});

const get = (path: string, headers: Record<string, string> = {}) => t.kiln.app.request(`http://kiln.test${path}`, { headers });

/** A request whose path goes to the server byte for byte (fetch and URL would resolve `..` first). */
function rawGet(path: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'GET', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the console page', () => {
  it('is served at /console and /console/ without a token, as HTML that the browser must revalidate', async () => {
    for (const path of ['/console', '/console/']) {
      const res = await get(path);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('etag')).toMatch(/^"[\w-]+"$/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(await res.text()).toContain('<script type="module" src="/console/js/main.js"></script>');
    }
  });

  it('maps the libraries to versioned URLs in an import map that its Content-Security-Policy allows by hash', async () => {
    const res = await get('/console');
    const page = await res.text();
    const map = page.match(/<script type="importmap">(.*?)<\/script>/)?.[1];
    expect(map).toBeDefined();
    const { imports } = JSON.parse(map!) as { imports: Record<string, string> };
    expect(Object.keys(imports).sort()).toEqual(['htm', 'preact', 'preact/hooks']);
    for (const url of Object.values(imports)) expect(url).toMatch(/^\/console\/vendor\/(preact|htm)@\d+\.\d+\.\d+\/[\w.]+\.mjs$/);
    const csp = res.headers.get('content-security-policy')!;
    const hash = (await import('node:crypto')).createHash('sha256').update(map!).digest('base64');
    expect(csp).toContain(`script-src 'self' 'sha256-${hash}'`);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
  });

  it('does not weaken the API: /v3 still asks for a token while the console answers without one', async () => {
    expect((await get('/console')).status).toBe(200);
    const res = await t.anonymous.get('/v3/apps');
    expect(res.status).toBe(401);
  });
});

describe('console assets', () => {
  it('are served with their content types', async () => {
    const cases: Array<[string, string]> = [
      ['/console/js/main.js', 'text/javascript; charset=utf-8'],
      ['/console/js/pages/app.js', 'text/javascript; charset=utf-8'],
      ['/console/style.css', 'text/css; charset=utf-8'],
      ['/console/favicon.svg', 'image/svg+xml'],
    ];
    for (const [path, type] of cases) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toBe(type);
      expect(res.headers.get('cache-control'), path).toBe('no-cache');
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
  });

  it('serves the libraries as ES modules under versioned URLs, cached for a year as immutable', async () => {
    const page = await (await get('/console')).text();
    const { imports } = JSON.parse(page.match(/<script type="importmap">(.*?)<\/script>/)![1]!) as { imports: Record<string, string> };
    for (const url of Object.values(imports)) {
      const res = await get(url);
      expect(res.status, url).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      const code = await res.text();
      expect(code).toMatch(/\bexport\b/);
      expect(code).not.toContain('sourceMappingURL');
    }
  });

  it('answers a matching If-None-Match with 304 and no body', async () => {
    const first = await get('/console/style.css');
    const etag = first.headers.get('etag')!;
    const again = await get('/console/style.css', { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    expect(again.headers.get('etag')).toBe(etag);
    expect((await get('/console/style.css', { 'if-none-match': '"other"' })).status).toBe(200);
  });

  it('answers HEAD like GET without a body', async () => {
    const res = await t.kiln.app.request('http://kiln.test/console/js/main.js', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await res.text()).toBe('');
  });

  it('answers an unknown name with a plain 404', async () => {
    for (const path of ['/console/nope.js', '/console/js/', '/console/index.html', '/console/js/pages']) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type'), path).toMatch(/^text\/plain/);
    }
  });

  it('holds only the public folder and the three library modules (no server source, no package files)', () => {
    const names = [...loadConsoleAssets().files.keys()];
    expect(names).toContain('js/main.js');
    for (const name of names) expect(name === '' || /^(vendor\/(preact|htm)@[\d.]+\/[\w.]+\.mjs|[\w/-]+\.(js|css|svg|png))$/.test(name), name).toBe(true);
    expect(names.filter((n) => n.startsWith('vendor/'))).toHaveLength(3);
  });
});

describe('console asset paths', () => {
  const attempts = [
    '/console/../package.json',
    '/console/../../package.json',
    '/console/js/../../assets.ts',
    '/console/%2e%2e/package.json',
    '/console/%2e%2e/%2e%2e/package.json',
    '/console/..%2fassets.ts',
    '/console/..%2f..%2f..%2fpackage.json',
    '/console/js%2f..%2f..%2froutes.ts',
    '/console/%252e%252e/%252e%252e/package.json',
    '/console/..\\assets.ts',
    '/console/..%5cassets.ts',
    '/console/js/%2e%2e%5c%2e%2e%5croutes.ts',
    '/console//etc/passwd',
    '/console/%2fetc%2fpasswd',
    '/console/vendor/preact@0.0.0/../../../../package.json',
    '/console/vendor/../../../node_modules/preact/package.json',
    '/console/style.css%00.js',
    '/console/./style.css/.',
    '/console/style.css/',
    '/console/STYLE.CSS',
  ];

  it.each(attempts)('%s reaches no file outside the asset table', async (path) => {
    const res = await rawGet(path);
    // `..` resolved by the URL parser can land on another path (e.g. /package.json → the API's 404), and Node's
    // HTTP parser refuses a raw backslash (400); either way nothing from the disk comes back.
    expect([400, 404], `${path}: ${res.status} ${res.body.slice(0, 200)}`).toContain(res.status);
    expect(res.body).not.toMatch(/"name":\s*"(kiln|preact)"|import |root:x:0:0/);
  });

  it('serves a clean name through the same raw path', async () => {
    const res = await rawGet('/console/style.css');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/css; charset=utf-8');
  });
});
