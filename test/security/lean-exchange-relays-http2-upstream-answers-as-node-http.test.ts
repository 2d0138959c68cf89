// The lean exchange also serves a bodiless request to a `protocol: http2` upstream. What an
// HTTP/1.1 client reads must be what node:http's ServerResponse writes for the same answer: every
// answer shape an HTTP/2 upstream sends (a body with content-length, one without (chunked to the
// client), empty, 204, 304, HEAD, repeated headers, trailers, a 503, a body larger than the relay
// buffer, a reset stream) is asked for twice on the same gateway, once through the lean exchange
// and once through node:http's objects (a diagnostics-channel subscriber keeps requests off the
// lean exchange, as a tracing tool would), and the bytes compared apart from the Date value.
// Requests with a body, or naming TE (the proxy then asks the upstream for trailers), are left to
// node:http's objects both times.
import dc from 'node:diagnostics_channel';
import http2, { type ServerHttp2Stream } from 'node:http2';
import t from 'tap';
import { fleetYaml } from '../helpers/fleet.js';
import { startH2Origin } from '../helpers/h2-origin.js';
import { makeTestPki, startGateway, tempDir, writePkiFiles } from '../helpers/harness.js';
import { countNodeResponses } from '../helpers/node-responses.js';
import { rawTlsExchange, show } from '../helpers/raw-tls-request.js';

function answer(stream: ServerHttp2Stream, path: string, method: string): void {
  switch (path) {
    case '/orders/plain':
      stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': '5' });
      return void stream.end(method === 'HEAD' ? undefined : 'hello');
    case '/orders/no-length':
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.write('first ');
      return void setTimeout(() => stream.end('second'), 10);
    case '/orders/empty':
      return void stream.respond({ ':status': 200, 'x-kind': 'empty' }, { endStream: true });
    case '/orders/no-content':
      return void stream.respond({ ':status': 204, 'x-kind': 'none' }, { endStream: true });
    case '/orders/not-modified':
      return void stream.respond({ ':status': 304, etag: '"v1"' }, { endStream: true });
    case '/orders/repeated':
      stream.respond({ ':status': 201, 'set-cookie': ['a=1', 'b=2'], 'x-kind': 'one', 'content-length': '4' });
      return void stream.end('made');
    case '/orders/trailers':
      stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc' }));
      return void stream.end('body');
    case '/orders/unavailable':
      stream.respond({ ':status': 503, 'content-type': 'text/plain', 'content-length': '4' });
      return void stream.end('busy');
    case '/orders/big':
      stream.respond({ ':status': 200, 'content-length': String(200_000) });
      return void stream.end(Buffer.alloc(200_000, 0x61));
    case '/orders/reset':
      return void stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    default:
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      return void stream.end(`served ${method} ${path}`);
  }
}

t.test('answers of an HTTP/2 upstream are relayed byte for byte as node:http relays them', async (t) => {
  if (process.env['GW_TEST_ENGINE'] === 'node') {
    t.pass('server.engine: node has no lean exchange');
    return;
  }
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  await writePkiFiles(pki, dir);
  const h2 = await startH2Origin(pki, (stream, headers) => {
    stream.resume();
    stream.on('end', () => answer(stream, String(headers[':path']), String(headers[':method'])));
  });
  const origin = h2.origin;
  const gw = await startGateway({ dir, yaml: fleetYaml({ upstream: `url: ${origin}\nprotocol: http2\nretries: { attempts: 0 }` }) });
  t.teardown(async () => {
    await gw.close();
    await h2.close();
    await cleanup();
  });
  const billing = pki.clients['billing']!;
  const made = countNodeResponses(() => gw.port);
  t.teardown(() => made.restore());

  const request = (method: string, path: string, extra = '') => `${method} ${path} HTTP/1.1\r\nHost: orders.internal\r\nx-request-id: lean-h2-1\r\n${extra}\r\n`;
  const exchange = (payload: string, methods: string[]) =>
    rawTlsExchange({ port: gw.port, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, payload, requestMethods: methods, expectResponses: methods.length, timeoutMs: 5_000, graceMs: 100 });
  const normalized = (raw: Buffer) => raw.toString('latin1').replace(/^Date: .*$/gim, 'Date: <date>');

  const cases: { name: string; payload: string; methods: string[]; lean?: false }[] = [
    { name: 'a body with content-length', payload: request('GET', '/orders/plain'), methods: ['GET'] },
    { name: 'HEAD', payload: request('HEAD', '/orders/plain'), methods: ['HEAD'] },
    { name: 'a body without content-length (chunked to the client)', payload: request('GET', '/orders/no-length'), methods: ['GET'] },
    { name: 'an empty answer', payload: request('GET', '/orders/empty'), methods: ['GET'] },
    { name: '204', payload: request('GET', '/orders/no-content'), methods: ['GET'] },
    { name: '304', payload: request('GET', '/orders/not-modified'), methods: ['GET'] },
    { name: 'repeated headers', payload: request('GET', '/orders/repeated'), methods: ['GET'] },
    { name: 'trailers', payload: request('GET', '/orders/trailers'), methods: ['GET'] },
    { name: 'a 503 (not retried here)', payload: request('GET', '/orders/unavailable'), methods: ['GET'] },
    { name: 'a body larger than the relay buffer', payload: request('GET', '/orders/big'), methods: ['GET'] },
    { name: 'DELETE', payload: request('DELETE', '/orders/7'), methods: ['DELETE'] },
    { name: 'pipelined', payload: request('GET', '/orders/plain') + request('GET', '/orders/repeated') + request('HEAD', '/orders/plain'), methods: ['GET', 'GET', 'HEAD'] },
    { name: 'Expect: 100-continue without a body', payload: request('GET', '/orders/plain', 'Expect: 100-continue\r\n'), methods: ['GET'] },
    { name: 'a stream reset before the answer (502 from the proxy, the attempt handed over)', payload: request('GET', '/orders/reset'), methods: ['GET'], lean: false },
    { name: 'a body (left to node:http\'s objects)', payload: request('POST', '/orders/new', 'Content-Length: 5\r\n') + 'order', methods: ['POST'], lean: false },
    { name: 'TE: trailers (left to node:http\'s objects)', payload: request('GET', '/orders/trailers', 'TE: trailers\r\n'), methods: ['GET'], lean: false },
  ];

  const traced = () => undefined;
  for (const c of cases) {
    const before = made.count;
    const lean = await exchange(c.payload, c.methods);
    const leanResponses = made.count - before;
    dc.subscribe('http.server.request.start', traced);
    let node;
    try {
      node = await exchange(c.payload, c.methods);
    } finally {
      dc.unsubscribe('http.server.request.start', traced);
    }
    const nodeMade = made.count - before - leanResponses;
    t.equal(lean.responses.filter((r) => !r.interim).length, c.methods.length, `${c.name}: every response came (${show(lean.raw, 400)})`);
    if (c.lean === false) t.equal(leanResponses, c.methods.length, `${c.name}: served by node:http's objects`);
    else t.equal(leanResponses, 0, `${c.name}: served by the lean exchange`);
    t.equal(nodeMade, c.methods.length, `${c.name}: served by node:http's objects with a tracer subscribed`);
    t.equal(normalized(lean.raw), normalized(node.raw), `${c.name}: the same bytes`);
    t.equal(lean.ending, node.ending, `${c.name}: the connection ends the same way`);
  }
});
