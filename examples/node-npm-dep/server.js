// A Node.js app with one npm dependency (escape-html), so pushing it exercises the buildpack's
// `npm ci` step. It echoes a name from the query string, escaped, in a small HTML page.
const http = require('node:http');
const escapeHtml = require('escape-html');

const port = Number(process.env.PORT || 8080);
const index = process.env.CF_INSTANCE_INDEX ?? '0';
const greeting = process.env.GREETING || 'Hello';

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  const name = url.searchParams.get('name') || 'world';
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(
    `<!doctype html><title>node-npm-dep</title>` +
      `<h1>${escapeHtml(greeting)}, ${escapeHtml(name)}!</h1><p>Served by instance ${escapeHtml(index)}.</p>\n`,
  );
});

server.listen(port, () => {
  console.log(`node-npm-dep instance ${index} listening on port ${port}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
