// gRPC through the gateway: an h2 client with a client certificate, the gateway, and an upstream
// with `protocol: http2` (a node:http2 echo service that requires the gateway's certificate).
// Unary and bidirectional calls, trailers intact (the upstream's own non-zero grpc-status too),
// routes matching /pkg.Service/Method, grpc-timeout as the deadline, health checks over h2, and an
// HTTP/1.1 client reading the same trailers from a chunked body.
import https from 'node:https';
import type { ClientHttp2Session } from 'node:http2';
import t from 'tap';
import { gatewayYaml, makeTestPki, startGateway, tempDir, writePkiFiles } from '../helpers/harness.js';
import { BIG_MESSAGE_BYTES, BIG_MESSAGES, connectH2, frame, FrameReader, openCall, startGrpcUpstream, unary } from '../helpers/grpc.js';

const ROUTES = `
routes:
  - name: echo-unary
    match: { path: /echo.Echo/Unary, methods: [POST] }
    upstream: orders
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
  - name: echo
    match: { pathPrefix: /echo.Echo/, methods: [POST] }
    upstream: orders
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
`;

t.test('gRPC calls through the gateway', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  await writePkiFiles(pki, dir);
  const upstream = await startGrpcUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port, upstream: `url: https://127.0.0.1:${upstream.port}\nprotocol: http2\nhealthCheck: { path: /healthz, interval: 100ms, timeout: 80ms }`, routes: ROUTES }) });
  const billing = pki.clients['billing']!;
  let session: ClientHttp2Session | null = null;
  t.teardown(async () => {
    session?.destroy();
    await gw.close();
    await upstream.close();
    await cleanup();
  });
  session = await connectH2(gw.port, billing, pki.root.certPem);

  t.test('a unary call: the message and grpc-status 0 in trailers', async (t) => {
    const r = await unary(session!, '/echo.Echo/Unary', 'hello');
    t.equal(r.headers[':status'], 200);
    t.equal(r.headers['content-type'], 'application/grpc');
    t.same(r.messages, ['echo:hello']);
    t.equal(r.trailers?.['grpc-status'], '0');
    t.equal(r.rstCode, null);
    const last = upstream.seen.at(-1)!;
    t.equal(last[':path'], '/echo.Echo/Unary', 'the method path reaches the upstream as sent (dots and capitals kept)');
    t.equal(last['te'], 'trailers', 'te: trailers is sent to the h2 upstream');
    t.equal(last['content-type'], 'application/grpc');
    t.match(gw.logs.find((l) => l.msg === 'request' && l['route'] === 'echo-unary'), { status: 200, path: '/echo.Echo/Unary' }, 'matched by path');
  });

  t.test('a bidirectional stream interleaves: each reply arrives before the next message is sent', async (t) => {
    const call = openCall(session!, '/echo.Echo/Bidi');
    for (const m of ['one', 'two', 'three']) {
      call.send(m);
      t.equal(await call.next(), `echo:${m}`, `${m} echoed while the request is still open`);
    }
    const r = await call.finish();
    t.same(r.messages, ['echo:one', 'echo:two', 'echo:three']);
    t.equal(r.trailers?.['grpc-status'], '0');
    t.match(gw.logs.find((l) => l.msg === 'request' && l['route'] === 'echo'), { status: 200 }, 'matched by pathPrefix');
  });

  t.test('a response much larger than the flow-control windows, read slowly, arrives whole before its trailers', async (t) => {
    const call = openCall(session!, '/echo.Echo/Big');
    // A reader that pauses after every chunk to the very end: everything between the upstream and
    // it fills up and pushes back, also when the last bytes and the trailers arrive.
    call.stream.on('data', () => {
      call.stream.pause();
      setTimeout(() => call.stream.resume(), 1);
    });
    call.send('go');
    const r = await call.finish();
    t.equal(r.messages.length, BIG_MESSAGES, 'every message');
    t.ok(r.messages.every((m, i) => m.length === BIG_MESSAGE_BYTES && m === Buffer.alloc(BIG_MESSAGE_BYTES, i).toString()), 'every byte, in order');
    t.equal(r.trailers?.['grpc-status'], '0', 'then the trailers');
  });

  t.test("the upstream's own non-zero grpc-status and its other trailers pass through intact", async (t) => {
    const r = await unary(session!, '/echo.Echo/Fail', 'x');
    t.same(r.messages, ['echo:x']);
    t.equal(r.trailers?.['grpc-status'], '9');
    t.equal(r.trailers?.['grpc-message'], 'not%20ready: caf%C3%A9', 'percent-encoding untouched');
    t.equal(r.trailers?.['x-detail'], 'kept');
  });

  t.test('many concurrent calls on one client connection', async (t) => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => unary(session!, '/echo.Echo/Unary', `m${i}`)));
    t.same(results.map((r) => r.messages[0]), Array.from({ length: 20 }, (_, i) => `echo:m${i}`));
    t.ok(results.every((r) => r.trailers?.['grpc-status'] === '0'));
  });

  t.test('grpc-timeout is the deadline: a hanging method gets DEADLINE_EXCEEDED from the gateway', async (t) => {
    const r = await unary(session!, '/echo.Echo/Hang', 'x', { 'grpc-timeout': '200m' });
    t.equal(r.headers[':status'], 200);
    t.equal(r.headers['grpc-status'], '4');
    t.ok(r.trailersOnly, 'a Trailers-Only answer');
    t.match(gw.logs.find((l) => l['code'] === 'GW_ERR_UPSTREAM_TIMEOUT'), { reason: 'grpc-timeout', afterMs: 200 });
  });

  t.test('a call the upstream does not serve keeps its UNIMPLEMENTED', async (t) => {
    const r = await unary(session!, '/echo.Echo/Nope', 'x');
    t.equal(r.headers['grpc-status'], '12');
    t.ok(r.trailersOnly, "the upstream's Trailers-Only answer stays one (a gRPC client reads grpc-status only from a HEADERS frame that ends the stream)");
  });

  t.test('active health checks run over the HTTP/2 connection', async (t) => {
    const until = Date.now() + 5_000;
    const checked = () => gw.gateway.status().upstreams[0]!.targets[0]!.lastCheck;
    while (Date.now() < until && checked() === null) await new Promise((r) => setTimeout(r, 25));
    t.match(checked(), { ok: true, detail: 'status 200' });
    t.match(upstream.seen.find((h) => h[':path'] === '/healthz'), { ':method': 'GET', 'user-agent': 'mtls-gateway-health-check' }, 'the check reached the upstream over h2');
  });

  t.test('an HTTP/1.1 client reads the same trailers from the chunked body', async (t) => {
    const res = await new Promise<{ status: number; body: Buffer; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: gw.port, servername: 'localhost', method: 'POST', path: '/echo.Echo/Fail', agent: false, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, headers: { 'content-type': 'application/grpc', te: 'trailers' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), trailers: res.trailers }));
        },
      );
      req.on('error', reject);
      req.end(frame('over-h1'));
    });
    t.equal(res.status, 200);
    t.same(new FrameReader().push(res.body).map(String), ['echo:over-h1']);
    t.equal(res.trailers['grpc-status'], '9');
    t.equal(res.trailers['grpc-message'], 'not%20ready: caf%C3%A9');
  });
});
