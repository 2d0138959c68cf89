/**
 * Certificate to identity: owns the one place where a peer's DER certificate is turned into a
 * PeerIdentity. It runs once per TLS connection (client leg) and once per new upstream connection,
 * so it walks the DER directly (src/x509: the certificate walk, the DN reader, the time decoder)
 * instead of going through a general ASN.1 schema library: @peculiar/asn1-schema took about 0.7 ms
 * per certificate (asn1js alone 0.35 ms), this walk takes a few tens of microseconds. The walk is
 * strict: every element's tag is checked, lengths must stay inside their container and there may
 * be nothing left over, so a malformed certificate throws instead of yielding a partial identity
 * (the caller refuses the connection).
 *
 * SAN values are read from their own DER elements, never from Node's `subjectaltname` string, so a
 * value containing ", DNS:..." or ", URI:..." stays one value.
 */
import { createHash } from 'node:crypto';
import { normalizeSerial } from '../x509/canonical-hex.js';
import { forEachExtension, walkCertificate } from '../x509/cert-fields.js';
import { DerCursor, DerError, decodeTime, idCe, TAG_SEQUENCE, type ExtensionView } from '../x509/der.js';
import { decodeName } from '../x509/dn.js';
import { parseSpiffeId } from './spiffe.js';
import type { PeerIdentity, SpiffeId } from './peer-identity.js';

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

/** id-ce-subjectAltName (2.5.29.17). */
const CE_SUBJECT_ALT_NAME = 17;

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

function parseSubjectAltNames(buf: Buffer, ext: ExtensionView, out: MutableSans): void {
  const c = new DerCursor(buf);
  c.expect(ext.valueStart, ext.valueEnd, TAG_SEQUENCE, 'subjectAltName');
  if (c.end !== ext.valueEnd) throw new DerError('subjectAltName has trailing data', c.end);
  const namesEnd = c.end;
  for (let p = c.contentStart; p < namesEnd; ) {
    const tag = c.read(p, namesEnd).tag;
    p = c.end;
    switch (tag) {
      case GN_DNS_NAME:
        out.dns.push(buf.toString('latin1', c.contentStart, c.end));
        break;
      case GN_URI:
        out.uri.push(buf.toString('latin1', c.contentStart, c.end));
        break;
      case GN_RFC822_NAME:
        out.email.push(buf.toString('latin1', c.contentStart, c.end));
        break;
      case GN_IP_ADDRESS: {
        const ip = formatIpAddress(buf.subarray(c.contentStart, c.end));
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
        throw new DerError(`subjectAltName has an unexpected GeneralName tag 0x${tag.toString(16)}`, c.start);
    }
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
  try {
    const layout = walkCertificate(buf);
    const sans: MutableSans = { dns: [], uri: [], email: [], ip: [] };
    let sawSan = false;
    forEachExtension(buf, layout, (ext) => {
      if (idCe(buf, ext.oidStart, ext.oidEnd) !== CE_SUBJECT_ALT_NAME) return;
      // RFC 5280 forbids repeating an extension; with two SAN lists there is no right one to pick.
      if (sawSan) throw new DerError('more than one subjectAltName extension', ext.oidStart);
      sawSan = true;
      parseSubjectAltNames(buf, ext, sans);
    });
    const { serial, issuer, subject, notBefore, notAfter } = layout;
    return {
      subject: decodeName(buf, subject.start, subject.end),
      issuer: decodeName(buf, issuer.start, issuer.end),
      san: sans,
      spiffe: spiffeFromUris(sans.uri),
      serial: normalizeSerial(buf.toString('hex', serial.contentStart, serial.end)),
      fingerprint256: createHash('sha256').update(buf).digest('hex'),
      notBefore: decodeTime(buf, notBefore.tag, notBefore.contentStart, notBefore.end),
      notAfter: decodeTime(buf, notAfter.tag, notAfter.contentStart, notAfter.end),
    };
  } catch (err) {
    if (err instanceof DerError) throw new Error(`certificate is malformed: ${err.message}`, { cause: err });
    throw err;
  }
}
