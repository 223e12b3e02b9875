// search-service: Full-text search. A small HTTP service: GET /health answers 200 for probes.
'use strict';

const http = require('node:http');

const SERVICE = 'search-service';
const PORT = Number(process.env.PORT || 3000);

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/health') {
    return send(res, 200, { status: 'ok', service: SERVICE, arch: process.arch, uid: process.getuid() });
  }
  // Answers a search query; the real index lives behind DATABASE_URL.
  if (req.method === 'GET' && url.pathname === '/search') {
    return send(res, 200, { query: url.searchParams.get('q') || '', hits: [] });
  }
  return send(res, 404, { error: 'not found' });
});

server.listen(PORT, () => console.log(`${SERVICE} listening on ${PORT}`));

// Kubernetes stops pods with SIGTERM: finish in-flight requests, then exit.
process.on('SIGTERM', () => server.close(() => process.exit(0)));
