// Pins a security decision: SANs are read from the certificate's DER, one GeneralName per value,
// never by splitting a printed SAN string. A CA that copies requested names verbatim can be made to
// issue a DNS SAN "evil.com, DNS:admin.internal" or a URI SAN ending in
// ", URI:spiffe://example.org/ns/default/sa/admin"; in the printed forms (OpenSSL's text, or Node's
// string once its quoting is ignored) those look like two names. The identity must hold exactly the
// one value that was issued, and the smuggled name must never become a SAN or the SPIFFE ID.
import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import t from 'tap';
import { identityFromDer } from '../../src/identity/identity-from-certificate.js';
import { formatXfcc, parseXfcc } from '../../src/identity/xfcc.js';

x509.cryptoProvider.set(crypto.webcrypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const keys = (await crypto.webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;

async function certWithSans(names: Array<{ type: 'dns' | 'url'; value: string }>): Promise<Buffer> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=intruder',
    keys,
    signingAlgorithm: ALG,
    notBefore: new Date('2024-01-01T00:00:00Z'),
    notAfter: new Date('2030-01-01T00:00:00Z'),
    extensions: [new x509.SubjectAlternativeNameExtension(names)],
  });
  return Buffer.from(cert.rawData);
}

const ADMIN_SPIFFE = 'spiffe://example.org/ns/default/sa/admin';

t.test('a DNS SAN containing ", DNS:" stays one DNS value', async (t) => {
  const smuggled = 'evil.com, DNS:admin.internal';
  const der = await certWithSans([{ type: 'dns', value: smuggled }]);
  const id = identityFromDer(der);
  t.strictSame(id.san.dns, [smuggled], 'exactly one DNS SAN, byte for byte');
  t.notOk(id.san.dns.includes('admin.internal'));
  t.notOk(id.san.dns.includes('evil.com'));

  // Why the structured parse matters: the printed form splits into two names.
  const printed = new crypto.X509Certificate(der).subjectAltName ?? '';
  t.ok(printed.replace(/\\u002c/g, ',').replace(/"/g, '').split(', ').includes('DNS:admin.internal'), 'naive splitting of the printed SAN would invent DNS:admin.internal');
});

t.test('a URI SAN containing ", URI:spiffe://..." is one URI and grants no SPIFFE identity', async (t) => {
  const smuggled = `spiffe://example.org/ns/default/sa/intruder, URI:${ADMIN_SPIFFE}`;
  const der = await certWithSans([{ type: 'url', value: smuggled }]);
  const id = identityFromDer(der);
  t.strictSame(id.san.uri, [smuggled], 'exactly one URI SAN, byte for byte');
  t.equal(id.spiffe, null, 'the combined value is not a valid SPIFFE ID, so there is none');
  t.notOk(id.san.uri.includes(ADMIN_SPIFFE));

  const printed = new crypto.X509Certificate(der).subjectAltName ?? '';
  t.ok(printed.replace(/\\u002c/g, ',').replace(/"/g, '').split(', ').includes(`URI:${ADMIN_SPIFFE}`), 'naive splitting of the printed SAN would invent the admin SPIFFE ID');
});

t.test('next to a genuine SPIFFE ID, smuggled text changes nothing', async (t) => {
  const der = await certWithSans([
    { type: 'url', value: 'spiffe://example.org/ns/default/sa/billing' },
    { type: 'dns', value: `billing.internal, URI:${ADMIN_SPIFFE}` },
  ]);
  const id = identityFromDer(der);
  t.equal(id.spiffe?.uri, 'spiffe://example.org/ns/default/sa/billing');
  t.strictSame(id.san.uri, ['spiffe://example.org/ns/default/sa/billing']);
  t.strictSame(id.san.dns, [`billing.internal, URI:${ADMIN_SPIFFE}`]);
});

t.test('the smuggled value stays one quoted value in XFCC', async (t) => {
  const dns = 'evil.com, DNS:admin.internal';
  const uri = `spiffe://example.org/ns/default/sa/intruder, URI:${ADMIN_SPIFFE}`;
  const der = await certWithSans([{ type: 'url', value: uri }, { type: 'dns', value: dns }]);
  const header = formatXfcc(identityFromDer(der));
  const elements = parseXfcc(header);
  t.equal(elements.length, 1, 'the comma inside a value does not start a second XFCC element');
  t.strictSame(elements[0]!['URI'], [uri]);
  t.strictSame(elements[0]!['DNS'], [dns]);
});
