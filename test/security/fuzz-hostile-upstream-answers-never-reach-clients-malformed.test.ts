// Pins a security decision: whatever bytes an upstream answers with, the client gets a well-formed
// answer that is the upstream's own or a documented gateway error, never a line the upstream could
// not have sent as a header of its own, never another request's answer. One live gateway per engine
// (in process, real TLS on 127.0.0.1, PKI generated for the run; `server.engine` lean, with the
// gateway's own HTTP/1 client, and node, with undici's) in front of an upstream that answers each
// request with a generated response: status lines from valid to garbage, 1xx first, header sets
// (hop-by-hop, framing, identity headers, random names and values with any byte, bare CR or LF),
// every framing (Content-Length exact, short or long, chunked with extensions and trailers or
// broken, close-delimited), a whole second response after the first (a desync attempt), byte
// edits in the head, written in pieces, the connection kept or closed. For every request:
//   - the process survives: no uncaught exception or unhandled rejection;
//   - the client gets at most one final answer that parses as HTTP/1.1, or one cut inside its
//     body (what the upstream sent, then the connection closes), or the connection closes;
//     it never waits out the limit (the upstream closes every connection 300 ms after its last
//     write, so a gateway that still waits has lost track of it);
//   - a gateway answer is documented (status, JSON error, registry code), and 500 is a finding;
//   - a relayed answer's header names and values are ones node:http would write, every one of
//     them that the gateway does not set itself appears in this request's upstream answer (no
//     line made up from broken framing, nothing from another request's answer), and the second
//     response an upstream appends is never relayed as an answer to anyone (as the body of a
//     close-delimited answer it is that answer's body, and relayed as such); it is always sent
//     with the answer's last byte (UpstreamReply.appendedAt says why);
//   - after every batch a known-good request still gets its own answer (no pooled connection left
//     out of step).
// Seeded: the seed is printed; FUZZ_SEED replays it, FUZZ_RUNS sets the requests per engine
// (default 240).
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { judgeResponse } from '../helpers/documented-answer.js';
import { enginesUnderTest, gatewayYaml, makeTestPki, startGateway, tempDir, writePkiFiles } from '../helpers/harness.js';
import { FLEET_ROUTES_YAML } from '../helpers/fleet.js';
import { nodeHttpWritesName, nodeHttpWritesValue } from '../helpers/node-http-rules.js';
import { distinctFaults, guardProcess, mapLimit } from '../helpers/process-guard.js';
import { rawTlsExchange, show, type RawExchange, type RawResponse } from '../helpers/raw-tls-request.js';
import { startRawTlsUpstream } from '../helpers/raw-tls-upstream.js';

const SEED = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : Math.floor(Math.random() * 0x7fffffff);
const RUNS = Math.max(1, Number(process.env['FUZZ_RUNS'] ?? 240));
/** Requests per batch: sent concurrently, then the known-good request. */
const BATCH = 8;
/** The upstream ends a connection this long after its last write when no new request came. */
const LINGER_MS = 300;
const SMUGGLED = 'HTTP/1.1 200 OK\r\nX-Case: smuggled\r\nX-Smuggled: yes\r\nContent-Length: 8\r\n\r\nsmuggled';
const KNOWN_GOOD = 'HTTP/1.1 200 OK\r\nX-Case: known-good\r\nContent-Length: 2\r\n\r\nok';
/** Headers the gateway writes itself on a relayed answer (framing, connection, its request id). */
const OWNED = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'x-request-id']);

// ---------------------------------------------------------------------------------------------
// The model of one generated upstream answer.

type Framing = 'cl' | 'cl-short' | 'cl-long' | 'chunked' | 'chunked-bad' | 'close';

interface Mutation {
  readonly at: number;
  readonly op: 'insert' | 'replace' | 'delete';
  readonly byte: number;
}

interface UpstreamCase {
  readonly method: 'GET' | 'HEAD' | 'POST';
  /** A 1xx head written before the final one (without its blank line), or null. */
  readonly interim: string | null;
  readonly statusLine: string;
  /** [line, end of line]. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly framing: Framing;
  readonly body: string;
  /** Chunk extension and trailer lines, for chunked framing. */
  readonly extension: string;
  readonly trailers: readonly string[];
  readonly smuggle: boolean;
  readonly mutations: readonly Mutation[];
  /** Written in this many pieces, a few ms apart. */
  readonly pieces: number;
  /** The connection stays open after the answer (until LINGER_MS pass without a request). */
  readonly keepOpen: boolean;
}

/** The bytes the upstream writes for a case (latin1), its marker header first. */
function render(c: UpstreamCase, marker: string): string {
  let head = (c.interim !== null ? `${c.interim}\r\n\r\n` : '') + `${c.statusLine}\r\nX-Case: ${marker}\r\n`;
  for (const [line, eol] of c.headers) head += line + eol;
  let body = c.body;
  switch (c.framing) {
    case 'cl':
      head += `Content-Length: ${body.length}\r\n`;
      break;
    case 'cl-short':
      head += `Content-Length: ${body.length + 5}\r\n`;
      break;
    case 'cl-long':
      head += `Content-Length: ${Math.max(0, body.length - 3)}\r\n`;
      break;
    case 'chunked': {
      head += 'Transfer-Encoding: chunked\r\n';
      const half = body.length >> 1;
      const chunks = [body.slice(0, half), body.slice(half)].filter((x) => x.length > 0);
      body = chunks.map((x) => `${x.length.toString(16)}${c.extension}\r\n${x}\r\n`).join('') + `0\r\n${c.trailers.map((l) => `${l}\r\n`).join('')}\r\n`;
      break;
    }
    case 'chunked-bad':
      head += 'Transfer-Encoding: chunked\r\n';
      body = `${(body.length + 7).toString(16)}\r\n${body}\r\nzz\r\n`;
      break;
    case 'close':
      break;
  }
  let raw = `${head}\r\n${body}`;
  for (const m of c.mutations) {
    // Edits stay inside the head and after the marker line, so the marker survives.
    const from = raw.indexOf(`X-Case: ${marker}\r\n`) + `X-Case: ${marker}\r\n`.length;
    const end = raw.indexOf('\r\n\r\n', from);
    const span = Math.max(1, (end < 0 ? raw.length : end + 2) - from);
    const at = from + (m.at % span);
    const ch = String.fromCharCode(m.byte);
    raw = m.op === 'insert' ? raw.slice(0, at) + ch + raw.slice(at) : m.op === 'replace' ? raw.slice(0, at) + ch + raw.slice(at + 1) : raw.slice(0, at) + raw.slice(at + 1);
  }
  return raw + (c.smuggle ? SMUGGLED : '');
}

// ---------------------------------------------------------------------------------------------
// Generators, from valid through subtly wrong to garbage.

/** Mostly printable text, sometimes any byte at all. */
const textByte = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...'abcXYZ019 -_,;=/."\t:'.split('')) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((b) => String.fromCharCode(b)) },
);
const text = (max: number) => fc.array(textByte, { minLength: 0, maxLength: max }).map((a) => a.join(''));

const statusLineArb = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.constantFrom(200, 201, 202, 204, 206, 301, 302, 304, 400, 404, 418, 429, 500, 502, 503, 599), fc.constantFrom('OK', 'Fine', '', 'Not Found')).map(([s, r]) => `HTTP/1.1 ${s} ${r}`) },
  { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0 200 OK', 'HTTP/1.1 200', 'HTTP/1.1 200  OK') },
  {
    weight: 2,
    arbitrary: fc.constantFrom('HTTP/1.2 200 OK', 'HTTP/2.0 200 OK', 'http/1.1 200 OK', 'HTTP/1.1 2000 OK', 'HTTP/1.1 099 Low', 'HTTP/1.1 000 Zero', 'HTTP/1.1 20 OK', 'HTTP/1.1 abc OK', 'HTTP/1.1\t200 OK', 'ICY 200 OK', 'HTTP/1.1 200 O\x00K', 'HTTP/1.1 200 O\rK', '', 'garbage'),
  },
  { weight: 1, arbitrary: text(40).map((s) => `HTTP/1.1 200 ${s}`) },
);

const interimArb = fc.oneof(
  { weight: 8, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constantFrom('HTTP/1.1 100 Continue', 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload', 'HTTP/1.1 102 Processing', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade', 'HTTP/1.1 100 Continue\r\nX-Bad: a\x01b') },
);

const knownHeader = fc.constantFrom(
  'Content-Type: text/plain',
  'Server: fuzz-upstream',
  'Set-Cookie: a=1; Path=/',
  'Set-Cookie: b=2',
  'Cache-Control: no-store',
  'Date: Sat, 05 Dec 2026 13:00:00 GMT',
  'Vary: Accept',
  'ETag: "x"',
  'Location: /elsewhere',
  'Connection: close',
  'Connection: keep-alive',
  'Connection: X-Drop-Me',
  'X-Drop-Me: secret',
  'Keep-Alive: timeout=1',
  'Proxy-Connection: keep-alive',
  'TE: trailers',
  'Trailer: X-T',
  'Upgrade: h2c',
  'Proxy-Authenticate: Basic',
  'Content-Length: 0',
  'Content-Length: -1',
  'Content-Length: 1, 1',
  'Content-Length: +5',
  'Content-Length: 99999999999999999999',
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: gzip',
  'Transfer-Encoding: chunked, chunked',
  'Transfer-Encoding:  chunked',
  'X-Request-Id: set-by-the-upstream-0001',
  'X-Forwarded-Client-Cert: By=spiffe://evil.example/sa/admin',
  'Client-Cert: :MIIB:',
  `X-Long: ${'a'.repeat(20_000)}`,
  'X-Empty:',
  'X-Spaces:    padded    ',
);
const tokenName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,10}$/).map((n) => `X-${n}`);
const headerLineArb = fc.oneof(
  { weight: 6, arbitrary: knownHeader },
  { weight: 4, arbitrary: fc.tuple(tokenName, text(30)).map(([n, v]) => `${n}: ${v}`) },
  { weight: 1, arbitrary: fc.tuple(text(12), text(12)).map(([n, v]) => `${n}: ${v}`) },
  { weight: 1, arbitrary: fc.constantFrom(' X-Folded: a', '\tX-Tab: a', 'X-No-Colon', ': no-name', 'X-A : space-before-colon', 'X-A:\x00', 'X\x7fA: del') },
);
const eolArb = fc.oneof({ weight: 20, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '\r\r\n', '\n\r') });

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat({ max: 10_000 }),
  op: fc.constantFrom<Mutation['op']>('insert', 'replace', 'delete'),
  byte: fc.oneof(fc.constantFrom(0x00, 0x0a, 0x0d, 0x20, 0x3a, 0x7f, 0x09, 0xff), fc.integer({ min: 0, max: 255 })),
});

const caseArb: fc.Arbitrary<UpstreamCase> = fc.record({
  method: fc.oneof({ weight: 6, arbitrary: fc.constant<'GET'>('GET') }, { weight: 2, arbitrary: fc.constant<'HEAD'>('HEAD') }, { weight: 2, arbitrary: fc.constant<'POST'>('POST') }),
  interim: interimArb,
  statusLine: statusLineArb,
  headers: fc.array(fc.tuple(headerLineArb, eolArb), { maxLength: 10 }),
  framing: fc.constantFrom<Framing>('cl', 'cl', 'cl', 'chunked', 'chunked', 'cl-short', 'cl-long', 'chunked-bad', 'close'),
  body: fc.oneof({ weight: 8, arbitrary: text(120) }, { weight: 1, arbitrary: fc.constant('b'.repeat(70_000)) }),
  extension: fc.constantFrom('', '', ';ext=1', ';e="q"', '; bad ext', ';\x00'),
  trailers: fc.array(fc.oneof(headerLineArb, fc.constant('X-Trailer: t')), { maxLength: 3 }),
  smuggle: fc.boolean(),
  mutations: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) }),
  pieces: fc.integer({ min: 1, max: 3 }),
  keepOpen: fc.boolean(),
});

// ---------------------------------------------------------------------------------------------
// The upstream: answers /orders/fz/<n> with case n's bytes, /orders/ok with the known-good answer.

interface HostileUpstream {
  readonly port: number;
  /** What the upstream wrote for each case (latin1), to check relayed answers against. */
  readonly sent: Map<string, string>;
  close(): Promise<void>;
}

/** How the upstream answers one case: its bytes, in how many pieces, and whether the connection stays open. */
interface UpstreamReply {
  readonly bytes: string;
  readonly pieces: number;
  readonly keepOpen: boolean;
  /**
   * Where the appended response starts, which no piece boundary may fall on. A second response
   * written only after the answer was complete, a write of its own 2 ms later, reaches a connection
   * the gateway may by then have given the next request; no HTTP/1.1 client can tell it from that
   * request's answer (docs/security.md, "What an HTTP/1.1 upstream can still do"). Sent with the
   * answer's last byte, in the same write, it must never be relayed (FUZZ_SEED=4444 FUZZ_RUNS=1328
   * found the former: case 1322's answer ended exactly at its first piece's end).
   */
  readonly appendedAt?: number;
}

const KNOWN_GOOD_REPLY: UpstreamReply = { bytes: KNOWN_GOOD, pieces: 1, keepOpen: true };

async function startHostileUpstream(key: string, cert: string, ca: string, answerFor: (id: string) => UpstreamReply | null): Promise<HostileUpstream> {
  const sent = new Map<string, string>();
  const server = await startRawTlsUpstream({ key, cert, ca }, (sock) => {
    let buf = '';
    let linger: NodeJS.Timeout | null = null;
    let writing: Promise<void> = Promise.resolve();
    const arm = () => {
      if (linger !== null) clearTimeout(linger);
      linger = setTimeout(() => sock.end(), LINGER_MS);
    };
    arm();
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        buf = buf.slice(end + 4 + length);
        const path = /^[A-Z]+ (\S+) /.exec(head)?.[1] ?? '';
        const id = /^\/orders\/fz\/(\d+)$/.exec(path)?.[1] ?? null;
        const answer = path === '/orders/ok' ? KNOWN_GOOD_REPLY : id !== null ? answerFor(id) : null;
        if (answer === null) {
          sock.destroy();
          return;
        }
        const { bytes, pieces: n, keepOpen: open, appendedAt } = answer;
        if (id !== null) sent.set(id, bytes);
        if (linger !== null) clearTimeout(linger);
        writing = writing.then(async () => {
          const size = Math.ceil(bytes.length / n);
          const cut = (i: number) => (i * size === appendedAt ? i * size + 1 : Math.min(i * size, bytes.length));
          for (let i = 0; i < n && !sock.destroyed; i++) {
            if (i > 0) await new Promise((r) => setTimeout(r, 2));
            sock.write(Buffer.from(bytes.slice(cut(i), cut(i + 1)), 'latin1'));
          }
          if (open) arm();
          else sock.end();
        });
      }
    });
  });
  return { port: server.port, sent, close: () => server.close() };
}

// ---------------------------------------------------------------------------------------------
// The judge.

/** The header lines of a response cut inside its body (`leftover`: its bytes from the status line on), or null without a whole head. */
function cutHead(leftover: Buffer): Array<{ name: string; value: string }> | null {
  const s = leftover.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  if (end < 0) return null;
  return s
    .slice(0, end)
    .split('\r\n')
    .slice(1)
    .map((l) => {
      const colon = l.indexOf(':');
      return { name: colon < 0 ? l : l.slice(0, colon), value: colon < 0 ? '' : l.slice(colon + 1).trim() };
    });
}

/** What is wrong with a relayed header list, given the bytes this request's upstream wrote. */
function relayProblems(headers: ReadonlyArray<{ name: string; value: string }>, upstreamBytes: string): string[] {
  const problems: string[] = [];
  const lowerBytes = upstreamBytes.toLowerCase();
  for (const { name, value } of headers) {
    if (!nodeHttpWritesName(name)) problems.push(`relayed a header name node:http would not write: ${JSON.stringify(name)}`);
    if (!nodeHttpWritesValue(value)) problems.push(`relayed a header value node:http would not write: ${JSON.stringify(name)}: ${JSON.stringify(value)}`);
    const lower = name.toLowerCase();
    if (lower === 'x-smuggled') problems.push('relayed the response the upstream appended after its answer');
    if (OWNED.has(lower)) continue;
    if (!lowerBytes.includes(`${lower}:`)) problems.push(`relayed a header this request's upstream answer does not have: ${JSON.stringify(name)}`);
    // Values of repeated lines may be joined with ", " (node:http's way): each part was sent.
    for (const part of value.split(', ')) {
      if (!upstreamBytes.includes(part)) problems.push(`relayed a value this request's upstream answer does not have: ${JSON.stringify(name)}: ${JSON.stringify(part.slice(0, 80))}`);
    }
  }
  return problems;
}

function isGatewayAnswer(r: RawResponse): boolean {
  const ct = r.header('content-type');
  return ct.length === 1 && ct[0] === 'application/json; charset=utf-8';
}

function judge(x: RawExchange, upstreamBytes: string | undefined): string[] {
  const problems: string[] = [];
  if (x.ending === 'timeout') problems.push('neither an answer nor a close before the limit');
  if (x.ending === 'tls-error') problems.push(`the TLS handshake failed: ${x.socketError}`);
  // An answer cut inside its body (the upstream's body ended short or broke off): what came is
  // relayed, then the connection closes. Its head is judged below like a whole answer's.
  const cut = x.parseError !== null && /^connection closed inside (a body|a chunked body|a chunk|chunked trailers)/.test(x.parseError);
  if (x.parseError !== null && !cut) problems.push(`the answer does not parse as HTTP/1.1: ${x.parseError}`);
  const finals = x.responses.filter((r) => !r.interim);
  if (finals.length > 1) problems.push(`${finals.length} final answers to one request`);
  for (const r of x.responses) {
    if (!r.interim && isGatewayAnswer(r)) {
      problems.push(...judgeResponse(r).problems);
      continue;
    }
    if (r.interim && (r.status === 101 || r.status < 100)) problems.push(`relayed an interim ${r.status}`);
    if (upstreamBytes === undefined) problems.push(`a relayed answer (${r.status}) to a request the upstream never saw`);
    else problems.push(...relayProblems(r.headers, upstreamBytes));
  }
  if (finals.length === 0 && (cut || (x.parseError === null && x.leftover.length > 0))) {
    // Cut after the head was relayed: the head must be as clean as a whole answer's.
    const head = cutHead(x.leftover);
    if (head !== null) problems.push(...(upstreamBytes === undefined ? ['a relayed head to a request the upstream never saw'] : relayProblems(head, upstreamBytes)));
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

for (const engine of enginesUnderTest()) {
  t.test(`hostile upstream answers never reach a client malformed (server.engine: ${engine})`, async (t) => {
    const cases = fc.sample(caseArb, { seed: SEED + (engine === 'lean' ? 0 : 1), numRuns: RUNS });
    t.comment(`fuzz seed ${SEED} (replay: FUZZ_SEED=${SEED}); ${cases.length} upstream answers in batches of ${BATCH}`);
    const pki = await makeTestPki();
    const { dir, cleanup } = await tempDir();
    t.teardown(cleanup);
    await writePkiFiles(pki, dir);
    const up = pki.upstreams['orders']!;
    const markers = cases.map((_, i) => `c${String(i).padStart(4, '0')}-${randomBytes(4).toString('hex')}`);
    const upstream = await startHostileUpstream(
      up.keyPem,
      up.chainPem,
      pki.caBundlePem,
      (id) => {
        const c = cases[Number(id)];
        if (c === undefined) return null;
        // A short or close-delimited body ends only when the connection does.
        const bytes = render(c, markers[Number(id)]!);
        return { bytes, pieces: c.pieces, keepOpen: c.keepOpen && c.framing !== 'close' && c.framing !== 'cl-short', ...(c.smuggle ? { appendedAt: bytes.length - SMUGGLED.length } : {}) };
      },
    );
    t.teardown(() => upstream.close());
    const guard = guardProcess();
    t.teardown(() => guard.dispose());
    // FLEET_ROUTES_YAML names no methods, so that HEAD answers are relayed too.
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port, crl: false, routes: FLEET_ROUTES_YAML, extra: `server: { engine: ${engine} }` }) });
    t.teardown(() => gw.close());
    const billing = pki.clients['billing']!;
    const findings: string[] = [];
    for (let b = 0; b < cases.length; b += BATCH) {
      const ids = cases.slice(b, b + BATCH).map((_, k) => b + k);
      guard.during(`batch at ${b}`);
      await mapLimit(ids, BATCH, async (i) => {
        const c = cases[i]!;
        const body = c.method === 'POST' ? 'hello' : '';
        const payload = `${c.method} /orders/fz/${i} HTTP/1.1\r\nHost: localhost\r\n${c.method === 'POST' ? 'Content-Length: 5\r\n' : ''}\r\n${body}`;
        const x = await rawTlsExchange({ port: gw.port, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, payload, requestMethods: [c.method], expectResponses: 1, graceMs: 50, timeoutMs: 8_000 });
        const problems = judge(x, upstream.sent.get(String(i)));
        if (problems.length > 0) findings.push(`case ${i} (${c.method}, ${c.framing}${c.smuggle ? ', smuggle' : ''}${c.mutations.length > 0 ? ', mutated' : ''}): ${problems.slice(0, 3).join('; ')}\n  upstream wrote: ${show(upstream.sent.get(String(i)) ?? '(nothing)', 300)}\n  client read: ${show(x.raw, 300)}`);
      });
      const ok = await rawTlsExchange({ port: gw.port, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, payload: 'GET /orders/ok HTTP/1.1\r\nHost: localhost\r\n\r\n', expectResponses: 1, graceMs: 20, timeoutMs: 8_000 });
      const r = ok.responses.find((x) => !x.interim);
      if (r === undefined || r.status !== 200 || r.header('x-case')[0] !== 'known-good' || r.body.toString() !== 'ok') findings.push(`after batch at ${b}, the known-good request got: ${show(ok.raw, 300)}`);
    }
    for (const f of findings.slice(0, 10)) t.comment(f);
    t.same(distinctFaults(guard.faults), [], 'the process survived every answer');
    t.same(findings.slice(0, 10), [], `every answer reached its client well-formed (seed ${SEED}; ${findings.length} findings)`);
  });
}
