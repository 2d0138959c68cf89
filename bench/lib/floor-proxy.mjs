// The "node floor" reference target: the least a Node.js mTLS reverse proxy can do on this machine.
// node:https with client certificates required (OpenSSL verifies them) and undici Pool.dispatch to
// the same upstream over mTLS, hop-by-hop headers dropped, nothing else: no identity, no policy, no
// revocation, no header rewriting, no log. It does not do the gateway's job (the functional checks
// are not run against it); it shows how much of the distance to nginx is the platform (Node's HTTP
// and TLS stack plus undici) and how much is the gateway's own code, measured in the same run.
// Usage: node floor-proxy.mjs PORT UPSTREAM_PORT SERVER_CERT SERVER_KEY CA_BUNDLE CLIENT_CERT CLIENT_KEY SERVERNAME CHECKOUT
//
// FLOOR_GATEWAY_HEADERS=1 (the floor-headers target of run.mjs, `gateway-variants.mjs
// --floor-headers`) adds the bytes the gateway adds at its defaults, and only those: upstream, an
// x-forwarded-client-cert made once per connection from the peer certificate (By, Hash, Subject,
// URI and DNS SANs, as src/identity/xfcc.ts formats them), a fresh x-request-id,
// x-forwarded-for, x-forwarded-proto and x-forwarded-host; to the client, the x-request-id. How much of the gateway's distance to the floor is the identity it
// sends rather than the work of deciding it.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { peerFacts, xfccBy } from './gateway-headers.mjs';

const [port, upstreamPort, serverCert, serverKey, caBundle, clientCert, clientKey, servername, checkout] = process.argv.slice(2);
// The checkout's own undici, so the floor and the gateway run the same client code.
const { Pool } = createRequire(join(checkout, 'package.json'))('undici');
const ca = readFileSync(caBundle);
const pool = new Pool(`https://127.0.0.1:${upstreamPort}`, {
  connections: 128,
  pipelining: 1,
  connect: { cert: readFileSync(clientCert), key: readFileSync(clientKey), ca, servername, rejectUnauthorized: true },
});
const GATEWAY_HEADERS = process.env.FLOOR_GATEWAY_HEADERS === '1';
const by = GATEWAY_HEADERS ? xfccBy(serverCert) : undefined;
const xfccOf = new WeakMap();
function xfcc(socket) {
  let v = xfccOf.get(socket);
  if (v === undefined) {
    v = peerFacts(socket, by).xfcc;
    xfccOf.set(socket, v);
  }
  return v;
}
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'te', 'upgrade', 'proxy-connection', 'trailer']);

const server = createServer({ cert: readFileSync(serverCert), key: readFileSync(serverKey), ca, requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 300_000 }, (req, res) => {
  const headers = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  const requestId = GATEWAY_HEADERS ? randomUUID() : null;
  if (requestId !== null) {
    headers.push('x-forwarded-client-cert', xfcc(req.socket), 'x-request-id', requestId, 'x-forwarded-for', req.socket.remoteAddress, 'x-forwarded-proto', 'https');
    if (req.headers.host !== undefined) headers.push('x-forwarded-host', req.headers.host);
  }
  const cl = req.headers['content-length'];
  const hasBody = req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
  // A client that leaves mid-response must release the upstream request (a response paused for
  // backpressure would otherwise wait for a 'drain' that never comes and pin its connection).
  let done = false;
  let abort = null;
  res.once('close', () => {
    if (!done) abort?.(new Error('client closed'));
  });
  pool.dispatch({ method: req.method, path: req.url, headers, body: hasBody ? req : null }, {
    onConnect(abortFn) {
      abort = abortFn;
      if (res.destroyed) abortFn(new Error('client closed'));
    },
    onHeaders(status, rawHeaders, resume) {
      const out = [];
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const name = rawHeaders[i].toString('latin1');
        if (!HOP.has(name.toLowerCase())) out.push(name, rawHeaders[i + 1].toString('latin1'));
      }
      if (requestId !== null) out.push('x-request-id', requestId);
      res.writeHead(status, out);
      res.on('drain', resume);
      return true;
    },
    onData: (chunk) => res.write(chunk),
    onComplete: () => {
      done = true;
      res.end();
    },
    onError(err) {
      done = true;
      if (res.headersSent) res.destroy(err);
      else res.writeHead(502).end();
    },
  });
});
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
