// Pins a security decision: bytes an upstream sends right behind a complete answer (a second
// response: a desync attempt, or a bug that answers twice) must never become the answer to the
// next request, another client's, sent on that connection. TLS hands each record of one socket
// read over as its own chunk, so when the answer ends exactly at a record's end, the second
// response comes in the same read as a chunk of its own, after the answer's exchange completed; a
// connection handed to a waiting request right then took it for that request's answer. Here one
// upstream connection at most (limits.maxConnections: 1) so that B waits while A is answered; A's
// answer fills one 512-byte TLS record exactly and the second response follows in the same write.
// Both engines, real TLS on 127.0.0.1, PKI generated for the run; every round's A and B must get
// their own answers (or a documented error: never the smuggled bytes, never each other's).
// A second response that arrives later, once the connection carries the next request, cannot be
// told from that request's answer by any HTTP/1.1 client (docs/security.md).
import t from 'tap';
import { enginesUnderTest, gatewayYaml, makeTestPki, startGateway, tempDir, writePkiFiles } from '../helpers/harness.js';
import { FLEET_ROUTES_YAML } from '../helpers/fleet.js';
import { distinctFaults, guardProcess } from '../helpers/process-guard.js';
import { rawTlsExchange, show } from '../helpers/raw-tls-request.js';
import { startRawTlsUpstream } from '../helpers/raw-tls-upstream.js';

const ROUNDS = 60;
/** The upstream's TLS records carry at most this many bytes (tls.TLSSocket#setMaxSendFragment's least). */
const RECORD = 512;
/** Exactly one record long, so that the record that follows it in the same write is the second response alone. */
const ANSWER_A = (() => {
  const head = (n: number) => `HTTP/1.1 200 OK\r\nX-Case: a\r\nContent-Length: ${n}\r\n\r\n`;
  const n = RECORD - head(100).length;
  return head(n) + 'a'.repeat(n);
})();
const SMUGGLED = 'HTTP/1.1 200 OK\r\nX-Case: smuggled\r\nContent-Length: 8\r\n\r\nsmuggled';
const ANSWER_B = 'HTTP/1.1 200 OK\r\nX-Case: b\r\nContent-Length: 1\r\n\r\nb';

for (const engine of enginesUnderTest()) {
  t.test(`a response written after an answer never answers the next request (server.engine: ${engine})`, async (t) => {
    const pki = await makeTestPki();
    const { dir, cleanup } = await tempDir();
    t.teardown(cleanup);
    await writePkiFiles(pki, dir);
    const up = pki.upstreams['orders']!;
    let stray = 0;
    const upstream = await startRawTlsUpstream({ key: up.keyPem, cert: up.chainPem, ca: pki.caBundlePem }, (sock) => {
      sock.setMaxSendFragment(RECORD);
      let buf = '';
      sock.on('data', (chunk: Buffer) => {
        buf += chunk.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
          const path = /^[A-Z]+ (\S+) /.exec(buf.slice(0, end))?.[1] ?? '';
          buf = buf.slice(end + 4);
          if (path.startsWith('/orders/a')) {
            // One write, two TLS records in one TCP segment: the answer, then what no request asked for.
            sock.write(ANSWER_A + SMUGGLED);
            stray++;
          } else sock.write(ANSWER_B);
        }
      });
    });
    t.teardown(() => upstream.close());
    const guard = guardProcess();
    t.teardown(() => guard.dispose());
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port, crl: false, routes: FLEET_ROUTES_YAML, upstreamExtra: '    limits: { maxConnections: 1 }', extra: `server: { engine: ${engine} }` }) });
    t.teardown(() => gw.close());
    const billing = pki.clients['billing']!;
    const send = (path: string) => rawTlsExchange({ port: gw.port, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, payload: `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`, expectResponses: 1, graceMs: 20, timeoutMs: 8_000 });

    const wrong: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      guard.during(`round ${round}`);
      const [a, b] = await Promise.all([send(`/orders/a${round}`), new Promise((r) => setTimeout(r, 5)).then(() => send(`/orders/b${round}`))]);
      const ra = a.responses.find((x) => !x.interim);
      const rb = b.responses.find((x) => !x.interim);
      if (ra?.header('x-case')[0] !== 'a') wrong.push(`round ${round}: A got ${show(a.raw, 200)}`);
      if (rb === undefined || rb.header('x-case')[0] === 'smuggled' || (rb.status === 200 && rb.header('x-case')[0] !== 'b')) wrong.push(`round ${round}: B got ${show(b.raw, 200)}`);
    }
    t.ok(stray >= ROUNDS, `the upstream wrote its second response ${stray} times`);
    t.same(wrong.slice(0, 5), [], `no request got another's bytes in ${ROUNDS} rounds (${wrong.length} did)`);
    t.same(distinctFaults(guard.faults), [], 'the process survived');
  });
}
