// A chunked request whose trailer section says `Connection: close` (a field RFC 9110 6.5.1 does not
// allow there, but llhttp applies it: at the message's end its verdict is "close" and it refuses
// every later byte). RFC 9112 9.6: no request after a close is processed. Before 2026-12-05 the
// gateway (`server.engine: lean`) answered such a request "Connection: keep-alive" and kept the
// connection, so the client's next request on it, valid, got a 400, and a request pipelined
// behind it was answered 400 after the first answer. Now, at the default engine, the answer says
// `Connection: close` (or, written already, the connection closes once it is whole) and nothing
// after it is read. At `server.engine: node` (node:http's own parser) the answer says keep-alive
// and a request pipelined behind it gets the 400 in place of the first answer; both engines never
// forward the request that follows the close, and the process survives every case.
import t from 'tap';
import { DEFAULT_ROUTES_YAML, startStack } from '../helpers/harness.js';
import { rawTlsExchange } from '../helpers/raw-tls-request.js';

t.test('a close in a request\'s trailer section ends the connection after its answer', async (t) => {
  const lean = process.env['GW_TEST_ENGINE'] !== 'node';
  const paths: string[] = [];
  const s = await startStack({
    routes: DEFAULT_ROUTES_YAML,
    upstreamHandler: (req, res) => {
      paths.push(`${req.method} ${req.url}`);
      // /orders/early answers at once, before the request body (and its trailers) came.
      if (req.url === '/orders/early') return void res.writeHead(200, { 'content-length': '5' }).end('early');
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.writeHead(200, { 'content-length': String(String(n).length) }).end(String(n)));
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const send = (payload: string | string[], opts: { expectResponses?: number } = {}) =>
    rawTlsExchange({ port: s.gw.port, ca: s.pki.root.certPem, cert: billing.certPem, key: billing.keyPem, payload, pieceDelayMs: 300, timeoutMs: 2_000, ...(opts.expectResponses !== undefined ? { expectResponses: opts.expectResponses, graceMs: 300 } : {}) });
  const post = (path: string) => `POST ${path} HTTP/1.1\r\nHost: orders.internal\r\nTransfer-Encoding: chunked\r\n\r\n`;
  const next = 'GET /orders/next HTTP/1.1\r\nHost: orders.internal\r\n\r\n';
  const header = (r: { headers: readonly { name: string; value: string }[] }, name: string) => r.headers.find((h) => h.name.toLowerCase() === name)?.value;

  for (const trailer of ['Connection: close', 'connection: CLOSE', 'Connection: keep-alive, close', 'X-Sum: 2\r\nConnection: close']) {
    await t.test(`${JSON.stringify(trailer)}, then a pipelined request`, async (t) => {
      paths.length = 0;
      const r = await send(post('/orders/echo') + `2\r\nhi\r\n0\r\n${trailer}\r\n\r\n` + next);
      t.notOk(paths.includes('GET /orders/next'), 'the request after the close is not forwarded');
      t.equal(r.ending, 'closed', 'the connection is closed');
      if (lean) {
        t.same(r.responses.map((x) => x.status), [200], 'one answer: the request\'s own');
        t.equal(r.responses[0]?.body.toString(), '2');
        t.equal(header(r.responses[0]!, 'connection'), 'close', 'the answer says close');
      }
    });
    await t.test(`${JSON.stringify(trailer)}, alone`, async (t) => {
      paths.length = 0;
      const r = await send(post('/orders/echo') + `2\r\nhi\r\n0\r\n${trailer}\r\n\r\n`, lean ? {} : { expectResponses: 1 });
      t.same(r.responses.map((x) => x.status), [200], 'answered');
      t.equal(r.responses[0]?.body.toString(), '2');
      if (lean) {
        t.equal(header(r.responses[0]!, 'connection'), 'close', 'the answer says close');
        t.equal(r.ending, 'closed', 'and the connection closes');
      }
    });
  }

  await t.test('a close in the trailers of a request answered before its body ended', async (t) => {
    paths.length = 0;
    const r = await send([post('/orders/early') + '2\r\nhi\r\n', `0\r\nConnection: close\r\n\r\n${next}`]);
    t.notOk(paths.includes('GET /orders/next'), 'the request after the close is not forwarded');
    t.equal(r.responses[0]?.status, 200, 'the early answer came');
    if (lean) {
      t.same(r.responses.map((x) => x.status), [200], 'nothing after it');
      t.equal(r.ending, 'closed', 'the connection closes once the trailers came');
    }
  });

  await t.test('trailers without a close keep the connection', async (t) => {
    paths.length = 0;
    const r = await send(post('/orders/echo') + '2\r\nhi\r\n0\r\nX-Sum: 2\r\n\r\n' + next, { expectResponses: 2 });
    t.same(r.responses.map((x) => x.status), [200, 200]);
    t.ok(paths.includes('GET /orders/next'));
    t.equal(header(r.responses[0]!, 'connection'), 'keep-alive');
  });

  const alive = await send(next, { expectResponses: 1 });
  t.equal(alive.responses[0]?.status, 200, 'the gateway still serves');
});
