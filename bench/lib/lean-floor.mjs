// The "lean floor" reference target: the node floor's job (floor-proxy.mjs) without node:https and
// without undici, to show what Node's HTTP layers themselves cost. It does exactly what the floor
// does: client certificates required and verified by OpenSSL (a tls.Server with requestCert and
// rejectUnauthorized), each request forwarded to the same upstream over mTLS with verification
// (rejectUnauthorized and the servername), hop-by-hop headers dropped, and nothing else: no
// identity, policy, revocation, header rewriting, log, upgrades or trailers.
// What it is instead of node:https + undici: an HTTP/1 request parser on the raw TLS socket, a pool
// of keep-alive upstream tls.connect sockets (at most 128, reused) each with an HTTP/1 response
// parser, and one socket.write per message (head and body together) whenever the body has arrived
// with the head; larger or chunked bodies are streamed as they come (Content-Length kept, anything
// else re-chunked), with backpressure both ways. Requests on one client connection are answered in
// order (a pipelined request waits, its client socket paused). A client parse error answers 400 and
// closes; an upstream that breaks HTTP/1 or the connection before the response head answers 502.
// The parser is an argument: `node` = Node's own llhttp binding (require('_http_common').HTTPParser,
// as lib/_http_server.js drives it), `wasm` = undici's llhttp WebAssembly build (the checkout's
// node_modules/undici/lib/llhttp/llhttp-wasm.js, driven as undici's client-h1.js does).
// Usage: node lean-floor.mjs PORT UPSTREAM_PORT SERVER_CERT SERVER_KEY CA_BUNDLE CLIENT_CERT CLIENT_KEY SERVERNAME CHECKOUT node|wasm [raw|undici|gateway]
// The last argument picks the upstream client: `raw` (the default) is the pool of tls.connect
// sockets above; `undici` is the node floor's own client (a Pool of 128, Pool.dispatch, as
// floor-proxy.mjs uses it), so that only the server side is lean: how much of the lean floor's
// saving is the server side (node:https) and how much the client side (undici). `gateway` is the
// gateway's own HTTP/1 upstream client (the checkout's dist/proxy/http1-upstream-client.js, at
// most 128 connections, no session resumption, dispatched on exactly as undici's Pool): the share
// of the gateway's distance to `lean-wasm` that is its upstream client. Both go through the same
// undici-style handler here (dispatchUndici), which costs about 3 µs per request of its own.
//
// LEAN_GATEWAY_WORK=1 (`gateway-variants.mjs --lean-work`, raw upstream sockets only) adds what
// the gateway must do for every request whatever its code looks like, and nothing else: the header
// bytes it adds at its defaults (as floor-proxy.mjs's FLOOR_GATEWAY_HEADERS: an XFCC made once per
// connection, a fresh x-request-id, x-forwarded-for/-proto/-host; the request id on the response),
// and its access record at `info`, written by the gateway's own code (the checkout's
// dist/log/gateway-logger.js, record-line.js and ServedRecord of dataplane/log-records.js: the same
// line, through the same buffered writer, to this process's stdout as the gateway's goes to its
// own). No identity decision, policy, revocation, limits, metrics or node:http objects: the least a
// gateway that sends and logs the same bytes can cost on this stack.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import tls from 'node:tls';
import { peerFacts, xfccBy } from './gateway-headers.mjs';

const [port, upstreamPort, serverCert, serverKey, caBundle, clientCert, clientKey, servername, checkout, parserKind = 'node', upstreamKind = 'raw'] = process.argv.slice(2);
if (parserKind !== 'node' && parserKind !== 'wasm') throw new Error(`parser must be node or wasm (got ${parserKind})`);
if (upstreamKind !== 'raw' && upstreamKind !== 'undici' && upstreamKind !== 'gateway') throw new Error(`upstream client must be raw, undici or gateway (got ${upstreamKind})`);
const require = createRequire(import.meta.url);
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'te', 'upgrade', 'proxy-connection', 'trailer']);
const MAX_UPSTREAM = 128; // as the floor's undici Pool
const KEEP_ALIVE_MS = 300_000; // as the floor's keepAliveTimeout
const HOST_LINE = `host: 127.0.0.1:${upstreamPort}\r\n`; // what undici sends for the floor
const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = '0\r\n\r\n';

// ---- The gateway's irreducible work (LEAN_GATEWAY_WORK=1) ----------------------------------------

const WORK = process.env.LEAN_GATEWAY_WORK === '1' ? await (async () => {
  if (upstreamKind !== 'raw') throw new Error('LEAN_GATEWAY_WORK needs the raw upstream client');
  const dist = (f) => import(join(checkout, 'dist', f));
  const [{ createGatewayLogger }, { writeInfoRecord }, { ServedRecord, elapsedMicros }] = await Promise.all([dist('log/gateway-logger.js'), dist('log/record-line.js'), dist('dataplane/log-records.js')]);
  // The gateway's defaults (config schema: log.level info, bufferBytes 64 KiB, flushInterval 250 ms).
  const logger = createGatewayLogger({ level: 'info', bufferBytes: 65_536, flushInterval: 250 }, 1);
  const by = xfccBy(serverCert);
  const target = `https://127.0.0.1:${upstreamPort}`;
  return {
    /** Per connection, as the gateway keeps them per identity: the XFCC value and the logger with the client's fields. */
    connection(socket) {
      const { xfcc, client } = peerFacts(socket, by);
      return { xfcc, log: logger.child({ client }), address: socket.remoteAddress };
    },
    /** The header lines the gateway adds upstream. */
    upstreamLines(conn, requestId, headers) {
      let host;
      for (let i = 0; i < headers.length; i += 2) if (headers[i].length === 4 && headers[i].toLowerCase() === 'host') host = headers[i + 1];
      return `x-forwarded-client-cert: ${conn.xfcc}\r\nx-request-id: ${requestId}\r\nx-forwarded-for: ${conn.address}\r\nx-forwarded-proto: https\r\n${host !== undefined ? `x-forwarded-host: ${host}\r\n` : ''}`;
    },
    /** The access record of a relayed response, as the gateway writes it for its bench config. */
    served(x) {
      const record = new ServedRecord(x.requestId, x.http10 ? '1.0' : '1.1', x.method, x.url, undefined, 'all', 'routes[0].allow[0]', 'bench', 'allow', null, target, x.status, x.bytesOut, elapsedMicros(x.started), null, null, false);
      writeInfoRecord(x.conn.work.log, record, 'request');
    },
  };
})() : null;

// ---- Parsers: one interface over both llhttp builds ----------------------------------------------
// makeParser(type, h) with h.onHead(head) -> 0 | 1 (1: no body follows, e.g. HEAD), h.onBody(buf),
// h.onComplete(); head = { method, url, major, minor, headers: [name, value, ...], status, upgrade,
// keepAlive }. Returns { execute(buf) -> null | Error, finish() -> null | Error (at the end of the
// input: completes a body that ends with the connection), close() }.

/** Node's llhttp binding. Headers and URL come with kOnHeadersComplete, or earlier in kOnHeaders pieces. */
function nodeParser(type, h) {
  const { HTTPParser, methods } = require('_http_common');
  const p = new HTTPParser();
  p.initialize(type === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {});
  let early = [];
  let earlyUrl = '';
  p[HTTPParser.kOnHeaders] = (headers, url) => {
    early.push(...headers);
    earlyUrl += url;
  };
  p[HTTPParser.kOnHeadersComplete] = (major, minor, headers, method, url, status, _reason, upgrade, keepAlive) => {
    const head = { method: methods[method], url: url || earlyUrl, major, minor, headers: headers ?? early, status, upgrade, keepAlive };
    early = [];
    earlyUrl = '';
    return h.onHead(head);
  };
  p[HTTPParser.kOnBody] = (b) => h.onBody(b);
  p[HTTPParser.kOnMessageComplete] = () => h.onComplete();
  return {
    execute: (buf) => {
      const r = p.execute(buf);
      return typeof r === 'number' ? null : r;
    },
    finish: () => p.finish() ?? null,
    close: () => p.close(),
  };
}

// undici's llhttp WebAssembly build: one instance, each parser an llhttp_t in its memory. The input is
// copied into one wasm buffer; the callbacks get offsets into it, turned back into views of the chunk.
let wasm = null;
function loadWasm() {
  const undiciDir = join(createRequire(join(checkout, 'package.json')).resolve('undici'), '..');
  const constants = require(join(undiciDir, 'lib/llhttp/constants.js'));
  const methods = [];
  for (const [name, n] of Object.entries(constants.METHODS)) methods[n] ??= name;
  const w = { methods, constants, cur: null, chunk: null, bufPtr: 0, bufSize: 0, exports: null };
  const view = (at, len) => w.chunk.subarray(at - w.bufPtr, at - w.bufPtr + len);
  const text = (at, len) => w.chunk.latin1Slice(at - w.bufPtr, at - w.bufPtr + len);
  const env = {
    wasm_on_message_begin: () => 0,
    wasm_on_status: () => 0,
    wasm_on_url: (_p, at, len) => ((w.cur.url += text(at, len)), 0),
    // A field or value split over two chunks arrives in two calls: append to the last one.
    wasm_on_header_field: (_p, at, len) => (appendHeader(w.cur.headers, 0, text(at, len)), 0),
    wasm_on_header_value: (_p, at, len) => (appendHeader(w.cur.headers, 1, text(at, len)), 0),
    wasm_on_headers_complete: (p, status, upgrade, keepAlive) => {
      const s = w.cur;
      const e = w.exports;
      const head = { method: methods[e.llhttp_get_method(p)], url: s.url, major: e.llhttp_get_http_major(p), minor: e.llhttp_get_http_minor(p), headers: s.headers, status, upgrade: upgrade === 1, keepAlive: keepAlive === 1 };
      s.url = '';
      s.headers = [];
      return s.h.onHead(head);
    },
    wasm_on_body: (_p, at, len) => (w.cur.h.onBody(view(at, len)), 0),
    wasm_on_message_complete: () => (w.cur.h.onComplete(), 0),
  };
  const mod = new WebAssembly.Module(require(join(undiciDir, 'lib/llhttp/llhttp-wasm.js')));
  w.exports = new WebAssembly.Instance(mod, { env }).exports;
  return w;
}

/** Header names at even, values at odd indexes; `slot` 0 appends a name piece, 1 a value piece. */
function appendHeader(headers, slot, piece) {
  if (headers.length % 2 === slot) headers.push(piece);
  else headers[headers.length - 1] += piece;
}

function wasmParser(type, h) {
  wasm ??= loadWasm();
  const e = wasm.exports;
  let ptr = e.llhttp_alloc(type === 'request' ? wasm.constants.TYPE.REQUEST : wasm.constants.TYPE.RESPONSE);
  const state = { h, url: '', headers: [] };
  const run = (fn) => {
    wasm.cur = state;
    let ret;
    try {
      ret = fn();
    } finally {
      wasm.cur = null;
      wasm.chunk = null;
    }
    // PAUSED_UPGRADE: an upgrade request, already answered by onHead (upgrades are not proxied).
    if (ret === wasm.constants.ERROR.OK || ret === wasm.constants.ERROR.PAUSED_UPGRADE) return null;
    return Object.assign(new Error(`llhttp error ${ret}`), { code: wasm.constants.ERROR[ret] ?? ret });
  };
  return {
    execute(buf) {
      if (buf.length > wasm.bufSize) {
        if (wasm.bufPtr) e.free(wasm.bufPtr);
        wasm.bufSize = Math.ceil(buf.length / 4096) * 4096;
        wasm.bufPtr = e.malloc(wasm.bufSize);
      }
      new Uint8Array(e.memory.buffer, wasm.bufPtr, buf.length).set(buf);
      wasm.chunk = buf;
      return run(() => e.llhttp_execute(ptr, wasm.bufPtr, buf.length));
    },
    finish: () => run(() => e.llhttp_finish(ptr)),
    close() {
      if (ptr) e.llhttp_free(ptr);
      ptr = 0;
    },
  };
}

const makeParser = parserKind === 'wasm' ? wasmParser : nodeParser;

// ---- Framing helpers ------------------------------------------------------------------------------

/** The header lines of `headers` minus hop-by-hop ones, and how the body was framed. */
function forwardHeaders(headers) {
  let lines = '';
  let contentLength = null;
  let chunked = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const lower = name.toLowerCase();
    if (lower === 'transfer-encoding') chunked = true;
    else if (lower === 'content-length') contentLength = headers[i + 1];
    if (!HOP.has(lower)) lines += `${name}: ${headers[i + 1]}\r\n`;
  }
  return { lines, contentLength, chunked };
}

/** Body pieces as they go on the wire: raw, or as one chunk of chunked encoding. */
function frame(pieces, chunked) {
  const body = pieces.length === 1 ? pieces[0] : Buffer.concat(pieces);
  if (!chunked || body.length === 0) return [body];
  return [Buffer.from(`${body.length.toString(16)}\r\n`), body, CRLF];
}

/** Writes head (a string) and body pieces with one socket.write; returns write()'s backpressure flag. */
function writeOnce(socket, head, pieces) {
  if (pieces.length === 0) return socket.write(head, 'latin1');
  return socket.write(Buffer.concat([Buffer.from(head, 'latin1'), ...pieces]));
}

// ---- Upstream pool --------------------------------------------------------------------------------

const upstreamContext = tls.createSecureContext({ cert: readFileSync(clientCert), key: readFileSync(clientKey), ca: readFileSync(caBundle) });
const idle = [];
const waiting = [];
let open = 0;

/** Hands an upstream connection to exchange `x` now (idle or new), or when one is released. */
function acquire(x) {
  if (undiciPool !== null) return dispatchUndici(x);
  const u = idle.pop() ?? (open < MAX_UPSTREAM ? new Upstream() : null);
  if (u) u.start(x);
  else waiting.push(x);
}

function nextWaiting() {
  let x;
  while ((x = waiting.shift()) && x.aborted);
  return x;
}

/** One keep-alive mTLS connection to the upstream with its response parser; serves one exchange at a time. */
class Upstream {
  constructor() {
    open++;
    this.x = null;
    this.socket = tls.connect({ host: '127.0.0.1', port: Number(upstreamPort), servername, secureContext: upstreamContext, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'] });
    this.socket.setNoDelay(true);
    this.parser = makeParser('response', this);
    this.socket.on('data', (d) => this.onData(d));
    // A body that ends with the connection is complete when the upstream ends it; anything else is cut.
    this.socket.on('end', () => {
      const err = this.parser.finish();
      if (err) this.fail(err);
    });
    this.socket.on('drain', () => this.x?.conn.socket.resume());
    this.socket.on('error', () => {}); // reported through 'close'
    this.socket.on('close', () => this.onClose());
  }

  start(x) {
    this.x = x;
    x.up = this;
    x.sendHead();
  }

  onData(d) {
    const err = this.parser.execute(d);
    if (err) return this.fail(err);
    this.x?.flushResponse();
  }

  onHead(head) {
    const x = this.x;
    if (!x || head.upgrade) return -1; // nothing asked for, or an upgrade: a parse error
    if (head.status < 200) {
      this.interim = true; // 1xx: dropped, the final answer follows
      return 1;
    }
    this.keepAlive = head.keepAlive;
    return x.responseHead(head);
  }

  onBody(b) {
    this.x.resBody.push(b);
  }

  /** The response is whole: it goes out, this connection serves the next exchange, then the client's next request. */
  onComplete() {
    if (this.interim) {
      this.interim = false;
      return;
    }
    const x = this.x;
    this.x = null;
    x.up = null;
    x.flushResponse(true);
    if (WORK !== null) WORK.served(x);
    // An answer that came before the whole request body went up leaves the connection out of step.
    if (!this.keepAlive || !x.reqComplete) this.socket.destroy();
    else {
      const next = nextWaiting();
      if (next) this.start(next);
      else idle.push(this);
    }
    x.conn.exchangeDone(x);
  }

  fail(err) {
    this.socket.destroy(err);
  }

  onClose() {
    open--;
    const i = idle.indexOf(this);
    if (i >= 0) idle.splice(i, 1);
    this.parser.close();
    const x = this.x;
    this.x = null;
    if (x) x.upstreamFailed();
    // A request that waited for a free connection gets a new one in place of this one.
    if (waiting.length > 0 && open < MAX_UPSTREAM) {
      const next = nextWaiting();
      if (next) new Upstream().start(next);
    }
  }
}

// ---- Upstream through undici (upstreamKind 'undici') ---------------------------------------------

const undiciPool = upstreamKind === 'gateway' ? await (async () => {
  // The gateway's own HTTP/1 upstream client (dist/proxy/http1-upstream-client.js), dispatched on
  // as undici's Pool is: which share of the gateway's distance is its upstream client.
  const { Http1UpstreamClient } = await import(join(checkout, 'dist/proxy/http1-upstream-client.js'));
  return new Http1UpstreamClient(`https://127.0.0.1:${upstreamPort}`, {
    protocol: 'http1',
    http1Client: 'lean',
    secureContext: tls.createSecureContext({ cert: readFileSync(clientCert), key: readFileSync(clientKey), ca: readFileSync(caBundle) }),
    servername,
    checkServerIdentity: tls.checkServerIdentity,
    connections: MAX_UPSTREAM,
    connectTimeout: 10_000,
    responseTimeout: 30_000,
    idleTimeout: 30_000,
    keepAlive: 4_000,
  });
})() : upstreamKind === 'undici' ? (() => {
  const { Pool } = createRequire(join(checkout, 'package.json'))('undici');
  return new Pool(`https://127.0.0.1:${upstreamPort}`, {
    connections: MAX_UPSTREAM,
    pipelining: 1,
    connect: { cert: readFileSync(clientCert), key: readFileSync(clientKey), ca: readFileSync(caBundle), servername, rejectUnauthorized: true },
  });
})() : null;

/**
 * Exchange `x` through undici: its request head as header pairs, its body (if any) as an async
 * iterable fed by the client parser; the response framed and written as the raw pool's is.
 */
function dispatchUndici(x) {
  const headers = [];
  for (let i = 0; i < x.reqHeaders.length; i += 2) if (!HOP.has(x.reqHeaders[i].toLowerCase())) headers.push(x.reqHeaders[i], x.reqHeaders[i + 1]);
  let body = null;
  if (x.reqHasBody) {
    const pending = x.reqBody; // requestBody() pushes here
    body = (async function* () {
      for (;;) {
        while (pending.length > 0) yield pending.shift();
        if (x.reqComplete) return;
        await new Promise((r) => (x.wakeBody = r));
      }
    })();
  }
  x.upstreamHandler = {
    onConnect(abort) {
      x.abortUndici = abort;
      if (x.aborted) abort(new Error('client closed'));
    },
    onHeaders(status, raw, resume) {
      if (status < 200) return true;
      const hs = [];
      for (let i = 0; i < raw.length; i += 2) hs.push(raw[i].toString('latin1'), raw[i + 1].toString('latin1'));
      x.responseHead({ status, headers: hs });
      x.resumeUpstream = resume;
      return true;
    },
    onData(chunk) {
      x.resBody.push(chunk);
      return x.flushResponse();
    },
    onComplete() {
      x.flushResponse(true);
      x.conn.exchangeDone(x);
    },
    onError() {
      x.upstreamFailed();
    },
  };
  undiciPool.dispatch({ method: x.method, path: x.url, headers, body }, x.upstreamHandler);
}

// ---- Client side ----------------------------------------------------------------------------------

/** One request and its response: parsed from the client, sent upstream, answered in order. */
class Exchange {
  constructor(conn, head) {
    this.conn = conn;
    this.method = head.method;
    this.url = head.url;
    this.reqHeaders = head.headers;
    this.wakeBody = null;
    this.abortUndici = null;
    this.resumeUpstream = null;
    const fw = forwardHeaders(head.headers);
    this.reqHasBody = fw.chunked || (fw.contentLength !== null && fw.contentLength !== '0');
    this.reqChunked = fw.chunked;
    this.requestId = WORK !== null ? randomUUID() : null;
    this.started = WORK !== null ? process.hrtime.bigint() : 0n;
    this.status = 0;
    this.bytesOut = 0;
    const added = WORK !== null ? WORK.upstreamLines(conn.work, this.requestId, head.headers) : '';
    this.reqHead = `${head.method} ${head.url} HTTP/1.1\r\n${HOST_LINE}${fw.lines}${added}${fw.chunked ? 'transfer-encoding: chunked\r\n' : ''}\r\n`;
    this.http10 = head.major === 1 && head.minor === 0;
    this.keepAlive = head.keepAlive;
    this.reqBody = []; // request body not yet sent upstream
    this.reqComplete = false;
    this.up = null;
    this.dispatched = false;
    this.aborted = false;
    this.resHead = null; // response head not yet written to the client
    this.headWritten = false;
    this.resBody = []; // response body not yet written to the client
    this.resChunked = false;
  }

  /** Request head upstream, with whatever body has arrived (all of it, usually) in the same write. */
  sendHead() {
    const body = this.reqBody.length ? frame(this.reqBody, this.reqChunked) : [];
    if (this.reqComplete && this.reqChunked) body.push(Buffer.from(LAST_CHUNK));
    this.reqBody = [];
    if (!writeOnce(this.up.socket, this.reqHead, body)) this.conn.socket.pause();
  }

  requestBody(b) {
    if (undiciPool !== null) {
      this.reqBody.push(b);
      const w = this.wakeBody;
      this.wakeBody = null;
      w?.();
      return;
    }
    if (!this.up) return this.reqBody.push(b);
    for (const piece of frame([b], this.reqChunked)) if (!this.up.socket.write(piece)) this.conn.socket.pause();
  }

  requestDone() {
    this.reqComplete = true;
    if (undiciPool !== null) {
      const w = this.wakeBody;
      this.wakeBody = null;
      w?.();
      return;
    }
    if (this.up && this.reqChunked) this.up.socket.write(LAST_CHUNK);
  }

  /** Builds the client's response head; the body is framed as the upstream framed it when it can be. */
  responseHead(head) {
    const fw = forwardHeaders(head.headers);
    const noBody = this.method === 'HEAD' || head.status === 204 || head.status === 304;
    let framing = '';
    if (!noBody && (fw.chunked || fw.contentLength === null)) {
      // Length unknown: chunked to an HTTP/1.1 client, the end of the connection for HTTP/1.0.
      if (this.http10) this.keepAlive = false;
      else (this.resChunked = true), (framing = 'transfer-encoding: chunked\r\n');
    }
    if (!this.keepAlive) framing += 'connection: close\r\n';
    else if (this.http10) framing += 'connection: keep-alive\r\n';
    if (this.requestId !== null) framing += `x-request-id: ${this.requestId}\r\n`;
    this.status = head.status;
    this.resHead = `HTTP/1.1 ${head.status} ${STATUS_CODES[head.status] ?? 'Unknown'}\r\n${fw.lines}${framing}\r\n`;
    return this.method === 'HEAD' ? 1 : 0;
  }

  /** Writes what the upstream parser produced since the last flush: one write. */
  flushResponse(last = false) {
    if (WORK !== null) for (const b of this.resBody) this.bytesOut += b.length;
    const body = this.resBody.length ? frame(this.resBody, this.resChunked) : [];
    if (last && this.resChunked) body.push(Buffer.from(LAST_CHUNK));
    this.resBody = [];
    if (this.resHead === null && body.length === 0) return true;
    const s = this.conn.socket;
    const ok = this.resHead !== null ? writeOnce(s, this.resHead, body) : s.write(body.length === 1 ? body[0] : Buffer.concat(body));
    if (this.resHead !== null) this.headWritten = true;
    this.resHead = null;
    if (ok) return true;
    if (this.resumeUpstream !== null) s.once('drain', this.resumeUpstream); // undici: onData returns false
    else if (this.up) {
      const up = this.up.socket;
      up.pause();
      s.once('drain', () => up.resume());
    }
    return false;
  }

  /** The upstream connection failed: 502 if the client has seen nothing yet, else the client is cut off. */
  upstreamFailed() {
    this.up = null;
    if (this.aborted) return;
    if (this.headWritten) return this.conn.socket.destroy();
    this.keepAlive = false;
    this.conn.socket.write('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    this.conn.exchangeDone(this);
  }

  abort() {
    this.aborted = true;
    this.up?.socket.destroy();
    this.abortUndici?.(new Error('client closed'));
    const w = this.wakeBody;
    this.wakeBody = null;
    w?.();
  }
}

/** One client TLS connection: its request parser and its exchanges, the first one active. */
class Conn {
  constructor(socket) {
    this.socket = socket;
    this.queue = [];
    this.parsing = null;
    this.broken = false;
    this.parser = makeParser('request', this);
    this.work = WORK !== null ? WORK.connection(socket) : null;
    socket.setNoDelay(true);
    socket.setTimeout(KEEP_ALIVE_MS);
    socket.on('timeout', () => this.queue.length === 0 && socket.destroy());
    socket.on('data', (d) => this.onData(d));
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
  }

  onData(d) {
    if (this.broken) return;
    const err = this.parser.execute(d);
    if (err) return this.badRequest();
    const x = this.queue[0];
    if (x && !x.dispatched) this.dispatch(x);
    if (this.queue.length > 1) this.socket.pause();
  }

  onHead(head) {
    if (head.upgrade) {
      // Upgrades (and CONNECT) are not proxied by the floor either.
      this.broken = true;
      this.socket.end('HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return 1;
    }
    this.parsing = new Exchange(this, head);
    this.queue.push(this.parsing);
    return 0;
  }

  onBody(b) {
    this.parsing?.requestBody(b);
  }

  onComplete() {
    this.parsing?.requestDone();
    this.parsing = null;
  }

  dispatch(x) {
    x.dispatched = true;
    acquire(x);
  }

  exchangeDone(x) {
    this.queue.shift();
    if (!x.keepAlive) return this.socket.end();
    const next = this.queue[0];
    if (next) this.dispatch(next);
    if (this.queue.length <= 1) this.socket.resume();
  }

  badRequest() {
    this.broken = true;
    if (this.queue.length > 0) return this.socket.destroy();
    this.socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  }

  onClose() {
    this.parser.close();
    for (const x of this.queue) x.abort();
    this.queue = [];
  }
}

const server = tls.createServer(
  { cert: readFileSync(serverCert), key: readFileSync(serverKey), ca: readFileSync(caBundle), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'] },
  (socket) => new Conn(socket),
);
server.on('tlsClientError', () => {});
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
