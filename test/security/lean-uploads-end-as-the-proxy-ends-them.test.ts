// Request bodies go through the lean exchange at the default engine (src/dataplane/lean-exchange.ts
// streams them from the request parser to the upstream client without node:http's objects). An
// attacker controls how a body arrives: these pin that every way it can end is ended as the proxy
// ends it (src/dataplane/proxy-http.ts), and that the Content-Length values a client can send are
// read the same by both engines.
// - A client that leaves in the middle of its body: the upstream request is cut (never completed
//   with a short body), the record says 499, and the gateway serves the next client.
// - A body that stalls after its first bytes: 408, the connection closed, the upstream request cut.
// - Hostile Content-Length, Transfer-Encoding and Expect values and framings: the same answers from `server.engine: lean` and
//   `server.engine: node`, byte for byte apart from dates and fresh ids (bytes past the announced
//   length: both refuse them; only the lean engine answers the valid request before).
import { createHash } from 'node:crypto';
import tls from 'node:tls';
import t from 'tap';
import { enginesUnderTest, startStack, type LogRecord } from '../helpers/harness.js';
import { rawExchange } from '../helpers/raw-exchange.js';

interface Seen {
  readonly url: string;
  readonly bytes: number;
  readonly completed: boolean;
}

/** An upstream that records every request body: how much of it came, and whether it was whole. */
function recordingUpstream(seen: Seen[]) {
  return (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let completed = false;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      completed = true;
      const text = `${bytes} ${hash.digest('hex').slice(0, 16)}`;
      res.writeHead(200, { 'content-length': String(text.length) }).end(text);
    });
    req.on('close', () => seen.push({ url: req.url ?? '', bytes, completed }));
  };
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

const records = (logs: readonly LogRecord[], path: string) => logs.filter((l) => l['path'] === path);

t.test('a client that leaves mid-body: the upstream request is cut, 499, the next client is served', async (t) => {
  const seen: Seen[] = [];
  const s = await startStack({ upstreamHandler: recordingUpstream(seen) });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  for (const [path, sent] of [
    ['/orders/left-early', 10],
    ['/orders/left-later', 200_000],
  ] as const) {
    await new Promise<void>((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: s.gw.port, servername: 'localhost', ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem }, () => {
        sock.write(`POST ${path} HTTP/1.1\r\nHost: orders.internal\r\nContent-Length: 1000000\r\n\r\n`);
        sock.write(Buffer.alloc(sent, 0x61), () => setTimeout(() => sock.destroy(), 150));
      });
      sock.on('error', reject);
      sock.on('close', () => resolve());
    });
    t.ok(await until(() => seen.some((x) => x.url === path), 3_000), `${path}: the upstream heard of the request's end`);
    const up = seen.find((x) => x.url === path)!;
    t.notOk(up.completed, `${path}: the upstream request was cut, not completed short`);
    t.ok(up.bytes <= sent, `${path}: the upstream got no more than the client sent (${up.bytes} of ${sent})`);
    t.ok(await until(() => records(s.gw.logs, path).length > 0, 3_000), `${path}: the request has its record`);
    t.match(records(s.gw.logs, path)[0], { status: 499, clientAborted: true }, `${path}: 499, the client aborted`);
  }
  const next = await s.send(billing, { method: 'POST', path: '/orders/next', body: 'z'.repeat(70_000), headers: { 'content-type': 'text/plain' } });
  t.equal(next.status, 200, 'the next upload is served');
  t.equal(next.body, `70000 ${createHash('sha256').update('z'.repeat(70_000)).digest('hex').slice(0, 16)}`, 'with its whole body');
});

t.test('a body that stalls after its first bytes: 408, the connection closed, the upstream request cut', async (t) => {
  const seen: Seen[] = [];
  const s = await startStack({ upstreamHandler: recordingUpstream(seen), extra: 'server: { bodyTimeout: 400ms }' });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const creds = { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };
  for (const [path, framing, first] of [
    ['/orders/stall-small', 'Content-Length: 500000', 'abc'],
    ['/orders/stall-large', 'Content-Length: 500000', 'x'.repeat(100_000)],
    ['/orders/stall-chunked', 'Transfer-Encoding: chunked', `3\r\nabc\r\n${(100_000).toString(16)}\r\n${'y'.repeat(50_000)}`],
  ] as const) {
    const started = Date.now();
    const o = await rawExchange(s.gw.port, creds, `POST ${path} HTTP/1.1\r\nHost: orders.internal\r\n${framing}\r\n\r\n${first}`, { endAfterWrite: false, timeoutMs: 5_000 });
    t.same(o.statuses, [408], `${path}: 408`);
    t.ok(o.closedByServer, `${path}: the gateway closed the connection`);
    t.ok(Date.now() - started < 4_000, `${path}: within the body timeout's reach (${Date.now() - started} ms)`);
    t.ok(await until(() => seen.some((x) => x.url === path), 3_000), `${path}: the upstream heard of the request's end`);
    t.notOk(seen.find((x) => x.url === path)!.completed, `${path}: the upstream request was cut`);
    t.match(records(s.gw.logs, path)[0], { code: 'GW_ERR_REQUEST_TIMEOUT', reason: 'body-stalled' }, `${path}: logged as a stalled body`);
  }
  t.equal((await s.send(billing, { path: '/orders/after' })).status, 200, 'the gateway serves on');
});

t.test('hostile Content-Length, Transfer-Encoding and Expect framings get the same answers from both engines', async (t) => {
  if (enginesUnderTest().length < 2) {
    t.pass('GW_TEST_ENGINE runs every gateway on one engine: nothing to compare');
    return;
  }
  const seen: Seen[] = [];
  const lean = await startStack({ upstreamHandler: recordingUpstream(seen), extra: 'server: { engine: lean, bodyTimeout: 300ms }' });
  t.teardown(() => lean.close());
  const node = await startStack({ pki: lean.pki, upstreamHandler: recordingUpstream(seen), extra: 'server: { engine: node, bodyTimeout: 300ms }' });
  t.teardown(() => node.close());
  const billing = lean.pki.clients['billing']!;
  const creds = { ca: lean.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };
  const head = (cl: string) => `POST /orders/cl HTTP/1.1\r\nHost: orders.internal\r\nx-request-id: hostile-1\r\n${cl}\r\n`;
  const cases: Array<[string, string]> = [
    ['leading zeros', head('Content-Length: 00005\r\n') + 'hello'],
    ['no space after the colon', head('content-length:5\r\n') + 'hello'],
    ['trailing spaces', head('Content-Length: 5  \r\n') + 'hello'],
    ['two equal lines', head('Content-Length: 5\r\nContent-Length: 5\r\n') + 'hello'],
    ['two differing lines', head('Content-Length: 5\r\nContent-Length: 6\r\n') + 'hello!'],
    ['a list', head('Content-Length: 5, 5\r\n') + 'hello'],
    ['a sign', head('Content-Length: +5\r\n') + 'hello'],
    ['negative', head('Content-Length: -1\r\n') + 'hello'],
    ['hexadecimal', head('Content-Length: 0x5\r\n') + 'hello'],
    ['past 2^53', head('Content-Length: 99999999999999999999\r\n') + 'hello'],
    ['with Transfer-Encoding', head('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n') + '5\r\nhello\r\n0\r\n\r\n'],
    ['empty', head('Content-Length: \r\n') + 'hello'],
    ['fewer bytes than announced, then silence', head('Content-Length: 9\r\n') + 'hello'],
    ['a body on GET', `GET /orders/cl HTTP/1.1\r\nHost: orders.internal\r\nx-request-id: hostile-1\r\nContent-Length: 5\r\n\r\nhello`],
    ['obs-fold in the value', head('Content-Length: 5\r\n 5\r\n') + 'hello'],
    ['chunked, capitalised', head('Transfer-Encoding: Chunked\r\n') + '5\r\nhello\r\n0\r\n\r\n'],
    ['chunked, padded', head('Transfer-Encoding:  chunked \r\n') + '5\r\nhello\r\n0\r\n\r\n'],
    ['chunked twice in a list', head('Transfer-Encoding: chunked, chunked\r\n') + '5\r\nhello\r\n0\r\n\r\n'],
    ['chunked on two lines', head('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n') + '5\r\nhello\r\n0\r\n\r\n'],
    ['a coding before chunked', head('Transfer-Encoding: gzip, chunked\r\n') + '5\r\nhello\r\n0\r\n\r\n'],
    ['chunked before a coding', head('Transfer-Encoding: chunked, gzip\r\n') + '5\r\nhello\r\n0\r\n\r\n'],
    ['an unknown coding', head('Transfer-Encoding: xchunked\r\n') + '5\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size that is not hex', head('Transfer-Encoding: chunked\r\n') + 'zz\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size past 64 bits', head('Transfer-Encoding: chunked\r\n') + 'fffffffffffffffff\r\nhello\r\n0\r\n\r\n'],
    ['a chunk longer than its size', head('Transfer-Encoding: chunked\r\n') + '3\r\nhello\r\n0\r\n\r\n'],
    ['a bare LF after the chunk size', head('Transfer-Encoding: chunked\r\n') + '5\nhello\r\n0\r\n\r\n'],
    ['a chunk extension of 20 KiB', head('Transfer-Encoding: chunked\r\n') + `5;${'e'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`],
    ['a chunked body that stops in a chunk, then silence', head('Transfer-Encoding: chunked\r\n') + '5\r\nhel'],
    ['a chunked body without its last chunk, then silence', head('Transfer-Encoding: chunked\r\n') + '5\r\nhello\r\n'],
    ['Expect capitalised', head('Content-Length: 5\r\nExpect: 100-Continue\r\n') + 'hello'],
    ['Expect padded', head('Content-Length: 5\r\nExpect:   100-continue  \r\n') + 'hello'],
    ['Expect in a list', head('Content-Length: 5\r\nExpect: 100-continue, 100-continue\r\n') + 'hello'],
    ['Expect empty', head('Content-Length: 5\r\nExpect: \r\n') + 'hello'],
    ['Expect: 100-continue and no body, then silence', head('Content-Length: 5\r\nExpect: 100-continue\r\n')],
    ['Expect: 100-continue, a body on a route the policy refuses', 'POST /nowhere HTTP/1.1\r\nHost: orders.internal\r\nx-request-id: hostile-1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello'],
    ['chunked on HTTP/1.0', 'POST /orders/cl HTTP/1.0\r\nHost: orders.internal\r\nx-request-id: hostile-1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
  ];
  const normalized = (text: string) =>
    text
      .replace(/\r\nDate: [^\r\n]*\r\n/gi, '\r\nDate: (date)\r\n')
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '(fresh id)');
  for (const [name, payload] of cases) {
    const [a, b] = await Promise.all([
      rawExchange(lean.gw.port, creds, payload, { endAfterWrite: false, timeoutMs: 1_200 }),
      rawExchange(node.gw.port, creds, payload, { endAfterWrite: false, timeoutMs: 1_200 }),
    ]);
    t.equal(normalized(a.text), normalized(b.text), `${name}: the same answer (${a.statuses.join(',') || 'none'})`);
    t.equal(a.closedByServer, b.closedByServer, `${name}: the connection ends the same way`);
  }
  // Bytes past the body are the next request's, and `lo` is not one: both engines answer 400 and
  // close. node:http's parser reads them while the first answer is still on its way and drops that
  // answer; the lean connection reads nothing after a request until its answer is out, so the
  // valid request is answered first.
  const past = head('Content-Length: 3\r\n') + 'hello';
  const [a, b] = await Promise.all([
    rawExchange(lean.gw.port, creds, past, { endAfterWrite: false, timeoutMs: 1_200 }),
    rawExchange(node.gw.port, creds, past, { endAfterWrite: false, timeoutMs: 1_200 }),
  ]);
  t.match(a.text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n3 [0-9a-f]{16}HTTP\/1\.1 400 /, 'more bytes than announced, lean: the request answered, then 400 for the rest');
  t.equal(b.statuses.at(-1), 400, 'more bytes than announced, node: 400 for the rest');
  t.ok(a.closedByServer && b.closedByServer, 'more bytes than announced: both close');
  t.equal((await lean.send(billing, { path: '/orders/after' })).status, 200, 'the lean engine serves on');
  t.equal((await node.send(billing, { path: '/orders/after' })).status, 200, 'the node engine serves on');
});
