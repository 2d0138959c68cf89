// The lean exchange (src/dataplane/lean-exchange.ts) writes a relayed answer itself instead of
// through node:http's ServerResponse, and streams request bodies itself instead of through
// IncomingMessage: whatever a client, a cache in front of the gateway or the upstream reads must
// not change with it. Request bodies (Content-Length of several sizes, chunked with extensions and
// trailers, empty, answered before they were read, pipelined, rate-limited) are echoed by the
// upstream with their length and hash. Every answer shape an upstream can send to a bodiless GET or HEAD
// (a body with Content-Length, chunked now or later, empty, 204, 304, HEAD, repeated and
// interleaved headers, trailers, a repeated trailer, a status Node has no reason phrase for, no
// Date, a 500, a body larger than the relay buffer, Connection: close, pipelined requests, two
// request ids, HTTP/1.0 with and without keep-alive and Host) is asked
// for twice on the same gateway: once through the lean exchange, once through node:http's objects
// (a diagnostics-channel subscriber keeps requests off the lean exchange, as a tracing tool
// would). The bytes on the wire must be the same, apart from the Date value. The count of node:http
// responses made for the gateway's port proves which way each pass went; requests the lean
// exchange leaves alone (refused by the policy or the rate limit, gRPC, an expectation other than
// one 100-continue, HTTP/1.0 naming TE or Expect, a transfer coding other than chunked alone) go
// the same way twice. `Expect: 100-continue` it answers with node:http's `100 Continue` first.
import { createHash } from 'node:crypto';
import dc from 'node:diagnostics_channel';
import t from 'tap';
import { DEFAULT_ROUTES_YAML, startStack } from '../helpers/harness.js';
import { countNodeResponses } from '../helpers/node-responses.js';
import { rawTlsExchange, show } from '../helpers/raw-tls-request.js';

const INTERLEAVED = ['set-cookie', 'a=1', 'x-kind', 'one', 'Set-Cookie', 'b=2', 'x-other', 'two'];

t.test('the lean exchange answers byte for byte as node:http does', async (t) => {
  if (process.env['GW_TEST_ENGINE'] === 'node') {
    t.pass('server.engine: node has no lean exchange');
    return;
  }
  const s = await startStack({
    routes: DEFAULT_ROUTES_YAML.replace('methods: [GET, POST, PUT]', 'methods: [GET, HEAD, POST, PUT]').replace(
      'routes:\n',
      'routes:\n  - name: limited\n    match: { pathPrefix: /orders/limited }\n    upstream: orders\n    rateLimit: { key: spiffe, rate: 1/h, burst: 4 }\n    allow:\n      - spiffe: spiffe://example.org/ns/*/sa/billing\n',
    ),
    upstreamHandler: (req, res) => {
      const url = req.url ?? '';
      if (url === '/orders/plain') return void res.writeHead(200, { 'content-length': '5', 'content-type': 'text/plain' }).end(req.method === 'HEAD' ? undefined : 'hello');
      if (url === '/orders/no-content') return void res.writeHead(204, { 'x-kind': 'none' }).end();
      if (url === '/orders/no-content-interleaved') return void res.writeHead(204, INTERLEAVED).end();
      if (url === '/orders/not-modified') return void res.writeHead(304, { etag: '"v1"' }).end();
      if (url === '/orders/interleaved') return void res.writeHead(201, INTERLEAVED).end('made');
      if (url === '/orders/chunked-now') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first ');
        return void res.end('second');
      }
      if (url === '/orders/chunked-later') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.flushHeaders();
        let i = 0;
        const tick = setInterval(() => {
          res.write(`chunk${i}\n`);
          if (++i === 3) {
            clearInterval(tick);
            res.end();
          }
        }, 10);
        return;
      }
      if (url === '/orders/empty-chunked-now') {
        res.writeHead(200, { 'x-kind': 'empty' });
        res.flushHeaders();
        return void res.end();
      }
      if (url === '/orders/empty-chunked-later') {
        res.writeHead(200, { 'x-kind': 'empty' });
        res.flushHeaders();
        return void setTimeout(() => res.end(), 30);
      }
      if (url === '/orders/trailers') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
        res.write('body');
        res.addTrailers({ 'x-checksum': 'abc', 'x-second': 'def' });
        return void res.end();
      }
      if (url === '/orders/no-date') {
        res.sendDate = false;
        return void res.writeHead(200, { 'content-length': '2' }).end('nd');
      }
      if (url === '/orders/trailers-repeated') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('body');
        res.addTrailers([
          ['x-checksum', 'one'],
          ['x-checksum', 'two'],
        ]);
        return void res.end();
      }
      if (url === '/orders/odd-status') return void res.writeHead(599, { 'content-length': '3' }).end('odd');
      if (url === '/orders/limited') return void res.writeHead(200, { 'content-length': '7' }).end('limited');
      if (url === '/orders/fails') return void res.writeHead(500, { 'content-length': '4' }).end('oops');
      if (url === '/orders/echo') {
        const hash = createHash('sha256');
        let n = 0;
        req.on('data', (c: Buffer) => {
          n += c.length;
          hash.update(c);
        });
        req.on('end', () => {
          const text = `${req.method} ${n} ${hash.digest('hex')}`;
          res.writeHead(200, { 'content-length': String(text.length), 'x-request-length': req.headers['content-length'] ?? 'none' }).end(text);
        });
        return;
      }
      // Answers without reading the body (node:http then reads it to its end and drops it).
      if (url === '/orders/early') return void res.writeHead(200, { 'content-length': '5' }).end('early');
      if (url === '/orders/big') return void res.writeHead(200, { 'content-length': String(200_000) }).end(Buffer.alloc(200_000, 0x61));
      res.writeHead(404, { 'content-length': '0' }).end();
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;

  // node:http responses made for the gateway's own port (the upstream is node:https in this process too).
  const made = countNodeResponses(() => s.gw.port);
  t.teardown(() => made.restore());

  const request = (method: string, path: string, extra = '') => `${method} ${path} HTTP/1.1\r\nHost: orders.internal\r\nx-request-id: lean-diff-1\r\n${extra}\r\n`;
  const request10 = (method: string, path: string, extra = '') => `${method} ${path} HTTP/1.0\r\nHost: orders.internal\r\nx-request-id: lean-diff-1\r\n${extra}\r\n`;
  const exchange = (payload: string, methods: string[], close: boolean) =>
    rawTlsExchange({ port: s.gw.port, ca: s.pki.root.certPem, cert: billing.certPem, key: billing.keyPem, payload, requestMethods: methods, ...(close ? {} : { expectResponses: methods.length, graceMs: 100 }), timeoutMs: 5_000 });
  const normalized = (raw: Buffer, freshIds: boolean) => {
    const text = raw.toString('latin1').replace(/\r\nDate: [^\r\n]*\r\n/g, '\r\nDate: (date)\r\n');
    // A request id the gateway made itself is a fresh UUID each time.
    return freshIds ? text.replace(/\r\nx-request-id: [0-9a-f-]{36}\r\n/g, '\r\nx-request-id: (fresh)\r\n') : text;
  };

  const cases: Array<{ name: string; payload: string; methods: string[]; close?: boolean; lean?: false; freshIds?: true }> = [
    { name: 'GET, a body with Content-Length', payload: request('GET', '/orders/plain'), methods: ['GET'] },
    { name: 'HEAD', payload: request('HEAD', '/orders/plain'), methods: ['HEAD'] },
    { name: '204', payload: request('GET', '/orders/no-content'), methods: ['GET'] },
    { name: '204 with repeated, interleaved headers (grouped, as setHeader groups them)', payload: request('GET', '/orders/no-content-interleaved'), methods: ['GET'] },
    { name: '304', payload: request('GET', '/orders/not-modified'), methods: ['GET'] },
    { name: 'a body with repeated, interleaved headers (in the upstream order)', payload: request('GET', '/orders/interleaved'), methods: ['GET'] },
    { name: 'chunked, the whole body at once', payload: request('GET', '/orders/chunked-now'), methods: ['GET'] },
    { name: 'chunked, over time', payload: request('GET', '/orders/chunked-later'), methods: ['GET'] },
    { name: 'chunked and empty, at once', payload: request('GET', '/orders/empty-chunked-now'), methods: ['GET'] },
    { name: 'chunked and empty, ended later', payload: request('GET', '/orders/empty-chunked-later'), methods: ['GET'] },
    { name: 'trailers', payload: request('GET', '/orders/trailers', 'TE: trailers\r\n'), methods: ['GET'] },
    { name: 'a repeated trailer', payload: request('GET', '/orders/trailers-repeated', 'TE: trailers\r\n'), methods: ['GET'] },
    { name: 'a status without a reason phrase in Node', payload: request('GET', '/orders/odd-status'), methods: ['GET'] },
    {
      name: 'two x-request-id lines (joined as node:http joins them, so a fresh id)',
      payload: `GET /orders/plain HTTP/1.1\r\nHost: orders.internal\r\nx-request-id: one\r\nx-request-id: two\r\n\r\n`,
      methods: ['GET'],
      freshIds: true,
    },
    { name: 'a gRPC content type (left to node:http\'s objects)', payload: request('GET', '/orders/plain', 'content-type: application/grpc\r\n'), methods: ['GET'], lean: false },
    { name: 'Expect: 100-continue without a body', payload: request('GET', '/orders/plain', 'Expect: 100-continue\r\n'), methods: ['GET'] },
    { name: 'an expectation other than 100-continue (417, left to node:http\'s objects)', payload: request('GET', '/orders/plain', 'Expect: 200-ok\r\n'), methods: ['GET'], lean: false, close: true },
    { name: 'HTTP/1.0 with Expect: 100-continue (left to node:http\'s objects)', payload: request10('POST', '/orders/echo', 'Content-Length: 5\r\nExpect: 100-continue\r\n') + 'hello', methods: ['POST'], lean: false, close: true },
    { name: 'HTTP/1.0', payload: request10('GET', '/orders/plain'), methods: ['GET'], close: true },
    { name: 'HTTP/1.0 without Host', payload: 'GET /orders/plain HTTP/1.0\r\nx-request-id: lean-diff-1\r\n\r\n', methods: ['GET'], close: true },
    { name: 'HTTP/1.0 keep-alive, a body with Content-Length', payload: request10('GET', '/orders/plain', 'Connection: keep-alive\r\n'), methods: ['GET'] },
    { name: 'HTTP/1.0 keep-alive, HEAD', payload: request10('HEAD', '/orders/plain', 'Connection: keep-alive\r\n'), methods: ['HEAD'] },
    { name: 'HTTP/1.0 keep-alive, an answer without Content-Length (ends with the connection)', payload: request10('GET', '/orders/chunked-now', 'Connection: keep-alive\r\n'), methods: ['GET'], close: true },
    { name: 'HTTP/1.0 keep-alive, an empty answer without Content-Length', payload: request10('GET', '/orders/empty-chunked-now', 'Connection: keep-alive\r\n'), methods: ['GET'], close: true },
    { name: 'HTTP/1.0 keep-alive, trailers (dropped)', payload: request10('GET', '/orders/trailers', 'Connection: keep-alive\r\n'), methods: ['GET'], close: true },
    { name: 'HTTP/1.0 naming TE (left to node:http\'s objects)', payload: request10('GET', '/orders/chunked-now', 'TE: chunked\r\n'), methods: ['GET'], close: true, lean: false },
    // burst 4: each lean pass takes one token, each pass through node:http's objects one; then both refuse (429).
    { name: 'a rate-limited route, within its limit', payload: request('GET', '/orders/limited'), methods: ['GET'] },
    { name: 'a rate-limited route, a body within its limit', payload: request('POST', '/orders/limited', 'Content-Length: 4\r\n') + 'rate', methods: ['POST'] },
    { name: 'a rate-limited route, over its limit (429, answered by node:http\'s objects both times)', payload: request('GET', '/orders/limited'), methods: ['GET'], lean: false },
    { name: 'a rate-limited route, a body over its limit (429 and close, by node:http\'s objects both times)', payload: request('POST', '/orders/limited', 'Content-Length: 4\r\n') + 'rate', methods: ['POST'], lean: false, close: true },
    { name: 'no Date from the upstream', payload: request('GET', '/orders/no-date'), methods: ['GET'] },
    { name: 'a 500', payload: request('GET', '/orders/fails'), methods: ['GET'] },
    { name: 'a body larger than the relay buffer', payload: request('GET', '/orders/big'), methods: ['GET'] },
    { name: 'Connection: close', payload: request('GET', '/orders/plain', 'Connection: close\r\n'), methods: ['GET'], close: true },
    { name: 'a request the policy refuses (answered by node:http\'s objects both times)', payload: request('GET', '/nowhere'), methods: ['GET'], lean: false },
    { name: 'three pipelined requests', payload: request('GET', '/orders/plain') + request('HEAD', '/orders/plain') + request('GET', '/orders/chunked-now'), methods: ['GET', 'HEAD', 'GET'] },
    // Request bodies (Content-Length): the exchange streams them to the upstream client.
    { name: 'POST, a small body', payload: request('POST', '/orders/echo', 'Content-Length: 5\r\n') + 'hello', methods: ['POST'] },
    { name: 'PUT, a body over several TLS records and the held-write size', payload: request('PUT', '/orders/echo', 'Content-Length: 100000\r\n') + 'b'.repeat(100_000), methods: ['PUT'] },
    { name: 'POST, Content-Length: 0', payload: request('POST', '/orders/echo', 'Content-Length: 0\r\n'), methods: ['POST'] },
    { name: 'POST without a body or its length', payload: request('POST', '/orders/echo'), methods: ['POST'] },
    { name: 'HTTP/1.0 POST with a body', payload: request10('POST', '/orders/echo', 'Content-Length: 4\r\n') + 'ping', methods: ['POST'], close: true },
    { name: 'an answer before the body was read, then a pipelined request', payload: request('POST', '/orders/early', 'Content-Length: 70000\r\n') + 'e'.repeat(70_000) + request('GET', '/orders/plain'), methods: ['POST', 'GET'] },
    { name: 'a body, then pipelined requests', payload: request('POST', '/orders/echo', 'Content-Length: 3\r\n') + 'abc' + request('GET', '/orders/plain') + request('PUT', '/orders/echo', 'Content-Length: 2\r\n') + 'de', methods: ['POST', 'GET', 'PUT'] },
    { name: 'a chunked body', payload: request('POST', '/orders/echo', 'Transfer-Encoding: chunked\r\n') + '5\r\nhello\r\n0\r\n\r\n', methods: ['POST'] },
    { name: 'an empty chunked body', payload: request('POST', '/orders/echo', 'Transfer-Encoding: chunked\r\n') + '0\r\n\r\n', methods: ['POST'] },
    { name: 'a chunked body with extensions and trailers', payload: request('PUT', '/orders/echo', 'Transfer-Encoding: chunked\r\n') + '3;name=value\r\nabc\r\n2\r\nde\r\n0\r\nx-sum: 5\r\n\r\n', methods: ['PUT'] },
    { name: 'a large chunked body', payload: request('POST', '/orders/echo', 'Transfer-Encoding: chunked\r\n') + `${(90_000).toString(16)}\r\n${'c'.repeat(90_000)}\r\n${(30_000).toString(16)}\r\n${'d'.repeat(30_000)}\r\n0\r\n\r\n`, methods: ['POST'] },
    { name: 'a chunked body, then a pipelined request', payload: request('POST', '/orders/echo', 'Transfer-Encoding: chunked\r\n') + '2\r\nhi\r\n0\r\n\r\n' + request('GET', '/orders/plain'), methods: ['POST', 'GET'] },
    { name: 'a gRPC body (left to node:http\'s objects)', payload: request('POST', '/orders/echo', 'content-type: application/grpc\r\nTransfer-Encoding: chunked\r\n') + '2\r\nhi\r\n0\r\n\r\n', methods: ['POST'], lean: false },
    { name: 'Transfer-Encoding other than chunked alone (left to node:http\'s objects)', payload: request('POST', '/orders/echo', 'Transfer-Encoding: gzip, chunked\r\n') + '2\r\nhi\r\n0\r\n\r\n', methods: ['POST'], lean: false },
    { name: 'a body with Expect: 100-continue', payload: request('POST', '/orders/echo', 'Content-Length: 5\r\nExpect: 100-continue\r\n') + 'hello', methods: ['POST'] },
    { name: 'a chunked body with Expect: 100-Continue', payload: request('PUT', '/orders/echo', 'Transfer-Encoding: chunked\r\nExpect: 100-Continue\r\n') + '5\r\nhello\r\n0\r\n\r\n', methods: ['PUT'] },
    { name: 'a body with Expect: 100-continue, refused by the policy (no 100, left to node:http\'s objects)', payload: request('POST', '/nowhere', 'Content-Length: 5\r\nExpect: 100-continue\r\n') + 'hello', methods: ['POST'], lean: false, close: true },
    { name: 'a body with two Expect lines (417, left to node:http\'s objects)', payload: request('POST', '/orders/echo', 'Content-Length: 5\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n') + 'hello', methods: ['POST'], lean: false, close: true },
  ];

  const traced = () => undefined;
  for (const c of cases) {
    const before = made.count;
    const lean = await exchange(c.payload, c.methods, c.close === true);
    const leanResponses = made.count - before;
    dc.subscribe('http.server.request.start', traced);
    let node;
    try {
      node = await exchange(c.payload, c.methods, c.close === true);
    } finally {
      dc.unsubscribe('http.server.request.start', traced);
    }
    const nodeMade = made.count - before - leanResponses;
    t.equal(lean.responses.filter((r) => !r.interim).length, c.methods.length, `${c.name}: every response came (${show(lean.raw, 400)})`);
    if (c.lean === false) t.equal(leanResponses, c.methods.length, `${c.name}: not taken by the lean exchange`);
    else t.equal(leanResponses, 0, `${c.name}: served by the lean exchange`);
    t.equal(nodeMade, c.methods.length, `${c.name}: served by node:http's objects with a tracer subscribed`);
    t.equal(normalized(lean.raw, c.freshIds === true), normalized(node.raw, c.freshIds === true), `${c.name}: the same bytes`);
    t.equal(lean.ending, node.ending, `${c.name}: the connection ends the same way`);
  }
});
