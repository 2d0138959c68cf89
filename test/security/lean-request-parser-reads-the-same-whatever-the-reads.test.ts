// Pins a security decision: the lean request parser (src/request/llhttp-request-parser.ts) reads a
// byte stream the same however the network cuts it, and its limits hold across the cuts. A name,
// a value, a chunk size or an extension split over two reads must not change a framing decision
// (a parser that did would let a client smuggle by choosing its TCP segments). Every framing-corpus
// case is fed whole, one byte at a time, and in random cuts (fast-check, seeded), and must read the
// same each way. Then the limits, each whole and byte by byte: the request head (Node's count:
// request-target, names and values; refused at the limit), the header-line count (431), chunk
// extensions (16 KiB per message, CVE-2024-22019) against bodies of many small chunks that must
// pass; trailing blanks of values; pipelining; an upgrade taken over with the bytes after its head.
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { MAX_CHUNK_EXTENSION_BYTES, RequestParser, type RequestParseError } from '../../src/request/llhttp-request-parser.js';
import { framingCorpus, framingPieces } from '../helpers/framing-corpus.js';
import { cutAt as cutAtOffsets } from '../helpers/raw-tls-request.js';

interface Reading {
  requests: { method: string; url: string; version: string; headers: string[]; body: string; trailers: string[]; complete: boolean }[];
  tookOver: boolean;
  rest: string;
  error: string | null;
  status: number | null;
}

const LIMITS = { maxHeaderBytes: 16_384, maxHeaders: 100 };

/** Feeds `cuts` in order (their concatenation is the stream), as a connection would. */
function read(cuts: readonly Buffer[], limits = LIMITS): Reading {
  const out: Reading = { requests: [], tookOver: false, rest: '', error: null, status: null };
  let cur: Reading['requests'][number] | null = null;
  const parser = new RequestParser(
    {
      onRequest(h) {
        cur = { method: h.method, url: h.url, version: `${h.versionMajor}.${h.versionMinor}`, headers: h.headers, body: '', trailers: [], complete: false };
        out.requests.push(cur);
        return h.upgrade;
      },
      onBody(c) {
        cur!.body += c.toString('latin1');
      },
      onComplete(trailers) {
        cur!.trailers = trailers;
        cur!.complete = true;
      },
    },
    limits,
  );
  try {
    for (const piece of cuts) {
      if (out.tookOver) {
        out.rest += piece.toString('latin1');
        continue;
      }
      let r = parser.execute(piece);
      for (;;) {
        if (r.kind === 'more') break;
        if (r.kind === 'error') {
          out.error = (r.error as RequestParseError).code;
          out.status = (r.error as RequestParseError).status ?? null;
          return out;
        }
        if (r.kind === 'upgrade') {
          out.tookOver = true;
          out.rest += piece.subarray(piece.length - r.rest).toString('latin1');
          break;
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

const whole = (b: Buffer) => [b];
const bytes = (b: Buffer) => Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1));
/** Cut at each offset taken modulo the length + 1 (generated offsets land anywhere in the stream). */
const cutAt = (b: Buffer, at: readonly number[]) => cutAtOffsets(b, at.map((x) => x % (b.length + 1)));

t.test('every framing case reads the same whole, byte by byte and in random cuts', async (t) => {
  const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : Math.floor(Math.random() * 0x7fffffff);
  t.comment(`fast-check seed ${seed} (replay: FUZZ_SEED=${seed})`);
  for (const c of framingCorpus) {
    const stream = Buffer.concat(framingPieces(c));
    const reference = read(whole(stream));
    // Byte by byte is the hardest cut; long cases (70 KB extensions, 10,000 headers) only get random cuts.
    if (stream.length <= 20_000) t.strictSame(read(bytes(stream)), reference, `${c.id}: byte by byte as whole`);
    fc.assert(
      fc.property(fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), (at) => {
        const got = read(cutAt(stream, at));
        if (JSON.stringify(got) !== JSON.stringify(reference)) throw new Error(`${c.id}: cut at ${at.join(',')} reads ${JSON.stringify(got).slice(0, 300)}`);
      }),
      { seed, numRuns: 20 },
    );
  }
  t.pass(`${framingCorpus.length} cases, each whole, byte by byte and in 20 random cuts`);
});

const req = (s: string) => Buffer.from(s, 'latin1');
const eachWay = (t: Test, name: string, stream: Buffer, check: (r: Reading, how: string) => void, limits = LIMITS) => {
  check(read(whole(stream), limits), `${name} (whole)`);
  check(read(bytes(stream), limits), `${name} (byte by byte)`);
};

t.test('the head limit is counted as Node counts it', async (t) => {
  // Node counts the request-target, names and values (not separators) and refuses at the limit.
  const head = (valueLength: number) => req(`GET /a HTTP/1.1\r\nHost: h\r\nX: ${'v'.repeat(valueLength)}\r\n\r\n`);
  const counted = (valueLength: number) => '/a'.length + 'Host'.length + 'h'.length + 'X'.length + valueLength;
  const fits = 1_000 - counted(0) - 1;
  eachWay(t, 'one byte under the limit', head(fits), (r, how) => t.same([r.error, r.requests.length], [null, 1], how), { ...LIMITS, maxHeaderBytes: 1_000 });
  eachWay(t, 'at the limit', head(fits + 1), (r, how) => t.same([r.error, r.status, r.requests.length], ['HPE_HEADER_OVERFLOW', 431, 0], how), { ...LIMITS, maxHeaderBytes: 1_000 });
  eachWay(t, 'a request-target at the limit', req(`GET /${'a'.repeat(1_000)} HTTP/1.1\r\nHost: h\r\n\r\n`), (r, how) => t.same([r.error, r.status], ['HPE_HEADER_OVERFLOW', 431], how), { ...LIMITS, maxHeaderBytes: 1_000 });
  // Trailers count on their own against the same limit.
  const trailers = req(`POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nT: ${'v'.repeat(1_200)}\r\n\r\n`);
  eachWay(t, 'a trailer section over the limit', trailers, (r, how) => t.same([r.error, r.status], ['HPE_HEADER_OVERFLOW', 431], how), { ...LIMITS, maxHeaderBytes: 1_000 });
});

t.test('more header lines than maxHeaders is 431, in headers and trailers', async (t) => {
  const lines = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join('');
  eachWay(t, 'exactly maxHeaders', req(`GET /a HTTP/1.1\r\n${lines(100)}\r\n`), (r, how) => t.same([r.error, r.requests[0]?.headers.length], [null, 200], how));
  eachWay(t, 'one more', req(`GET /a HTTP/1.1\r\n${lines(101)}\r\n`), (r, how) => t.same([r.error, r.status, r.requests.length], ['HPE_HEADER_OVERFLOW', 431, 0], how));
  eachWay(t, 'in the trailers', req(`POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${lines(101)}\r\n`), (r, how) => t.same([r.error, r.status, r.requests[0]?.complete], ['HPE_HEADER_OVERFLOW', 431, false], how));
});

t.test('chunk extensions: 16 KiB per message, however they are cut; small chunks pass', async (t) => {
  const chunked = (body: string) => req(`POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${body}`);
  const refused = (r: Reading) => r.error === 'HPE_CHUNK_EXTENSIONS_OVERFLOW' && r.status === 400 && r.requests.every((x) => !x.complete);
  eachWay(t, 'one extension of 16 KiB + 100 in the first chunk', chunked(`5;${'a'.repeat(MAX_CHUNK_EXTENSION_BYTES + 100)}\r\nhello\r\n0\r\n\r\n`), (r, how) => t.ok(refused(r), `${how}: ${r.error}`));
  eachWay(t, 'in the last chunk', chunked(`5\r\nhello\r\n0;${'a'.repeat(MAX_CHUNK_EXTENSION_BYTES + 100)}\r\n\r\n`), (r, how) => t.ok(refused(r), `${how}: ${r.error}`));
  eachWay(t, 'an extension that never ends (no body progress)', chunked(`5;${'a'.repeat(MAX_CHUNK_EXTENSION_BYTES * 2)}`), (r, how) => t.ok(refused(r), `${how}: ${r.error}`));
  eachWay(t, '40 chunks of 500 extension bytes each', chunked(`${'1;' + 'e'.repeat(500) + '\r\nx\r\n'.repeat(1)}`.repeat(40) + '0\r\n\r\n'), (r, how) => t.ok(refused(r), `${how}: ${r.error}`));
  eachWay(t, 'a small extension on each of 200 chunks', chunked('1;name=value\r\nx\r\n'.repeat(200) + '0\r\n\r\n'), (r, how) => t.same([r.error, r.requests[0]?.body.length, r.requests[0]?.complete], [null, 200, true], how));
  eachWay(t, 'an extension of 16 KiB - 100 bytes', chunked(`5;${'a'.repeat(MAX_CHUNK_EXTENSION_BYTES - 100)}\r\nhello\r\n0\r\n\r\n`), (r, how) => t.same([r.error, r.requests[0]?.body], [null, 'hello'], how));
  const small = chunked('1\r\nx\r\n'.repeat(5_000) + '0\r\n\r\n');
  const r = read(whole(small));
  t.same([r.error, r.requests[0]?.body.length, r.requests[0]?.complete], [null, 5_000, true], '5,000 one-byte chunks pass (whole)');
  const cuts = read(cutAt(small, Array.from({ length: 300 }, (_, i) => i * 97)));
  t.same([cuts.error, cuts.requests[0]?.body.length], [null, 5_000], '5,000 one-byte chunks pass (300 cuts)');
  // The extension count is per message: the next request starts from nothing.
  eachWay(t, 'two requests of 12 KiB extensions each', Buffer.concat([0, 1].map(() => chunked(`5;${'a'.repeat(12_000)}\r\nhello\r\n0\r\n\r\n`))), (r, how) => t.same([r.error, r.requests.map((x) => x.complete)], [null, [true, true]], how));
});

t.test('values lose trailing blanks; pipelined requests; upgrades keep what follows the head', async (t) => {
  eachWay(t, 'trailing blanks', req(`POST /a HTTP/1.1\r\nHost: h \t\r\nX:  a b \r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: t \t\r\n\r\n`), (r, how) =>
    t.same([r.requests[0]?.headers, r.requests[0]?.trailers], [['Host', 'h', 'X', 'a b', 'Transfer-Encoding', 'chunked'], ['T', 't']], how),
  );
  eachWay(t, 'three pipelined requests', req('GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: h\r\n\r\n'), (r, how) =>
    t.same(r.requests.map((x) => [x.method, x.url, x.body, x.complete]), [['GET', '/1', '', true], ['POST', '/2', 'abc', true], ['GET', '/3', '', true]], how),
  );
  eachWay(t, 'an upgrade', req('GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello'), (r, how) => t.same([r.tookOver, r.rest, r.requests.length], [true, '\x81\x05hello', 1], how));
  eachWay(t, 'CONNECT', req('CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\nbytes'), (r, how) => t.same([r.tookOver, r.rest, r.requests[0]?.method], [true, 'bytes', 'CONNECT'], how));
  eachWay(t, 'bytes after Connection: close', req('GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n'), (r, how) =>
    t.same([r.requests.map((x) => x.url), r.error], [['/1'], 'HPE_CLOSED_CONNECTION'], how),
  );
});

t.test('a callback that throws is the parse result, never an exception', async (t) => {
  const parser = new RequestParser({ onRequest: () => { throw new Error('owner failed'); }, onBody: () => undefined, onComplete: () => undefined }, LIMITS);
  const r = parser.execute(req('GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
  t.same([r.kind, r.kind === 'error' ? r.error.message : null], ['error', 'owner failed']);
  parser.close();
  const after = new RequestParser({ onRequest: () => false, onBody: () => undefined, onComplete: () => { throw new Error('complete failed'); } }, LIMITS);
  const r2 = after.execute(req('GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
  t.same([r2.kind, r2.kind === 'error' ? r2.error.message : null], ['error', 'complete failed']);
  after.close();
  t.same(after.execute(req('GET / HTTP/1.1\r\n\r\n')).kind, 'error', 'a closed parser refuses more bytes');
});
