// An upstream that answers with something that is not HTTP (a garbage status line, a header
// section larger than the client accepts, a bad chunk) is a protocol fault of the upstream:
// 502 GW_ERR_UPSTREAM_PROTOCOL, never relayed, never reported as "unreachable". The same corpus
// and outcomes for both HTTP/1.1 upstream clients: undici's Pool (server.engine: node) and the
// gateway's own (server.engine: lean).
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { makeTestPki, request, startGateway, gatewayYaml, tempDir, writePkiFiles } from '../helpers/harness.js';

const ANSWERS: Record<string, string> = {
  '/orders/garbage': 'garbage garbage\r\n\r\n',
  '/orders/bad-status': 'HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n',
  '/orders/huge-header': `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(100_000)}\r\nContent-Length: 0\r\n\r\n`,
  '/orders/cl-te': 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  '/orders/bad-header': 'HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n',
  // Status codes below 100 (undici asserts on them rather than reporting a parse error) and
  // control bytes in a header value, which Node would refuse to write to the client.
  '/orders/status-099': 'HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n',
  '/orders/status-000': 'HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n',
  '/orders/del-in-value': 'HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 0\r\n\r\n',
  '/orders/nul-in-value': 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n',
  // Framing an upstream could use to smuggle a second response onto the gateway's connection.
  '/orders/dup-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok',
  '/orders/te-not-chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked, identity\r\nContent-Length: 2\r\n\r\nok',
  '/orders/space-before-colon': 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok',
  '/orders/cr-in-value': 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n',
  // The lean exchange relays the header lines the gateway's own client parsed without checking
  // them again (test/security/upstream-response-parser-refuses-what-node-http-would-not-write):
  // what an upstream could use to add a line of its own to the client's answer, end to end.
  '/orders/ctl-in-value': 'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n',
  '/orders/esc-in-value': 'HTTP/1.1 200 OK\r\nX-A: \x1b[2Jb\r\nContent-Length: 0\r\n\r\n',
  '/orders/lf-in-value': 'HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n',
  '/orders/obs-fold': 'HTTP/1.1 200 OK\r\nX-A: a\r\n Set-Cookie: s=1\r\nContent-Length: 0\r\n\r\n',
  '/orders/del-in-name': 'HTTP/1.1 200 OK\r\nX\x7fA: b\r\nContent-Length: 0\r\n\r\n',
  '/orders/nul-in-name': 'HTTP/1.1 200 OK\r\nX\x00A: b\r\nContent-Length: 0\r\n\r\n',
  // A Content-Length no client can hold as a number (beyond 2^53; llhttp takes up to 2^64 - 1):
  // relayed, a client refuses the answer (FUZZ_SEED=8080 of the upstream fuzzer).
  '/orders/cl-beyond-2-53': 'HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\nok',
  '/orders/cl-16-digits': 'HTTP/1.1 200 OK\r\nContent-Length: 9007199254740993\r\n\r\nok',
  // A protocol switch nothing asked for (undici 7 calls it a socket error, "bad upgrade").
  '/orders/switch': 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
};

/**
 * Broken after a well-formed head: the status line is relayed (a response streams), then the
 * client's connection is cut, never ended as if the body were whole.
 */
const CUT: Record<string, string> = {
  '/orders/bad-chunk-size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n',
  '/orders/short-body': 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok',
};

for (const engine of ['node', 'lean'] as const) t.test(`malformed upstream responses are 502 GW_ERR_UPSTREAM_PROTOCOL (server.engine: ${engine})`, async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const upstreamCert = pki.upstreams['orders']!;
  const srv = tls.createServer({ key: upstreamCert.keyPem, cert: upstreamCert.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true }, (sock) => {
    let head = '';
    sock.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const path = /^[A-Z]+ (\S+) /.exec(head)?.[1] ?? '';
      sock.end(ANSWERS[path] ?? CUT[path] ?? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      head = '';
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: (srv.address() as AddressInfo).port, crl: false, extra: `server: { engine: ${engine} }` }) });
  t.teardown(() => gw.close());
  const billing = pki.clients['billing']!;
  for (const path of Object.keys(ANSWERS)) {
    const res = await request(gw.port, billing, pki.root.certPem, { path });
    t.equal(res.status, 502, `${path}: 502`);
    t.match(res.json, { error: { code: 'GW_ERR_UPSTREAM_PROTOCOL' } }, `${path}: GW_ERR_UPSTREAM_PROTOCOL`);
  }
  for (const path of Object.keys(CUT)) await t.rejects(request(gw.port, billing, pki.root.certPem, { path }), `${path}: the client's connection is cut`);
  t.equal((await request(gw.port, billing, pki.root.certPem, { path: '/orders/fine' })).status, 200, 'a well-formed answer still passes');
});
