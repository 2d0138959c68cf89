// A request pipelined behind one whose answer closes the connection (an HTTP/1.0 request answered
// without a length, or a request that asked for `Connection: close` and is answered late) gets no
// answer on that connection, so it must not be sent upstream either: a POST executed there would
// be lost to its client, which cannot tell it happened and may send it again. Found by
// test/security/fuzz-lean-engine-serves-what-node-http-serves (2026-12-05): under
// `server.engine: node` node:http hands every pipelined request over at once and the gateway sent
// them all upstream. Now each is taken up when its response's turn comes (as the lean engine reads
// them), and a connection that closes first drops them unsent. Both engines.
import t from 'tap';
import { DEFAULT_ROUTES_YAML, startStack } from '../helpers/harness.js';
import { rawTlsExchange } from '../helpers/raw-tls-request.js';

t.test('a request pipelined behind an answer that closes the connection is never sent upstream', async (t) => {
  const seen: string[] = [];
  const s = await startStack({
    routes: DEFAULT_ROUTES_YAML,
    upstreamHandler: (req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        // No length: an HTTP/1.0 client's connection then ends with the answer.
        if (req.url === '/orders/stream') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('part ');
          return void setTimeout(() => res.end('end'), 100);
        }
        setTimeout(() => res.writeHead(200, { 'content-length': '2' }).end('ok'), req.url === '/orders/slow' ? 100 : 0);
      });
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const send = (payload: string) => rawTlsExchange({ port: s.gw.port, ca: s.pki.root.certPem, cert: billing.certPem, key: billing.keyPem, payload, timeoutMs: 3_000 });
  const behind = 'POST /orders/behind HTTP/1.1\r\nHost: orders.internal\r\nContent-Length: 4\r\n\r\nonce';

  await t.test('behind an HTTP/1.0 answer without a length', async (t) => {
    seen.length = 0;
    const r = await send('GET /orders/stream HTTP/1.0\r\nHost: orders.internal\r\nConnection: keep-alive\r\n\r\n' + behind);
    t.same(r.responses.map((x) => x.status), [200]);
    t.equal(r.responses[0]?.body.toString(), 'part end');
    t.equal(r.ending, 'closed');
    await new Promise((res) => setTimeout(res, 200));
    t.same(seen, ['GET /orders/stream'], 'the pipelined POST never reached the upstream');
  });

  await t.test('behind a request that asked to close', async (t) => {
    seen.length = 0;
    const r = await send('GET /orders/slow HTTP/1.1\r\nHost: orders.internal\r\nConnection: close\r\n\r\n' + behind);
    // (Under node:http the bytes after a close are a parse error whose 400 takes the connection,
    // the first answer with it: docs/configuration.md, server.engine.)
    if (process.env['GW_TEST_ENGINE'] !== 'node') t.same(r.responses.map((x) => x.status), [200], 'the first request is answered, alone');
    t.equal(r.ending, 'closed');
    await new Promise((res) => setTimeout(res, 200));
    t.notOk(seen.includes('POST /orders/behind'), 'the pipelined POST never reached the upstream');
  });

  await t.test('behind an answer that keeps the connection, it is served in turn', async (t) => {
    seen.length = 0;
    const r = await rawTlsExchange({ port: s.gw.port, ca: s.pki.root.certPem, cert: billing.certPem, key: billing.keyPem, payload: 'GET /orders/slow HTTP/1.1\r\nHost: orders.internal\r\n\r\n' + behind, requestMethods: ['GET', 'POST'], expectResponses: 2, graceMs: 50, timeoutMs: 3_000 });
    t.same(r.responses.map((x) => x.status), [200, 200]);
    t.same(seen, ['GET /orders/slow', 'POST /orders/behind'], 'one at a time: the second went up once the first was answered');
  });
});
