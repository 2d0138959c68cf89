#!/usr/bin/env node
// Which HTTP/2 client the gateway uses towards `protocol: http2` upstreams: undici's Pool with
// allowH2 against a minimal node:http2 client, for unary gRPC-shaped calls (POST, a 5-byte-prefixed
// message, response message, grpc-status trailers) over mTLS on loopback. One scenario, run once,
// numbers into bench/README.md by hand. Needs `npm run build` (imports dist/pki/dev-pki.js).
//
// undici is measured with the request body as a Buffer and as a stream: the gateway forwards the
// client's request as a stream, and undici's HTTP/2 client does not put a second request with a
// stream body (or any non-idempotent one) on a connection that has one in flight, so for gRPC it
// needs one connection per concurrent call.
//
// Run: npm run build && node bench/h2-client-choice.mjs [calls] [concurrency]
import { fork } from 'node:child_process';
import http2 from 'node:http2';
import os from 'node:os';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { createDevPki } from '../dist/pki/dev-pki.js';

const CALLS = Number(process.argv[2] ?? 20_000) || 20_000;
const CONCURRENCY = Number(process.argv[3] ?? 64) || 64;

function frame(body) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}
const MESSAGE = frame(Buffer.alloc(64, 1));

/** The origin runs in its own process, so the clients are measured, not the server's share of one event loop. */
function serve({ keyPem, chainPem, caPem }) {
  const server = http2.createSecureServer({ key: keyPem, cert: chainPem, ca: caPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'], settings: { maxConcurrentStreams: 1000 } });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.on('data', () => undefined);
    stream.on('end', () => stream.end(MESSAGE));
  });
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[2] === '--serve') {
  process.once('message', serve);
  await new Promise(() => undefined);
}

const pki = await createDevPki({ now: new Date() });
const up = pki.upstreams['orders'];
const child = fork(fileURLToPath(import.meta.url), ['--serve']);
child.send({ keyPem: up.keyPem, chainPem: up.chainPem, caPem: pki.caBundlePem });
const port = await new Promise((r) => child.once('message', r));
const origin = `https://127.0.0.1:${port}`;
const servername = 'orders.internal';
const tls = { ca: pki.caBundlePem, cert: pki.gatewayClient.chainPem, key: pki.gatewayClient.keyPem, servername, rejectUnauthorized: true };
const headers = ['content-type', 'application/grpc', 'te', 'trailers'];

/** undici dispatch with a raw handler, as src/proxy/forward-request.ts does. */
function undiciCall(pool, streamBody) {
  return new Promise((resolve, reject) => {
    let status = null;
    pool.dispatch(
      { method: 'POST', path: '/bench.Echo/Unary', headers, body: streamBody ? Readable.from([MESSAGE], { objectMode: false }) : MESSAGE },
      {
        onConnect() {},
        onHeaders() {
          return true;
        },
        onData() {
          return true;
        },
        onComplete(trailers) {
          status = trailers?.['grpc-status'];
          status === '0' ? resolve() : reject(new Error(`grpc-status ${status}`));
        },
        onError: reject,
      },
    );
  });
}

function h2Call(session, streamBody) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/bench.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('trailers', (t) => (t['grpc-status'] === '0' ? resolve() : reject(new Error('status'))));
    req.on('data', () => undefined);
    req.on('error', reject);
    if (streamBody) Readable.from([MESSAGE], { objectMode: false }).pipe(req);
    else req.end(MESSAGE);
  });
}

async function run(name, call) {
  // warm-up
  await Promise.all(Array.from({ length: CONCURRENCY }, () => call()));
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CALLS) await call();
    }),
  );
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  return { name, callsPerSec: Math.round(CALLS / s) };
}

const results = [];
{
  const pool = new Pool(origin, { allowH2: true, connections: 1, pipelining: CONCURRENCY, connect: { ...tls, maxCachedSessions: 0 } });
  results.push({ ...(await run('undici allowH2, Buffer body, 1 connection', () => undiciCall(pool, false))), connections: 1 });
  await pool.close();
}
{
  const pool = new Pool(origin, { allowH2: true, connections: 1, pipelining: CONCURRENCY, connect: { ...tls, maxCachedSessions: 0 } });
  results.push({ ...(await run('undici allowH2, stream body, 1 connection', () => undiciCall(pool, true))), connections: 1 });
  await pool.close();
}
{
  const pool = new Pool(origin, { allowH2: true, connections: CONCURRENCY, pipelining: 1, connect: { ...tls, maxCachedSessions: 0 } });
  results.push({ ...(await run(`undici allowH2, stream body, up to ${CONCURRENCY} connections`, () => undiciCall(pool, true))), connections: CONCURRENCY });
  await pool.close();
}
{
  const session = http2.connect(origin, tls);
  await new Promise((r, j) => session.once('connect', r).once('error', j));
  results.push({ ...(await run('node:http2, Buffer body, 1 session', () => h2Call(session, false))), connections: 1 });
  results.push({ ...(await run('node:http2, stream body piped, 1 session', () => h2Call(session, true))), connections: 1 });
  session.close();
}
child.disconnect();
console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, ${CALLS} unary calls, ${CONCURRENCY} at once`);
console.table(results);
