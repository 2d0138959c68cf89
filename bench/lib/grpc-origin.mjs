#!/usr/bin/env node
// The gRPC origin of the grpc scenario: a node:http2 server over mTLS (client certificate required,
// CA bundle + CRLs of both levels, as every origin of the suite) that answers unary gRPC-shaped
// calls the way a gRPC server does:
//   POST /bench.Echo/Unary, content-type application/grpc -> reads the whole request, answers
//        200, content-type application/grpc, one length-prefixed message (the request's message
//        echoed back), then the trailers grpc-status: 0, grpc-message: ""
//   a malformed call (wrong content-type, not one whole message) -> trailers grpc-status: 3
//   GET / -> 100 bytes (readiness probes)
// On SIGTERM it writes {"event":"exit","served":N,"ok":N} to its log: the calls it answered with
// grpc-status 0, to compare with what the clients counted.
// Usage: node grpc-origin.mjs PORT CERT KEY CA CRL...
import { readFileSync } from 'node:fs';
import { constants, createSecureServer } from 'node:http2';

const [port, cert, key, ca, ...crls] = process.argv.slice(2);
const SMALL = Buffer.from('ok ' + '.'.repeat(97));
const { HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH } = constants;
const GRPC_HEADERS = { [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc' };
let served = 0;
let ok = 0;

/** One whole gRPC message: a 5-byte prefix (compressed flag 0, 32-bit big-endian length) and its bytes. */
function isOneMessage(buf) {
  return buf.length >= 5 && buf[0] === 0 && buf.readUInt32BE(1) === buf.length - 5;
}

function unary(stream, headers) {
  const chunks = [];
  stream.on('data', (c) => chunks.push(c));
  stream.on('end', () => {
    served++;
    const body = Buffer.concat(chunks);
    const good = String(headers[HTTP2_HEADER_CONTENT_TYPE]).startsWith('application/grpc') && isOneMessage(body);
    if (stream.destroyed) return;
    stream.respond(GRPC_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': good ? '0' : '3', 'grpc-message': good ? '' : 'expected one uncompressed message' }));
    if (good) ok++;
    stream.end(good ? body : undefined);
  });
}

const server = createSecureServer(
  {
    cert: readFileSync(cert),
    key: readFileSync(key),
    ca: readFileSync(ca),
    // One PEM per array element: Node loads only the first CRL of a string.
    crl: crls.map((f) => readFileSync(f, 'utf8')),
    requestCert: true,
    rejectUnauthorized: true,
    settings: { maxConcurrentStreams: 1000 },
  },
);
server.on('stream', (stream, headers) => {
  stream.on('error', () => {});
  if (headers[HTTP2_HEADER_METHOD] === 'POST' && headers[HTTP2_HEADER_PATH] === '/bench.Echo/Unary') return unary(stream, headers);
  const found = headers[HTTP2_HEADER_PATH] === '/';
  stream.respond({ [HTTP2_HEADER_STATUS]: found ? 200 : 404, [HTTP2_HEADER_CONTENT_TYPE]: 'text/plain' });
  stream.end(found ? SMALL : 'not found\n');
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`grpc origin listening on ${port}\n`));
process.on('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify({ event: 'exit', port: Number(port), served, ok })}\n`);
  process.exit(0);
});
