// Pins a security decision: revocation is enforced in process on every request, so a client
// revoked after its first connection cannot get back in by resuming its TLS session (TLS 1.3
// tickets, TLS 1.2 tickets/ids), even though OpenSSL reports the resumed session as authorized.
// The test asserts the session really was resumed, so it cannot pass vacuously.
import https from 'node:https';
import path from 'node:path';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { replaceFile } from '../helpers/crl-files.js';
import { makeTestPki, request, startStack } from '../helpers/harness.js';

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  t.test(`revoked after first connection: resumption with ${version} gets 401`, async (t) => {
    const pki = await makeTestPki();
    const s = await startStack({ pki });
    t.teardown(() => s.close());
    const billing = pki.clients['billing']!;
    // keepAlive false: every request opens a new connection, resuming the cached session.
    const agent = new https.Agent({ keepAlive: false, maxCachedSessions: 10, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, minVersion: version, maxVersion: version });
    t.teardown(() => agent.destroy());
    const send = () => request(s.gw.port, null, pki.root.certPem, { path: '/orders/1', agent });

    const first = await send();
    t.equal(first.status, 200);
    t.equal(first.socket.getProtocol(), version);
    // A TLS 1.3 ticket arrives after the handshake; give the client a moment to store it.
    await new Promise((r) => setTimeout(r, 50));
    const second = await send();
    t.equal(second.status, 200);
    t.ok(second.socket.isSessionReused(), 'control: the session is resumed while the client is good');

    const from = s.gw.gateway.revocation.get('clients')!.index.generation;
    const crl = await createCrl(pki.intermediate, { revoked: [{ serial: pki.clients['revoked']!.serial }, { serial: billing.serial, reason: 'keyCompromise' }], crlNumber: 2 });
    await replaceFile(path.join(s.dir, 'intermediate.crl.pem'), crl.pem);
    await s.gw.gateway.reload('test');
    t.ok(s.gw.gateway.revocation.get('clients')!.index.generation > from, 'the new CRL is in force');

    const third = await send();
    t.ok(third.socket.isSessionReused(), 'the session was resumed after the revocation');
    t.equal(third.status, 401);
    t.match(third.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
    t.equal(s.upstream.seen.length, 2, 'the upstream saw only the two requests before the revocation');
    t.match(
      s.gw.logs.find((l) => l['event'] === 'client-revoked' && l['when'] === 'request'),
      { serial: billing.serial, reason: 'keyCompromise', issuer: /Intermediate/, resumed: true },
    );
  });
}
