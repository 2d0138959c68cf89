// Security decision pinned here: every refusal of a gRPC call is a gRPC error a gRPC client can
// read (HTTP 200, grpc-status, grpc-message), never an HTTP error it would report as UNKNOWN, and
// the TLS handshake is never refused for it: no certificate and a revoked one are UNAUTHENTICATED,
// a denied identity PERMISSION_DENIED, an unknown method UNIMPLEMENTED, a dead upstream
// UNAVAILABLE. An upstream configured for HTTP/2 that negotiates HTTP/1.1 is refused (its gRPC
// trailers would be lost), never carried. Hostile grpc-timeout and content-type values cannot
// crash the process or lengthen a call.
import https from 'node:https';
import net from 'node:net';
import type { ClientHttp2Session } from 'node:http2';
import t from 'tap';
import type { Issued } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';
import { connectH2, frame, startGrpcUpstream, unary } from '../helpers/grpc.js';

const allowBilling = `
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing`;
const ROUTES = `
routes:
  - name: echo
    match: { pathPrefix: /echo.Echo/ }
    upstream: orders${allowBilling}
  - name: down
    match: { pathPrefix: /down.Svc/ }
    upstream: down${allowBilling}
  - name: h1only
    match: { pathPrefix: /h1.Svc/ }
    upstream: h1only${allowBilling}
`;

const upstreamTls = 'tls: { cert: ./gateway-client.crt, key: ./gateway-client.key, ca: ./ca-bundle.pem, servername: orders.internal }';

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

t.test('gRPC refusals are gRPC errors', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  await writePkiFiles(pki, dir);
  const grpc = await startGrpcUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  const h1 = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  const downPort = await closedPort();
  const gw = await startGateway({
    dir,
    yaml: gatewayYaml({
      upstreamPort: grpc.port,
      upstream: `url: https://127.0.0.1:${grpc.port}\nprotocol: http2`,
      upstreamExtra: `  down:\n    url: https://127.0.0.1:${downPort}\n    protocol: http2\n    ${upstreamTls}\n  h1only:\n    url: https://127.0.0.1:${h1.port}\n    protocol: http2\n    ${upstreamTls}`,
      routes: ROUTES,
    }),
  });
  const sessions: ClientHttp2Session[] = [];
  t.teardown(async () => {
    for (const s of sessions) s.destroy();
    await gw.close();
    await grpc.close();
    await h1.close();
    await cleanup();
  });
  const as = async (client: Issued | null) => {
    const s = await connectH2(gw.port, client, pki.root.certPem);
    sessions.push(s);
    return s;
  };
  const billing = await as(pki.clients['billing']!);

  const refusals: [string, Issued | null, string, string, string][] = [
    ['no certificate', null, '/echo.Echo/Unary', '16', 'GW_ERR_CLIENT_CERT_MISSING'],
    ['a revoked certificate', pki.clients['revoked']!, '/echo.Echo/Unary', '16', 'GW_ERR_CLIENT_CERT_REVOKED'],
    ['an expired certificate', pki.expired, '/echo.Echo/Unary', '16', 'GW_ERR_CLIENT_CERT_EXPIRED'],
    ['a denied identity', pki.clients['intruder']!, '/echo.Echo/Unary', '7', 'GW_ERR_POLICY_DENIED'],
    ['an unknown method', pki.clients['billing']!, '/nope.Svc/Call', '12', 'GW_ERR_ROUTE_NOT_FOUND'],
    ['an upstream that is down', pki.clients['billing']!, '/down.Svc/Call', '14', 'GW_ERR_UPSTREAM_UNREACHABLE'],
    ['an http2 upstream that negotiates HTTP/1.1', pki.clients['billing']!, '/h1.Svc/Call', '14', 'GW_ERR_UPSTREAM_PROTOCOL'],
  ];
  for (const [what, client, path, status, code] of refusals) {
    t.test(`${what}: HTTP 200, grpc-status ${status}, a Trailers-Only answer`, async (t) => {
      const session = client === pki.clients['billing'] ? billing : await as(client);
      const r = await unary(session, path, 'x');
      t.equal(r.headers[':status'], 200);
      t.equal(r.headers['content-type'], 'application/grpc');
      t.equal(r.headers['grpc-status'], status);
      t.ok(r.headers['grpc-message'], 'grpc-message is set');
      t.ok(r.headers['x-request-id'], 'x-request-id is set');
      t.ok(r.trailersOnly, 'the HEADERS frame ends the stream');
      t.same(r.messages, []);
      const log = gw.logs.find((l) => l['reqId'] === r.headers['x-request-id']);
      t.equal(log?.['code'], code, `logged as ${code}`);
    });
  }
  t.equal(h1.seen.length, 0, 'nothing was carried over HTTP/1.1 to the upstream that refused HTTP/2');

  t.test('an HTTP/1.1 gRPC client gets the same headers and an empty body', async (t) => {
    const res = await new Promise<{ status: number; headers: NodeJS.Dict<string | string[]>; body: string }>((resolve, reject) => {
      const intruder = pki.clients['intruder']!;
      const req = https.request(
        { host: '127.0.0.1', port: gw.port, servername: 'localhost', method: 'POST', path: '/echo.Echo/Unary', agent: false, ca: pki.root.certPem, cert: intruder.chainPem, key: intruder.keyPem, headers: { 'content-type': 'application/grpc+proto', te: 'trailers' } },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      req.end(frame('x'));
    });
    t.equal(res.status, 200);
    t.equal(res.headers['grpc-status'], '7');
    t.equal(res.headers['grpc-message'], 'The client identity is not allowed on this route.');
    t.equal(res.body, '');
  });

  t.test('content-types: gRPC in any case or with a subtype gets gRPC errors; grpc-web and others get JSON', async (t) => {
    const intruder = await as(pki.clients['intruder']!);
    for (const ct of ['APPLICATION/GRPC', 'application/grpc+proto', 'application/grpc;charset=x', 'application/grpc+' + 'x'.repeat(4000)]) {
      const r = await unary(intruder, '/echo.Echo/Unary', 'x', { 'content-type': ct });
      t.equal(r.headers['grpc-status'], '7', ct.slice(0, 30));
    }
    for (const ct of ['application/grpc-web', 'application/grpc-web-text', 'application/grpcx', 'application/json', '']) {
      const r = await unary(intruder, '/echo.Echo/Unary', 'x', { 'content-type': ct });
      t.equal(r.headers[':status'], 403, `${JSON.stringify(ct)}: an HTTP answer`);
      t.equal(r.headers['grpc-status'], undefined);
    }
  });

  t.test('hostile grpc-timeout values are ignored or honoured, never a crash', async (t) => {
    const ignored: (string | string[])[] = ['', '123456789S', '-1S', '+1S', '1.5S', '1s', '1S, 2S', ['1S', '2S'], '\u00b9S', '99999999H', '9'.repeat(4000) + 'S'];
    for (const v of ignored) {
      const r = await unary(billing, '/echo.Echo/Unary', 'x', { 'grpc-timeout': v as string });
      t.equal(r.trailers?.['grpc-status'], '0', `${JSON.stringify(v).slice(0, 30)}: ignored, the call is served`);
    }
    const r = await unary(billing, '/echo.Echo/Unary', 'x', { 'grpc-timeout': '0n' });
    t.equal(r.headers['grpc-status'], '4', 'a zero timeout has already passed: DEADLINE_EXCEEDED');
    const after = await unary(billing, '/echo.Echo/Unary', 'still');
    t.same(after.messages, ['echo:still'], 'the gateway still serves');
  });
});
