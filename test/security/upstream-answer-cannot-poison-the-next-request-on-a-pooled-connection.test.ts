// Pins a security decision found by the upstream fuzzer (fuzz-hostile-upstream-answers-never-
// reach-clients-malformed, FUZZ_SEED=344961161 FUZZ_RUNS=2000, server.engine: node): what one
// answer carries after its head (trailers that say the connection ends with the answer, an
// interim 1xx that says `Connection: close`) must not leave its pooled upstream connection out of
// step, so that the next request sent on it, another client's, fails with a 502 it did nothing
// to earn. Here an upstream answers /orders/poison/<n> with answer n and /orders/ok with a
// known-good answer on the same kept-alive connection; through the gateway (both engines, real
// TLS on 127.0.0.1, PKI generated for the run), each poisoning answer is followed by a known-good
// request from another client connection, which must get its own answer, whichever upstream
// connection carries it.
import t from 'tap';
import { enginesUnderTest, gatewayYaml, makeTestPki, startGateway, tempDir, writePkiFiles } from '../helpers/harness.js';
import { FLEET_ROUTES_YAML } from '../helpers/fleet.js';
import { distinctFaults, guardProcess } from '../helpers/process-guard.js';
import { rawTlsExchange, show } from '../helpers/raw-tls-request.js';
import { startRawTlsUpstream } from '../helpers/raw-tls-upstream.js';

const KNOWN_GOOD = 'HTTP/1.1 200 OK\r\nX-Case: known-good\r\nContent-Length: 2\r\n\r\nok';

/**
 * Answers whose head keeps the connection alive and whose later bytes say otherwise, or say
 * nothing at all. The first two failed the next request on both engines: llhttp, having read the
 * trailer, refused the next answer on a connection the client had pooled. The gateway's own client
 * now asks llhttp at the end of each answer; undici, which decides from the head, has its
 * connection closed by src/proxy/undici-trailer-guard.ts.
 */
const POISONS: ReadonlyArray<{ readonly name: string; readonly bytes: string }> = [
  { name: 'a trailer Transfer-Encoding: gzip', bytes: 'HTTP/1.1 200 OK\r\nX-Case: p\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nY\r\n0\r\nTransfer-Encoding: gzip\r\n\r\n' },
  { name: 'a trailer Transfer-Encoding: chunked', bytes: 'HTTP/1.1 200 OK\r\nX-Case: p\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nY\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n' },
  { name: 'a trailer Connection: close', bytes: 'HTTP/1.1 200 OK\r\nX-Case: p\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nY\r\n0\r\nConnection: close\r\n\r\n' },
  { name: 'a trailer Content-Length: 5', bytes: 'HTTP/1.1 200 OK\r\nX-Case: p\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nY\r\n0\r\nContent-Length: 5\r\n\r\n' },
  { name: 'a trailer Upgrade: h2c with Connection: upgrade', bytes: 'HTTP/1.1 200 OK\r\nX-Case: p\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nY\r\n0\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n' },
  { name: 'a 103 with Connection: close before a kept-alive 200', bytes: 'HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\nX-Case: p\r\nContent-Length: 1\r\n\r\nY' },
  { name: 'a 100 with Transfer-Encoding: gzip before a kept-alive 200', bytes: 'HTTP/1.1 100 Continue\r\nTransfer-Encoding: gzip\r\n\r\nHTTP/1.1 200 OK\r\nX-Case: p\r\nContent-Length: 1\r\n\r\nY' },
  { name: 'a HEAD-less 204 with trailers of nothing', bytes: 'HTTP/1.1 204 No Content\r\nX-Case: p\r\n\r\n' },
];

interface PoisonUpstream {
  readonly port: number;
  /** Requests read per connection, in order of the connections' arrival. */
  readonly perConnection: number[];
  close(): Promise<void>;
}

async function startUpstream(key: string, cert: string, ca: string): Promise<PoisonUpstream> {
  const perConnection: number[] = [];
  const server = await startRawTlsUpstream({ key, cert, ca }, (sock) => {
    const index = perConnection.push(0) - 1;
    let buf = '';
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        perConnection[index]!++;
        const path = /^[A-Z]+ (\S+) /.exec(head)?.[1] ?? '';
        const n = /^\/orders\/poison\/(\d+)$/.exec(path)?.[1];
        const bytes = path === '/orders/ok' ? KNOWN_GOOD : n !== undefined ? POISONS[Number(n)]?.bytes : undefined;
        if (bytes === undefined) sock.destroy();
        else sock.write(Buffer.from(bytes, 'latin1'));
      }
    });
  });
  return { port: server.port, perConnection, close: () => server.close() };
}

for (const engine of enginesUnderTest()) {
  t.test(`an upstream answer cannot make the next request on its connection fail (server.engine: ${engine})`, async (t) => {
    const pki = await makeTestPki();
    const { dir, cleanup } = await tempDir();
    t.teardown(cleanup);
    await writePkiFiles(pki, dir);
    const up = pki.upstreams['orders']!;
    const upstream = await startUpstream(up.keyPem, up.chainPem, pki.caBundlePem);
    t.teardown(() => upstream.close());
    const guard = guardProcess();
    t.teardown(() => guard.dispose());
    const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port, crl: false, routes: FLEET_ROUTES_YAML, extra: `server: { engine: ${engine} }` }) });
    t.teardown(() => gw.close());
    const billing = pki.clients['billing']!;
    const send = (path: string) => rawTlsExchange({ port: gw.port, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, payload: `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`, expectResponses: 1, graceMs: 20, timeoutMs: 8_000 });

    for (const [i, poison] of POISONS.entries()) {
      guard.during(poison.name);
      // Its own answer may be relayed, cut or refused (the upstream fuzzer judges that); what
      // matters here is the request after it.
      await send(`/orders/poison/${i}`);
      // Twice: the connection the poisoning answer left in the pool, then whatever the pool holds next.
      for (const attempt of [1, 2]) {
        const next = await send('/orders/ok');
        const r = next.responses.find((x) => !x.interim);
        t.ok(r !== undefined && r.status === 200 && r.header('x-case')[0] === 'known-good' && r.body.toString() === 'ok', `after ${poison.name}, the next request (${attempt}) gets its own answer (got ${show(next.raw, 300)})`);
      }
    }
    t.ok(upstream.perConnection.some((n) => n >= 2), 'the upstream saw a connection reused (the pool was exercised, not bypassed)');
    t.same(distinctFaults(guard.faults), [], 'the process survived every answer');
  });
}
