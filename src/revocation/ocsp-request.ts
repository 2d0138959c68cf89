/**
 * Revocation: what the gateway asks an OCSP responder (RFC 6960 4.1) and where. Builds the CertID
 * that names one certificate, encodes the unsigned OCSPRequest carrying it (with an optional
 * RFC 8954 nonce), and reads the responder URLs from a certificate's Authority Information Access.
 * Pure: no sockets, no clock; the exchange lives in ocsp-http-lookup.ts, the answer's checks in
 * ocsp-response.ts.
 */

import { createHash, type X509Certificate } from 'node:crypto';
import { normalizeSerial } from '../x509/canonical-hex.js';
import { forEachExtension, walkCertificate } from '../x509/cert-fields.js';
import { DerCursor, DerError, decodeOid, TAG_BIT_STRING, TAG_OID, TAG_SEQUENCE } from '../x509/der.js';

/** One certificate as OCSP names it: its issuer (by hashes) and its serial. */
export interface OcspCertId {
  /** SHA-1 of the issuer's subject Name DER. */
  readonly issuerNameHash: Buffer;
  /** SHA-1 of the issuer's subjectPublicKey BIT STRING value (without the unused-bits octet). */
  readonly issuerKeyHash: Buffer;
  /** Canonical hex (src/x509/canonical-hex.ts normalizeSerial). */
  readonly serial: string;
  /** INTEGER content bytes exactly as in the certificate (sign octet included). */
  readonly serialDer: Buffer;
}

export const OID_SHA1 = '1.3.14.3.2.26';
export const OID_OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2';
const OID_AIA = '1.3.6.1.5.5.7.1.1';
const OID_AD_OCSP = '1.3.6.1.5.5.7.48.1';

/** RFC 8954 2.1: a nonce is 1 to 32 octets. */
export const MAX_NONCE_BYTES = 32;

/** An AIA with more OCSP URLs than this is not a real CA's; the extras are ignored. */
const MAX_OCSP_URLS = 8;
const MAX_URL_LENGTH = 2048;

function sha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest();
}

/**
 * The subjectPublicKey BIT STRING value of a SubjectPublicKeyInfo whose whole TLV is [start, end),
 * without the unused-bits octet: the bytes OCSP hashes into issuerKeyHash and ResponderID byKey.
 */
export function subjectPublicKeyBits(der: Buffer, start: number, end: number): Buffer {
  const c = new DerCursor(der);
  const spkiEnd = c.expect(start, end, TAG_SEQUENCE, 'subjectPublicKeyInfo').end;
  c.expect(c.contentStart, spkiEnd, TAG_SEQUENCE, 'subjectPublicKeyInfo.algorithm');
  c.expect(c.end, spkiEnd, TAG_BIT_STRING, 'subjectPublicKey');
  if (c.end !== spkiEnd) throw new DerError('trailing data in subjectPublicKeyInfo', c.end);
  if (c.end - c.contentStart < 1 || der[c.contentStart] !== 0) throw new DerError('subjectPublicKey: unused bits must be 0', c.contentStart);
  return der.subarray(c.contentStart + 1, c.end);
}

/** SHA-1 of a certificate's subjectPublicKey value (RFC 6960 KeyHash). Throws DerError on a malformed certificate. */
export function certificateKeyHash(certDer: Buffer): Buffer {
  const spki = walkCertificate(certDer).spki;
  return sha1(subjectPublicKeyBits(certDer, spki.start, spki.end));
}

/**
 * SHA-1 CertID (RFC 6960 4.1.1; SHA-1 is what responders expect and is used here as a name, not
 * for a signature): hashes of the issuer's subject Name DER and of its subjectPublicKey BIT STRING
 * value. Throws DerError when the leaf or the issuer certificate is malformed.
 */
export function certIdFor(leafDer: Buffer, issuer: X509Certificate): OcspCertId {
  const leaf = walkCertificate(leafDer);
  const serialDer = Buffer.from(leafDer.subarray(leaf.serial.contentStart, leaf.serial.end));
  const issuerDer = issuer.raw;
  const iss = walkCertificate(issuerDer);
  return {
    issuerNameHash: sha1(issuerDer.subarray(iss.subject.start, iss.subject.end)),
    issuerKeyHash: sha1(subjectPublicKeyBits(issuerDer, iss.spki.start, iss.spki.end)),
    serial: normalizeSerial(serialDer.toString('hex')),
    serialDer,
  };
}

function encLen(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), encLen(body.length), body]);
}

// Fixed encodings, written out as OpenSSL emits them (SHA-1 with explicit NULL parameters), so a
// request is byte-identical to `openssl ocsp -reqout` for the same certificate.
const SHA1_ALGORITHM_ID = Buffer.from('300906052b0e03021a0500', 'hex');
const NONCE_OID_TLV = Buffer.from('06092b0601050507300102', 'hex');

/** The CertID SEQUENCE; shared with the response side, which compares against the same fields. */
export function encodeCertId(id: OcspCertId): Buffer {
  return tlv(TAG_SEQUENCE, SHA1_ALGORITHM_ID, tlv(0x04, id.issuerNameHash), tlv(0x04, id.issuerKeyHash), tlv(0x02, id.serialDer));
}

/**
 * OCSPRequest DER with one Request and, when `nonce` is given, the id-pkix-ocsp-nonce request
 * extension whose value is an OCTET STRING wrapping the nonce (RFC 8954). Unsigned, version
 * omitted (v1 is the DEFAULT), as responders expect. Throws RangeError for a nonce outside 1..32
 * octets (a caller bug, not input).
 */
export function encodeOcspRequest(id: OcspCertId, nonce: Buffer | null): Buffer {
  const request = tlv(TAG_SEQUENCE, encodeCertId(id));
  const parts = [tlv(TAG_SEQUENCE, request)];
  if (nonce !== null) {
    if (nonce.length < 1 || nonce.length > MAX_NONCE_BYTES) throw new RangeError(`OCSP nonce must be 1..${MAX_NONCE_BYTES} octets, got ${nonce.length}`);
    const ext = tlv(TAG_SEQUENCE, NONCE_OID_TLV, tlv(0x04, tlv(0x04, nonce)));
    parts.push(tlv(0xa2, tlv(TAG_SEQUENCE, ext)));
  }
  return tlv(TAG_SEQUENCE, tlv(TAG_SEQUENCE, ...parts));
}

/** What an OCSP URL must look like before it is worth returning: http(s), printable, bounded. */
function isOcspUrl(text: string): boolean {
  return text.length <= MAX_URL_LENGTH && /^https?:\/\/[\x21-\x7e]+$/i.test(text);
}

/**
 * The http(s) OCSP responder URLs in the certificate's Authority Information Access (id-ad-ocsp
 * accessLocations that are URIs), in order, at most 8; [] when there are none. Never throws: a
 * malformed certificate or AIA reads as "no responder", and the caller's policy for certificates
 * without one applies (such a certificate was signed by a trusted CA, so this is a CA defect, not
 * something a client can steer). ocsp-http-lookup's ocspUrlProblem still vets each URL.
 */
export function ocspUrlsOf(certDer: Buffer): string[] {
  try {
    const layout = walkCertificate(certDer);
    const urls: string[] = [];
    forEachExtension(certDer, layout, (ext) => {
      if (decodeOid(certDer, ext.oidStart, ext.oidEnd) !== OID_AIA) return;
      readAiaOcspUrls(certDer, ext.valueStart, ext.valueEnd, urls);
    });
    return urls;
  } catch (err) {
    if (err instanceof DerError) return [];
    throw err;
  }
}

/** AuthorityInfoAccessSyntax (RFC 5280 4.2.2.1): SEQUENCE OF { accessMethod OID, accessLocation GeneralName }. */
function readAiaOcspUrls(der: Buffer, start: number, end: number, out: string[]): void {
  const c = new DerCursor(der);
  const listEnd = c.expect(start, end, TAG_SEQUENCE, 'AuthorityInfoAccess').end;
  if (listEnd !== end) throw new DerError('AuthorityInfoAccess: trailing data', listEnd);
  for (let p = c.contentStart; p < listEnd; ) {
    const adEnd = c.expect(p, listEnd, TAG_SEQUENCE, 'AccessDescription').end;
    p = adEnd;
    c.expect(c.contentStart, adEnd, TAG_OID, 'accessMethod');
    const method = decodeOid(der, c.contentStart, c.end);
    c.read(c.end, adEnd);
    if (c.end !== adEnd) throw new DerError('AccessDescription: trailing data', c.end);
    // uniformResourceIdentifier [6] IMPLICIT IA5String; other GeneralName forms are not fetchable.
    if (method !== OID_AD_OCSP || c.tag !== 0x86 || out.length >= MAX_OCSP_URLS) continue;
    const url = der.toString('latin1', c.contentStart, c.end);
    if (isOcspUrl(url)) out.push(url);
  }
}
