// identityFromDer against certificates generated here: DN order and RFC 4514 escaping, every SAN
// type, SPIFFE selection, serial, fingerprint and validity, with Node's own parser as a cross-check.
// Names and SAN lists are written as raw DER (tiny builder below) so that every byte under test is
// chosen by the test and not re-interpreted by the generator's string parsing.
import 'reflect-metadata';
import * as crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { SocketAddress } from 'node:net';
import * as x509 from '@peculiar/x509';
import t from 'tap';
import { formatIpAddress, identityFromDer } from '../../src/identity/identity-from-certificate.js';

x509.cryptoProvider.set(crypto.webcrypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const keys = (await crypto.webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
const caKeys = (await crypto.webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;

// --- DER builder -------------------------------------------------------------------------------
function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}
function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [40 * arcs[0]! + arcs[1]!];
  for (const a of arcs.slice(2)) {
    const b = [a & 0x7f];
    for (let v = Math.floor(a / 128); v > 0; v = Math.floor(v / 128)) b.unshift((v & 0x7f) | 0x80);
    out.push(...b);
  }
  return tlv(0x06, Buffer.from(out));
}
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const printable = (s: string) => tlv(0x13, Buffer.from(s, 'latin1'));
const ia5 = (s: string) => tlv(0x16, Buffer.from(s, 'latin1'));
const teletex = (s: string) => tlv(0x14, Buffer.from(s, 'latin1'));
const bmp = (s: string) => tlv(0x1e, Buffer.from(s, 'utf16le').swap16());
const universal = (s: string) => tlv(0x1c, Buffer.concat([...s].map((ch) => { const b = Buffer.alloc(4); b.writeUInt32BE(ch.codePointAt(0)!); return b; })));
const ava = (type: string, value: Buffer) => tlv(0x30, oid(type), value);
const rdn = (...avas: Buffer[]) => tlv(0x31, ...avas);
const dn = (...rdns: Buffer[]) => new x509.Name(tlv(0x30, ...rdns));
const cn = (value: string) => dn(rdn(ava('2.5.4.3', utf8(value))));

const gn = {
  email: (s: string) => tlv(0x81, Buffer.from(s, 'latin1')),
  dns: (s: string) => tlv(0x82, Buffer.from(s, 'latin1')),
  uri: (s: string) => tlv(0x86, Buffer.from(s, 'latin1')),
  ip: (bytes: number[]) => tlv(0x87, Buffer.from(bytes)),
  registeredId: (dotted: string) => Buffer.concat([Buffer.from([0x88]), oid(dotted).subarray(1)]),
  directoryName: (name: Buffer) => tlv(0xa4, name),
  otherName: (dotted: string, value: Buffer) => tlv(0xa0, oid(dotted), tlv(0xa0, value)),
};
/**
 * The generator re-encodes names through its own ASN.1 layer, which is lossy for a few inputs
 * (astral characters in a UniversalString, invalid UTF-8). For those, a same-length placeholder is
 * swapped for the exact bytes afterwards; the signature no longer verifies, which identityFromDer
 * does not look at (OpenSSL verified it before the gateway parses).
 */
function swapBytes(der: Buffer, placeholder: Buffer, exact: Buffer): Buffer {
  if (placeholder.length !== exact.length) throw new Error('placeholder and replacement differ in length');
  const at = der.indexOf(placeholder);
  if (at < 0 || der.indexOf(placeholder, at + 1) >= 0) throw new Error('placeholder not found exactly once');
  const out = Buffer.from(der);
  exact.copy(out, at);
  return out;
}

const sanExtension = (...names: Buffer[]) => new x509.Extension('2.5.29.17', false, tlv(0x30, ...names));
const uriSans = (...uris: string[]) => sanExtension(...uris.map(gn.uri));

interface CertOptions {
  subject?: x509.Name;
  issuer?: x509.Name;
  extensions?: x509.Extension[];
  serialNumber?: string;
  notBefore?: Date;
  notAfter?: Date;
}

async function makeCert(opts: CertOptions = {}): Promise<Buffer> {
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: opts.serialNumber ?? '01',
    subject: opts.subject ?? cn('leaf'),
    issuer: opts.issuer ?? cn('Test CA'),
    notBefore: opts.notBefore ?? new Date('2024-01-01T00:00:00Z'),
    notAfter: opts.notAfter ?? new Date('2030-01-01T00:00:00Z'),
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALG,
    extensions: opts.extensions ?? [],
  });
  return Buffer.from(cert.rawData);
}

// --- distinguished names -----------------------------------------------------------------------
t.test('DN attributes keep DER order; rfc4514 reverses the RDNs as OpenSSL RFC2253 does', async (t) => {
  const der = await makeCert({
    subject: dn(
      rdn(ava('2.5.4.6', printable('US'))),
      rdn(ava('2.5.4.10', utf8('Example'))),
      rdn(ava('2.5.4.11', utf8('payments')), ava('2.5.4.11', utf8('ops'))),
      rdn(ava('2.5.4.3', utf8('billing'))),
    ),
    issuer: dn(rdn(ava('2.5.4.6', printable('US'))), rdn(ava('2.5.4.10', utf8('Example'))), rdn(ava('2.5.4.3', utf8('Example Issuing CA')))),
  });
  const id = identityFromDer(der);
  t.strictSame(id.subject.attributes, [
    { type: 'C', value: 'US' },
    { type: 'O', value: 'Example' },
    { type: 'OU', value: 'payments' },
    { type: 'OU', value: 'ops' },
    { type: 'CN', value: 'billing' },
  ], 'every AVA of the multi-valued RDN is present, in DER order');
  // OpenSSL reverses its flat entry list, so the AVAs inside a multi-valued RDN come out reversed too.
  t.equal(id.subject.rfc4514, 'CN=billing,OU=ops+OU=payments,O=Example,C=US');
  t.equal(id.issuer.rfc4514, 'CN=Example Issuing CA,O=Example,C=US');
  t.strictSame(id.issuer.attributes.map((a) => a.type), ['C', 'O', 'CN']);
});

t.test('RFC 4514 escaping of special characters', async (t) => {
  const cases: Array<[string, string]> = [
    ['billing, inc', 'CN=billing\\, inc'],
    ['a+b', 'CN=a\\+b'],
    ['say "hi"', 'CN=say \\"hi\\"'],
    ['back\\slash', 'CN=back\\\\slash'],
    ['<tag>;', 'CN=\\<tag\\>\\;'],
    [' leading space', 'CN=\\ leading space'],
    ['trailing space ', 'CN=trailing space\\ '],
    ['#not-hex', 'CN=\\#not-hex'],
    ['in#side = fine', 'CN=in#side = fine'],
    [' ', 'CN=\\ '],
    ['nul\u0000byte', 'CN=nul\\00byte'],
    ['line\r\nbreak\u007f', 'CN=line\\0D\\0Abreak\\7F'],
    ['', 'CN='],
  ];
  for (const [value, expected] of cases) {
    const id = identityFromDer(await makeCert({ subject: cn(value) }));
    t.equal(id.subject.attributes[0]!.value, value, `value kept exactly: ${JSON.stringify(value)}`);
    t.equal(id.subject.rfc4514, expected, `escaped: ${JSON.stringify(value)}`);
  }
});

t.test('attribute short names, unknown OIDs and an empty subject', async (t) => {
  const der = await makeCert({
    subject: dn(
      rdn(ava('0.9.2342.19200300.100.1.25', ia5('org'))),
      rdn(ava('0.9.2342.19200300.100.1.25', ia5('example'))),
      rdn(ava('2.5.4.7', utf8('Springfield')), ava('2.5.4.8', utf8('Oregon'))),
      rdn(ava('2.5.4.9', utf8('1 Main St'))),
      rdn(ava('2.5.4.12', utf8('Engineer')), ava('2.5.4.42', utf8('Ada')), ava('2.5.4.4', utf8('Lovelace'))),
      rdn(ava('2.5.4.65', utf8('countess'))),
      rdn(ava('2.5.4.5', printable('1234'))),
      rdn(ava('0.9.2342.19200300.100.1.1', utf8('u-42'))),
      rdn(ava('1.2.840.113549.1.9.1', ia5('ada@example.org'))),
      rdn(ava('1.3.6.1.4.1.99999.7', utf8('x,y'))),
    ),
  });
  const id = identityFromDer(der);
  t.strictSame(id.subject.attributes.map((a) => a.type), [
    'DC', 'DC', 'L', 'ST', 'street', 'title', 'GN', 'SN', 'pseudonym', 'serialNumber', 'UID', 'emailAddress', '1.3.6.1.4.1.99999.7',
  ]);
  // An unknown type is written with its string value escaped, not RFC 4514's #hex DER form
  // (simpler to read; it is also what OpenSSL prints).
  t.equal(
    id.subject.rfc4514,
    '1.3.6.1.4.1.99999.7=x\\,y,emailAddress=ada@example.org,UID=u-42,serialNumber=1234,pseudonym=countess,' +
      'SN=Lovelace+GN=Ada+title=Engineer,street=1 Main St,ST=Oregon+L=Springfield,DC=example,DC=org',
  );

  const empty = identityFromDer(await makeCert({ subject: dn() }));
  t.strictSame(empty.subject, { attributes: [], rfc4514: '' });
});

t.test('values from every DirectoryString choice; non-strings as #hex', async (t) => {
  const der = await makeCert({
    subject: dn(
      rdn(ava('2.5.4.3', utf8('Jürgen 日本 😀'))),
      rdn(ava('2.5.4.10', printable('Printable Co'))),
      rdn(ava('2.5.4.11', teletex('caf\u00e9'))),
      rdn(ava('2.5.4.7', bmp('Zürich'))),
      rdn(ava('2.5.4.8', utf8('Q'.repeat(32)))),
      rdn(ava('2.5.4.45', tlv(0x03, Buffer.from([0x00, 0xab, 0xcd])))),
    ),
  });
  const id = identityFromDer(swapBytes(der, utf8('Q'.repeat(32)), universal('astral 😀')));
  t.strictSame(id.subject.attributes.map((a) => a.value), ['Jürgen 日本 😀', 'Printable Co', 'café', 'Zürich', 'astral 😀', '#030300ABCD']);
  t.equal(id.subject.rfc4514, 'x500UniqueIdentifier=#030300ABCD,ST=astral 😀,L=Zürich,OU=café,O=Printable Co,CN=Jürgen 日本 😀');
});

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

t.test('rfc4514 matches `openssl x509 -nameopt RFC2253` byte for byte (ASCII names)', { skip: hasOpenssl() ? false : 'no openssl binary on PATH' }, async (t) => {
  const der = await makeCert({
    subject: dn(
      rdn(ava('2.5.4.6', printable('US'))),
      rdn(ava('2.5.4.11', utf8('b')), ava('2.5.4.11', utf8('a'))),
      rdn(ava('2.5.4.3', utf8(' a,b+c"d\\e<f>g;h=i#\u0001 '))),
      rdn(ava('0.9.2342.19200300.100.1.25', ia5('example'))),
    ),
  });
  const out = execFileSync('openssl', ['x509', '-inform', 'DER', '-noout', '-subject', '-nameopt', 'RFC2253'], { input: der }).toString();
  t.equal(`subject=${identityFromDer(der).subject.rfc4514}`, out.replace(/\n$/, ''));
});

// --- subject alternative names -----------------------------------------------------------------
t.test('SAN values of every type, kept exactly and in certificate order', async (t) => {
  const der = await makeCert({
    extensions: [
      sanExtension(
        gn.dns('billing.internal'),
        gn.uri('https://example.org/a,b'),
        gn.email('ops@example.org'),
        gn.dns(' spaced.example '),
        gn.ip([10, 0, 0, 1]),
        gn.uri('spiffe://example.org/ns/default/sa/billing'),
        gn.ip([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        gn.dns('a,b.example'),
        gn.registeredId('1.2.3.4'),
        gn.directoryName(tlv(0x30, rdn(ava('2.5.4.3', utf8('dirname'))))),
        gn.otherName('1.3.6.1.4.1.311.20.2.3', utf8('upn@example.org')),
      ),
    ],
  });
  const id = identityFromDer(der);
  t.strictSame(id.san, {
    dns: ['billing.internal', ' spaced.example ', 'a,b.example'],
    uri: ['https://example.org/a,b', 'spiffe://example.org/ns/default/sa/billing'],
    email: ['ops@example.org'],
    ip: ['10.0.0.1', '2001:db8::1'],
  });
  // Node's string form JSON-quotes the values with commas: the reason it is never split.
  t.match(new crypto.X509Certificate(der).subjectAltName ?? '', /DNS:"a\\u002cb\.example"/);
});

t.test('a certificate without SAN has empty lists and no SPIFFE ID', async (t) => {
  const id = identityFromDer(await makeCert());
  t.strictSame(id.san, { dns: [], uri: [], email: [], ip: [] });
  t.equal(id.spiffe, null);
});

t.test('IP SANs: canonical IPv4 and RFC 5952 IPv6; other lengths are ignored', async (t) => {
  const v6 = (...groups: number[]) => groups.flatMap((g) => [g >> 8, g & 0xff]);
  const der = await makeCert({
    extensions: [
      sanExtension(
        gn.ip([192, 0, 2, 1]),
        gn.ip([0, 0, 0, 0]),
        gn.ip(v6(0x2001, 0x0db8, 0, 0, 1, 0, 0, 1)),
        gn.ip(v6(0, 0, 0, 0, 0, 0, 0, 0)),
        gn.ip(v6(0, 0, 0, 0, 0, 0, 0, 1)),
        gn.ip(v6(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
        gn.ip(v6(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1)),
        gn.ip(v6(0x2001, 0, 0, 1, 0, 0, 1, 1)),
        gn.ip(v6(0xABCD, 0x00EF, 0, 0, 0, 0, 0, 0x0100)),
        gn.ip(v6(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201)),
        gn.ip([1, 2, 3, 4, 5]),
        gn.ip([10, 0, 0, 0, 255, 0, 0, 0]),
        gn.ip([]),
      ),
    ],
  });
  t.strictSame(identityFromDer(der).san.ip, [
    '192.0.2.1',
    '0.0.0.0',
    '2001:db8::1:0:0:1', // longest run wins
    '::',
    '::1',
    'fe80::',
    '2001:db8:0:1:1:1:1:1', // a single zero group is not compressed
    '2001::1:0:0:1:1', // on a tie the first run is compressed
    'abcd:ef::100', // lower case, no leading zeros
    '::ffff:192.0.2.1', // IPv4-mapped in the recommended mixed form
  ]);
});

t.test('formatIpAddress agrees with node:net (inet_ntop) on random IPv6 addresses', async (t) => {
  let compared = 0;
  for (let n = 0; n < 2000; n++) {
    const bytes = crypto.randomBytes(16);
    // Zero out random groups so that runs of zeros (the interesting part) are common.
    for (let g = 0; g < 8; g++) if (crypto.randomInt(2) === 0) bytes.writeUInt16BE(0, g * 2);
    // inet_ntop prints ::/96 with a non-zero tail as a deprecated IPv4-compatible "::a.b.c.d"; RFC
    // 5952 recommends the mixed form only for IPv4-mapped addresses, so those are left out.
    if (bytes.subarray(0, 12).every((b) => b === 0)) continue;
    const text = [...Array(8).keys()].map((g) => bytes.readUInt16BE(g * 2).toString(16)).join(':');
    const expected = new SocketAddress({ address: text, family: 'ipv6' }).address;
    if (formatIpAddress(bytes) !== expected) {
      t.fail(`${text}: ${formatIpAddress(bytes)} != ${expected}`);
      return;
    }
    compared++;
  }
  t.ok(compared > 1500, `${compared} addresses agree`);
  t.equal(formatIpAddress(new Uint8Array(8)), null);
});

// --- SPIFFE ------------------------------------------------------------------------------------
t.test('SPIFFE identity from the single spiffe URI SAN', async (t) => {
  const one = identityFromDer(await makeCert({ extensions: [uriSans('https://billing.example.org/', 'spiffe://example.org/ns/default/sa/billing')] }));
  t.strictSame(one.spiffe, { uri: 'spiffe://example.org/ns/default/sa/billing', trustDomain: 'example.org', path: '/ns/default/sa/billing' });

  const invalid: Array<[string, string[]]> = [
    ['two spiffe URI SANs', ['spiffe://example.org/ns/default/sa/billing', 'spiffe://example.org/ns/default/sa/admin']],
    ['a second one with an upper-case scheme still counts', ['spiffe://example.org/ns/default/sa/billing', 'SPIFFE://example.org/ns/default/sa/admin']],
    ['upper-case scheme', ['SPIFFE://example.org/ns/default/sa/billing']],
    ['upper-case trust domain', ['spiffe://Example.org/ns/default/sa/billing']],
    ['dot-dot segment', ['spiffe://example.org/ns/../sa/admin']],
    ['dot segment', ['spiffe://example.org/ns/./sa']],
    ['percent-encoded', ['spiffe://example.org/ns/default/sa/bil%6Cing']],
    ['query', ['spiffe://example.org/ns/default/sa/billing?x=1']],
    ['fragment', ['spiffe://example.org/ns/default/sa/billing#x']],
    ['port', ['spiffe://example.org:443/ns/default']],
    ['userinfo', ['spiffe://user@example.org/ns/default']],
    ['empty segment', ['spiffe://example.org/ns//sa']],
    ['trailing slash', ['spiffe://example.org/ns/default/']],
    ['no path: a leaf SVID needs one (X509-SVID 3.1)', ['spiffe://example.org']],
  ];
  for (const [label, uris] of invalid) {
    const id = identityFromDer(await makeCert({ extensions: [uriSans(...uris)] }));
    t.equal(id.spiffe, null, label);
    t.strictSame(id.san.uri, uris, `${label}: URI SANs still listed`);
  }
});

// --- serial, fingerprint, validity -------------------------------------------------------------
t.test('serial with the high bit set (DER leading 00) normalizes like Node prints it', async (t) => {
  const der = await makeCert({ serialNumber: '8badf00d01' });
  t.ok(der.includes(Buffer.from([0x02, 0x06, 0x00, 0x8b, 0xad, 0xf0, 0x0d, 0x01])), 'DER INTEGER carries the 00 pad');
  const id = identityFromDer(der);
  t.equal(id.serial, '8BADF00D01');
  t.equal(id.serial, new crypto.X509Certificate(der).serialNumber);

  const long = await makeCert({ serialNumber: '7fffffffffffffffffffffffffffffffffffff01' });
  t.equal(identityFromDer(long).serial, new crypto.X509Certificate(long).serialNumber);
});

t.test('fingerprint256 equals Node\'s, lower-case without colons', async (t) => {
  const der = await makeCert();
  const expected = new crypto.X509Certificate(der).fingerprint256.replace(/:/g, '').toLowerCase();
  t.equal(identityFromDer(der).fingerprint256, expected);
  t.match(expected, /^[0-9a-f]{64}$/);
});

t.test('validity dates from UTCTime and GeneralizedTime', async (t) => {
  const notBefore = new Date('1999-12-31T23:59:59Z');
  const notAfter = new Date('2050-01-01T00:00:00Z');
  const der = await makeCert({ notBefore, notAfter });
  t.ok(der.includes(Buffer.concat([Buffer.from([0x17, 13]), Buffer.from('991231235959Z')])), 'notBefore is a UTCTime with YY=99');
  t.ok(der.includes(Buffer.concat([Buffer.from([0x18, 15]), Buffer.from('20500101000000Z')])), 'notAfter is a GeneralizedTime');
  const id = identityFromDer(der);
  t.equal(id.notBefore.toISOString(), notBefore.toISOString());
  t.equal(id.notAfter.toISOString(), notAfter.toISOString());

  const late = identityFromDer(await makeCert({ notBefore: new Date('2049-12-31T23:59:59Z') }));
  t.equal(late.notBefore.toISOString(), '2049-12-31T23:59:59.000Z', 'UTCTime YY=49 is 2049');
});

// --- input handling ----------------------------------------------------------------------------
t.test('accepts a Uint8Array view as well as a Buffer', async (t) => {
  const der = await makeCert({ extensions: [uriSans('spiffe://example.org/ns/default/sa/billing')] });
  const padded = new Uint8Array(der.length + 7);
  padded.set(der, 3);
  t.strictSame(identityFromDer(padded.subarray(3, 3 + der.length)), identityFromDer(der));
});

t.test('malformed certificates throw instead of yielding a partial identity', async (t) => {
  const der = await makeCert({ extensions: [uriSans('spiffe://example.org/ns/default/sa/billing')] });
  t.throws(() => identityFromDer(der.subarray(0, der.length - 1)), /overruns|truncated/);
  t.throws(() => identityFromDer(Buffer.concat([der, Buffer.from([0])])), /trailing/);
  t.throws(() => identityFromDer(Buffer.alloc(0)), /truncated/);
  t.throws(() => identityFromDer(Buffer.from('not a certificate')));
  t.throws(() => identityFromDer(Buffer.from([0x30, 0x80, 0x00, 0x00])), /indefinite/);

  const twoSans = await makeCert({ extensions: [uriSans('spiffe://example.org/a'), uriSans('spiffe://example.org/b')] });
  t.throws(() => identityFromDer(twoSans), /more than one subjectAltName/);

  const placeholder = utf8('QQQ');
  const good = await makeCert({ subject: dn(rdn(ava('2.5.4.3', placeholder))) });
  const badUtf8 = swapBytes(good, placeholder, tlv(0x0c, Buffer.from([0x61, 0xff, 0x62])));
  t.throws(() => identityFromDer(badUtf8), 'invalid UTF-8 is refused, not replaced with U+FFFD');
  const oddBmp = swapBytes(good, placeholder, tlv(0x1e, Buffer.from([0x00, 0x61, 0x00])));
  t.throws(() => identityFromDer(oddBmp), /BMPString of odd length/);
  const loneSurrogate = swapBytes(await makeCert({ subject: dn(rdn(ava('2.5.4.3', utf8('QQQQ')))) }), utf8('QQQQ'), tlv(0x1e, Buffer.from([0xd8, 0x00, 0x00, 0x61])));
  t.throws(() => identityFromDer(loneSurrogate), /unpaired surrogate/);
});
