// A dependency-free web app: answers every request with a greeting naming the instance that served it,
// so scaling to several instances shows the router spreading requests across them.
const http = require('node:http');

const port = Number(process.env.PORT || 8080);
const index = process.env.CF_INSTANCE_INDEX ?? '0';

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`Hello from Kiln! I am instance ${index}.\n`);
});

server.listen(port, () => {
  console.log(`node-hello instance ${index} listening on port ${port}`);
});

// Kiln stops instances with SIGTERM; closing the server lets in-flight requests finish.
process.on('SIGTERM', () => server.close(() => process.exit(0)));
