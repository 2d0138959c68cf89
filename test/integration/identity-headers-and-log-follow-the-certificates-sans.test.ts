// What the gateway says about a connection follows the certificates exactly: XFCC's By= names the
// gateway's own SPIFFE ID only when its server certificate has one, a client's DNS SANs appear in
// XFCC (DNS=) and in the client identity of every log record, and nothing is invented when a
// certificate lacks a field.
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { issueLeaf } from '../../src/pki/dev-pki.js';
import { makeTestPki, startStack } from '../helpers/harness.js';

t.test('a gateway certificate without a URI SAN gives XFCC without By=; client DNS SANs are reported', async (t) => {
  const pki = await makeTestPki();
  const [server, client] = await Promise.all([
    issueLeaf(pki.intermediate, { name: 'gateway-no-uri', subject: { CN: 'gateway' }, dns: ['localhost'], ips: ['127.0.0.1'], usage: 'server' }),
    issueLeaf(pki.intermediate, {
      name: 'billing-with-dns',
      subject: { CN: 'billing', OU: 'payments', O: 'Example' },
      uris: ['spiffe://example.org/ns/default/sa/billing'],
      dns: ['billing.internal.example', 'billing.example'],
      usage: 'client',
    }),
  ]);
  const s = await startStack({
    pki,
    crl: false,
    beforeStart: async (dir) => {
      await writeFile(path.join(dir, 'gateway.crt'), server.chainPem);
      await writeFile(path.join(dir, 'gateway.key'), server.keyPem, { mode: 0o600 });
    },
  });
  t.teardown(() => s.close());

  const res = await s.send(client, { path: '/orders/1' });
  t.equal(res.status, 200);
  const fingerprint = new X509Certificate(client.certPem).fingerprint256.replaceAll(':', '').toLowerCase();
  t.equal(
    s.upstream.seen[0]?.headers['x-forwarded-client-cert'],
    `Hash=${fingerprint};Subject="CN=billing,OU=payments,O=Example";URI=spiffe://example.org/ns/default/sa/billing;DNS=billing.internal.example;DNS=billing.example`,
    'no By= element, and the DNS SANs in certificate order',
  );
  const access = s.gw.logs.find((l) => l.msg === 'request' && l['path'] === '/orders/1');
  t.match(access, { client: { dns: ['billing.internal.example', 'billing.example'], spiffe: 'spiffe://example.org/ns/default/sa/billing' } }, 'the access record lists the DNS SANs');

  const billing = await s.send(pki.clients['billing']!, { path: '/orders/2' });
  t.equal(billing.status, 200);
  const plain = s.gw.logs.find((l) => l.msg === 'request' && l['path'] === '/orders/2');
  t.ok(plain && typeof plain['client'] === 'object' && !('dns' in (plain['client'] as object)), 'a client without DNS SANs has no dns field at all');
  t.notMatch(String(s.upstream.seen[1]?.headers['x-forwarded-client-cert']), /DNS=|By=/);
});
