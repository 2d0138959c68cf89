/**
 * Certificate to identity: owns the one place where a peer's DER certificate is read and turned
 * into a PeerIdentity. It runs once per TLS connection (client leg) and once per new upstream
 * connection, so it walks the DER directly instead of going through a general ASN.1 schema
 * library: @peculiar/asn1-schema took about 0.7 ms per certificate (asn1js alone 0.35 ms), this
 * walk takes a few tens of microseconds. The walk is strict: every element's tag is checked,
 * lengths must stay inside their container and there may be nothing left over, so a malformed
 * certificate throws instead of yielding a partial identity (the caller refuses the connection).
 *
 * SAN values are read from their own DER elements, never from Node's `subjectaltname` string, so a
 * value containing ", DNS:..." or ", URI:..." stays one value.
 */
import { createHash } from 'node:crypto';
import { parseSpiffeId } from './spiffe.js';
import {
  normalizeSerial,
  type DistinguishedName,
  type DnAttribute,
  type PeerIdentity,
  type SpiffeId,
} from './peer-identity.js';

// Single-byte identifiers (class, constructed bit and tag number) of the elements this reader meets.
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const OID = 0x06;
const BOOLEAN = 0x01;
const UTF8_STRING = 0x0c;
const NUMERIC_STRING = 0x12;
const PRINTABLE_STRING = 0x13;
const TELETEX_STRING = 0x14;
const IA5_STRING = 0x16;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;
const VISIBLE_STRING = 0x1a;
const UNIVERSAL_STRING = 0x1c;
const BMP_STRING = 0x1e;
const SEQUENCE = 0x30;
const SET = 0x31;
const CTX_0_CONSTRUCTED = 0xa0;
const CTX_1_PRIMITIVE = 0x81;
const CTX_1_CONSTRUCTED = 0xa1;
const CTX_2_PRIMITIVE = 0x82;
const CTX_2_CONSTRUCTED = 0xa2;
const CTX_3_CONSTRUCTED = 0xa3;

// GeneralName alternatives (RFC 5280 4.2.1.6), as they appear on the wire under IMPLICIT tagging.
const GN_OTHER_NAME = 0xa0;
const GN_RFC822_NAME = 0x81;
const GN_DNS_NAME = 0x82;
const GN_X400_ADDRESS = 0xa3;
const GN_DIRECTORY_NAME = 0xa4;
const GN_EDI_PARTY_NAME = 0xa5;
const GN_URI = 0x86;
const GN_IP_ADDRESS = 0x87;
const GN_REGISTERED_ID = 0x88;

/** 2.5.29.17, compared on its content bytes so no OID text is built per extension. */
const SAN_OID_BYTES = [0x55, 0x1d, 0x11] as const;

/** Short names as OpenSSL prints them; any other attribute type appears as its dotted OID. */
const ATTRIBUTE_NAMES: ReadonlyMap<string, string> = new Map(Object.entries({
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'street',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'title',
  '2.5.4.13': 'description',
  '2.5.4.15': 'businessCategory',
  '2.5.4.17': 'postalCode',
  '2.5.4.41': 'name',
  '2.5.4.42': 'GN',
  '2.5.4.43': 'initials',
  '2.5.4.44': 'generationQualifier',
  '2.5.4.45': 'x500UniqueIdentifier',
  '2.5.4.46': 'dnQualifier',
  '2.5.4.65': 'pseudonym',
  '2.5.4.97': 'organizationIdentifier',
  '0.9.2342.19200300.100.1.1': 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'emailAddress',
  '1.3.6.1.4.1.311.60.2.1.1': 'jurisdictionL',
  '1.3.6.1.4.1.311.60.2.1.2': 'jurisdictionST',
  '1.3.6.1.4.1.311.60.2.1.3': 'jurisdictionC',
}));

// fatal: two different byte strings must never decode to the same text (U+FFFD would merge them);
// ignoreBOM: a leading U+FEFF is part of the value, not something to strip.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /\p{Cs}/u;

interface Tlv {
  /** The identifier byte for low tag numbers; >= 0x100 for high tag numbers (never equal to one). */
  readonly tag: number;
  /** Offset of the first content byte. */
  readonly start: number;
  /** Offset just past the last content byte. */
  readonly end: number;
}

function readTlv(buf: Buffer, pos: number, limit: number): Tlv {
  if (pos >= limit) throw new Error('certificate DER is truncated');
  const id = buf[pos++]!;
  let tag = id;
  if ((id & 0x1f) === 0x1f) {
    let num = 0;
    let b: number;
    do {
      if (pos >= limit) throw new Error('certificate DER is truncated');
      b = buf[pos++]!;
      num = num * 128 + (b & 0x7f);
      if (num > 0xffffff) throw new Error('certificate DER has an oversized tag number');
    } while (b & 0x80);
    tag = 0x100 + num * 0x100 + id;
  }
  if (pos >= limit) throw new Error('certificate DER is truncated');
  let len = buf[pos++]!;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new Error('certificate uses an indefinite length, which DER forbids');
    if (n > 4) throw new Error('certificate DER has an oversized length');
    len = 0;
    for (let i = 0; i < n; i++) {
      if (pos >= limit) throw new Error('certificate DER is truncated');
      len = len * 256 + buf[pos++]!;
    }
  }
  const end = pos + len;
  if (end > limit) throw new Error('certificate DER element overruns its container');
  return { tag, start: pos, end };
}

function expectTlv(buf: Buffer, pos: number, limit: number, tag: number, what: string): Tlv {
  const el = readTlv(buf, pos, limit);
  if (el.tag !== tag) throw new Error(`certificate ${what} has tag 0x${el.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return el;
}

function decodeOid(buf: Buffer, el: Tlv): string {
  if (el.start === el.end) throw new Error('certificate has an empty OBJECT IDENTIFIER');
  let text = '';
  let value = 0;
  let big: bigint | null = null;
  let first = true;
  let fresh = true;
  for (let i = el.start; i < el.end; i++) {
    const b = buf[i]!;
    // 0x80 as the first byte of an arc is a non-minimal encoding: two encodings of one OID.
    if (fresh && b === 0x80) throw new Error('certificate has a non-minimal OBJECT IDENTIFIER');
    fresh = false;
    if (big === null && value > 2 ** 45) big = BigInt(value);
    if (big === null) value = value * 128 + (b & 0x7f);
    else big = (big << 7n) | BigInt(b & 0x7f);
    if (b & 0x80) continue;
    const arc: number | bigint = big ?? value;
    if (first) {
      first = false;
      if (arc < 40) text = `0.${arc}`;
      else if (arc < 80) text = `1.${Number(arc) - 40}`;
      else text = `2.${typeof arc === 'bigint' ? arc - 80n : arc - 80}`;
    } else {
      text += `.${arc}`;
    }
    value = 0;
    big = null;
    fresh = true;
  }
  if (!fresh) throw new Error('certificate has a truncated OBJECT IDENTIFIER');
  return text;
}

function attributeTypeName(buf: Buffer, el: Tlv): string {
  const oid = decodeOid(buf, el);
  return ATTRIBUTE_NAMES.get(oid) ?? oid;
}

interface DecodedValue {
  readonly text: string;
  /** True when the value is not a character string and `text` is RFC 4514's `#` + hex of its DER
   *  (upper-case, as OpenSSL prints it). */
  readonly binary: boolean;
}

function decodeAttributeValue(buf: Buffer, el: Tlv, headerStart: number): DecodedValue {
  switch (el.tag) {
    case UTF8_STRING:
      return { text: UTF8.decode(buf.subarray(el.start, el.end)), binary: false };
    case PRINTABLE_STRING:
    case IA5_STRING:
    case TELETEX_STRING:
    case VISIBLE_STRING:
    case NUMERIC_STRING:
      // latin1 maps each byte to one code point, so distinct encodings stay distinct. TeletexString
      // is T.61 in theory but Latin-1 in every certificate in practice (OpenSSL reads it so too).
      return { text: buf.toString('latin1', el.start, el.end), binary: false };
    case BMP_STRING: {
      if ((el.end - el.start) % 2 !== 0) throw new Error('certificate has a BMPString of odd length');
      const text = Buffer.from(buf.subarray(el.start, el.end)).swap16().toString('utf16le');
      if (LONE_SURROGATE.test(text)) throw new Error('certificate has a BMPString with an unpaired surrogate');
      return { text, binary: false };
    }
    case UNIVERSAL_STRING: {
      if ((el.end - el.start) % 4 !== 0) throw new Error('certificate has a UniversalString of bad length');
      let text = '';
      for (let i = el.start; i < el.end; i += 4) {
        const cp = buf.readUInt32BE(i);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new Error('certificate has a UniversalString with an invalid character');
        text += String.fromCodePoint(cp);
      }
      return { text, binary: false };
    }
    default:
      return { text: '#' + buf.toString('hex', headerStart, el.end).toUpperCase(), binary: true };
  }
}

/** RFC 4514 section 2.4, plus every control character as \XX (as OpenSSL's ESC_CTRL does) so that a
 *  DN can never carry a line break into a log line or header. */
function escapeDnValue(value: string): string {
  let out = '';
  const last = value.length - 1;
  for (let i = 0; i <= last; i++) {
    const ch = value[i]!;
    const code = ch.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) {
      out += '\\' + code.toString(16).toUpperCase().padStart(2, '0');
    } else if (ch === ',' || ch === '+' || ch === '"' || ch === '\\' || ch === '<' || ch === '>' || ch === ';') {
      out += '\\' + ch;
    } else if ((i === 0 && (ch === ' ' || ch === '#')) || (i === last && ch === ' ')) {
      out += '\\' + ch;
    } else {
      out += ch;
    }
  }
  return out;
}

function parseName(buf: Buffer, name: Tlv): DistinguishedName {
  const attributes: DnAttribute[] = [];
  const rdnTexts: string[] = [];
  for (let p = name.start; p < name.end; ) {
    const rdn = expectTlv(buf, p, name.end, SET, 'RDN');
    p = rdn.end;
    if (rdn.start === rdn.end) throw new Error('certificate has an empty RDN');
    const avaTexts: string[] = [];
    for (let q = rdn.start; q < rdn.end; ) {
      const ava = expectTlv(buf, q, rdn.end, SEQUENCE, 'attribute');
      q = ava.end;
      const typeEl = expectTlv(buf, ava.start, ava.end, OID, 'attribute type');
      const valueEl = readTlv(buf, typeEl.end, ava.end);
      if (valueEl.end !== ava.end) throw new Error('certificate attribute has trailing data');
      const type = attributeTypeName(buf, typeEl);
      const value = decodeAttributeValue(buf, valueEl, typeEl.end);
      attributes.push({ type, value: value.text });
      // A value of an unknown attribute type is written as its string, not as RFC 4514's #hex DER
      // form: readable, and what OpenSSL prints too. Only non-string values use #hex.
      avaTexts.push(`${type}=${value.binary ? value.text : escapeDnValue(value.text)}`);
    }
    // OpenSSL's RFC2253 printer reverses the flat list of attributes, so the AVAs of a
    // multi-valued RDN come out reversed as well; doing the same keeps the string byte-identical
    // to what Envoy and `openssl x509 -nameopt RFC2253` show.
    rdnTexts.push(avaTexts.reverse().join('+'));
  }
  return { attributes, rfc4514: rdnTexts.reverse().join(',') };
}

function parseTime(buf: Buffer, el: Tlv, what: string): Date {
  const text = buf.toString('latin1', el.start, el.end);
  let m: RegExpExecArray | null;
  let year: number;
  if (el.tag === UTC_TIME) {
    // RFC 5280 4.1.2.5.1: seconds present, always Z; YY >= 50 means 19YY.
    m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text);
    if (m === null) throw new Error(`certificate ${what} is not a valid UTCTime`);
    year = Number(m[1]);
    year += year >= 50 ? 1900 : 2000;
  } else if (el.tag === GENERALIZED_TIME) {
    // RFC 5280 4.1.2.5.2: seconds present, no fraction, always Z.
    m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text);
    if (m === null) throw new Error(`certificate ${what} is not a valid GeneralizedTime`);
    year = Number(m[1]);
  } else {
    throw new Error(`certificate ${what} is neither UTCTime nor GeneralizedTime`);
  }
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  const d = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  if (
    d.getUTCFullYear() !== year ||
    d.getUTCMonth() !== month - 1 ||
    d.getUTCDate() !== day ||
    d.getUTCHours() !== hour ||
    d.getUTCMinutes() !== minute ||
    d.getUTCSeconds() !== second
  ) {
    throw new Error(`certificate ${what} is not a real date: ${text}`);
  }
  return d;
}

/**
 * Canonical text of an iPAddress SAN: dotted quad for 4 bytes, RFC 5952 for 16 bytes (lower-case,
 * no leading zeros, the first longest run of two or more zero groups as "::", and the recommended
 * mixed form ::ffff:a.b.c.d for IPv4-mapped addresses). Null for any other length: 8 and 32 bytes
 * are name-constraint subnets, not addresses.
 */
export function formatIpAddress(bytes: Uint8Array): string | null {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) return null;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number): string => g.toString(16);
  if (bestLen < 2) return groups.map(hex).join(':');
  return `${groups.slice(0, bestStart).map(hex).join(':')}::${groups.slice(bestStart + bestLen).map(hex).join(':')}`;
}

interface MutableSans {
  dns: string[];
  uri: string[];
  email: string[];
  ip: string[];
}

function parseSubjectAltNames(buf: Buffer, extnValue: Tlv, out: MutableSans): void {
  const names = expectTlv(buf, extnValue.start, extnValue.end, SEQUENCE, 'subjectAltName');
  if (names.end !== extnValue.end) throw new Error('certificate subjectAltName has trailing data');
  for (let p = names.start; p < names.end; ) {
    const gn = readTlv(buf, p, names.end);
    p = gn.end;
    switch (gn.tag) {
      case GN_DNS_NAME:
        out.dns.push(buf.toString('latin1', gn.start, gn.end));
        break;
      case GN_URI:
        out.uri.push(buf.toString('latin1', gn.start, gn.end));
        break;
      case GN_RFC822_NAME:
        out.email.push(buf.toString('latin1', gn.start, gn.end));
        break;
      case GN_IP_ADDRESS: {
        const ip = formatIpAddress(buf.subarray(gn.start, gn.end));
        if (ip !== null) out.ip.push(ip);
        break;
      }
      case GN_OTHER_NAME:
      case GN_X400_ADDRESS:
      case GN_DIRECTORY_NAME:
      case GN_EDI_PARTY_NAME:
      case GN_REGISTERED_ID:
        break;
      default:
        // Includes constructed encodings of the string alternatives (BER, not DER): skipping them
        // would silently drop a name the issuer meant to assert.
        throw new Error(`certificate subjectAltName has an unexpected GeneralName tag 0x${gn.tag.toString(16)}`);
    }
  }
}

function parseExtensions(buf: Buffer, wrapper: Tlv, sans: MutableSans): void {
  const list = expectTlv(buf, wrapper.start, wrapper.end, SEQUENCE, 'extensions');
  if (list.end !== wrapper.end) throw new Error('certificate extensions have trailing data');
  let sawSan = false;
  for (let p = list.start; p < list.end; ) {
    const ext = expectTlv(buf, p, list.end, SEQUENCE, 'extension');
    p = ext.end;
    const id = expectTlv(buf, ext.start, ext.end, OID, 'extension id');
    let next = readTlv(buf, id.end, ext.end);
    if (next.tag === BOOLEAN) next = readTlv(buf, next.end, ext.end);
    if (next.tag !== OCTET_STRING || next.end !== ext.end) throw new Error('certificate extension is malformed');
    const isSan =
      id.end - id.start === 3 && buf[id.start] === SAN_OID_BYTES[0] && buf[id.start + 1] === SAN_OID_BYTES[1] && buf[id.start + 2] === SAN_OID_BYTES[2];
    if (!isSan) continue;
    // RFC 5280 forbids repeating an extension; with two SAN lists there is no right one to pick.
    if (sawSan) throw new Error('certificate has more than one subjectAltName extension');
    sawSan = true;
    parseSubjectAltNames(buf, next, sans);
  }
}

/**
 * The SPIFFE identity of a leaf: exactly one URI SAN with the spiffe scheme (matched
 * case-insensitively so that a second, oddly spelled one still counts and voids the identity), a
 * valid SPIFFE ID, and a non-root path (X509-SVID 3.1: only signing certificates carry a bare
 * trust domain).
 */
function spiffeFromUris(uris: readonly string[]): SpiffeId | null {
  let candidate: string | null = null;
  for (const uri of uris) {
    if (uri.length >= 9 && uri.slice(0, 9).toLowerCase() === 'spiffe://') {
      if (candidate !== null) return null;
      candidate = uri;
    }
  }
  if (candidate === null) return null;
  const id = parseSpiffeId(candidate);
  return id !== null && id.path !== '' ? id : null;
}

/** Parses a DER X.509 certificate into the gateway's identity. Throws on a malformed certificate. */
export function identityFromDer(der: Buffer | Uint8Array): PeerIdentity {
  const buf = Buffer.isBuffer(der) ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  const cert = expectTlv(buf, 0, buf.length, SEQUENCE, 'Certificate');
  if (cert.end !== buf.length) throw new Error('certificate DER has trailing data');
  const tbs = expectTlv(buf, cert.start, cert.end, SEQUENCE, 'TBSCertificate');

  let el = readTlv(buf, tbs.start, tbs.end);
  if (el.tag === CTX_0_CONSTRUCTED) el = readTlv(buf, el.end, tbs.end);
  if (el.tag !== INTEGER || el.start === el.end) throw new Error('certificate serialNumber is malformed');
  const serial = normalizeSerial(buf.toString('hex', el.start, el.end));

  const sigAlg = expectTlv(buf, el.end, tbs.end, SEQUENCE, 'signature algorithm');
  const issuerEl = expectTlv(buf, sigAlg.end, tbs.end, SEQUENCE, 'issuer');
  const validity = expectTlv(buf, issuerEl.end, tbs.end, SEQUENCE, 'validity');
  const subjectEl = expectTlv(buf, validity.end, tbs.end, SEQUENCE, 'subject');
  const spki = expectTlv(buf, subjectEl.end, tbs.end, SEQUENCE, 'subjectPublicKeyInfo');

  const notBeforeEl = readTlv(buf, validity.start, validity.end);
  const notAfterEl = readTlv(buf, notBeforeEl.end, validity.end);
  if (notAfterEl.end !== validity.end) throw new Error('certificate validity has trailing data');

  const sans: MutableSans = { dns: [], uri: [], email: [], ip: [] };
  // Optional trailers in their fixed order: issuerUniqueID [1], subjectUniqueID [2], extensions [3].
  let order = 0;
  for (let p = spki.end; p < tbs.end; ) {
    const t = readTlv(buf, p, tbs.end);
    p = t.end;
    const rank = t.tag === CTX_1_PRIMITIVE || t.tag === CTX_1_CONSTRUCTED ? 1 : t.tag === CTX_2_PRIMITIVE || t.tag === CTX_2_CONSTRUCTED ? 2 : t.tag === CTX_3_CONSTRUCTED ? 3 : 0;
    if (rank <= order) throw new Error(`certificate has an unexpected field (tag 0x${t.tag.toString(16)}) after subjectPublicKeyInfo`);
    order = rank;
    if (rank === 3) parseExtensions(buf, t, sans);
  }

  // The outer signature fields are not inspected (OpenSSL verified the signature), only checked
  // for shape so that trailing garbage inside the certificate is refused.
  const outerAlg = expectTlv(buf, tbs.end, cert.end, SEQUENCE, 'signatureAlgorithm');
  const signature = expectTlv(buf, outerAlg.end, cert.end, BIT_STRING, 'signatureValue');
  if (signature.end !== cert.end) throw new Error('certificate has trailing data after the signature');

  return {
    subject: parseName(buf, subjectEl),
    issuer: parseName(buf, issuerEl),
    san: sans,
    spiffe: spiffeFromUris(sans.uri),
    serial,
    fingerprint256: createHash('sha256').update(buf).digest('hex'),
    notBefore: parseTime(buf, notBeforeEl, 'notBefore'),
    notAfter: parseTime(buf, notAfterEl, 'notAfter'),
  };
}
