// A gateway started with a CRL already past its nextUpdate under `stale: deny` starts (so an
// operator can see it: admin endpoints, logs, metrics) and reports not ready, with the reason, until
// a fresh CRL arrives; then it is ready again. Under `stale: grace` it stays ready inside the grace
// and turns not ready after it. Readiness is what /readyz answers.
import path from 'node:path';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { readiness } from '../../src/runtime/state-view.js';
import { replaceFile } from '../helpers/crl-files.js';
import { makeTestPki, startStack } from '../helpers/harness.js';

const HOUR = 3_600_000;

t.test('stale: deny: a gateway whose CRL is past nextUpdate starts and is not ready', async (t) => {
  const pki = await makeTestPki();
  const now = Date.now();
  const stale = await createCrl(pki.intermediate, { crlNumber: 5, thisUpdate: new Date(now - 3 * HOUR), nextUpdate: new Date(now - HOUR) });
  const s = await startStack({ pki, beforeStart: async (dir) => replaceFile(path.join(dir, 'intermediate.crl.pem'), stale.pem) });
  t.teardown(() => s.close());
  const r = s.gw.gateway.readiness();
  t.equal(r.ready, false, 'not ready');
  t.match(r.reasons.join('\n'), /crl clients: the CRL of .*Intermediate.* is past its nextUpdate .* stale is "deny"/, 'the reason names the domain, the CA and the policy');
  t.match(await s.gw.gateway.metrics.text(), /mtls_gateway_ready 0\b/);
  t.equal((await s.send(pki.clients['billing']!, { path: '/orders/1' })).status, 401, 'and the stale policy refuses clients of that CA meanwhile');
  t.match(s.gw.gateway.status().crls.find((c) => /Intermediate/.test(c.issuer)), { stale: true, number: '5' });

  const fresh = await createCrl(pki.intermediate, { crlNumber: 6 });
  await replaceFile(path.join(s.dir, 'intermediate.crl.pem'), fresh.pem);
  t.match(await s.gw.gateway.reload('test'), { result: 'success' });
  t.same(s.gw.gateway.readiness(), { ready: true, reasons: [] }, 'ready once a fresh CRL is in force');
  t.equal((await s.send(pki.clients['billing']!, { path: '/orders/1' })).status, 200);
});

t.test('stale: grace: ready inside the grace, not ready after it', async (t) => {
  const pki = await makeTestPki();
  const now = Date.now();
  // nextUpdate an hour ago; a grace of two hours keeps it usable for one more hour.
  const stale = await createCrl(pki.intermediate, { crlNumber: 5, thisUpdate: new Date(now - 3 * HOUR), nextUpdate: new Date(now - HOUR) });
  const s = await startStack({
    pki,
    crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { stale: grace, grace: 2h }',
    beforeStart: async (dir) => replaceFile(path.join(dir, 'intermediate.crl.pem'), stale.pem),
  });
  t.teardown(() => s.close());
  t.same(s.gw.gateway.readiness(), { ready: true, reasons: [] }, 'inside the grace: ready');
  // The same snapshot judged an hour and a minute later: past nextUpdate + grace.
  const later = readiness(s.gw.gateway.runtime.current, { listening: true, draining: false, now: now + HOUR + 60_000 });
  t.equal(later.ready, false, 'past the grace: not ready');
  t.match(later.reasons.join('\n'), /past its nextUpdate .* and its grace of 7200000 ms/);
  t.same(readiness(s.gw.gateway.runtime.current, { listening: true, draining: true, now }).reasons, ['draining: the gateway is shutting down'], 'draining is a reason of its own');
  t.same(readiness(s.gw.gateway.runtime.current, { listening: false, draining: false, now }).reasons, ['listener: not accepting connections']);
});
