/**
 * X.509: the one reader and formatter of distinguished names. Every DN the gateway prints (XFCC
 * `Subject="..."`, log fields, revocation verdicts, `cert inspect`) is the RFC 4514 string made
 * here from the Name's DER, in OpenSSL's RFC2253 form: least significant RDN first, short attribute
 * names, every control character escaped so a DN can never carry a line break into a log line or a
 * header.
 */
import type { X509Certificate } from 'node:crypto';
import {
  DerCursor, DerError, decodeOid,
  TAG_BMP_STRING, TAG_IA5_STRING, TAG_NUMERIC_STRING, TAG_OID, TAG_PRINTABLE_STRING, TAG_SEQUENCE, TAG_SET,
  TAG_TELETEX_STRING, TAG_UNIVERSAL_STRING, TAG_UTF8_STRING, TAG_VISIBLE_STRING,
} from './der.js';
import { walkCertificate } from './cert-fields.js';

/** One attribute of a distinguished name, in DER order (most significant RDN first). */
export interface DnAttribute {
  /** Short name (CN, OU, O, L, ST, C, DC, emailAddress, serialNumber, UID, ...) or the dotted OID. */
  readonly type: string;
  readonly value: string;
}

export interface DistinguishedName {
  readonly attributes: readonly DnAttribute[];
  /** RFC 4514 string (least significant RDN first, as OpenSSL's RFC2253 flag prints it). */
  readonly rfc4514: string;
}

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

interface DecodedValue {
  readonly text: string;
  /** True when the value is not a character string and `text` is RFC 4514's `#` + hex of its DER
   *  (upper-case, as OpenSSL prints it). */
  readonly binary: boolean;
}

function decodeAttributeValue(buf: Buffer, tag: number, headerStart: number, start: number, end: number): DecodedValue {
  switch (tag) {
    case TAG_UTF8_STRING:
      try {
        return { text: UTF8.decode(buf.subarray(start, end)), binary: false };
      } catch {
        throw new DerError('UTF8String is not valid UTF-8', start);
      }
    case TAG_PRINTABLE_STRING:
    case TAG_IA5_STRING:
    case TAG_TELETEX_STRING:
    case TAG_VISIBLE_STRING:
    case TAG_NUMERIC_STRING:
      // latin1 maps each byte to one code point, so distinct encodings stay distinct. TeletexString
      // is T.61 in theory but Latin-1 in every certificate in practice (OpenSSL reads it so too).
      return { text: buf.toString('latin1', start, end), binary: false };
    case TAG_BMP_STRING: {
      if ((end - start) % 2 !== 0) throw new DerError('BMPString of odd length', start);
      const text = Buffer.from(buf.subarray(start, end)).swap16().toString('utf16le');
      if (LONE_SURROGATE.test(text)) throw new DerError('BMPString with an unpaired surrogate', start);
      return { text, binary: false };
    }
    case TAG_UNIVERSAL_STRING: {
      if ((end - start) % 4 !== 0) throw new DerError('UniversalString of bad length', start);
      let text = '';
      for (let i = start; i < end; i += 4) {
        const cp = buf.readUInt32BE(i);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new DerError('UniversalString with an invalid character', i);
        text += String.fromCodePoint(cp);
      }
      return { text, binary: false };
    }
    default:
      return { text: '#' + buf.toString('hex', headerStart, end).toUpperCase(), binary: true };
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

/**
 * Decodes the Name whose whole TLV is [start, end) of `buf`: its attributes in DER order and its
 * RFC 4514 string. Throws DerError on a malformed Name or an undecodable string value.
 */
export function decodeName(buf: Buffer, start: number, end: number): DistinguishedName {
  const c = new DerCursor(buf);
  c.expect(start, end, TAG_SEQUENCE, 'Name');
  if (c.end !== end) throw new DerError('trailing data after Name', c.end);
  const nameEnd = c.end;
  const attributes: DnAttribute[] = [];
  const rdnTexts: string[] = [];
  for (let p = c.contentStart; p < nameEnd; ) {
    c.expect(p, nameEnd, TAG_SET, 'RDN');
    const rdnEnd = c.end;
    p = rdnEnd;
    if (c.contentStart === rdnEnd) throw new DerError('empty RDN', c.start);
    const avaTexts: string[] = [];
    for (let q = c.contentStart; q < rdnEnd; ) {
      c.expect(q, rdnEnd, TAG_SEQUENCE, 'attribute');
      const avaEnd = c.end;
      q = avaEnd;
      c.expect(c.contentStart, avaEnd, TAG_OID, 'attribute type');
      const oid = decodeOid(buf, c.contentStart, c.end);
      const valueHeader = c.end;
      if (valueHeader >= avaEnd) throw new DerError('missing attribute value (truncated)', valueHeader);
      c.read(valueHeader, avaEnd);
      if (c.end !== avaEnd) throw new DerError('attribute has trailing data', c.end);
      const type = ATTRIBUTE_NAMES.get(oid) ?? oid;
      const value = decodeAttributeValue(buf, c.tag, valueHeader, c.contentStart, c.end);
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

/** RFC 4514 string of a whole Name DER (e.g. CertFields.issuerDer or a CRL's issuerDer). */
export function nameToRfc4514(nameDer: Buffer): string {
  return decodeName(nameDer, 0, nameDer.length).rfc4514;
}

/**
 * The subject (or issuer) of a certificate as RFC 4514, for logs and messages. Never throws: a
 * certificate OpenSSL accepted but this strict reader refuses (say, an invalid UTF8String) is
 * shown from Node's own text of the name, its lines joined with ", ", so the log still names it.
 */
export function certificateDn(cert: X509Certificate | { readonly raw: Buffer; readonly subject?: unknown; readonly issuer?: unknown }, which: 'subject' | 'issuer' = 'subject'): string {
  try {
    const raw = cert.raw;
    const layout = walkCertificate(raw);
    const name = which === 'subject' ? layout.subject : layout.issuer;
    return decodeName(raw, name.start, name.end).rfc4514;
  } catch {
    return nodeNameText(cert[which]);
  }
}

/** Node's text of a name: X509Certificate's newline-separated string or a PeerCertificate's object. */
function nodeNameText(name: unknown): string {
  let text = '';
  if (typeof name === 'string') {
    text = name.split('\n').join(', ');
  } else if (name !== null && typeof name === 'object') {
    text = Object.entries(name as Record<string, string | string[]>)
      .map(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}=${x}`).join(', ') : `${k}=${v}`))
      .join(', ');
  }
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, (ch) => '\\' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}
