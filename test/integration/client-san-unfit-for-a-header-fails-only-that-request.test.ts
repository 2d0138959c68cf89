// A client certificate can carry a SAN that no HTTP header may hold (an IA5String URI with CR LF in
// it). The gateway describes the client to the upstream in x-forwarded-client-cert, so such a
// request fails with 500 GW_ERR_INTERNAL before anything is forwarded: the value is neither split
// into a second header nor mangled into a different identity. Only that request fails; the
// process and other clients carry on. Security: pins that a certificate's contents can never
// inject a header into the upstream request.
import t from 'tap';
import { issueLeaf } from '../../src/pki/dev-pki.js';
import { makeTestPki, startStack } from '../helpers/harness.js';

t.test('a SAN with CR LF fails the request with 500 and reaches nothing upstream', async (t) => {
  const pki = await makeTestPki();
  const crafted = await issueLeaf(pki.intermediate, {
    name: 'crlf-san',
    subject: { CN: 'billing', OU: 'payments', O: 'Example' },
    uris: ['spiffe://example.org/ns/default/sa/billing', 'https://example.org/a\r\nx-injected: 1'],
    usage: 'client',
  });
  const s = await startStack({ pki, crl: false });
  t.teardown(() => s.close());

  const res = await s.send(crafted, { path: '/orders/1' });
  t.equal(res.status, 500);
  t.match(res.json, { error: { code: 'GW_ERR_INTERNAL' } });
  t.equal(res.headers['connection'], 'close');
  t.notMatch(res.body, /x-injected|example\.org\/a/, 'nothing of the SAN is echoed to the client');
  t.equal(s.upstream.seen.length, 0, 'nothing was forwarded');
  const failed = s.gw.logs.find((l) => l.msg === 'request failed');
  t.match(failed, { code: 'GW_ERR_INTERNAL', reqId: res.headers['x-request-id'] }, 'the failure is logged with its request id');
  t.match(String((failed?.['err'] as { message?: unknown } | undefined)?.message), /XFCC URI value contains characters an HTTP header cannot carry/);

  const ok = await s.send(pki.clients['billing']!, { path: '/orders/2' });
  t.equal(ok.status, 200, 'another client is served afterwards');
  t.equal(s.upstream.seen.length, 1);
  t.notOk(s.upstream.seen.some((r) => 'x-injected' in r.headers), 'no injected header ever reached the upstream');
});
