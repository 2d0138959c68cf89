/**
 * identityFromDer is strict: every element's tag is checked, lengths stay inside their container,
 * nothing is left over, and values that could be read two ways are refused. Each case below
 * starts from one hand-built certificate that parses, changes one element, and expects the parser
 * to throw naming what is wrong (the caller then refuses the connection). Certificates are written
 * byte by byte because no generator would produce them; identityFromDer does not check
 * signatures (OpenSSL did that before it runs), so none is needed.
 * Security: a partial identity (a name cut short, a SAN list missing an entry) is a different
 * identity; policy must never see one.
 */
import t from 'tap';
import { identityFromDer } from '../../src/identity/identity-from-certificate.js';

// --- DER builder -------------------------------------------------------------------------------
function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}
/** Base-128 arcs, with BigInt so arcs beyond 2^53 are exact. */
function oidBytes(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const out: number[] = [];
  const first = [40n * arcs[0]! + arcs[1]!, ...arcs.slice(2)];
  for (const a of first) {
    const b = [Number(a & 0x7fn)];
    for (let v = a >> 7n; v > 0n; v >>= 7n) b.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...b);
  }
  return Buffer.from(out);
}
const oid = (dotted: string) => tlv(0x06, oidBytes(dotted));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const seq = (...parts: Uint8Array[]) => tlv(0x30, ...parts);
const set = (...parts: Uint8Array[]) => tlv(0x31, ...parts);
const ava = (type: Buffer, value: Buffer) => seq(type, value);
const name = (...rdns: Buffer[]) => seq(...rdns);
const cnName = (value: string) => name(set(ava(oid('2.5.4.3'), utf8(value))));
const utcTime = (s: string) => tlv(0x17, Buffer.from(s, 'latin1'));
const genTime = (s: string) => tlv(0x18, Buffer.from(s, 'latin1'));
const ext = (id: string, value: Buffer) => seq(oid(id), tlv(0x04, value));
const sanExt = (...names: Buffer[]) => ext('2.5.29.17', seq(...names));
const uri = (s: string) => tlv(0x86, Buffer.from(s, 'latin1'));
const dns = (s: string) => tlv(0x82, Buffer.from(s, 'latin1'));
const extensions = (...exts: Buffer[]) => tlv(0xa3, seq(...exts));

interface Parts {
  version: Buffer | null;
  serial: Buffer;
  sigAlg: Buffer;
  issuer: Buffer;
  validity: Buffer;
  subject: Buffer;
  spki: Buffer;
  /** issuerUniqueID, subjectUniqueID, extensions, as raw elements. */
  trailers: Buffer[];
  outerAlg: Buffer;
  signature: Buffer;
  /** Raw bytes after the signature, inside the Certificate SEQUENCE. */
  afterSignature: Buffer;
}

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
const BASE: Parts = {
  version: tlv(0xa0, tlv(0x02, Buffer.from([2]))),
  serial: tlv(0x02, Buffer.from([0x01, 0x23])),
  sigAlg: ECDSA_SHA256,
  issuer: cnName('Test CA'),
  validity: seq(utcTime('240101000000Z'), genTime('20500101000000Z')),
  subject: cnName('billing'),
  spki: seq(seq(oid('1.2.840.10045.2.1'), oid('1.2.840.10045.3.1.7')), tlv(0x03, Buffer.from([0x00, 0x04, ...new Array<number>(64).fill(7)]))),
  trailers: [extensions(sanExt(uri('spiffe://example.org/ns/default/sa/billing'), dns('billing.internal')))],
  outerAlg: ECDSA_SHA256,
  signature: tlv(0x03, Buffer.from([0x00, 0x30, 0x00])),
  afterSignature: Buffer.alloc(0),
};

function cert(changes: Partial<Parts> = {}): Buffer {
  const p = { ...BASE, ...changes };
  const tbs = seq(...(p.version ? [p.version] : []), p.serial, p.sigAlg, p.issuer, p.validity, p.subject, p.spki, ...p.trailers);
  return seq(tbs, p.outerAlg, p.signature, p.afterSignature);
}

/** The subject with one attribute of the given type and value element. */
const subjectWith = (type: Buffer, value: Buffer) => ({ subject: name(set(ava(type, value))) });

t.test('the hand-built baseline parses, so each refusal below is down to its one change', async (t) => {
  const id = identityFromDer(cert());
  t.equal(id.subject.rfc4514, 'CN=billing');
  t.equal(id.issuer.rfc4514, 'CN=Test CA');
  t.equal(id.serial, '0123');
  t.equal(id.spiffe?.uri, 'spiffe://example.org/ns/default/sa/billing');
  t.same(id.san.dns, ['billing.internal']);
  t.equal(id.notBefore.toISOString(), '2024-01-01T00:00:00.000Z');
  t.equal(id.notAfter.toISOString(), '2050-01-01T00:00:00.000Z');
  t.equal(identityFromDer(cert({ version: null })).serial, '0123', 'a v1 certificate has no [0] version');
});

t.test('optional fields after subjectPublicKeyInfo are accepted in order and only in order', async (t) => {
  const issuerUid = tlv(0x81, Buffer.from([0x00, 0xaa]));
  const subjectUid = tlv(0x82, Buffer.from([0x00, 0xbb]));
  const exts = BASE.trailers[0]!;
  t.equal(identityFromDer(cert({ trailers: [issuerUid, subjectUid, exts] })).spiffe?.uri, 'spiffe://example.org/ns/default/sa/billing', 'issuerUniqueID, subjectUniqueID, extensions');
  t.same(identityFromDer(cert({ trailers: [tlv(0xa1, Buffer.alloc(0)), tlv(0xa2, Buffer.alloc(0))] })).san.uri, [], 'constructed unique IDs, no extensions');
  t.throws(() => identityFromDer(cert({ trailers: [subjectUid, issuerUid] })), /unexpected field \(tag 0x81\)/, 'issuerUniqueID after subjectUniqueID');
  t.throws(() => identityFromDer(cert({ trailers: [exts, exts] })), /unexpected field \(tag 0xa3\)/, 'extensions twice');
  t.throws(() => identityFromDer(cert({ trailers: [tlv(0x04, Buffer.from([1]))] })), /unexpected field \(tag 0x4\)/, 'an element that is none of them');
  t.throws(() => identityFromDer(cert({ trailers: [Buffer.from([0xbf, 0x1f, 0x00])] })), /high tag numbers are not supported/, 'a high tag number');
});

t.test('tags and lengths', async (t) => {
  const rows: [string, Partial<Parts>, RegExp][] = [
    ['subject as a SET', { subject: set(set(ava(oid('2.5.4.3'), utf8('x')))) }, /subject: expected tag 0x30, found 0x31/],
    ['serial as an OCTET STRING', { serial: tlv(0x04, Buffer.from([1])) }, /serialNumber: expected tag 0x02, found 0x04/],
    ['empty serial', { serial: tlv(0x02, Buffer.alloc(0)) }, /serialNumber: empty INTEGER/],
    ['length of five bytes', { trailers: [Buffer.from([0xa3, 0x85, 0, 0, 0, 0, 1])] }, /length field too long/],
    ['indefinite length', { trailers: [Buffer.from([0xa3, 0x80, 0x00, 0x00])] }, /indefinite length is not DER/],
    ['length bytes cut off', { trailers: [Buffer.from([0xa3, 0x82, 0x01])] }, /truncated length field/],
    ['an identifier and nothing else', { trailers: [Buffer.from([0x81])] }, /truncated element header/],
    ['an element longer than its container', { trailers: [Buffer.from([0x81, 0x05, 0x00])] }, /overruns its container/],
    ['validity with a third time', { validity: seq(utcTime('240101000000Z'), genTime('20500101000000Z'), utcTime('240101000000Z')) }, /trailing data in validity/],
    ['validity with one time', { validity: seq(utcTime('240101000000Z')) }, /missing notAfter/],
    ['empty validity', { validity: seq() }, /missing notBefore/],
    ['bytes after the signature', { afterSignature: Buffer.from([0x05, 0x00]) }, /trailing data after the signature/],
    ['no serialNumber after the version', { version: tlv(0xa0, tlv(0x02, Buffer.from([2]))), serial: Buffer.alloc(0), sigAlg: Buffer.alloc(0), issuer: Buffer.alloc(0), validity: Buffer.alloc(0), subject: Buffer.alloc(0), spki: Buffer.alloc(0), trailers: [] }, /missing serialNumber/],
    ['signature as an OCTET STRING', { signature: tlv(0x04, Buffer.from([0])) }, /signatureValue: expected tag 0x03, found 0x04/],
  ];
  for (const [why, changes, error] of rows) t.throws(() => identityFromDer(cert(changes)), error, why);
});

t.test('an empty TBSCertificate', async (t) => {
  t.throws(() => identityFromDer(seq(seq(), ECDSA_SHA256, BASE.signature)), /missing serialNumber \(truncated\)/);
});

t.test('object identifiers', async (t) => {
  t.throws(() => identityFromDer(cert(subjectWith(tlv(0x06, Buffer.alloc(0)), utf8('x')))), /empty OBJECT IDENTIFIER/);
  t.throws(() => identityFromDer(cert(subjectWith(tlv(0x06, Buffer.from([0x55, 0x80, 0x03])), utf8('x')))), /non-minimal OBJECT IDENTIFIER/, '0x80 starting an arc');
  t.throws(() => identityFromDer(cert(subjectWith(tlv(0x06, Buffer.from([0x55, 0x84])), utf8('x')))), /truncated OBJECT IDENTIFIER/, 'last arc unfinished');

  const readType = (dotted: string) => identityFromDer(cert(subjectWith(oid(dotted), utf8('x')))).subject.attributes[0]!.type;
  t.equal(readType('2.5.4.3'), 'CN', 'a known type by its short name');
  t.equal(readType('1.3.6.1.4.1.99999.1'), '1.3.6.1.4.1.99999.1', 'an unknown type as its dotted OID');
  t.equal(readType('2.999.7'), '2.999.7', 'a first arc of 2 with a second arc above 39');
  t.equal(readType('1.2.123456789012345678901234567890'), '1.2.123456789012345678901234567890', 'an arc beyond 2^53 decoded exactly');
  t.equal(readType('2.100000000000000000000.5'), '2.100000000000000000000.5', 'a huge second arc under 2');
});

t.test('names', async (t) => {
  t.throws(() => identityFromDer(cert({ subject: name(set()) })), /empty RDN/);
  t.throws(() => identityFromDer(cert({ subject: name(set(seq(oid('2.5.4.3')))) })), /missing attribute value/, 'a type without a value');
  t.throws(() => identityFromDer(cert({ subject: name(set(seq(oid('2.5.4.3'), utf8('a'), utf8('b')))) })), /attribute has trailing data/);
  const highTag = Buffer.from([0x5f, 0x28, 0x02, 0x41, 0x42]); // [APPLICATION 40] "AB"
  t.throws(() => identityFromDer(cert(subjectWith(oid('2.5.4.3'), highTag))), /high tag numbers are not supported/, 'a value with a multi-byte tag is refused');
});

t.test('UniversalString values', async (t) => {
  const u32 = (...cps: number[]) => Buffer.concat(cps.map((cp) => { const b = Buffer.alloc(4); b.writeUInt32BE(cp); return b; }));
  t.equal(identityFromDer(cert(subjectWith(oid('2.5.4.3'), tlv(0x1c, u32(0x62, 0x1f600))))).subject.attributes[0]!.value, 'b\u{1f600}');
  t.throws(() => identityFromDer(cert(subjectWith(oid('2.5.4.3'), tlv(0x1c, Buffer.from([0, 0, 0, 0x62, 0]))))), /UniversalString of bad length/);
  t.throws(() => identityFromDer(cert(subjectWith(oid('2.5.4.3'), tlv(0x1c, u32(0x110000))))), /UniversalString with an invalid character/, 'above U+10FFFF');
  t.throws(() => identityFromDer(cert(subjectWith(oid('2.5.4.3'), tlv(0x1c, u32(0xd800))))), /UniversalString with an invalid character/, 'a surrogate');
});

t.test('validity times', async (t) => {
  const withNotBefore = (el: Buffer) => cert({ validity: seq(el, genTime('20500101000000Z')) });
  t.throws(() => identityFromDer(withNotBefore(utcTime('2401010000Z'))), /UTCTime must be YYMMDDHHMMSSZ/, 'UTCTime without seconds');
  t.throws(() => identityFromDer(withNotBefore(utcTime('240101000000+0100'))), /UTCTime must be YYMMDDHHMMSSZ/, 'UTCTime with an offset');
  t.throws(() => identityFromDer(withNotBefore(genTime('20240101000000.5Z'))), /GeneralizedTime must be YYYYMMDDHHMMSSZ/, 'a fraction of a second');
  t.throws(() => identityFromDer(withNotBefore(tlv(0x13, Buffer.from('240101000000Z')))), /expected a time, found tag 0x13/, 'a PrintableString');
  t.throws(() => identityFromDer(withNotBefore(utcTime('2401010000+0Z'))), /time: non-digit/, 'right length, not all digits');
  t.throws(() => identityFromDer(withNotBefore(utcTime('240230000000Z'))), /time: no such day/, 'February 30th');
  t.throws(() => identityFromDer(withNotBefore(genTime('20240101240000Z'))), /time: field out of range/, 'hour 24');
  t.throws(() => identityFromDer(withNotBefore(genTime('20241301000000Z'))), /time: field out of range/, 'month 13');
  t.equal(identityFromDer(withNotBefore(utcTime('500101000000Z'))).notBefore.toISOString(), '1950-01-01T00:00:00.000Z', 'UTCTime YY=50 is 1950');
});

t.test('extensions and subjectAltName', async (t) => {
  const rows: [string, Buffer[], RegExp][] = [
    ['extensions with bytes after the list', [tlv(0xa3, seq(sanExt(dns('a'))), Buffer.from([0x05, 0x00]))], /trailing data after Extensions/],
    ['extnValue not an OCTET STRING', [extensions(seq(oid('2.5.29.17'), tlv(0x02, Buffer.from([1]))))], /extnValue: expected OCTET STRING/],
    ['an extension with a fourth element', [extensions(seq(oid('2.5.29.17'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq(dns('a'))), tlv(0x05, Buffer.alloc(0))))], /trailing data in Extension/],
    ['a critical flag of two bytes', [extensions(seq(oid('2.5.29.17'), tlv(0x01, Buffer.from([0xff, 0xff])), tlv(0x04, seq(dns('a')))))], /critical: bad BOOLEAN/],
    ['SAN list with bytes after it', [extensions(ext('2.5.29.17', Buffer.concat([seq(dns('a')), Buffer.from([0x05, 0x00])])))], /subjectAltName has trailing data/],
    ['a constructed dNSName (BER)', [extensions(sanExt(tlv(0xa2, tlv(0x16, Buffer.from('a')))))], /unexpected GeneralName tag 0xa2/],
    ['a GeneralName tag beyond the CHOICE', [extensions(sanExt(tlv(0x89, Buffer.from('a'))))], /unexpected GeneralName tag 0x89/],
  ];
  for (const [why, trailers, error] of rows) t.throws(() => identityFromDer(cert({ trailers })), error, why);

  const critical = extensions(seq(oid('2.5.29.17'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq(uri('spiffe://example.org/svc')))));
  t.equal(identityFromDer(cert({ trailers: [critical] })).spiffe?.uri, 'spiffe://example.org/svc', 'a critical SAN extension is read');
  const other = extensions(ext('2.5.29.19', seq()), ext('1.2.3.4', Buffer.from([1, 2, 3])), sanExt(dns('x.example')));
  t.same(identityFromDer(cert({ trailers: [other] })).san.dns, ['x.example'], 'other extensions are skipped, whatever their OID');
});
