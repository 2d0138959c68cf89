/**
 * Identity: the typed view of a peer certificate that policy, logging and upstream headers use.
 * Computed once per TLS connection (see identity-from-certificate.ts); everything downstream reads
 * this structure and never re-parses the certificate.
 */

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

export interface SpiffeId {
  /** The whole ID, e.g. spiffe://example.org/ns/default/sa/billing */
  readonly uri: string;
  readonly trustDomain: string;
  /** Path part, starting with '/', e.g. /ns/default/sa/billing */
  readonly path: string;
}

export interface SubjectAltNames {
  readonly dns: readonly string[];
  readonly uri: readonly string[];
  readonly email: readonly string[];
  /** Canonical text form (IPv4 dotted quad, IPv6 compressed lower-case). */
  readonly ip: readonly string[];
}

export interface PeerIdentity {
  readonly subject: DistinguishedName;
  readonly issuer: DistinguishedName;
  readonly san: SubjectAltNames;
  /** The single spiffe:// URI SAN, or null (none, or more than one: SPIFFE allows exactly one). */
  readonly spiffe: SpiffeId | null;
  /** Serial as canonical hex: upper-case, no separators, no leading 00 bytes. */
  readonly serial: string;
  /** SHA-256 of the DER certificate: lower-case hex, no separators. */
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const HEX = /^[0-9a-f]+$/;

/** Canonical serial: upper-case hex, separators removed, leading zero bytes dropped ("00AB" -> "AB"). */
export function normalizeSerial(input: string): string {
  let hex = input.replace(/[:\s]/g, '').toLowerCase();
  if (hex.startsWith('0x')) hex = hex.slice(2);
  if (!HEX.test(hex)) throw new Error(`not a hex serial: ${input}`);
  if (hex.length % 2 === 1) hex = '0' + hex;
  while (hex.length > 2 && hex.startsWith('00')) hex = hex.slice(2);
  return hex.toUpperCase();
}

/** Canonical SHA-256 fingerprint: lower-case hex, 64 digits, separators removed. */
export function normalizeFingerprint(input: string): string {
  const hex = input.replace(/[:\s]/g, '').toLowerCase();
  if (hex.length !== 64 || !HEX.test(hex)) throw new Error(`not a SHA-256 fingerprint: ${input}`);
  return hex;
}
