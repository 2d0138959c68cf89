#!/usr/bin/env node
// The Node HTTP/2 load generator (node:http2, one thread): the grpc scenario's generator, and the h2
// scenario's when h2load is not installed (or with --gen node). h2load cannot read trailers, so it
// cannot tell a gRPC call that succeeded from one that failed with HTTP 200 (a gRPC error is an
// HTTP 200 with grpc-status in the trailers or in a Trailers-Only answer): this generator counts a
// call as done only when its grpc-status is 0 and the echoed message came back whole.
//
//   node h2-loadgen.mjs '<json config>'      -> {"event":"start"}, {"event":"end"}, then one JSON line
//   config: { port, path, grpc, conns, streams, durationS, cert, key, ca, servername }
//
// `conns` HTTP/2 sessions, all opened (full mTLS handshake each) before the measured window, each
// with `streams` requests in flight, closed loop: a finished request is replaced at once. Only
// requests that finish inside the window count. The server's chain is verified against the CA;
// its name is not, because one run reaches targets with different certificates (the gateway's and
// the origin's), which the harness has already checked.
import { readFileSync } from 'node:fs';
import { connect, constants } from 'node:http2';
import { Histogram } from './histogram.mjs';

const cfg = JSON.parse(process.argv[2]);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const { HTTP2_HEADER_STATUS } = constants;
/** A unary call's request: one uncompressed 64-byte message behind the 5-byte gRPC prefix. */
const MESSAGE = Buffer.concat([Buffer.from([0, 0, 0, 0, 64]), Buffer.alloc(64, 'm')]);
const headers = cfg.grpc
  ? { ':method': 'POST', ':path': cfg.path, 'content-type': 'application/grpc', te: 'trailers' }
  : { ':method': 'GET', ':path': cfg.path };
const tls = { cert: readFileSync(cfg.cert), key: readFileSync(cfg.key), ca: readFileSync(cfg.ca), servername: cfg.servername, checkServerIdentity: () => undefined };

const hist = new Histogram();
let inWindow = false;
let stopping = false;
let done = 0;
let failed = 0;
const errorKinds = {};
const fail = (kind) => {
  if (!inWindow) return;
  failed++;
  errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
};

function open() {
  return new Promise((resolve, reject) => {
    const session = connect(`https://127.0.0.1:${cfg.port}`, tls);
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

/** One request on the session; on completion the next one starts (closed loop). */
function issue(session) {
  if (stopping || session.closed || session.destroyed) return;
  const t0 = performance.now();
  let status = 0;
  let grpcStatus = null;
  let bytes = 0;
  const req = session.request(headers, cfg.grpc ? {} : { endStream: true });
  req.on('response', (h) => {
    status = Number(h[HTTP2_HEADER_STATUS]);
    if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
  });
  req.on('trailers', (t) => {
    if (t['grpc-status'] !== undefined) grpcStatus = String(t['grpc-status']);
  });
  req.on('data', (c) => (bytes += c.length));
  req.on('error', (err) => fail(err.code ?? 'stream error'));
  req.on('close', () => {
    if (req.rstCode && req.rstCode !== constants.NGHTTP2_NO_ERROR) fail(`RST_STREAM ${req.rstCode}`);
    else if (status < 200 || status > 299) fail(`HTTP ${status}`);
    else if (cfg.grpc && grpcStatus !== '0') fail(`grpc-status ${grpcStatus ?? 'missing'}`);
    else if (cfg.grpc && bytes !== MESSAGE.length) fail(`message of ${bytes} bytes`);
    else if (inWindow) {
      done++;
      hist.record((performance.now() - t0) * 1000);
    }
    setImmediate(issue, session);
  });
  if (cfg.grpc) req.end(MESSAGE);
}

const sessions = [];
try {
  for (let i = 0; i < cfg.conns; i++) sessions.push(await open());
} catch (err) {
  out({ tool: 'node-h2', rps: 0, requests: 0, p50: null, p99: null, errors: 1, non2xx: 0, errorKinds: { [`connect: ${err.code ?? err.message}`]: 1 } });
  process.exit(1);
}
for (const s of sessions) {
  s.on('error', (err) => fail(`session ${err.code ?? err.message}`));
  s.on('goaway', () => fail('GOAWAY'));
  for (let i = 0; i < cfg.streams; i++) issue(s);
}
// The first requests of each session warm it up (HPACK tables, the proxy's upstream connections);
// the window opens a moment later.
await new Promise((r) => setTimeout(r, 200));
inWindow = true;
const t0 = performance.now();
out({ event: 'start' });
await new Promise((r) => setTimeout(r, cfg.durationS * 1000));
inWindow = false;
const wallS = (performance.now() - t0) / 1000;
out({ event: 'end' });
stopping = true;
for (const s of sessions) s.close();
setTimeout(() => process.exit(0), 2000).unref();
const ms = (us) => (us === null ? null : us / 1000);
out({ tool: 'node-h2', rps: done / wallS, requests: done, p50: ms(hist.percentile(50)), p99: ms(hist.percentile(99)), errors: failed, non2xx: 0, errorKinds });
