/**
 * crlDistributionPointUrls: the http(s) CRL URLs a CA certificate names, which the gateway fetches
 * by itself under tls.crlFromDistributionPoints. The extension values are written byte by byte
 * (no generator writes hostile ones) and wrapped in real certificates made with @peculiar/x509.
 * Security: a CA certificate is input the gateway did not write; these cases pin that nothing
 * it carries (a header-splitting URL, a huge one, broken DER) reaches a fetch or throws.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import t from 'tap';
import { CDP_MAX_URL_LENGTH, CDP_MAX_URLS, crlDistributionPointUrls } from '../../src/x509/crl-distribution-points.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

// --- DER for CRLDistributionPoints (RFC 5280 4.2.1.13) ---------------------------------------------
function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}
const seq = (...parts: Uint8Array[]) => tlv(0x30, ...parts);
const uri = (s: string | Buffer) => tlv(0x86, typeof s === 'string' ? Buffer.from(s, 'latin1') : s);
const dnsName = (s: string) => tlv(0x82, Buffer.from(s, 'latin1'));
/** DistributionPoint { distributionPoint [0] { fullName [0] GeneralNames } } */
const fullName = (...names: Buffer[]) => seq(tlv(0xa0, tlv(0xa0, ...names)));
const cdp = (...points: Buffer[]) => seq(...points);
const CN_ROOT = seq(tlv(0x31, seq(tlv(0x06, Buffer.from([0x55, 0x04, 0x03])), tlv(0x0c, Buffer.from('Root')))));

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;

/** A CA certificate carrying the given extensions (raw CDP values, or peculiar's own). */
async function caWith(...extensions: x509.Extension[]): Promise<Buffer> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=Test CA',
    notBefore: new Date('2030-01-01T00:00:00Z'),
    notAfter: new Date('2031-01-01T00:00:00Z'),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), ...extensions],
  });
  return Buffer.from(cert.rawData);
}
const cdpExt = (value: Buffer) => new x509.Extension('2.5.29.31', false, value);
const caWithCdp = (value: Buffer) => caWith(cdpExt(value));

/** Runs the reader, collecting what it reported as refused. */
function read(der: Buffer): { urls: string[]; refused: string[] } {
  const refused: string[] = [];
  return { urls: crlDistributionPointUrls(der, (r) => refused.push(r)), refused };
}

t.test('http and https fullName URIs, in order; ldap and other names ignored', async (t) => {
  const der = await caWithCdp(
    cdp(
      fullName(uri('ldap://ldap.example/cn=Root,o=Example?certificateRevocationList'), uri('http://crl.example/root.crl')),
      fullName(dnsName('crl.example'), uri('https://crl2.example:8443/path/root.crl?x=1')),
      fullName(uri('ftp://crl.example/root.crl'), uri('file:///etc/root.crl')),
    ),
  );
  const r = read(der);
  t.same(r.urls, ['http://crl.example/root.crl', 'https://crl2.example:8443/path/root.crl?x=1']);
  t.same(r.refused, [], 'other schemes are not refusals, just not ours');
});

t.test('the encoding @peculiar/x509 writes is read', async (t) => {
  const der = await caWith(new x509.CRLDistributionPointsExtension(['http://a.example/1.crl', 'https://b.example/2.crl']));
  t.same(crlDistributionPointUrls(der), ['http://a.example/1.crl', 'https://b.example/2.crl']);
});

t.test('no extension, or an empty list: no URL', async (t) => {
  t.same(read(await caWith()), { urls: [], refused: [] });
  t.same(read(await caWithCdp(cdp())).urls, []);
  t.same(read(await caWithCdp(cdp(seq()))).urls, [], 'a point with no name');
});

t.test('duplicates are dropped, within a point, across points and after normalization', async (t) => {
  const der = await caWithCdp(
    cdp(
      fullName(uri('http://crl.example/root.crl'), uri('http://crl.example/root.crl')),
      fullName(uri('HTTP://CRL.EXAMPLE/root.crl')),
      fullName(uri('http://crl.example:80/root.crl'), uri('http://crl.example/other.crl')),
    ),
  );
  t.same(read(der).urls, ['http://crl.example/root.crl', 'http://crl.example/other.crl']);
});

t.test('indirect points (cRLIssuer), reason-partitioned points and relative names are skipped; the others still count', async (t) => {
  const dpName = tlv(0xa0, tlv(0xa0, uri('http://indirect.example/x.crl')));
  const indirect = seq(dpName, tlv(0xa2, tlv(0xa4, CN_ROOT)));
  const partial = seq(tlv(0xa0, tlv(0xa0, uri('http://partial.example/x.crl'))), tlv(0x81, Buffer.from([0x07, 0x80])));
  const relative = seq(tlv(0xa0, tlv(0xa1, tlv(0x30, Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, 0x41])))));
  const issuerOnly = seq(tlv(0xa2, tlv(0xa4, CN_ROOT)));
  const der = await caWithCdp(cdp(indirect, partial, relative, issuerOnly, fullName(uri('http://direct.example/root.crl'))));
  t.same(read(der), { urls: ['http://direct.example/root.crl'], refused: [] });
});

t.test('URLs that could split a request or a log line are refused and reported; the good ones stay', async (t) => {
  const bad = [
    'http://crl.example/a.crl\r\nX-Injected: 1',
    'http://crl.example/a.crl\n',
    'http://crl.example/a b.crl',
    ' http://crl.example/lead.crl',
    'http://crl.example/\ttab.crl',
    'http://crl.example/nul\0.crl',
    'http://crl.example/del\x7f.crl',
  ];
  const nonAscii = Buffer.concat([Buffer.from('http://crl.example/'), Buffer.from([0xc3, 0xa9]), Buffer.from('.crl')]);
  const der = await caWithCdp(cdp(...bad.map((u) => fullName(uri(u))), fullName(uri(nonAscii)), fullName(uri('http://crl.example/good.crl'))));
  const r = read(der);
  t.same(r.urls, ['http://crl.example/good.crl']);
  t.equal(r.refused.length, bad.length + 1, 'each refusal is reported');
  for (const reason of r.refused) {
    t.match(reason, /control character, space or non-ASCII byte/);
    t.notMatch(reason, /[\r\n\0]/, 'a reason never carries the offending bytes');
  }
});

t.test('length limit: exactly the limit is taken, longer (10 KB, 70 KB) is refused', async (t) => {
  const at = (n: number) => 'http://crl.example/' + 'x'.repeat(n - 'http://crl.example/'.length);
  const der = await caWithCdp(cdp(fullName(uri(at(CDP_MAX_URL_LENGTH))), fullName(uri(at(CDP_MAX_URL_LENGTH + 1))), fullName(uri(at(10_240))), fullName(uri(at(70_000)))));
  const r = read(der);
  t.same(r.urls, [at(CDP_MAX_URL_LENGTH)]);
  t.equal(r.refused.length, 3);
  t.match(r.refused[1], /10240 bytes/);
  // Percent-encoding can lengthen a URL; the limit holds for the form that would be fetched.
  const quoted = 'http://crl.example/' + '"'.repeat(700);
  t.same(read(await caWithCdp(cdp(fullName(uri(quoted))))).urls, [], 'over the limit once normalized');
});

t.test('credentials and unparsable URLs are refused', async (t) => {
  const der = await caWithCdp(cdp(fullName(uri('http://user:secret@crl.example/a.crl'), uri('http://[::1/a.crl'), uri('http://'), uri('https://crl.example/ok.crl'))));
  const r = read(der);
  t.same(r.urls, ['https://crl.example/ok.crl']);
  t.equal(r.refused.length, 3);
  t.notMatch(r.refused.join(' '), /secret/, 'credentials are not logged');
});

t.test(`at most ${CDP_MAX_URLS} URLs per certificate`, async (t) => {
  const points = Array.from({ length: 40 }, (_, i) => fullName(uri(`http://crl${i}.example/x.crl`)));
  const r = read(await caWithCdp(cdp(...points)));
  t.equal(r.urls.length, CDP_MAX_URLS);
  t.equal(r.urls[0], 'http://crl0.example/x.crl', 'the first ones, in order');
  t.equal(r.refused.length, 1, 'the cap is reported once');
  // Thousands of points naming the same URL collapse to one without effort.
  const same = Array.from({ length: 3000 }, () => fullName(uri('http://crl.example/x.crl')));
  t.same(read(await caWithCdp(cdp(...same))).urls, ['http://crl.example/x.crl']);
});

t.test('malformed extensions and certificates give [] and never throw', async (t) => {
  const good = fullName(uri('http://crl.example/root.crl'));
  const cases: Record<string, Buffer> = {
    'not DER at all': Buffer.from('garbage!'),
    'empty value': Buffer.alloc(0),
    'not a SEQUENCE': tlv(0x04, good),
    'truncated list': cdp(good).subarray(0, 10),
    'length overruns the value': Buffer.from([0x30, 0x82, 0xff, 0xff, 0x30, 0x00]),
    'indefinite length': Buffer.from([0x30, 0x80, 0x00, 0x00]),
    'trailing data after the list': Buffer.concat([cdp(good), Buffer.from([0x00])]),
    'a point that is not a SEQUENCE': cdp(tlv(0x04, Buffer.from('x')), good),
    'fields out of order': cdp(seq(tlv(0x81, Buffer.from([0x07, 0x80])), tlv(0xa0, tlv(0xa0, uri('http://crl.example/a.crl'))))),
    'a field twice': cdp(seq(tlv(0xa0, tlv(0xa0, uri('http://a.example/'))), tlv(0xa0, tlv(0xa0, uri('http://b.example/'))))),
    'unknown field': cdp(seq(tlv(0xa5, Buffer.alloc(0)))),
    'unknown name choice': cdp(seq(tlv(0xa0, tlv(0xa3, uri('http://a.example/'))))),
    'two names in distributionPoint': cdp(seq(tlv(0xa0, tlv(0xa0, uri('http://a.example/')), tlv(0xa0, uri('http://b.example/'))))),
    'a GeneralName overrunning fullName': cdp(seq(tlv(0xa0, Buffer.from([0xa0, 0x05, 0x86, 0x10, 0x68, 0x74, 0x74])))),
    'high tag number': cdp(seq(tlv(0xa0, Buffer.from([0xa0, 0x03, 0x9f, 0x81, 0x00])))),
  };
  for (const [what, value] of Object.entries(cases)) {
    const r = read(await caWithCdp(value));
    t.same(r.urls, [], what);
    t.equal(r.refused.length, 1, `${what}: reported`);
  }
  const twice = read(await caWith(cdpExt(cdp(good)), cdpExt(cdp(fullName(uri('http://other.example/x.crl'))))));
  t.same(twice.urls, [], 'the extension twice: ambiguous, nothing taken');
  t.match(twice.refused[0], /twice/);

  for (const der of [Buffer.alloc(0), Buffer.from([0x30]), Buffer.from('not a certificate')]) t.same(crlDistributionPointUrls(der), []);
});

t.test('every truncation and many byte flips of a certificate with a CDP: no exception', async (t) => {
  const der = await caWithCdp(cdp(fullName(uri('http://crl.example/root.crl'), uri('https://crl.example/root.crl')), fullName(uri('http://b.example/x'))));
  t.same(crlDistributionPointUrls(der), ['http://crl.example/root.crl', 'https://crl.example/root.crl', 'http://b.example/x']);
  // One assertion for the lot: collect what went wrong, then compare with nothing.
  const problems: string[] = [];
  const attempt = (copy: Buffer, what: string) => {
    try {
      for (const u of crlDistributionPointUrls(copy)) if (!/^https?:\/\/[\x21-\x7e]+$/.test(u)) problems.push(`${what}: unclean URL ${JSON.stringify(u)}`);
    } catch (err) {
      problems.push(`${what}: threw ${String(err)}`);
    }
  };
  for (let n = 0; n < der.length; n++) attempt(der.subarray(0, n), `cut at ${n}`);
  // Deterministic pseudo-random flips, so a failure can be replayed.
  let seed = 0x2545f491;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8);
  for (let i = 0; i < 2000; i++) {
    const copy = Buffer.from(der);
    const at = next() % copy.length;
    copy[at] = next() & 0xff;
    attempt(copy, `flip ${i} at ${at}`);
  }
  t.same(problems, []);
});
