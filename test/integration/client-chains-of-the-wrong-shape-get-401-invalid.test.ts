// Client chains that verify up to a trusted root but have the wrong shape are refused with 401
// GW_ERR_CLIENT_CERT_INVALID, the reason logged: more CA certificates above the client certificate
// than tls.verifyDepth allows (the gateway's own check: OpenSSL is not told the depth), and a
// chain OpenSSL refuses for a reason the gateway has no specific code for (a CA issuing below an
// intermediate limited to pathLength 0). Nothing is forwarded for either.
import t from 'tap';
import { createIntermediateCa, issueLeaf } from '../../src/pki/dev-pki.js';
import { makeTestPki, startStack } from '../helpers/harness.js';

const BILLING_SPIFFE = 'spiffe://example.org/ns/default/sa/billing';

t.test('tls.verifyDepth: 1 refuses a chain with an intermediate and admits one without', async (t) => {
  const pki = await makeTestPki();
  const direct = await issueLeaf(pki.root, { name: 'billing-from-root', subject: { CN: 'billing', OU: 'payments', O: 'Example' }, uris: [BILLING_SPIFFE], usage: 'client' });
  const s = await startStack({ pki, crlYaml: '  verifyDepth: 1' });
  t.teardown(() => s.close());

  const deep = await s.send(pki.clients['billing']!, { path: '/orders/1' });
  t.equal(deep.status, 401, 'leaf <- intermediate <- root is two CA certificates deep');
  t.match(deep.json, { error: { code: 'GW_ERR_CLIENT_CERT_INVALID' } });
  t.match(s.gw.logs.find((l) => l['event'] === 'client-rejected'), { code: 'GW_ERR_CLIENT_CERT_INVALID', reason: /chain has 2 CA certificates above the client certificate \(tls\.verifyDepth is 1\)/ });

  const shallow = await s.send(direct, { path: '/orders/2' });
  t.equal(shallow.status, 200, 'a leaf issued by the root itself is within the depth');
  t.same(s.upstream.seen.map((r) => r.url), ['/orders/2']);
});

t.test('an OpenSSL verification error without its own code is GW_ERR_CLIENT_CERT_INVALID, reason kept', async (t) => {
  const pki = await makeTestPki();
  // The test PKI's intermediate has pathLength 0: a CA below it breaks the chain.
  const sub = await createIntermediateCa(pki.intermediate, { name: 'sub', subject: { CN: 'Sub CA', O: 'Example' } });
  const leaf = await issueLeaf(sub, { name: 'billing-under-sub', subject: { CN: 'billing', OU: 'payments', O: 'Example' }, uris: [BILLING_SPIFFE], usage: 'client' });
  const s = await startStack({ pki, crl: false });
  t.teardown(() => s.close());

  const res = await s.send(leaf, { path: '/orders/1' });
  t.equal(res.status, 401);
  t.match(res.json, { error: { code: 'GW_ERR_CLIENT_CERT_INVALID' } });
  t.notMatch(res.body, /PATH_LENGTH|Sub CA/, 'the reason stays in the log');
  t.match(s.gw.logs.find((l) => l['event'] === 'client-rejected'), { code: 'GW_ERR_CLIENT_CERT_INVALID', reason: 'PATH_LENGTH_EXCEEDED', peer: { subject: /CN=billing/ } });
  t.equal(s.upstream.seen.length, 0);
});
