// A CA certificate (basicConstraints CA:TRUE) that carries no keyUsage and no extendedKeyUsage
// passes OpenSSL's client purpose check, so OpenSSL authorizes it as a client certificate. The
// gateway refuses it itself: 401 GW_ERR_CLIENT_CERT_USAGE, the reason logged, nothing forwarded,
// even though its SAN would satisfy the route's allow rule. (A CA certificate with a keyUsage that
// lacks digitalSignature, like the test PKI's intermediate, is refused by OpenSSL already: see
// test/security/unverified-clients-never-reach-upstream.)
import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import t from 'tap';
import { makeTestPki, startStack } from '../helpers/harness.js';

x509.cryptoProvider.set(crypto.webcrypto);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

t.test('a CA certificate without keyUsage, signed by the trusted root, gets 401 usage', async (t) => {
  const pki = await makeTestPki();
  const keys = (await crypto.webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '4c4541',
    subject: 'CN=billing, OU=payments, O=Example',
    issuer: pki.root.cert.subjectName,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 86_400_000),
    publicKey: keys.publicKey,
    signingKey: pki.root.keys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://example.org/ns/default/sa/billing' }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(pki.root.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId),
    ],
  });
  const client = {
    ...pki.clients['billing']!,
    certPem: cert.toString('pem'),
    chainPem: cert.toString('pem'),
    keyPem: crypto.KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string,
  };
  t.ok(new crypto.X509Certificate(client.certPem).ca, 'control: it is a CA certificate');
  t.ok(new crypto.X509Certificate(client.certPem).checkIssued(new crypto.X509Certificate(pki.root.certPem)), 'control: issued by the trusted root');

  const s = await startStack({ pki, crl: false });
  t.teardown(() => s.close());
  const res = await s.send(client, { path: '/orders/1' });
  t.equal(res.status, 401);
  t.match(res.json, { error: { code: 'GW_ERR_CLIENT_CERT_USAGE' } });
  t.match(s.gw.logs.find((l) => l['event'] === 'client-rejected'), { code: 'GW_ERR_CLIENT_CERT_USAGE', reason: 'CA certificate presented as a client certificate' }, 'refused by the gateway, not by OpenSSL');
  t.equal(s.upstream.seen.length, 0);
});
