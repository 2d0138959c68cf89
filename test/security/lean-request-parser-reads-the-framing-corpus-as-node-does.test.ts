// Pins a security decision: the lean listener's request parser (src/request/llhttp-request-parser.ts,
// llhttp in undici's WebAssembly build) splits a byte stream into requests exactly as Node's own
// http server does, so that moving the data plane off node:http changes no framing decision. Every
// case of the framing corpus (CL+TE, Transfer-Encoding spellings, duplicate and malformed
// Content-Length, bare LF and CR, obs-fold, chunk extensions and sizes, HTTP/0.9 and 1.0,
// pipelining, CONNECT and upgrades, header counts and sizes) is written over TLS to a node:https
// server on 127.0.0.1 (strict parser, requireHostHeader off and no header-count limit, so only the
// parser decides) and fed to the lean parser in the same pieces. For each: the same requests
// (method, target, version, raw headers, body bytes, trailers, complete or not), the same
// take-over point for upgrades, and a refusal where Node refuses. Where the two disagree the
// lean parser may only be the stricter one (refusing earlier), and every such case is named here.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { RequestParser, type ParsedRequestHead } from '../../src/request/llhttp-request-parser.js';
import { framingCorpus, framingPieces } from '../helpers/framing-corpus.js';
import { makeTestPki } from '../helpers/harness.js';
import { mapLimit } from '../helpers/process-guard.js';

interface Seen {
  method: string;
  url: string;
  version: string;
  headers: string[];
  body: string;
  trailers: string[];
  complete: boolean;
}

interface Reading {
  requests: Seen[];
  /** The connection was taken over at the last request's head (an upgrade, CONNECT). */
  tookOver: boolean;
  /** The parser refused the bytes (its code). */
  error: string | null;
}

/** Node's maximum request head (--max-http-header-size), the limit both parsers get. */
const MAX_HEADER_BYTES = 16_384;
/** Quiet time after the last piece before Node's reading is taken. */
const SETTLE_MS = 150;

/** Cases where the lean parser refuses what Node accepts: expected to stay empty; a case here needs a reason. */
const LEAN_STRICTER = new Map<string, string>([]);

function leanReading(pieces: readonly Buffer[]): Reading {
  const out: Reading = { requests: [], tookOver: false, error: null };
  let cur: Seen | null = null;
  const parser = new RequestParser(
    {
      onRequest(h: ParsedRequestHead) {
        cur = { method: h.method, url: h.url, version: `${h.versionMajor}.${h.versionMinor}`, headers: h.headers, body: '', trailers: [], complete: false };
        out.requests.push(cur);
        // As Node's server with an 'upgrade' and a 'connect' listener: it takes over every upgrade.
        return h.upgrade;
      },
      onBody(chunk) {
        cur!.body += chunk.toString('latin1');
      },
      onComplete(trailers) {
        cur!.trailers = trailers;
        cur!.complete = true;
      },
    },
    { maxHeaderBytes: MAX_HEADER_BYTES, maxHeaders: Number.MAX_SAFE_INTEGER },
  );
  try {
    outer: for (const piece of pieces) {
      let r = parser.execute(piece);
      for (;;) {
        if (r.kind === 'more') break;
        if (r.kind === 'error') {
          out.error = (r.error as { code?: string }).code ?? r.error.message;
          break outer;
        }
        if (r.kind === 'upgrade') {
          out.tookOver = true;
          break outer;
        }
        if (r.rest === 0) break;
        r = parser.execute(piece, piece.length - r.rest);
      }
    }
  } finally {
    parser.close();
  }
  return out;
}

t.test('the lean request parser reads every framing case as Node does', async (t) => {
  const pki = await makeTestPki();
  const server = https.createServer({ key: pki.upstreams['orders']!.keyPem, cert: pki.upstreams['orders']!.chainPem, requireHostHeader: false, maxHeaderSize: MAX_HEADER_BYTES, insecureHTTPParser: false });
  server.maxHeadersCount = 0;
  const byPort = new Map<number, Reading>();
  const readingOf = (socket: { remotePort?: number | undefined }) => {
    const port = socket.remotePort ?? 0;
    let r = byPort.get(port);
    if (r === undefined) byPort.set(port, (r = { requests: [], tookOver: false, error: null }));
    return r;
  };
  const seen = (req: import('node:http').IncomingMessage): Seen => ({ method: req.method ?? '', url: req.url ?? '', version: req.httpVersion, headers: req.rawHeaders, body: '', trailers: [], complete: false });
  const onRequest = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const s = seen(req);
    readingOf(req.socket).requests.push(s);
    req.on('data', (c: Buffer) => (s.body += c.toString('latin1')));
    req.on('end', () => {
      s.complete = req.complete;
      s.trailers = req.rawTrailers;
      res.writeHead(200, { 'content-length': '0' }).end();
    });
    req.on('error', () => undefined);
  };
  server.on('request', onRequest);
  // An Expect other than 100-continue is Node's server's answer (417), not its parser's: read as a request.
  server.on('checkExpectation', onRequest);
  const takeOver = (req: import('node:http').IncomingMessage, socket: import('node:stream').Duplex) => {
    const r = readingOf(req.socket);
    r.requests.push(seen(req));
    r.tookOver = true;
    socket.destroy();
  };
  server.on('upgrade', takeOver);
  server.on('connect', takeOver);
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const r = readingOf(socket as { remotePort?: number });
    r.error ??= err.code ?? err.message;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;

  const nodeReading = async (pieces: readonly Buffer[], delayMs: number): Promise<Reading> => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'orders.internal', ca: pki.caBundlePem });
    sock.on('error', () => undefined);
    sock.on('data', () => undefined);
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', resolve);
      sock.once('error', reject);
    });
    const local = sock.localPort!;
    for (const [i, p] of pieces.entries()) {
      if (i > 0 && delayMs > 0) await sleep(delayMs);
      if (sock.destroyed) break;
      sock.write(p);
    }
    await sleep(SETTLE_MS);
    sock.destroy();
    const r = byPort.get(local) ?? { requests: [], tookOver: false, error: null };
    byPort.delete(local);
    // Node's own answers to what it parsed are not the parser's reading: a copy, frozen now.
    return JSON.parse(JSON.stringify(r)) as Reading;
  };

  const stricter: string[] = [];
  let agreed = 0;
  await mapLimit(framingCorpus, 8, async (c) => {
    const pieces = framingPieces(c);
    const node = await nodeReading(pieces, c.pieceDelayMs ?? 0);
    const lean = leanReading(pieces);
    const label = `${c.id}: ${c.source}`;
    if (node.error === null && lean.error !== null) {
      // The only allowed disagreement: the lean parser refuses, having read no more than Node up to there.
      stricter.push(`${c.id} (lean ${lean.error})`);
      t.ok(LEAN_STRICTER.has(c.id), `${label}: the lean parser refuses (${lean.error}) what Node accepts; not a known, explained case`);
      t.strictSame(lean.requests.filter((r) => r.complete), node.requests.slice(0, lean.requests.filter((r) => r.complete).length), `${label}: the requests before the refusal are Node's`);
      return;
    }
    t.strictSame({ requests: lean.requests, tookOver: lean.tookOver, refused: lean.error !== null }, { requests: node.requests, tookOver: node.tookOver, refused: node.error !== null }, `${label}: same requests, same take-over, same refusal (node ${node.error ?? 'none'}, lean ${lean.error ?? 'none'})`);
    if (lean.error === null && node.error === null) agreed++;
  });
  t.comment(`${framingCorpus.length} cases; ${agreed} parsed without a refusal by both; lean stricter on ${stricter.length}: ${stricter.join(', ') || 'none'}`);
  t.ok(framingCorpus.length >= 150, `the corpus holds ${framingCorpus.length} cases`);
});
