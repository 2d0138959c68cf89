// CRL validation and the revocation index: signatures per algorithm, issuer matching by name and
// key id, validateCrl refusal codes, and index lookups, snapshots and generations.
import 'reflect-metadata';
import t from 'tap';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { parseCrl, type ParsedCrl } from '../../src/revocation/parse-crl.js';
import { makeBigCrlDer, type MakeCrlOptions } from '../../src/revocation/crl-writer.js';
import { findIssuer, findIssuerCandidates, isStale, validateCrl, verifyCrlSignature } from '../../src/revocation/verify-crl.js';
import { issuerKeyOf, RevocationIndex } from '../../src/revocation/revocation-index.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

import { EC, HOUR, makeCa, NOW, type KeyAlg, type TestCa } from '../helpers/crl-test-ca.js';

function writeCrl(ca: TestCa, o: Partial<MakeCrlOptions> = {}): ParsedCrl {
  return parseCrl(makeBigCrlDer({
    issuerCertDer: ca.der,
    issuerKey: ca.privateKey,
    entries: 10,
    thisUpdate: new Date(NOW.getTime() - HOUR),
    nextUpdate: new Date(NOW.getTime() + 24 * HOUR),
    crlNumber: 10n,
    ...o,
  }));
}

const NAME = 'CN=Verify Test CA,O=Example';
const ca = await makeCa(NAME);
const sameNameOtherKey = await makeCa(NAME);
const other = await makeCa('CN=Other CA');

t.test('signature verification', async (tt) => {
  const crl = writeCrl(ca);
  tt.same(verifyCrlSignature(crl, ca.node), { ok: true });
  const wrong = verifyCrlSignature(crl, sameNameOtherKey.node);
  tt.equal(wrong.ok, false);
  tt.match(wrong, { reason: /does not verify/ });

  // A CRL naming this CA but signed by another key.
  const forged = writeCrl(ca, { issuerKey: sameNameOtherKey.privateKey });
  tt.equal(verifyCrlSignature(forged, ca.node).ok, false);

  // A peculiar-signed CRL verifies too.
  const pec = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subjectName, thisUpdate: NOW, entries: [{ serialNumber: '05', revocationDate: NOW }],
    signingKey: ca.keys.privateKey, signingAlgorithm: EC,
  });
  tt.same(verifyCrlSignature(parseCrl(Buffer.from(pec.rawData)), ca.node), { ok: true }, 'peculiar CRL');

  const tampered = Buffer.from(makeBigCrlDer({ issuerCertDer: ca.der, issuerKey: ca.privateKey, entries: 3, thisUpdate: NOW, nextUpdate: null, crlNumber: 1n, includeSerials: ['0A0B0C0D'] }));
  const at = tampered.indexOf(Buffer.from([0x0a, 0x0b, 0x0c, 0x0d]));
  tampered[at + 3] = 0x0e; // un-revoke one serial: exactly the edit an attacker would want
  const tp = parseCrl(tampered);
  tt.ok(tp.revoked.has('0A0B0C0E'));
  tt.equal(verifyCrlSignature(tp, ca.node).ok, false, 'modified TBS fails');

  tt.match(verifyCrlSignature({ ...crl, signatureAlgorithmOid: '1.2.3.4' }, ca.node), { ok: false, reason: /unsupported signature algorithm 1\.2\.3\.4/ });
  tt.match(verifyCrlSignature({ ...crl, signatureAlgorithmOid: '1.2.840.10045.4.1' }, ca.node), { ok: false, reason: /unsupported/ }, 'ecdsa-with-SHA1 refused');
  tt.match(verifyCrlSignature({ ...crl, signature: Buffer.from([0x30, 0x00]) }, ca.node), { ok: false });
});

t.test('signature algorithms', async (tt) => {
  const algs: Array<[string, KeyAlg & { hash?: string }, boolean?]> = [
    ['ECDSA P-384 / SHA-384', { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' } as KeyAlg],
    ['ECDSA P-521 / SHA-512', { name: 'ECDSA', namedCurve: 'P-521', hash: 'SHA-512' } as KeyAlg],
    ['RSA PKCS#1 v1.5 / SHA-256', { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as KeyAlg],
    ['RSASSA-PSS / SHA-256', { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as KeyAlg, true],
    ['Ed25519', { name: 'Ed25519' } as KeyAlg],
  ];
  let rsaCa: TestCa | null = null;
  for (const [label, alg, pss] of algs) {
    const c: TestCa = pss && rsaCa ? rsaCa : await makeCa(`CN=${label}`, { alg });
    if (label.startsWith('RSA PKCS')) rsaCa = c;
    const crl = writeCrl(c, { rsaPss: pss ?? false });
    tt.same(verifyCrlSignature(crl, c.node), { ok: true }, label);
    tt.same(validateCrl(crl, { issuers: [c.node], now: NOW }), { ok: true, issuer: c.node }, `${label}: validateCrl`);
    if (pss) {
      tt.equal(crl.signatureAlgorithmOid, '1.2.840.113549.1.1.10');
      tt.match(verifyCrlSignature({ ...crl, signatureAlgorithmParams: null }, c.node), { ok: false, reason: /SHA-1/ }, 'PSS without params refused');
    }
  }
  const ecCrl = writeCrl(ca);
  tt.match(verifyCrlSignature(ecCrl, rsaCa!.node), { ok: false, reason: /issuer key is rsa/ }, 'key type mismatch');
});

t.test('findIssuer matches name, key id, CA flag and cRLSign', async (tt) => {
  const crl = writeCrl(ca);
  tt.equal(findIssuer(crl, [other.node, sameNameOtherKey.node, ca.node]), ca.node, 'AKI picks the right key among same-name CAs');
  tt.equal(findIssuer(crl, [other.node, sameNameOtherKey.node]), null);

  const noAki = writeCrl(ca, { authorityKeyId: null });
  tt.equal(noAki.authorityKeyId, null);
  tt.same(findIssuerCandidates(noAki, [other.node, sameNameOtherKey.node, ca.node]), [sameNameOtherKey.node, ca.node], 'no AKI: every same-name CA');
  tt.same(validateCrl(noAki, { issuers: [sameNameOtherKey.node, ca.node], now: NOW }), { ok: true, issuer: ca.node }, 'the signature decides among them');

  const leafLike = await makeCa(NAME, { keys: ca.keys, ca: false, serial: '02' });
  tt.equal(findIssuer(crl, [leafLike.node]), null, 'not a CA');
  const noCrlSign = await makeCa(NAME, { keys: ca.keys, keyUsage: x509.KeyUsageFlags.keyCertSign, serial: '03' });
  tt.equal(findIssuer(crl, [noCrlSign.node]), null, 'KeyUsage without cRLSign');
  const noKu = await makeCa(NAME, { keys: ca.keys, keyUsage: null, serial: '04' });
  tt.equal(findIssuer(crl, [noKu.node]), noKu.node, 'no KeyUsage extension: allowed');
  const noSki = await makeCa(NAME, { keys: ca.keys, ski: false, serial: '05' });
  tt.equal(findIssuer(crl, [noSki.node]), null, 'CRL has an AKI but the candidate no SKI');
  tt.equal(findIssuer(noAki, [noSki.node]), noSki.node, 'neither side has a key id: the name decides');
});

t.test('validateCrl refusal codes', async (tt) => {
  const v = (crl: ParsedCrl, extra: Partial<Parameters<typeof validateCrl>[1]> = {}) => validateCrl(crl, { issuers: [other.node, ca.node], now: NOW, ...extra });

  tt.same(v(writeCrl(ca)), { ok: true, issuer: ca.node });
  tt.match(v(writeCrl(ca), { issuers: [other.node] }), { ok: false, code: 'CRL_ISSUER_UNKNOWN' });
  tt.match(v(writeCrl(sameNameOtherKey)), { ok: false, code: 'CRL_ISSUER_UNKNOWN' }, 'same name, AKI of an unknown key');
  tt.match(v(writeCrl(ca, { issuerKey: sameNameOtherKey.privateKey })), { ok: false, code: 'CRL_SIGNATURE_INVALID', reason: /does not verify/ });

  tt.match(v(writeCrl(ca, { thisUpdate: new Date(NOW.getTime() + HOUR) })), { ok: false, code: 'CRL_NOT_YET_VALID' });
  tt.match(v(writeCrl(ca, { thisUpdate: new Date(NOW.getTime() + 60_000) })), { ok: true }, 'within the default 5 min skew');
  tt.match(v(writeCrl(ca, { thisUpdate: new Date(NOW.getTime() + 60_000) }), { clockSkewMs: 0 }), { ok: false, code: 'CRL_NOT_YET_VALID' });
  tt.match(v(writeCrl(ca, { thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() - HOUR) })), { ok: false, code: 'CRL_INVALID' });

  const current = { crlNumber: 10n, thisUpdate: new Date(NOW.getTime() - HOUR) };
  tt.match(v(writeCrl(ca, { crlNumber: 9n }), { previous: current }), { ok: false, code: 'CRL_OLDER_THAN_CURRENT', reason: /number 9/ });
  tt.match(v(writeCrl(ca, { crlNumber: 11n, thisUpdate: new Date(NOW.getTime() - 2 * HOUR) }), { previous: current }), { ok: false, code: 'CRL_OLDER_THAN_CURRENT', reason: /thisUpdate/ });
  tt.match(v(writeCrl(ca, { crlNumber: null, thisUpdate: new Date(NOW.getTime() - 2 * HOUR) }), { previous: current }), { ok: false, code: 'CRL_OLDER_THAN_CURRENT' }, 'no number: thisUpdate decides');
  tt.match(v(writeCrl(ca, { crlNumber: 10n }), { previous: current }), { ok: true }, 'the same CRL again is fine');
  tt.match(v(writeCrl(ca, { crlNumber: 11n, thisUpdate: NOW }), { previous: current }), { ok: true });

  tt.match(v(writeCrl(ca, { deltaBaseCrlNumber: 9n })), { ok: false, code: 'CRL_UNSUPPORTED', reason: /delta/ });
  tt.match(v(writeCrl(ca, { extraExtensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: true, value: Buffer.from([0x05, 0x00]) }] })), { ok: false, code: 'CRL_UNSUPPORTED', reason: /1\.3\.6\.1\.4\.1\.99999\.1/ });
  const gn = Buffer.concat([Buffer.from([0x30, 0x04, 0xa4, 0x02, 0x30, 0x00])]);
  tt.match(v(writeCrl(ca, { includeSerials: [{ serial: '11', extensions: [{ oid: '2.5.29.29', critical: true, value: gn }] }] })), { ok: false, code: 'CRL_UNSUPPORTED', reason: /indirect/ });
  tt.match(v(writeCrl(ca, { extraExtensions: [{ oid: '2.5.29.28', critical: true, value: Buffer.from([0x30, 0x04, 0x83, 0x02, 0x07, 0x80]) }] })), { ok: false, code: 'CRL_UNSUPPORTED', reason: /onlySomeReasons/ });
  tt.match(v(writeCrl(ca, { extraExtensions: [{ oid: '2.5.29.28', critical: true, value: Buffer.from([0x30, 0x03, 0x81, 0x01, 0xff]) }] })), { ok: true }, 'user-certs-only IDP is fine');

  const stale = writeCrl(ca, { thisUpdate: new Date(NOW.getTime() - 48 * HOUR), nextUpdate: new Date(NOW.getTime() - 24 * HOUR) });
  tt.match(v(stale), { ok: true }, 'expired is not a load failure');
  tt.ok(isStale(stale, NOW));
  tt.notOk(isStale(writeCrl(ca), NOW));
  tt.notOk(isStale(writeCrl(ca, { nextUpdate: null }), NOW), 'no nextUpdate: never stale');
});

t.test('RevocationIndex', async (tt) => {
  const crl = writeCrl(ca, { includeSerials: [{ serial: 'ABCDEF', reason: 1, revokedAt: new Date('2030-05-01T00:00:00Z') }] });
  const empty = RevocationIndex.empty();
  tt.equal(empty.generation, 0);
  tt.same(empty.check('ABCDEF', ca.node), { status: 'no-crl' });

  const idx = empty.withCrl({ crl, issuer: ca.node, source: '/etc/crl/ca.crl' });
  tt.equal(idx.generation, 1);
  tt.equal(empty.size, 0, 'the old snapshot is untouched');
  tt.same(idx.check('ABCDEF', ca.node, { now: NOW }), { status: 'revoked', reason: 'keyCompromise', revokedAt: new Date('2030-05-01T00:00:00Z'), crlNumber: 10n });
  tt.same(idx.check('ABCDEE', ca.node, { now: NOW }), { status: 'good', crlNumber: 10n });
  tt.same(idx.check('ABCDEF', issuerKeyOf(ca.node), { now: NOW }).status, 'revoked', 'by precomputed key');
  tt.same(idx.check('ABCDEF', sameNameOtherKey.node), { status: 'no-crl' }, 'same name, other key: not this CRL');
  tt.same(idx.check('ABCDEF', other.node), { status: 'no-crl' });

  const renewed = await makeCa(NAME, { keys: ca.keys, serial: '77' });
  tt.not(renewed.node.fingerprint256, ca.node.fingerprint256);
  tt.equal(idx.check('ABCDEF', renewed.node, { now: NOW }).status, 'revoked', 'renewed CA certificate (same name and key) finds the CRL');

  const late = new Date(NOW.getTime() + 48 * HOUR);
  tt.same(idx.check('ABCDEE', ca.node, { now: late }), { status: 'stale', nextUpdate: crl.nextUpdate, crlNumber: 10n });
  tt.equal(idx.check('ABCDEF', ca.node, { now: late }).status, 'revoked', 'a stale CRL still revokes');

  const scoped = writeCrl(other, { extraExtensions: [{ oid: '2.5.29.28', critical: true, value: Buffer.from([0x30, 0x03, 0x81, 0x01, 0xff]) }] });
  const idx2 = idx.withCrl({ crl: scoped, issuer: other.node, source: 'other.crl' });
  tt.equal(idx2.generation, 2);
  tt.equal(idx2.check('01', other.node, { now: NOW, certIsCa: true }).status, 'no-crl', 'user-certs-only CRL does not cover a CA');
  tt.equal(idx2.check('01', other.node, { now: NOW, certIsCa: false }).status, 'good');

  const newer = writeCrl(ca, { crlNumber: 11n });
  const older = writeCrl(ca, { crlNumber: 9n });
  const replaced = idx2.replace([
    { crl: newer, issuer: ca.node, source: 'b' },
    { crl: older, issuer: ca.node, source: 'a' },
  ]);
  tt.equal(replaced.generation, 3);
  tt.equal(replaced.size, 1);
  tt.equal(replaced.get(ca.node)?.source, 'b', 'newest CRL per CA wins regardless of order');
  tt.equal(replaced.check('ABCDEF', ca.node, { now: NOW }).status, 'good', 'serial absent from the replacement');
  const removed = idx2.withoutIssuer(other.node);
  tt.equal(removed.generation, 3);
  tt.equal(removed.check('01', other.node).status, 'no-crl');

  const d = idx2.describe(NOW);
  tt.equal(d.length, 2);
  tt.same(d.find((x) => x.source === '/etc/crl/ca.crl'), {
    issuer: 'CN=Verify Test CA, O=Example',
    // RFC 4514 lists the RDNs last first: this CA's subject is CN then O in the DER.
    issuerDn: 'O=Example,CN=Verify Test CA',
    issuerKey: issuerKeyOf(ca.node),
    crlNumber: '10',
    thisUpdate: new Date(NOW.getTime() - HOUR).toISOString(),
    nextUpdate: new Date(NOW.getTime() + 24 * HOUR).toISOString(),
    stale: false,
    entries: 11,
    source: '/etc/crl/ca.crl',
  });
  tt.doesNotThrow(() => JSON.stringify(d), 'describe() is JSON-safe');
});
