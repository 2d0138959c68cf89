// src/x509/verify-signature.ts decides which signatures CRLs, OCSP answers and delegated OCSP
// responder certificates may carry. Pins the list: the SHA-2 RSA and ECDSA schemes, RSASSA-PSS with
// explicit SHA-2 parameters, Ed25519 and Ed448 verify; SHA-1 (also as PSS's default), other MGFs,
// mismatched hashes, odd trailer fields, unknown algorithms, wrong key types and malformed
// parameters are refused with a reason, never a throw.
import { constants, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import t from 'tap';
import { encOid, tlv } from '../../src/revocation/crl-writer.js';
import { readSignedParts, verifyCertificateSignature, verifySignedData } from '../../src/x509/verify-signature.js';

const TBS = tlv(0x30, tlv(0x02, Buffer.from([1])));
const SHA256 = '2.16.840.1.101.3.4.2.1';
const SHA1 = '1.3.14.3.2.26';
const MGF1 = '1.2.840.113549.1.1.8';
const PSS = '1.2.840.113549.1.1.10';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed25519 = generateKeyPairSync('ed25519');
const ed448 = generateKeyPairSync('ed448');

function int(n: number): Buffer {
  return tlv(0x02, Buffer.from([n]));
}

function pssParams(o: { hash?: string; mgf?: string; mgfHash?: string; salt?: number; trailer?: number; extra?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  if (o.hash) parts.push(tlv(0xa0, tlv(0x30, encOid(o.hash))));
  if (o.mgf || o.mgfHash) parts.push(tlv(0xa1, tlv(0x30, encOid(o.mgf ?? MGF1), tlv(0x30, encOid(o.mgfHash ?? o.hash ?? SHA256)))));
  if (o.salt !== undefined) parts.push(tlv(0xa2, int(o.salt)));
  if (o.trailer !== undefined) parts.push(tlv(0xa3, int(o.trailer)));
  if (o.extra) parts.push(tlv(0xa4, int(0)));
  return tlv(0x30, ...parts);
}

function pssSign(key: KeyObject, hash: string, salt: number): Buffer {
  return sign(hash, TBS, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: salt });
}

t.test('the accepted schemes verify, and a changed byte does not', async (t) => {
  const cases: Array<[string, string, KeyObject, KeyObject, string | null]> = [
    ['sha256WithRSAEncryption', '1.2.840.113549.1.1.11', rsa.privateKey, rsa.publicKey, 'sha256'],
    ['sha384WithRSAEncryption', '1.2.840.113549.1.1.12', rsa.privateKey, rsa.publicKey, 'sha384'],
    ['sha512WithRSAEncryption', '1.2.840.113549.1.1.13', rsa.privateKey, rsa.publicKey, 'sha512'],
    ['ecdsa-with-SHA256', '1.2.840.10045.4.3.2', ec.privateKey, ec.publicKey, 'sha256'],
    ['ecdsa-with-SHA384', '1.2.840.10045.4.3.3', ec.privateKey, ec.publicKey, 'sha384'],
    ['ecdsa-with-SHA512', '1.2.840.10045.4.3.4', ec.privateKey, ec.publicKey, 'sha512'],
    ['Ed25519', '1.3.101.112', ed25519.privateKey, ed25519.publicKey, null],
    ['Ed448', '1.3.101.113', ed448.privateKey, ed448.publicKey, null],
  ];
  for (const [name, oid, priv, pub, hash] of cases) {
    const sig = sign(hash, TBS, priv);
    t.same(verifySignedData(TBS, oid, null, sig, pub), { ok: true }, name);
    const bad = Buffer.from(sig);
    bad[bad.length - 1]! ^= 1;
    const r = verifySignedData(TBS, oid, null, bad, pub, 'responder key');
    t.equal(r.ok, false, `${name}: a changed byte is refused`);
  }
});

t.test('RSASSA-PSS: explicit SHA-2 parameters only', async (t) => {
  const sig = pssSign(rsa.privateKey, 'sha256', 32);
  t.same(verifySignedData(TBS, PSS, pssParams({ hash: SHA256, mgfHash: SHA256, salt: 32, trailer: 1 }), sig, rsa.publicKey), { ok: true });
  const refused: Array<[string, Buffer | null, RegExp]> = [
    ['no parameters', null, /SHA-1 default/],
    ['SHA-1 hash', pssParams({ hash: SHA1, mgfHash: SHA1, salt: 20 }), /hash algorithm is not supported/],
    ['default hash with an MGF', pssParams({ mgfHash: SHA256, salt: 32 }), /SHA-1 default hash/],
    ['another mask generation', pssParams({ hash: SHA256, mgf: '1.2.3.4', salt: 32 }), /other than MGF1/],
    ['MGF1 hash differs', pssParams({ hash: SHA256, mgfHash: '2.16.840.1.101.3.4.2.3', salt: 32 }), /MGF1 hash different/],
    ['trailer field 2', pssParams({ hash: SHA256, mgfHash: SHA256, salt: 32, trailer: 2 }), /trailer field/],
    ['an unknown field', pssParams({ hash: SHA256, mgfHash: SHA256, extra: true }), /unexpected field/],
    ['truncated parameters', pssParams({ hash: SHA256, mgfHash: SHA256 }).subarray(0, 7), /malformed/],
  ];
  for (const [what, params, reason] of refused) {
    const r = verifySignedData(TBS, PSS, params, sig, rsa.publicKey);
    t.match(r, { ok: false, reason }, what);
  }
});

t.test('unknown algorithms, wrong key types and bad signatures are reasons, not throws', async (t) => {
  t.match(verifySignedData(TBS, '1.2.840.113549.1.1.5', null, Buffer.alloc(256), rsa.publicKey), { ok: false, reason: /unsupported signature algorithm/ }, 'sha1WithRSAEncryption');
  t.match(verifySignedData(TBS, '1.2.840.10045.4.3.2', null, Buffer.alloc(64), rsa.publicKey, 'issuer key'), { ok: false, reason: /the issuer key is rsa/ });
  t.match(verifySignedData(TBS, '1.3.101.112', null, Buffer.from('short'), ed25519.publicKey), { ok: false });
  t.match(verifySignedData(TBS, '1.2.840.10045.4.3.2', null, Buffer.from([0x30, 0x02, 0x02]), ec.publicKey), { ok: false });
});

t.test('readSignedParts and verifyCertificateSignature refuse malformed signed data', async (t) => {
  const alg = tlv(0x30, encOid('1.2.840.10045.4.3.2'));
  const sig = sign('sha256', TBS, ec.privateKey);
  const good = tlv(0x30, TBS, alg, tlv(0x03, Buffer.from([0]), sig));
  t.same(verifyCertificateSignature(good, ec.publicKey), { ok: true });
  const parts = readSignedParts(good, 0, good.length);
  t.equal(parts.sigAlgParams, null);
  const withParams = tlv(0x30, TBS, tlv(0x30, encOid('1.2.840.10045.4.3.2'), Buffer.from([0x05, 0x00]), Buffer.from([0x05, 0x00])), tlv(0x03, Buffer.from([0]), sig));
  t.match(verifyCertificateSignature(withParams, ec.publicKey), { ok: false, reason: /trailing data in signatureAlgorithm/ });
  const unusedBits = tlv(0x30, TBS, alg, tlv(0x03, Buffer.from([1]), sig));
  t.match(verifyCertificateSignature(unusedBits, ec.publicKey), { ok: false, reason: /unused bits/ });
  const trailing = Buffer.concat([good, Buffer.from([0])]);
  t.match(verifyCertificateSignature(trailing, ec.publicKey), { ok: false, reason: /malformed/ });
  t.match(verifyCertificateSignature(Buffer.from([0x30, 0x80]), ec.publicKey), { ok: false, reason: /malformed/ });
});
