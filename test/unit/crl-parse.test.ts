// CRL parsing: cross-checked against @peculiar/x509 on CRLs from both generators, hostile input,
// serial canonicalisation, PEM handling, and acceptance of the writer's output by OpenSSL.
import 'reflect-metadata';
import t from 'tap';
import * as x509 from '@peculiar/x509';
import { spawnSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { normalizeSerial } from '../../src/identity/peer-identity.js';
import { crlDersFromFile, CrlParseError, parseCrl, parseCrlFile, splitPemCrls, type ParsedCrl } from '../../src/revocation/parse-crl.js';
import { crlDerToPem, makeBigCrlDer } from '../../src/revocation/crl-writer.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type TT = Parameters<Parameters<typeof t.test>[0]>[0];
import { EC, HOUR, makeCa, NOW } from '../helpers/crl-test-ca.js';

function crlNumberExt(n: number): x509.Extension {
  return new x509.Extension('2.5.29.20', false, Buffer.from([0x02, 0x01, n]));
}

function peculiarParse(der: Buffer): x509.X509Crl {
  return new x509.X509Crl(der, { maxNodes: 10_000_000 } as x509.ParseOptions);
}

/** Cross-check: our parse equals peculiar's parse of the same bytes. */
function crossCheck(tt: TT, der: Buffer, crl: ParsedCrl): void {
  const ref = peculiarParse(der);
  tt.equal(crl.thisUpdate.getTime(), ref.thisUpdate.getTime(), 'thisUpdate');
  tt.equal(crl.nextUpdate?.getTime() ?? null, ref.nextUpdate?.getTime() ?? null, 'nextUpdate');
  const aki = ref.getExtension(x509.AuthorityKeyIdentifierExtension);
  tt.equal(crl.authorityKeyId, aki?.keyId ?? null, 'authority key id');
  const num = ref.getExtension('2.5.29.20');
  const refNum = num ? BigInt('0x' + Buffer.from(num.value).subarray(2).toString('hex')) : null;
  tt.equal(crl.crlNumber, refNum, 'crl number');
  tt.equal(crl.revokedCount, ref.entries.length, 'entry count');
  const ours = new Map([...crl.revoked.entries()].map((e) => [e.serial, e]));
  let mismatches = 0;
  for (const e of ref.entries) {
    const mine = ours.get(normalizeSerial(e.serialNumber));
    if (!mine || mine.revokedAt?.getTime() !== e.revocationDate.getTime() ||
        mine.reason !== (e.reason === undefined ? null : x509.X509CrlReason[e.reason])) mismatches++;
    const hit = crl.revoked.lookup(normalizeSerial(e.serialNumber));
    if (!hit.revoked) mismatches++;
  }
  tt.equal(mismatches, 0, 'every peculiar entry found with the same date and reason');
}

const ca = await makeCa('CN=Parse Test CA,O=Example');

t.test('peculiar-generated CRL parses to the same content', async (tt) => {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subjectName,
    thisUpdate: new Date(NOW.getTime() - HOUR),
    nextUpdate: new Date(NOW.getTime() + 24 * HOUR),
    entries: [
      { serialNumber: '0a1b2c', revocationDate: new Date('2030-05-01T00:00:00Z'), reason: x509.X509CrlReason.keyCompromise },
      { serialNumber: '00ff0102', revocationDate: new Date('2030-05-02T00:00:00Z') },
      { serialNumber: '7f', revocationDate: new Date('2030-05-03T00:00:00Z'), reason: x509.X509CrlReason.superseded },
    ],
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey), crlNumberExt(7)],
    signingKey: ca.keys.privateKey,
    signingAlgorithm: EC,
  });
  const der = Buffer.from(crl.rawData);
  const parsed = parseCrl(der);
  crossCheck(tt, der, parsed);
  tt.equal(parsed.version, 1);
  tt.equal(parsed.crlNumber, 7n);
  tt.ok(parsed.issuerDer.equals(Buffer.from(ca.cert.subjectName.toArrayBuffer())), 'issuer DER kept raw');
  tt.match(parsed.issuerKey, /^[0-9a-f]{64}$/);
  tt.equal(parsed.signatureAlgorithmOid, '1.2.840.10045.4.3.2');
  tt.equal(parsed.signatureAlgorithmParams, null);
  tt.same(parsed.revoked.lookup('FF0102'), { revoked: true, reason: null, revokedAt: new Date('2030-05-02T00:00:00Z') }, 'high-bit serial, DER sign octet stripped');
  tt.same(parsed.revoked.lookup('0A1B2C'), { revoked: true, reason: 'keyCompromise', revokedAt: new Date('2030-05-01T00:00:00Z') });
  tt.same(parsed.revoked.lookup('A1B2C'), { revoked: true, reason: 'keyCompromise', revokedAt: new Date('2030-05-01T00:00:00Z') }, 'odd-length hex');
  tt.same(parsed.revoked.lookup('0a1b2c'), parsed.revoked.lookup('0A1B2C'), 'lower case accepted');
  tt.same(parsed.revoked.lookup('0A1B2D'), { revoked: false });
  tt.same(parsed.revoked.lookup('7F'), { revoked: true, reason: 'superseded', revokedAt: new Date('2030-05-03T00:00:00Z') });
  tt.throws(() => parsed.revoked.lookup('XYZ'), TypeError, 'non-hex serial is a caller bug, not a miss');
  tt.throws(() => parsed.revoked.lookup(''), TypeError);
  tt.notOk(parsed.isDelta);
  tt.notOk(parsed.isIndirect);
  tt.notOk(parsed.hasUnsupportedCriticalExtension);
});

t.test('writer CRL parses to the same content as peculiar sees', async (tt) => {
  const der = makeBigCrlDer({
    issuerCertDer: ca.der,
    issuerKey: ca.privateKey,
    entries: 300,
    thisUpdate: new Date(NOW.getTime() - HOUR),
    nextUpdate: new Date(NOW.getTime() + 7 * 24 * HOUR),
    crlNumber: 0x1234567890abcdefn,
    includeSerials: [
      '80FF',
      '00',
      { serial: '01', reason: 6, revokedAt: new Date('2030-01-01T00:00:00Z') },
      { serial: 'DEADBEEF', reason: 10, revokedAt: new Date('2051-01-01T00:00:00Z') },
    ],
  });
  const parsed = parseCrl(der);
  crossCheck(tt, der, parsed);
  tt.equal(parsed.revokedCount, 304);
  tt.equal(parsed.crlNumber, 0x1234567890abcdefn);
  tt.equal(parsed.authorityKeyId, ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
  tt.same(parsed.revoked.lookup('80FF'), { revoked: true, reason: null, revokedAt: new Date(NOW.getTime() - 2 * HOUR) });
  tt.ok(parsed.revoked.has('0080FF'), 'leading zero bytes in the query are ignored');
  tt.ok(parsed.revoked.has('00'), 'serial zero');
  tt.ok(parsed.revoked.has('0'), 'serial zero, one digit');
  tt.same(parsed.revoked.lookup('01'), { revoked: true, reason: 'certificateHold', revokedAt: new Date('2030-01-01T00:00:00Z') });
  tt.same(parsed.revoked.lookup('DEADBEEF'), { revoked: true, reason: 'aACompromise', revokedAt: new Date('2051-01-01T00:00:00Z') }, 'GeneralizedTime date');
  const serials = [...parsed.revoked.serials()];
  tt.equal(new Set(serials).size, 304);
  tt.ok(serials.every((s) => s === normalizeSerial(s)), 'iterated serials are canonical');
  tt.ok(serials.every((s) => parsed.revoked.has(s)), 'every iterated serial is found');
  tt.ok(serials.some((s) => s.length === 32 && parseInt(s[0]!, 16) >= 8), 'random high-bit serials present');
});

t.test('a serial listed twice counts once, first entry wins', async (tt) => {
  const crl = parseCrl(makeBigCrlDer({
    issuerCertDer: ca.der, issuerKey: ca.privateKey, entries: 20, thisUpdate: NOW, nextUpdate: null, crlNumber: 1n,
    includeSerials: [{ serial: '0ABC', reason: 1 }, { serial: 'ABC', reason: 4 }, '00ABC'],
  }));
  tt.equal(crl.revokedCount, 21);
  tt.equal([...crl.revoked.serials()].filter((s) => s === '0ABC').length, 1);
  tt.equal([...crl.revoked.entries()].length, 21);
  tt.match(crl.revoked.lookup('ABC'), { revoked: true, reason: 'keyCompromise' });
});

t.test('empty CRLs', async (tt) => {
  const fromWriter = parseCrl(makeBigCrlDer({ issuerCertDer: ca.der, issuerKey: ca.privateKey, entries: 0, thisUpdate: NOW, nextUpdate: null, crlNumber: 1n }));
  tt.equal(fromWriter.revokedCount, 0);
  tt.equal(fromWriter.nextUpdate, null);
  tt.same(fromWriter.revoked.lookup('01'), { revoked: false });
  tt.same([...fromWriter.revoked.entries()], []);

  const pec = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subjectName, thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + HOUR), entries: [],
    signingKey: ca.keys.privateKey, signingAlgorithm: EC,
  });
  const parsed = parseCrl(Buffer.from(pec.rawData));
  tt.equal(parsed.revokedCount, 0);
  tt.equal(parsed.crlNumber, null);
  tt.equal(parsed.authorityKeyId, null);
});

t.test('CRL and entry extensions are classified', async (tt) => {
  const base = { issuerCertDer: ca.der, issuerKey: ca.privateKey, entries: 2, thisUpdate: NOW, nextUpdate: null, crlNumber: 5n };
  const delta = parseCrl(makeBigCrlDer({ ...base, deltaBaseCrlNumber: 4n }));
  tt.ok(delta.isDelta);
  tt.equal(delta.deltaBaseCrlNumber, 4n);

  const critical = parseCrl(makeBigCrlDer({ ...base, extraExtensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: true, value: Buffer.from([0x05, 0x00]) }] }));
  tt.ok(critical.hasUnsupportedCriticalExtension);
  tt.same(critical.unsupportedCriticalExtensions, ['1.3.6.1.4.1.99999.1']);

  const nonCritical = parseCrl(makeBigCrlDer({ ...base, extraExtensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: false, value: Buffer.from([0x05, 0x00]) }] }));
  tt.notOk(nonCritical.hasUnsupportedCriticalExtension, 'unknown non-critical extensions are ignored');

  const entryCritical = parseCrl(makeBigCrlDer({ ...base, includeSerials: [{ serial: '42', extensions: [{ oid: '1.3.6.1.4.1.99999.2', critical: true, value: Buffer.from([0x05, 0x00]) }] }] }));
  tt.ok(entryCritical.hasUnsupportedCriticalExtension, 'unknown critical entry extension');

  // certificateIssuer: GeneralNames { directoryName [4] { Name } }
  const gn = Buffer.concat([Buffer.from([0x30, ca.cert.subjectName.toArrayBuffer().byteLength + 2, 0xa4, ca.cert.subjectName.toArrayBuffer().byteLength]), Buffer.from(ca.cert.subjectName.toArrayBuffer())]);
  const indirect = parseCrl(makeBigCrlDer({ ...base, includeSerials: [{ serial: '43', extensions: [{ oid: '2.5.29.29', critical: true, value: gn }] }] }));
  tt.ok(indirect.isIndirect);
  tt.notOk(indirect.hasUnsupportedCriticalExtension, 'certificateIssuer is understood (and refused as indirect)');

  // IDP: onlyContainsUserCerts [1] TRUE, indirectCRL [4] TRUE
  const idp = parseCrl(makeBigCrlDer({ ...base, extraExtensions: [{ oid: '2.5.29.28', critical: true, value: Buffer.from([0x30, 0x06, 0x81, 0x01, 0xff, 0x84, 0x01, 0xff]) }] }));
  tt.match(idp.issuingDistributionPoint, { critical: true, onlyContainsUserCerts: true, indirectCrl: true, onlySomeReasons: false });
  tt.ok(idp.isIndirect);
  tt.notOk(idp.hasUnsupportedCriticalExtension, 'IDP is a known critical extension');

  tt.throws(() => parseCrl(makeBigCrlDer({ ...base, extraExtensions: [{ oid: '2.5.29.20', value: Buffer.from([0x02, 0x01, 0x09]) }] })),
    CrlParseError, 'duplicate CRL Number extension');
});

t.test('PEM handling', async (tt) => {
  const a = makeBigCrlDer({ issuerCertDer: ca.der, issuerKey: ca.privateKey, entries: 3, thisUpdate: NOW, nextUpdate: null, crlNumber: 1n });
  const b = makeBigCrlDer({ issuerCertDer: ca.der, issuerKey: ca.privateKey, entries: 5, thisUpdate: NOW, nextUpdate: null, crlNumber: 2n });
  const pemB = crlDerToPem(b).replace(/X509 CRL/g, 'CRL');
  const text = `# bundle\n${crlDerToPem(a)}\nsome text\n${pemB}`;
  const ders = splitPemCrls(text);
  tt.equal(ders.length, 2);
  tt.ok(ders[0]!.equals(a));
  tt.ok(ders[1]!.equals(b), 'BEGIN CRL label accepted');
  tt.same(parseCrlFile(Buffer.from(text)).map((c) => c.crlNumber), [1n, 2n]);
  tt.same(crlDersFromFile(a), [a], 'bytes without -----BEGIN are one DER CRL');
  tt.same(splitPemCrls('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), []);
  tt.throws(() => crlDersFromFile(Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')), CrlParseError);
  tt.throws(() => splitPemCrls('-----BEGIN X509 CRL-----\nAA*A\n-----END X509 CRL-----'), CrlParseError, 'bad base64');
  tt.same(splitPemCrls('-----BEGIN X509 CRL-----\nAAAA\n-----END CRL-----'), [], 'mismatched END label is not a block');
});

t.test('malformed input throws CrlParseError and never hangs', async (tt) => {
  const der = makeBigCrlDer({
    issuerCertDer: ca.der, issuerKey: ca.privateKey, entries: 3, thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + HOUR), crlNumber: 3n,
    includeSerials: [{ serial: '0102', reason: 1 }],
  });
  parseCrl(der);
  const other: unknown[] = [];
  const check = (buf: Buffer): 'ok' | 'err' => {
    try {
      parseCrl(buf);
      return 'ok';
    } catch (err) {
      if (!(err instanceof CrlParseError)) other.push(err);
      return 'err';
    }
  };

  let truncOk = 0;
  for (let i = 0; i < der.length; i++) if (check(der.subarray(0, i)) === 'ok') truncOk++;
  tt.equal(truncOk, 0, `all ${der.length} truncations refused`);

  // Truncations that keep the outer length consistent reach the inner checks.
  for (let i = 4; i < der.length; i++) {
    const body = der.subarray(4, i);
    const hdr = body.length < 0x80 ? Buffer.from([0x30, body.length]) : body.length < 0x100 ? Buffer.from([0x30, 0x81, body.length]) : Buffer.from([0x30, 0x82, body.length >> 8, body.length & 0xff]);
    check(Buffer.concat([hdr, body]));
  }

  // Every byte replaced with a few values: accepted or CrlParseError, nothing else.
  let accepted = 0;
  for (let i = 0; i < der.length; i++) {
    for (const v of [0x00, 0x7f, 0x80, 0x84, 0xff, (der[i]! + 1) & 0xff]) {
      const m = Buffer.from(der);
      m[i] = v;
      if (check(m) === 'ok') {
        accepted++;
        // Whatever parsed must still answer lookups without throwing.
        const p = parseCrl(m);
        p.revoked.lookup('0102');
        for (const e of p.revoked.entries()) void e;
      }
    }
  }
  tt.equal(other.length, 0, 'no error other than CrlParseError');
  tt.ok(accepted > 0, `some mutations (signature/serial bytes) still parse: ${accepted}`);

  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from([0x30])],
    ['huge length claim', Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00])],
    ['8-byte length', Buffer.from([0x30, 0x88, 0, 0, 0, 0, 0, 0, 0, 1, 0])],
    ['indefinite length', Buffer.from([0x30, 0x80, 0x00, 0x00])],
    ['high tag number', Buffer.from([0x1f, 0x01, 0x00])],
    ['not a SEQUENCE', Buffer.from([0x04, 0x00])],
    ['empty SEQUENCE', Buffer.from([0x30, 0x00])],
    ['trailing data', Buffer.concat([der, Buffer.from([0x00])])],
    ['inner length beyond outer', Buffer.from([0x30, 0x03, 0x30, 0x7f, 0x00])],
  ];
  for (const [name, buf] of cases) tt.throws(() => parseCrl(buf), CrlParseError, name);
  tt.throws(() => parseCrl('not a buffer' as unknown as Buffer), CrlParseError, 'non-Buffer');
  tt.equal(parseCrl(new Uint8Array(der)).crlNumber, 3n, 'a plain Uint8Array is accepted');
  const e = (() => { try { parseCrl(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])); } catch (err) { return err as CrlParseError; } return null; })();
  tt.match(e, { code: 'CRL_PARSE_ERROR', reason: /length/, offset: 0 });
});

t.test('100k-entry writer CRL parses and looks up correctly', async (tt) => {
  const known = Array.from({ length: 50 }, (_, i) => ({ serial: `7E${i.toString(16).padStart(6, '0')}CAFE`, reason: i % 11 === 7 ? 0 : i % 11 }));
  const der = makeBigCrlDer({
    issuerCertDer: ca.der, issuerKey: ca.privateKey, entries: 100_000, thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + HOUR), crlNumber: 100n,
    includeSerials: known,
  });
  const crl = parseCrl(der);
  tt.equal(crl.revokedCount, 100_050);
  for (const k of known) {
    const r = crl.revoked.lookup(k.serial);
    if (!r.revoked || r.reason === null) tt.fail(`known serial ${k.serial} not found with reason`);
  }
  tt.pass('all known serials found with a reason');
  let hits = 0;
  for (const s of crl.revoked.serials()) if (crl.revoked.has(s)) hits++;
  tt.equal(hits, 100_050, 'every serial in the CRL is found');
  let falseHits = 0;
  for (let i = 0; i < 20_000; i++) if (crl.revoked.has(`7F${i.toString(16).padStart(30, '0')}`)) falseHits++;
  tt.equal(falseHits, 0, 'absent serials are not found');
  tt.ok(crl.revoked.indexBytes < 4_000_000, `index is compact (${crl.revoked.indexBytes} bytes)`);
});

t.test('OpenSSL accepts the writer output', async (tt) => {
  const der = makeBigCrlDer({
    issuerCertDer: ca.der, issuerKey: ca.privateKey, entries: 1000, thisUpdate: new Date(Date.now() - HOUR), nextUpdate: new Date(Date.now() + HOUR), crlNumber: 9n,
    includeSerials: ['80FF', { serial: '1234', reason: 1 }],
  });
  const pem = crlDerToPem(der);
  tt.doesNotThrow(() => createSecureContext({ crl: pem }), 'createSecureContext({ crl })');

  const probe = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    tt.comment('openssl CLI not available; skipping signature check');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'crl-writer-'));
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ca.pem'), ca.cert.toString('pem'));
  writeFileSync(join(dir, 'crl.der'), der);
  const r = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-CAfile', join(dir, 'ca.pem'), '-noout', '-text'], { encoding: 'utf8' });
  tt.equal(r.status, 0, r.stderr);
  tt.match(r.stderr + r.stdout, /verify OK/, 'openssl verifies the signature');
  tt.match(r.stdout, /X509v3 CRL Number:\s*\n\s*9/);
  tt.match(r.stdout, /Serial Number: 80FF/);
  tt.match(r.stdout, /Key Compromise/);
});
