#!/usr/bin/env node
// The origin for the benchmark when nginx is not used: a small node:https server that requires a
// client certificate (CA bundle + CRLs of both levels), like the nginx upstream.
//   GET /      -> 100-byte body              GET /64k -> 65536-byte body
//   POST /post -> reads the whole body, then "received N bytes"
//   GET /echo  -> what the upstream saw (x-forwarded-for, identity headers, TLS peer subject)
//   GET /healthz -> 200 "ok", only with BENCH_UPSTREAM_HEALTHZ=1 (the failover scenario's origins,
//                   for the gateway's active health checks); otherwise 404 like any other path
// BENCH_UPSTREAM_TICKET_KEYS=<96 hex digits>: fixed TLS session ticket keys, so that a restarted
// origin resumes the sessions the one before it issued, as replicas sharing keys do (the storm
// scenario). TLS handshakes are counted, full and resumed, per client certificate CN.
// SIGUSR2 closes every connection and keeps listening (the storm scenario's reconnect storm),
// after logging the handshakes so far.
// Usage: node upstream-server.mjs PORT CERT KEY CA CRL...
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [port, cert, key, ca, ...crls] = process.argv.slice(2);
const SMALL = Buffer.from('ok ' + '.'.repeat(97));
const BIG = Buffer.alloc(65536, 'x');
const TEXT = { 'content-type': 'text/plain' };
const HEALTHZ = process.env.BENCH_UPSTREAM_HEALTHZ === '1';
const TICKET_KEYS = process.env.BENCH_UPSTREAM_TICKET_KEYS ? Buffer.from(process.env.BENCH_UPSTREAM_TICKET_KEYS, 'hex') : null;
if (TICKET_KEYS && TICKET_KEYS.length !== 48) throw new Error('BENCH_UPSTREAM_TICKET_KEYS must be 48 bytes (96 hex digits)');
/** TLS handshakes by client certificate CN: { full, resumed }. */
const handshakes = {};
// Requests served, written to the log on SIGTERM (the failover scenario reads how the load was spread).
let served = 0;
let healthChecks = 0;

const server = createServer(
  {
    cert: readFileSync(cert),
    key: readFileSync(key),
    ca: readFileSync(ca),
    // One PEM per array element: Node loads only the first CRL of a string.
    crl: crls.map((f) => readFileSync(f, 'utf8')),
    requestCert: true,
    rejectUnauthorized: true,
    keepAliveTimeout: 300_000,
    requestTimeout: 0,
    ...(TICKET_KEYS ? { ticketKeys: TICKET_KEYS } : {}),
  },
  (req, res) => {
    const url = req.url;
    served++;
    if (req.method === 'GET' && url === '/') {
      res.writeHead(200, { ...TEXT, 'content-length': SMALL.length });
      res.end(SMALL);
    } else if (req.method === 'GET' && url === '/64k') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length });
      res.end(BIG);
    } else if (req.method === 'POST' && url === '/post') {
      let n = 0;
      req.on('data', (c) => {
        n += c.length;
      });
      req.on('end', () => {
        const body = `received ${n} bytes\n`;
        res.writeHead(200, { ...TEXT, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    } else if (HEALTHZ && req.method === 'GET' && url === '/healthz') {
      healthChecks++;
      res.writeHead(200, { ...TEXT, 'content-length': 3 });
      res.end('ok\n');
    } else if (url === '/echo') {
      const h = req.headers;
      const peer = req.socket.getPeerCertificate();
      const body =
        `x-forwarded-for=${h['x-forwarded-for'] ?? ''}\nx-client-subject=${h['x-client-subject'] ?? ''}\n` +
        `x-forwarded-client-cert=${h['x-forwarded-client-cert'] ?? ''}\ntls-peer=CN=${peer?.subject?.CN ?? ''}\n`;
      res.writeHead(200, { ...TEXT, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else {
      res.writeHead(404, TEXT);
      res.end('not found\n');
    }
  },
);
server.headersTimeout = 30_000;
server.on('secureConnection', (socket) => {
  const cn = socket.getPeerCertificate()?.subject?.CN ?? '(none)';
  const h = (handshakes[cn] ??= { full: 0, resumed: 0 });
  if (socket.isSessionReused()) h.resumed++;
  else h.full++;
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`upstream listening on ${port}\n`));
process.on('SIGUSR2', () => {
  process.stdout.write(`${JSON.stringify({ event: 'drop', handshakes })}\n`);
  server.closeAllConnections();
});
process.on('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify({ event: 'exit', port: Number(port), served, healthChecks, handshakes })}\n`);
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
