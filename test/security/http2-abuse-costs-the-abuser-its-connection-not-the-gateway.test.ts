// What an attacker sends over HTTP/2: streams opened and reset at once (rapid reset,
// CVE-2023-44487), header blocks that never end (CONTINUATION flood, CVE-2024-27316 class), PING
// floods, oversized and over-long header lists, and malformed streams (RFC 9113 8.2-8.3: upper-case
// names, connection-specific headers, TE other than trailers, missing or repeated pseudo-headers,
// CR/LF in a value). Each costs the abuser its stream or its connection, never reaches the upstream
// unjudged, and the gateway keeps serving everyone else.
import { constants } from 'node:http2';
import t from 'tap';
import { errorCodeOf, FLAG, FRAME, frame, goawayOf, h2connect, h2request, hpack, rawH2 } from '../helpers/h2-client.js';
import { makeTestPki, startStack } from '../helpers/harness.js';

const REQUEST: [string, string][] = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':path', '/orders/1'],
  [':authority', 'localhost'],
];

t.test('HTTP/2 abuse', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({ pki });
  t.teardown(() => s.close());
  const billing = pki.clients['billing']!;
  const ca = pki.root.certPem;
  const stillServes = async (what: string) => {
    const c = await h2connect(s.gw.port, billing, ca);
    const r = await h2request(c, { path: '/orders/ok' });
    c.destroy();
    t.equal(r.status, 200, `after ${what}, another client is served`);
  };

  await t.test('rapid reset: streams opened and cancelled at once lose the connection', async (t) => {
    const conn = await rawH2(s.gw.port, billing, ca);
    t.teardown(() => conn.close());
    const seenBefore = s.upstream.seen.length;
    const burst: Buffer[] = [];
    for (let i = 0; i < 1000; i++) {
      const id = 1 + 2 * i;
      burst.push(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, hpack(REQUEST)), frame(FRAME.RST_STREAM, 0, id, Buffer.from([0, 0, 0, constants.NGHTTP2_CANCEL])));
    }
    conn.send(Buffer.concat(burst));
    const goaway = await conn.waitFor((f) => f.type === FRAME.GOAWAY);
    t.ok(goaway, 'the gateway sent GOAWAY');
    t.equal(errorCodeOf(goaway!), constants.NGHTTP2_ENHANCE_YOUR_CALM, 'ENHANCE_YOUR_CALM');
    await conn.closed;
    t.ok(s.upstream.seen.length - seenBefore < 1000, `the upstream saw ${s.upstream.seen.length - seenBefore} of the 1000 cancelled requests`);
    t.ok(s.gw.logs.some((l) => l['event'] === 'http2-rapid-reset' && l['code'] === 'GW_ERR_HTTP2_ABUSE'), 'logged with its code');
    t.match(await s.gw.gateway.metrics.text(), /mtls_gateway_http2_sessions_closed_total\{reason="rapid-reset"\} 1/, 'counted');
    await stillServes('a rapid-reset attack');
  });

  await t.test('a client that cancels now and then keeps its connection', async (t) => {
    const c = await h2connect(s.gw.port, billing, ca);
    t.teardown(() => c.destroy());
    for (let i = 0; i < 20; i++) {
      const req = c.request({ ':path': `/orders/${i}` });
      req.on('error', () => undefined);
      req.close(constants.NGHTTP2_CANCEL);
    }
    const r = await h2request(c, { path: '/orders/after' });
    t.equal(r.status, 200, 'twenty cancellations are within the budget');
  });

  for (const [name, block] of [
    ['growing', (i: number) => hpack([[`x-flood-${i}`, 'a'.repeat(100)]])],
    ['empty', () => Buffer.alloc(0)],
  ] as const) {
    await t.test(`CONTINUATION flood (${name} frames) loses the connection`, async (t) => {
      const conn = await rawH2(s.gw.port, billing, ca);
      t.teardown(() => conn.close());
      const frames: Buffer[] = [frame(FRAME.HEADERS, FLAG.END_STREAM, 1, hpack(REQUEST))];
      for (let i = 0; i < 5000; i++) frames.push(frame(FRAME.CONTINUATION, 0, 1, block(i)));
      conn.send(Buffer.concat(frames));
      const goaway = await conn.waitFor((f) => f.type === FRAME.GOAWAY);
      // nghttp2 ends the connection (GOAWAY, or at once): an endless header block is never buffered.
      if (goaway) t.not(errorCodeOf(goaway), constants.NGHTTP2_NO_ERROR, `GOAWAY with error ${errorCodeOf(goaway)}`);
      await conn.closed;
      t.pass('the connection was closed');
      t.notOk(conn.frames.some((f) => f.type === FRAME.HEADERS && f.streamId === 1), 'the stream was never answered');
      await stillServes(`a CONTINUATION flood (${name})`);
    });
  }

  await t.test('PING flood is answered or cut, never buffered without bound', async (t) => {
    const conn = await rawH2(s.gw.port, billing, ca);
    t.teardown(() => conn.close());
    const pings: Buffer[] = [];
    for (let i = 0; i < 300_000; i++) pings.push(frame(FRAME.PING, 0, 0, Buffer.alloc(8, i & 0xff)));
    conn.send(Buffer.concat(pings));
    conn.socket.pause();
    // Not reading the acknowledgements: the server must stop (nghttp2's outbound queue limit).
    const closed = await Promise.race([conn.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
    conn.socket.resume();
    t.ok(closed, 'a client that floods PINGs without reading the acknowledgements loses its connection');
    t.ok(conn.frames.filter((f) => f.type === FRAME.PING).length < 300_000, 'and never gets 300,000 answers');
    conn.close();
    await stillServes('a PING flood');
  });

  await t.test('malformed streams are reset, and the connection carries on', async (t) => {
    const conn = await rawH2(s.gw.port, billing, ca);
    t.teardown(() => conn.close());
    const seenBefore = s.upstream.seen.length;
    const cases: [string, [string, string][]][] = [
      ['upper-case header name', [...REQUEST, ['X-Upper', '1']]],
      ['connection header', [...REQUEST, ['connection', 'keep-alive']]],
      ['keep-alive header', [...REQUEST, ['keep-alive', 'timeout=5']]],
      ['transfer-encoding', [...REQUEST, ['transfer-encoding', 'chunked']]],
      ['upgrade header', [...REQUEST, ['upgrade', 'websocket']]],
      ['te: gzip', [...REQUEST, ['te', 'gzip']]],
      ['missing :path', REQUEST.filter(([n]) => n !== ':path')],
      ['missing :method', REQUEST.filter(([n]) => n !== ':method')],
      ['missing :scheme', REQUEST.filter(([n]) => n !== ':scheme')],
      ['two :path', [...REQUEST, [':path', '/admin/x']]],
      ['two :method', [...REQUEST, [':method', 'POST']]],
      ['pseudo-header after a regular one', [REQUEST[0]!, REQUEST[1]!, ['x-a', 'b'], REQUEST[2]!, REQUEST[3]!]],
      ['unknown pseudo-header', [...REQUEST, [':protocol', 'websocket']]],
      ['response pseudo-header in a request', [...REQUEST, [':status', '200']]],
      ['empty :path', REQUEST.map(([n, v]) => [n, n === ':path' ? '' : v] as [string, string])],
      ['content-length that lies', [...REQUEST.map(([n, v]) => [n, n === ':method' ? 'POST' : v] as [string, string]), ['content-length', '10']]],
    ];
    let id = 1;
    for (const [what, fields] of cases) {
      const stream = id;
      id += 2;
      // END_STREAM with a content-length of 10 is itself malformed (RFC 9113 8.1.1).
      conn.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, stream, hpack(fields)));
      const answer = await conn.waitFor((f) => f.streamId === stream && (f.type === FRAME.RST_STREAM || f.type === FRAME.HEADERS) || f.type === FRAME.GOAWAY);
      t.ok(answer, `${what}: the stream ended`);
      if (answer?.type === FRAME.GOAWAY) {
        t.fail(`${what}: cost the whole connection (GOAWAY ${errorCodeOf(answer)})`);
        break;
      }
      if (answer?.type === FRAME.HEADERS) {
        // node:http2 passes these; the gateway refuses them itself (src/request/http2-fields.ts).
        t.equal(answer.payload[0], 0x8c, `${what}: answered 400 (HPACK static index 12), never forwarded`);
      } else {
        t.equal(answer?.type, FRAME.RST_STREAM, `${what}: reset`);
        t.equal(errorCodeOf(answer!), constants.NGHTTP2_PROTOCOL_ERROR, `${what}: PROTOCOL_ERROR`);
      }
    }
    t.equal(s.upstream.seen.length, seenBefore, 'no malformed stream reached the upstream');
    // The same connection still serves a well-formed stream.
    conn.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, hpack(REQUEST)));
    const ok = await conn.waitFor((f) => f.streamId === id && f.type === FRAME.HEADERS);
    t.ok(ok, 'a well-formed stream on the same connection is answered');
    t.equal(ok?.payload[0], 0x88, 'with :status 200 (HPACK static index 8)');
  });

  await t.test('fields HTTP/1.1 cannot carry are dropped, never forwarded', async (t) => {
    const conn = await rawH2(s.gw.port, billing, ca);
    t.teardown(() => conn.close());
    const cases: [string, [string, string]][] = [
        ['CR LF in a value', ['x-split', 'a\r\nx-forwarded-client-cert: forged']],
        ['NUL in a value', ['x-nul', 'a\u0000b']],
        ['space in a name', ['x bad', '1']],
        ['colon inside a name', ['x:bad', '1']],
        ['tab in a name', ['x\tbad', '1']],
        ['empty name', ['', 'v']],
        ['leading space in a value', ['x-a', ' v']],
        ['trailing tab in a value', ['x-a', 'v\t']],
        ['bare LF in a value', ['x-a', 'a\nb']],
        ['non-ASCII name', ['x-\u00e9', 'v']],
    ];
    let id = 1;
    for (const [what, field] of cases) {
      const before = s.upstream.seen.length;
      conn.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, hpack([...REQUEST, field, ['x-marker', String(id)]])));
      const stream = id;
      id += 2;
      const answer = await conn.waitFor((f) => (f.streamId === stream && (f.type === FRAME.RST_STREAM || f.type === FRAME.HEADERS)) || f.type === FRAME.GOAWAY);
      t.not(answer?.type, FRAME.GOAWAY, `${what}: costs at most the stream`);
      if (answer?.type !== FRAME.HEADERS) continue;
      const seen = s.upstream.seen.slice(before).find((r) => r.headers['x-marker'] === String(stream));
      const names = Object.keys(seen?.headers ?? {});
      t.notOk(names.includes(field[0].toLowerCase()) || names.some((n) => /[\s:\u0000]/.test(n)), `${what}: the field did not reach the upstream`);
      t.notOk(JSON.stringify(seen?.headers ?? {}).includes('forged'), `${what}: nothing was injected`);
    }
  });

  await t.test('header lists over the limits', async (t) => {
    const c = await h2connect(s.gw.port, billing, ca);
    t.teardown(() => c.destroy());
    const many: Record<string, string> = {};
    for (let i = 0; i < 101; i++) many[`x-h${i}`] = 'v';
    const tooMany = await h2request(c, { path: '/orders/1', headers: many });
    t.equal(tooMany.status, 431, 'one header more than server.maxHeaders: 431, as over HTTP/1.1');
    t.match(tooMany.json, { error: { code: 'GW_ERR_HEADERS_TOO_LARGE' } });
    const seenBefore = s.upstream.seen.length;
    const huge = await h2connect(s.gw.port, billing, ca);
    t.teardown(() => huge.destroy());
    const big = await h2request(huge, { path: '/orders/1', headers: { 'x-big': 'a'.repeat(40_000) } }).catch((err: Error) => err);
    t.not(big instanceof Error ? 0 : big.status, 200, 'a header list over server.maxHeaderSize is not forwarded');
    const far = await h2request(c, { path: '/orders/1', headers: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`x-f${i}`, 'v'])) }).catch((err: Error) => err);
    t.not(far instanceof Error ? 0 : far.status, 200, 'a thousand headers are not forwarded');
    t.equal(s.upstream.seen.length, seenBefore, 'nothing over the limits reached the upstream');
    await stillServes('oversized header lists');
  });

  await t.test('more streams than maxConcurrentStreams are refused, not queued without bound', async (t) => {
    const conn = await rawH2(s.gw.port, billing, ca);
    t.teardown(() => conn.close());
    // POSTs that never send their body stay open: 150 of them against a limit of 100.
    const post = REQUEST.map(([n, v]) => [n, n === ':method' ? 'POST' : v] as [string, string]);
    const frames: Buffer[] = [];
    for (let i = 0; i < 150; i++) frames.push(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, hpack(post)));
    conn.send(Buffer.concat(frames));
    const refused = await conn.waitFor((f) => f.type === FRAME.RST_STREAM && errorCodeOf(f) === constants.NGHTTP2_REFUSED_STREAM);
    const goaway = refused ? null : conn.frames.find((f) => f.type === FRAME.GOAWAY);
    t.ok(refused || goaway, 'streams over the limit are refused (REFUSED_STREAM) or the connection is ended');
    conn.close();
    await stillServes('too many concurrent streams');
  });

  await t.test('streams a client abandons never go on upstream (regression: an HTTP/2 response has no `destroyed`)', async (t) => {
    const conn = await rawH2(s.gw.port, billing, ca);
    const seenBefore = s.upstream.seen.length;
    // Bodies announced (no END_STREAM) and never sent: each request waits for its first body bytes.
    const post = REQUEST.map(([n, v]) => [n, n === ':method' ? 'POST' : v] as [string, string]);
    const frames: Buffer[] = [];
    for (let i = 0; i < 50; i++) frames.push(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, hpack(post)));
    conn.send(Buffer.concat(frames));
    await new Promise((r) => setTimeout(r, 200));
    conn.close();
    await conn.closed;
    await new Promise((r) => setTimeout(r, 300));
    t.equal(s.upstream.seen.length, seenBefore, 'none of the abandoned requests was sent upstream');
    t.ok(s.gw.logs.some((l) => l['clientAborted'] === true && l['status'] === 499), 'they are logged as client-aborted (499)');
    await stillServes('abandoned streams');
  });

  await t.test('a connection without a certificate cannot open streams past its 401', async (t) => {
    const c = await h2connect(s.gw.port, null, ca);
    t.teardown(() => c.destroy());
    const gone = goawayOf(c);
    const seenBefore = s.upstream.seen.length;
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => h2request(c, { path: `/orders/${i}` }).catch(() => null)));
    t.ok(answers.every((a) => a === null || a.status === 401 || a.rstCode !== 0), 'every stream is refused');
    t.equal(await gone, constants.NGHTTP2_NO_ERROR, 'then GOAWAY');
    t.equal(s.upstream.seen.length, seenBefore, 'nothing reached the upstream');
  });
});
