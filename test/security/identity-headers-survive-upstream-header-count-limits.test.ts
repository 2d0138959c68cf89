// Pins a security decision: the identity the gateway vouches for (X-Forwarded-Client-Cert, and the
// X-Forwarded-* / X-Request-Id it sets) reaches the upstream however many header lines the client
// sends. Found by the front-door fuzz: Node's HTTP server keeps only the first 1,023 header lines
// when maxHeadersCount is left unset (measured on Node 20.20; more are dropped silently), and the
// gateway appends its own headers after the client's, so a request with about 1,020 headers reached
// a default Node upstream without any XFCC. The default server.maxHeaders (100) refuses such a
// request with 431; this test raises the limit to what the schema allows an operator to set and
// checks that the gateway's headers still arrive, exactly once (or that the request is refused, or
// the setting itself).
import t from 'tap';
import { credentialsFor, startFrontDoor } from '../helpers/front-door-stack.js';
import { makeTestPki } from '../helpers/harness.js';
import { rawTlsExchange } from '../helpers/raw-tls-request.js';

t.test("the gateway's identity headers survive a request with many header lines", async (t) => {
  const pki = await makeTestPki();
  const fd = await startFrontDoor(pki, 'exact', { serverYaml: 'server:\n  maxHeaders: 2000\n  maxHeaderSize: 65536\n' });
  t.teardown(() => fd.close());
  // Refusing the setting (a schema maximum below Node's silent cap) is one acceptable fix; the
  // requests below must then be refused with 431 under the default limit.
  if (fd.configProblem?.includes('maxHeaders')) t.pass(`the schema refuses server.maxHeaders: 2000 (${fd.configProblem.slice(0, 160)})`);
  else if (fd.configProblem) t.fail(fd.configProblem);

  for (const count of [1_010, 1_030, 1_500]) {
    const lines = Array.from({ length: count }, (_, i) => `h${i}:v\r\n`).join('');
    const before = fd.hits.length;
    const x = await rawTlsExchange({
      port: fd.port,
      ca: pki.root.certPem,
      ...credentialsFor(pki, 'billing'),
      payload: `GET /orders/many-headers HTTP/1.1\r\nHost: localhost\r\nX-Fuzz-Case: many-${count}\r\n${lines}\r\n`,
      expectResponses: 1,
      timeoutMs: 5_000,
    });
    const status = x.responses.find((r) => !r.interim)?.status;
    const hit = fd.hits[before];
    if (status === 431) {
      t.equal(hit, undefined, `${count} header lines: refused with 431 and not forwarded`);
      continue;
    }
    if (status === 502 && hit === undefined) {
      // The upstream's own server refused the head (Node 24's HTTP server answers this many header
      // lines with HPE_HEADER_OVERFLOW; Node 20's keeps the first 1,023 lines). Nothing reached the
      // upstream's handler without the gateway's identity, which is what this test defends.
      t.pass(`${count} header lines: the upstream refused the head itself (502), nothing delivered`);
      continue;
    }
    t.ok(hit, `${count} header lines: forwarded (got ${status ?? x.ending})`);
    if (!hit) continue;
    const names = hit.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const own of ['x-forwarded-client-cert', 'x-forwarded-for', 'x-request-id']) {
      t.equal(names.filter((n) => n === own).length, 1, `${count} header lines: the upstream received exactly one ${own} (it saw ${names.length} header lines)`);
    }
    t.strictSame(hit.violations, [], `${count} header lines: the upstream's invariants hold`);
  }
});
