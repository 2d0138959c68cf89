// XFCC: formatXfcc writes Envoy's x-forwarded-client-cert element for an identity, parseXfcc reads
// headers back; quoting and escaping must round-trip exactly.
import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import t from 'tap';
import { identityFromDer } from '../../src/identity/identity-from-certificate.js';
import type { PeerIdentity } from '../../src/identity/peer-identity.js';
import { formatXfcc, parseXfcc } from '../../src/identity/xfcc.js';

x509.cryptoProvider.set(crypto.webcrypto);

const HASH = '468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688';

function identity(over: { rfc4514?: string; uri?: string[]; dns?: string[] } = {}): PeerIdentity {
  return {
    subject: { attributes: [], rfc4514: over.rfc4514 ?? 'CN=billing,OU=payments,O=Example,C=US' },
    issuer: { attributes: [], rfc4514: 'CN=Example CA' },
    san: { dns: over.dns ?? [], uri: over.uri ?? [], email: [], ip: [] },
    spiffe: null,
    serial: '01',
    fingerprint256: HASH,
    notBefore: new Date('2024-01-01T00:00:00Z'),
    notAfter: new Date('2030-01-01T00:00:00Z'),
  };
}

t.test('format: Envoy key order, one URI= / DNS= per SAN in certificate order', async (t) => {
  const id = identity({ uri: ['spiffe://example.org/ns/default/sa/billing', 'https://billing.example.org'], dns: ['billing.internal', 'billing'] });
  t.equal(
    formatXfcc(id, { by: 'spiffe://example.org/ns/gateway/sa/gateway' }),
    `By=spiffe://example.org/ns/gateway/sa/gateway;Hash=${HASH};Subject="CN=billing,OU=payments,O=Example,C=US";` +
      'URI=spiffe://example.org/ns/default/sa/billing;URI=https://billing.example.org;DNS=billing.internal;DNS=billing',
  );
  t.equal(formatXfcc(identity()), `Hash=${HASH};Subject="CN=billing,OU=payments,O=Example,C=US"`, 'no By, no SANs');
  t.equal(formatXfcc(identity(), { by: null }), formatXfcc(identity()), 'By null is omitted');
  t.equal(formatXfcc(identity({ rfc4514: '' })), `Hash=${HASH};Subject=""`, 'Subject is written even when empty');
});

t.test('format: quoting and escaping', async (t) => {
  const id = identity({
    rfc4514: 'CN=a\\,b\\"c,O=x',
    uri: ['https://example.org/a,b', 'https://example.org/?q=1', 'urn:x;y', 'https://example.org/"q"', 'https://example.org/back\\slash'],
    dns: ['plain.example'],
  });
  t.equal(
    formatXfcc(id),
    `Hash=${HASH};Subject="CN=a\\\\,b\\\\\\"c,O=x";` +
      'URI="https://example.org/a,b";URI="https://example.org/?q=1";URI="urn:x;y";URI="https://example.org/\\"q\\"";' +
      'URI=https://example.org/back\\slash;DNS=plain.example',
  );
});

t.test('format: non-ASCII subject characters become \\XX like OpenSSL/Envoy print them', async (t) => {
  t.equal(formatXfcc(identity({ rfc4514: 'CN=Jürgen 😀' })), `Hash=${HASH};Subject="CN=J\\\\C3\\\\BCrgen \\\\F0\\\\9F\\\\98\\\\80"`);
  t.same(parseXfcc(formatXfcc(identity({ rfc4514: 'CN=Jürgen' })))[0]!['Subject'], ['CN=J\\C3\\BCrgen']);
});

t.test('format: a SAN an HTTP header cannot carry fails instead of being mangled', async (t) => {
  t.throws(() => formatXfcc(identity({ uri: ['https://example.org/\r\nX-Evil: 1'] })), /URI value contains characters/);
  t.throws(() => formatXfcc(identity({ dns: ['nul\u0000.example'] })), /DNS value/);
  t.throws(() => formatXfcc(identity({ dns: ['caf\u00e9.example'] })), /DNS value/);
  t.throws(() => formatXfcc(identity(), { by: 'spiffe://x/\n' }), /By value/);
});

t.test('round trip through parseXfcc', async (t) => {
  const uri = ['spiffe://example.org/ns/default/sa/billing', 'https://example.org/a,b;c=d"e\\f', 'x'];
  const dns = ['a.example', 'b,c.example'];
  const rfc4514 = 'CN=\\ lead\\, \\"q\\" \\\\ \\+\\;\\<\\>,OU=ops+OU=payments,O=Example';
  const parsed = parseXfcc(formatXfcc(identity({ rfc4514, uri, dns }), { by: 'spiffe://example.org/gw' }));
  t.equal(parsed.length, 1);
  t.strictSame({ ...parsed[0] }, { By: ['spiffe://example.org/gw'], Hash: [HASH], Subject: [rfc4514], URI: uri, DNS: dns });
});

t.test('round trip from a real certificate', async (t) => {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: [{ C: ['US'] }, { O: ['Example, Inc.'] }, { CN: ['billing'] }],
    keys,
    signingAlgorithm: alg,
    notBefore: new Date('2024-01-01T00:00:00Z'),
    notAfter: new Date('2030-01-01T00:00:00Z'),
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://example.org/ns/default/sa/billing' }, { type: 'dns', value: 'billing.internal' }])],
  });
  const der = Buffer.from(cert.rawData);
  const id = identityFromDer(der);
  const header = formatXfcc(id);
  t.equal(header, `Hash=${crypto.createHash('sha256').update(der).digest('hex')};Subject="CN=billing,O=Example\\\\, Inc.,C=US";URI=spiffe://example.org/ns/default/sa/billing;DNS=billing.internal`);
  const [el] = parseXfcc(header);
  t.same(el!['Subject'], ['CN=billing,O=Example\\, Inc.,C=US']);
  t.same(el!['URI'], [id.spiffe!.uri]);
});

t.test('parse: Envoy documentation examples', async (t) => {
  const one = parseXfcc(
    `By=http://frontend.lyft.com;Hash=${HASH};Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com`,
  );
  t.strictSame(one.map((e) => ({ ...e })), [
    { By: ['http://frontend.lyft.com'], Hash: [HASH], Subject: ['/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client'], URI: ['http://testclient.lyft.com'], DNS: ['lyft.com', 'www.lyft.com'] },
  ]);
  const two = parseXfcc(`By=http://frontend.lyft.com;Hash=${HASH};URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=abc;URI=http://frontend.lyft.com`);
  t.equal(two.length, 2, 'one element per proxy hop');
  t.same(two[1]!['By'], ['http://backend.lyft.com']);
});

t.test('parse: keys are case-insensitive, unknown keys kept, unquoted values literal', async (t) => {
  const [el] = parseXfcc('by=a;HASH=b;subject="s";uri=http://x/?a=b=c;dns=d;Custom=v;URI=');
  t.strictSame({ ...el }, { By: ['a'], Hash: ['b'], Subject: ['s'], URI: ['http://x/?a=b=c', ''], DNS: ['d'], Custom: ['v'] });
  t.strictSame(parseXfcc('URI=a\\b')[0]!['URI'], ['a\\b'], 'backslash has no meaning outside quotes');
  t.strictSame(parseXfcc('Hash=1, Hash=2').map((e) => e['Hash']), [['1'], ['2']], 'whitespace after a comma (joined header lines) is skipped');
  t.strictSame({ ...parseXfcc('Hash=1; URI= x ')[0] }, { Hash: ['1'], URI: [' x '] }, 'whitespace around a key is skipped, inside a value kept');
  t.strictSame(parseXfcc(''), []);
  t.strictSame(parseXfcc('  '), []);
});

t.test('parse: a __proto__ key is an ordinary entry', async (t) => {
  const [el] = parseXfcc('__proto__=x;constructor=y');
  t.strictSame(el!['__proto__'], ['x']);
  t.strictSame(el!['constructor'], ['y']);
  t.equal(({} as Record<string, unknown>)['x'], undefined);
  t.equal(Object.getPrototypeOf(el), null);
});

t.test('parse: malformed headers throw', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['Subject="unterminated', /unterminated quote/],
    ['Subject="a\\"', /unterminated quote/],
    ['Subject="a\\', /unterminated quote/],
    ['Subject="a"b;URI=x', /after its closing quote/],
    ['novalue', /no "="/],
    ['Hash=1;novalue', /no "="/],
    ['=x', /empty key/],
    ['Hash=1,,Hash=2', /no "="/],
    ['Hash=1,', /empty element/],
    [',Hash=1', /no "="/],
    ['Ha"sh=1', /no "="/],
  ];
  for (const [header, message] of bad) t.throws(() => parseXfcc(header), message, header);
});
