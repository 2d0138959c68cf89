// The "fastify" reference target: the mTLS reverse proxy a user would otherwise write with the
// usual parts, Fastify 5 + @fastify/http-proxy (@fastify/reply-from on undici), configured as the
// floor is: an https listener that requires and verifies client certificates (requestCert,
// rejectUnauthorized), and mTLS to the same upstream WITH verification. reply-from turns upstream
// verification off when it builds its own client from an options object (../shared/TLS-FACTS.md),
// so it is given its own undici Pool (connect: cert, key, ca, servername, rejectUnauthorized) and the
// upstream certificate really is checked. Nothing else: no identity, policy, revocation or header
// rewriting beyond what http-proxy does by itself. `logger: false`, Fastify's default and what a user
// writes by default (no access log; the gateway at its default level logs each request, compare it
// with nginx-log for that). One fix a user would also have to make: reply-from copies the upstream's
// connection-level headers (`connection: keep-alive`, `keep-alive`) into the reply, and Node then
// keeps open the connection of a client that asked for close (HTTP/1.0, `Connection: close`), which
// waits for the close forever (ab and the handshake generator did); they are dropped here.
// Like the floor it does not do the gateway's job: only the basic functional checks apply. It runs
// on the gateway's Node (--node).
// Usage: node fastify-proxy.mjs PORT UPSTREAM_PORT SERVER_CERT SERVER_KEY CA_BUNDLE CLIENT_CERT CLIENT_KEY SERVERNAME CHECKOUT
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [port, upstreamPort, serverCert, serverKey, caBundle, clientCert, clientKey, servername, checkout] = process.argv.slice(2);
// The checkout's own packages, so the Fastify and undici measured are the ones the gateway ships with.
const need = createRequire(join(checkout, 'package.json'));
const fastify = need('fastify');
const httpProxy = need('@fastify/http-proxy');
const { Pool } = need('undici');

const CONNECTION_HEADERS = ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'trailer', 'te'];
const ca = readFileSync(caBundle);
const upstream = `https://127.0.0.1:${upstreamPort}`;
// reply-from's own defaults (128 connections, no pipelining), with verification on.
const pool = new Pool(upstream, {
  connections: 128,
  pipelining: 1,
  connect: { cert: readFileSync(clientCert), key: readFileSync(clientKey), ca, servername, rejectUnauthorized: true },
});

const app = fastify({
  logger: false,
  keepAliveTimeout: 300_000, // as the floor and the gateway
  https: { cert: readFileSync(serverCert), key: readFileSync(serverKey), ca, requestCert: true, rejectUnauthorized: true },
});
await app.register(httpProxy, {
  upstream,
  undici: pool,
  replyOptions: {
    rewriteHeaders(headers) {
      for (const name of CONNECTION_HEADERS) delete headers[name];
      return headers;
    },
  },
});
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.on('SIGTERM', () => process.exit(0));
