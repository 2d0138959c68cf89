// A pipelined request with `Expect: 100-continue` queued behind a request still being answered:
// its `100 Continue` must reach the client before its own answer's head, never inside an answer.
// Found by test/security/fuzz-lean-engine-serves-what-node-http-serves (2026-12-05): under
// `server.engine: node` the gateway took the pipelined request up as soon as node:http parsed it
// and wrote its 100 then; node:http buffers writes to a response not yet the socket's, and when
// the upstream's answer came first with a Buffer body, node:http put that answer's head in front of
// the buffered 100 (OutgoingMessage#_send unshifts a head it cannot join to its data): the client
// read `HTTP/1.1 100 Continue` as the first bytes of the answer's body, and the stream after it was
// garbage. Now a pipelined request is taken up when its response's turn comes, on either engine,
// and its 100 goes out then, ahead of its answer; the connection stays kept alive.
import t from 'tap';
import { DEFAULT_ROUTES_YAML, startStack } from '../helpers/harness.js';
import { rawTlsExchange } from '../helpers/raw-tls-request.js';

t.test('a 100 Continue never lands inside an answer', async (t) => {
  const s = await startStack({
    routes: DEFAULT_ROUTES_YAML,
    upstreamHandler: (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.from(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
        // The first request's answer comes late, so the pipelined one is answered first upstream.
        const delay = req.url === '/orders/slow' ? 150 : 0;
        setTimeout(() => res.writeHead(200, { 'content-length': String(body.length) }).end(body), delay);
      });
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const send = (payload: string, methods: string[]) =>
    rawTlsExchange({ port: s.gw.port, ca: s.pki.root.certPem, cert: billing.certPem, key: billing.keyPem, payload, requestMethods: methods, expectResponses: methods.length, graceMs: 100, timeoutMs: 3_000 });

  for (const [name, second] of [
    ['a body with Content-Length', 'POST /orders/echo HTTP/1.1\r\nHost: orders.internal\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello'],
    ['a chunked body', 'PUT /orders/echo HTTP/1.1\r\nHost: orders.internal\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ['an empty body', 'POST /orders/echo HTTP/1.1\r\nHost: orders.internal\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n'],
  ] as const) {
    await t.test(`${name}, pipelined behind a slow answer`, async (t) => {
      const first = 'GET /orders/slow HTTP/1.1\r\nHost: orders.internal\r\n\r\n';
      const method = second.slice(0, second.indexOf(' '));
      const r = await send(first + second, ['GET', method]);
      t.equal(r.parseError, null, 'the answers parse');
      const finals = r.responses.filter((x) => !x.interim);
      t.same(finals.map((x) => x.status), [200, 200]);
      t.equal(finals[0]?.body.toString(), 'GET /orders/slow ', 'the first answer, whole and alone');
      t.equal(finals[1]?.body.toString(), `${method} /orders/echo ${name === 'an empty body' ? '' : 'hello'}`, 'the second answer, whole and alone');
      t.equal(finals[1]?.headers.find((h) => h.name.toLowerCase() === 'connection')?.value, 'keep-alive', 'and the connection stays open for the next');
      // A 100, if any, is the second request's: after the first answer, before the second's head.
      const order = r.responses.map((x) => (x.interim ? x.status : `final ${x.status}`));
      t.ok(JSON.stringify(order) === JSON.stringify(['final 200', 100, 'final 200']) || JSON.stringify(order) === JSON.stringify(['final 200', 'final 200']), `answers in order: ${JSON.stringify(order)}`);
    });
  }

  await t.test('not pipelined, the 100 comes before the answer as always', async (t) => {
    const r = await send('POST /orders/echo HTTP/1.1\r\nHost: orders.internal\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi', ['POST']);
    t.same(r.responses.map((x) => x.status), [100, 200]);
    t.equal(r.responses[1]?.body.toString(), 'POST /orders/echo hi');
  });
});
